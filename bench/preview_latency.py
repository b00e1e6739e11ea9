"""Measure how soon a save shows in `newsletter preview`, in a real headless Chromium.

    .venv/bin/python bench/preview_latency.py                # 15 saves, the live preview only
    .venv/bin/python bench/preview_latency.py --compare      # also render-first and the old poll
    .venv/bin/python bench/preview_latency.py --saves 40 --pause 0.5

Each preview runs in its own process on its own copy of the sample project in bench/out/preview/
(git-ignored); Chromium opens each page (via playwright, as tests/browser.py does). Each save
rewrites the issue file the way editors do (a temporary file renamed over it) with a new article
title; the time runs from the save until the desktop and the phone frame both show the new title
(the browser's clock, polled every 5 ms in the page, against this process's wall clock; both are
the machine's clock).

Servers (`--compare` runs them all, one save each in turn, so a change of the machine's load
hits them alike):

- live: this preview (server-sent events; the pages are told first, then it renders once);
- render-first: the same, but the event goes out after the render;
- old-poll: the preview before issue 15 (the page polls /version every 400 ms and reloads
  itself), read from git at BEFORE_COMMIT;

and two floors: `render alone` (`Previewer._render` of the same file in this process, no watching,
no browser) and `save -> event` (a second client of the live server's /events, httpx in this
process: noticing the save and publishing). It prints min / median / max and the load average.
Nothing is asserted.
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
from contextlib import ExitStack
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
BEFORE_COMMIT = "95a6fe0"  # main before the live preview: newsletter/web/preview.py polled
# The browser's Date.now() once both frames show the text (a truthy value ends the wait).
FRAMES_SHOW = """(text) => {
  const frames = Array.from(document.querySelectorAll("iframe"));
  const shown = frames.length === 2 && frames.every((frame) => {
    const doc = frame.contentDocument;
    return doc !== null && doc.body !== null && doc.body.innerText.includes(text);
  });
  return shown ? Date.now() : false;
}"""
# Runs one preview server in a child process: argv = repo, project, mode, module file (old).
SERVE = """
import importlib.util, sys
from pathlib import Path
repo, root, mode, module_file = sys.argv[1:5]
sys.path.insert(0, repo)
from newsletter.config import load_settings
if mode == "old-poll":
    spec = importlib.util.spec_from_file_location("old_preview", module_file)
    preview = sys.modules["old_preview"] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(preview)
else:
    from newsletter.web import preview
if mode == "render-first":
    def _watch(self):
        broadcast = self._server.broadcast
        while not self._stop.wait(preview.WATCH_S):
            version = self.previewer.versions.refresh()
            if version.number != broadcast.published.number:
                self.previewer.state()
                broadcast.publish(version)
    preview.PreviewServer._watch = _watch
settings = load_settings(Path(root))
source = preview.PreviewSource(
    issue_path=settings.issues_dir / "2021-01.md", topics_file=settings.topics_file,
    templates_dir=settings.templates_dir, sender=settings.sender, links=settings.links,
    display_path="issues/2021-01.md")
server = preview.PreviewServer(source, port=0)
print(server.url, flush=True)
try:
    server.serve_forever()
except KeyboardInterrupt:
    pass
"""


def project(name: str) -> Path:
    root = OUT / name
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    shutil.copy(REPO / "schedule.yaml", root / "schedule.yaml")
    for folder in ("issues", "templates"):
        shutil.copytree(REPO / folder, root / folder)
    return root


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


def old_module() -> Path | None:
    """The preview module as it was before issue 15 (None when git cannot show it)."""
    shown = subprocess.run(
        ["git", "-C", str(REPO), "show", f"{BEFORE_COMMIT}:newsletter/web/preview.py"],
        capture_output=True,
        text=True,
    )
    if shown.returncode != 0:
        return None
    path = OUT / "old_preview.py"
    path.write_text(shown.stdout, encoding="utf-8")
    return path


def start(mode: str, root: Path, module: Path | None) -> tuple[subprocess.Popen[str], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEWSLETTER_", "SENDGRID_"))}
    process = subprocess.Popen(
        [sys.executable, "-c", SERVE, str(REPO), str(root), mode, str(module or "")],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not re.match(r"http://127\.0\.0\.1:\d+/", line):
        process.kill()
        raise SystemExit(f"the {mode} preview did not start")
    return process, line.strip()


def listen(url: str, seen: queue.Queue[float]) -> None:
    """Put the wall-clock time of each version event on ``seen``."""
    with httpx.stream("GET", url + "events", timeout=httpx.Timeout(10, read=None)) as answer:
        for line in answer.iter_lines():
            if line.startswith("event: version"):
                seen.put(time.time())


def show(name: str, values: list[float]) -> None:
    ms = [value * 1000 for value in values]
    print(
        f"{name:<34} min {min(ms):6.0f} ms  median {statistics.median(ms):6.0f} ms  "
        f"max {max(ms):6.0f} ms  (n={len(ms)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--saves", type=int, default=15)
    parser.add_argument("--pause", type=float, default=0.4, help="seconds between saves")
    parser.add_argument("--compare", action="store_true", help="also render-first and old-poll")
    args = parser.parse_args()
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    modes = ["live"]
    module = old_module() if args.compare else None
    if args.compare:
        modes += ["render-first"] + (["old-poll"] if module is not None else [])
    print(f"load average before: {' '.join(f'{n:.2f}' for n in os.getloadavg())}")
    roots = {mode: project(mode) for mode in modes}
    floor = render_floor(roots["live"], args.saves)
    servers: dict[str, tuple[subprocess.Popen[str], str]] = {}
    to_event: list[float] = []
    to_frames: dict[str, list[float]] = {mode: [] for mode in modes}
    try:
        for mode in modes:
            servers[mode] = start(mode, roots[mode], module)
        events: queue.Queue[float] = queue.Queue()
        threading.Thread(target=listen, args=(servers["live"][1], events), daemon=True).start()
        with chromium() as browser, ExitStack() as stack:
            pages = {}
            for mode in modes:
                pages[mode] = stack.enter_context(page_at(browser, 1600, 1000))
                pages[mode].goto(servers[mode][1])
                pages[mode].wait_for_function(FRAMES_SHOW, arg=TITLE, polling=5, timeout=20_000)
            time.sleep(1.0)
            while not events.empty():
                events.get()
            for number in range(args.saves):
                for mode in modes:
                    issue = roots[mode] / "issues" / f"{MONTH}.md"
                    marker = f"Edit {number:03d} of the title"
                    text = (REPO / "issues" / f"{MONTH}.md").read_text(encoding="utf-8")
                    saved = time.time()
                    save(issue, text.replace(TITLE, marker))
                    shown = pages[mode].wait_for_function(
                        FRAMES_SHOW, arg=marker, polling=5, timeout=20_000
                    )
                    to_frames[mode].append(shown.json_value() / 1000 - saved)
                    if mode == "live":
                        to_event.append(events.get(timeout=20) - saved)
                    time.sleep(args.pause)
    finally:
        for process, _ in servers.values():
            process.terminate()
            process.wait(timeout=10)
    print(f"saves: {args.saves} per server, {os.cpu_count()} cores, Chromium headless")
    show("render alone (floor)", floor)
    show("live: save -> event", to_event)
    for mode in modes:
        show(f"{mode}: save -> both frames", to_frames[mode])
    if "old-poll" not in modes:
        print("old-poll (issue 15, measured before): save -> page 0.68 s median, 0.86 s max")
    print(f"load average after: {' '.join(f'{n:.2f}' for n in os.getloadavg())}")


if __name__ == "__main__":
    main()
