"""Measure how soon a save shows in `newsletter preview`, in a real headless Chromium.

    .venv/bin/python bench/preview_latency.py              # 15 saves of a copy of issues/2021-01.md
    .venv/bin/python bench/preview_latency.py --saves 40 --pause 0.5

The preview runs as the real command (`python -m newsletter preview`, a subprocess) on a copy of
the sample project in bench/out/preview/ (git-ignored). Chromium opens the page (via playwright, as
tests/browser.py does); then each save rewrites the issue file the way editors do (a temporary
file renamed over it) with a new article title, and three things are timed from the save:

- render alone: `Previewer._render` of the same file in this process (the floor: no watching, no
  browser), timed before the server starts;
- save -> event: until a second client of /events (httpx, this process) is told the new version
  (the server's part: noticing the save, rendering once, publishing);
- save -> both frames: until the desktop and the phone frame both show the new title (the
  browser's clock, polled every 5 ms in the page, against this process's wall clock).

It prints min / median / max of each and the load average. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import queue
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "out" / "preview"
sys.path.insert(0, str(REPO))

from newsletter.config import load_settings  # noqa: E402
from newsletter.web.preview import Choice, Previewer, PreviewSource  # noqa: E402
from tests.browser import chromium, page_at  # noqa: E402

MONTH = "2021-01"
TITLE = "Burnout Among Psychological Practitioners in the NHS"
# The browser's Date.now() once both frames show the text (a truthy value ends the wait).
FRAMES_SHOW = """(text) => {
  const frames = Array.from(document.querySelectorAll("iframe.email"));
  const shown = frames.length === 2 && frames.every((frame) => {
    const doc = frame.contentDocument;
    return doc !== null && doc.body !== null && doc.body.innerText.includes(text);
  });
  return shown ? Date.now() : false;
}"""


def project() -> Path:
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    shutil.copy(REPO / "schedule.yaml", OUT / "schedule.yaml")
    for folder in ("issues", "templates"):
        shutil.copytree(REPO / folder, OUT / folder)
    return OUT


def save(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".saving")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def render_floor(root: Path, times: int) -> list[float]:
    settings = load_settings(root)
    previewer = Previewer(
        PreviewSource(
            issue_path=settings.issues_dir / f"{MONTH}.md",
            topics_file=settings.topics_file,
            templates_dir=settings.templates_dir,
            sender=settings.sender,
            links=settings.links,
            display_path=f"issues/{MONTH}.md",
        )
    )
    previewer._render(0, Choice())  # warm: templates compiled, MJML loaded
    found = []
    for number in range(times):
        start = time.perf_counter()
        previewer._render(number + 1, Choice())
        found.append(time.perf_counter() - start)
    return found


def start_preview(root: Path) -> tuple[subprocess.Popen[str], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEWSLETTER_", "SENDGRID_"))}
    process = subprocess.Popen(
        [sys.executable, "-m", "newsletter", "--project", str(root), "preview", MONTH],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    match = re.search(r"at (http://127\.0\.0\.1:\d+/)", process.stdout.readline())
    if not match:
        process.kill()
        raise SystemExit("the preview did not start")
    return process, match.group(1)


def listen(url: str, seen: queue.Queue[float]) -> None:
    """Put the wall-clock time of each version event on ``seen``."""
    with httpx.stream("GET", url + "events", timeout=httpx.Timeout(10, read=None)) as answer:
        for line in answer.iter_lines():
            if line.startswith("event: version"):
                seen.put(time.time())


def show(name: str, values: list[float]) -> None:
    ms = [value * 1000 for value in values]
    print(
        f"{name:<22} min {min(ms):6.0f} ms  median {statistics.median(ms):6.0f} ms  "
        f"max {max(ms):6.0f} ms  (n={len(ms)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--saves", type=int, default=15)
    parser.add_argument("--pause", type=float, default=0.4, help="seconds between saves")
    args = parser.parse_args()
    root = project()
    issue = root / "issues" / f"{MONTH}.md"
    original = issue.read_text(encoding="utf-8")
    print(f"load average before: {' '.join(f'{n:.2f}' for n in os.getloadavg())}")
    floor = render_floor(root, args.saves)
    process, url = start_preview(root)
    events: queue.Queue[float] = queue.Queue()
    threading.Thread(target=listen, args=(url, events), daemon=True).start()
    to_event, to_frames = [], []
    try:
        with chromium() as browser, page_at(browser, 1600, 1000) as page:
            page.goto(url)
            page.wait_for_function(FRAMES_SHOW, arg=TITLE, polling=5, timeout=20_000)
            time.sleep(1.0)
            while not events.empty():
                events.get()
            for number in range(args.saves):
                marker = f"Edit {number:03d} of the title"
                saved = time.time()
                save(issue, original.replace(TITLE, marker))
                shown = page.wait_for_function(FRAMES_SHOW, arg=marker, polling=5, timeout=20_000)
                to_frames.append(shown.json_value() / 1000 - saved)
                to_event.append(events.get(timeout=20) - saved)
                time.sleep(args.pause)
    finally:
        process.terminate()
        process.wait(timeout=10)
    print(f"saves: {args.saves}, {os.cpu_count()} cores, Chromium headless")
    show("render alone", floor)
    show("save -> event", to_event)
    show("save -> both frames", to_frames)
    print("before (polling every 400 ms, from issue 15): save -> page 0.68 s median, 0.86 s max")
    print(f"load average after: {' '.join(f'{n:.2f}' for n in os.getloadavg())}")


if __name__ == "__main__":
    main()
