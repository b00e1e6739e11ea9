"""Time ``render_issue`` in process: N renders of one issue, then the median and the spread.

    .venv/bin/python bench/render.py [ISSUE] [-n N]

The first render (cold: Jinja compiles the templates) is reported apart from the rest.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from newsletter.config import load_settings
from newsletter.issues import load_topics, read_issue, resolve_issue
from newsletter.render import render_issue

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("issue", nargs="?", default="2021-01")
    parser.add_argument("-n", type=int, default=50, help="renders to time (default 50)")
    args = parser.parse_args()
    settings = load_settings(ROOT, env={})
    issue = read_issue(
        resolve_issue(settings.issues_dir, args.issue), load_topics(settings.topics_file)
    )

    def render_once() -> float:
        started = time.perf_counter()
        rendered = render_issue(
            issue,
            templates_dir=settings.templates_dir,
            sender=settings.sender,
            links=settings.links,
        )
        assert rendered.html and rendered.text
        return time.perf_counter() - started

    cold = render_once()
    times = sorted(render_once() for _ in range(args.n))
    print(f"render_issue({args.issue}): cold {cold * 1000:.1f} ms")
    print(
        f"warm, {args.n} renders: median {statistics.median(times) * 1000:.1f} ms, "
        f"min {times[0] * 1000:.1f} ms, max {times[-1] * 1000:.1f} ms"
    )


if __name__ == "__main__":
    main()
