"""The preview server, through real HTTP requests: the page, the event stream, broken files."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from newsletter.config import Settings
from newsletter.web.preview import PreviewServer, PreviewSource
from tests.variantkit import articles_in, write_issue


@pytest.fixture
def issue_path(settings: Settings) -> Path:
    return settings.issues_dir / "2021-01.md"


def source_for(settings: Settings, issue_path: Path) -> PreviewSource:
    return PreviewSource(
        issue_path=issue_path,
        topics_file=settings.topics_file,
        templates_dir=settings.templates_dir,
        sender=settings.sender,
        links=settings.links,
        display_path=f"issues/{issue_path.name}",
    )


@pytest.fixture
def server(settings: Settings, issue_path: Path) -> Iterator[PreviewServer]:
    with PreviewServer(source_for(settings, issue_path), port=0) as running:
        yield running


def get(server: PreviewServer, path: str) -> httpx.Response:
    return httpx.get(server.url.rstrip("/") + path, timeout=10)


def version(server: PreviewServer) -> int:
    response = get(server, "/version")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    return int(response.json()["version"])


def assert_new_version(server: PreviewServer, old: int) -> None:
    """Each request checks the watched files: the version grows as soon as a save returns."""
    assert version(server) > old, "/version did not change after the save"


def save(path: Path, text: str) -> None:
    """Save as editors do: write a temporary file, then rename it over the old one."""
    temporary = path.with_name(path.name + ".saving")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


class Events:
    """A client of ``/events`` in a thread: the events it receives, in order, in a queue."""

    def __init__(self, url: str, last_event_id: str | None = None) -> None:
        self.events: queue.Queue[dict[str, str]] = queue.Queue()
        self.connected = threading.Event()
        self.ended = threading.Event()
        headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
        thread = threading.Thread(target=self._read, args=(url, headers), daemon=True)
        thread.start()
        assert self.connected.wait(timeout=10), "no answer from /events"

    def _read(self, url: str, headers: dict[str, str]) -> None:
        timeout = httpx.Timeout(10, read=60)
        try:
            with httpx.stream("GET", url + "events", headers=headers, timeout=timeout) as answer:
                assert answer.headers["content-type"] == "text/event-stream; charset=utf-8"
                self.connected.set()
                event: dict[str, str] = {}
                for line in answer.iter_lines():
                    if not line:
                        if "data" in event:
                            self.events.put(event)
                        event = {}
                    elif not line.startswith(":"):
                        name, _, value = line.partition(":")
                        event[name] = value.removeprefix(" ")
        except httpx.HTTPError:
            pass
        finally:
            self.connected.set()
            self.ended.set()

    def next(self, timeout: float = 10) -> dict[str, str]:
        return self.events.get(timeout=timeout)


def test_listens_on_loopback_only(server: PreviewServer) -> None:
    assert server.url.startswith("http://127.0.0.1:")


def test_page_shows_both_widths_the_text_and_the_checks(server: PreviewServer) -> None:
    response = get(server, "/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    page = response.text
    assert "Preview of issues/2021-01.md" in page
    assert "Therapist well-being — burnout in the NHS" in page
    assert page.count('<iframe class="email" src="/email.html?v=') == 2
    assert "Desktop, 700 px" in page and "Phone, 375 px" in page
    css = get(server, "/preview.css").text
    assert ".desktop iframe { width: 700px; }" in css and ".phone iframe { width: 375px; }" in css
    assert "0 errors, 0 warnings" in page
    assert "No findings" in page
    assert "Burnout Among Psychological Practitioners in the NHS\n~~~~" in page  # the text version
    assert '<script src="/preview.js" defer></script>' in page
    assert 'new EventSource("/events")' in get(server, "/preview.js").text


def test_the_page_runs_no_inline_script_under_its_policy(server: PreviewServer) -> None:
    response = get(server, "/")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "frame-ancestors 'none'" in policy
    assert re.findall(r"<script[^>]*>", response.text) == ['<script src="/preview.js" defer>']
    assert "<style" not in response.text and " style=" not in response.text
    assert response.text.count('sandbox="allow-same-origin allow-popups"') == 2
    email = get(server, "/email.html")
    assert "script-src" not in email.headers["content-security-policy"]  # default-src 'none'
    assert "default-src 'none'" in email.headers["content-security-policy"]
    assert get(server, "/preview.js").headers["content-type"] == "text/javascript; charset=utf-8"


def test_a_request_naming_another_host_is_refused(server: PreviewServer) -> None:
    """DNS rebinding: a page of evil.example that resolves its name to 127.0.0.1 reads nothing."""
    answer = httpx.get(server.url, headers={"Host": "evil.example:8025"}, timeout=10)
    assert answer.status_code == 421 and "Therapist" not in answer.text
    assert httpx.get(server.url, headers={"Host": "localhost"}, timeout=10).status_code == 200


def test_email_and_text_are_served_with_sample_links(server: PreviewServer) -> None:
    html = get(server, "/email.html")
    assert html.status_code == 200 and '<html lang="en"' in html.text
    text = get(server, "/email.txt")
    assert text.headers["content-type"] == "text/plain; charset=utf-8"
    for body in (html.text, text.text):
        assert "__NL_" not in body
        assert "/unsubscribe/sample-token" in body


def test_saving_the_issue_changes_the_reload_signal_and_the_page(
    server: PreviewServer, issue_path: Path
) -> None:
    before = version(server)
    assert version(server) == before  # stable while nothing changes
    source = issue_path.read_text(encoding="utf-8")
    issue_path.write_text(source.replace("Burnout Among", "Exhaustion Among"), encoding="utf-8")
    assert_new_version(server, before)
    assert "Exhaustion Among Psychological Practitioners" in get(server, "/").text
    assert "Exhaustion Among" in get(server, "/email.html").text


def test_saving_a_template_changes_the_reload_signal(
    server: PreviewServer, settings: Settings
) -> None:
    before = version(server)
    template = settings.templates_dir / "email" / "base.mjml.j2"
    template.write_text(
        template.read_text().replace("View this issue in your browser", "Read it on the web")
    )
    assert_new_version(server, before)
    assert "Read it on the web" in get(server, "/email.html").text


def test_a_refreshed_doi_record_changes_the_reload_signal_and_the_email(
    server: PreviewServer, issue_path: Path
) -> None:
    """`newsletter doi refresh` rewrites issues/.metadata/: the preview shows the new record."""
    before = version(server)
    record_file = issue_path.parent / ".metadata" / "10.1002%2Fcpp.2509.json"
    record = json.loads(record_file.read_text(encoding="utf-8"))
    assert "https://example.org/free/cpp.2509" not in get(server, "/email.html").text
    record["free_url"] = "https://example.org/free/cpp.2509"
    save(record_file, json.dumps(record))
    assert_new_version(server, before)
    assert "https://example.org/free/cpp.2509" in get(server, "/email.html").text


def test_a_broken_file_shows_its_errors_and_the_server_keeps_running(
    server: PreviewServer, issue_path: Path
) -> None:
    good = issue_path.read_text(encoding="utf-8")
    before = version(server)
    issue_path.write_text(good.replace("Topics: Therapist Factors;", "Topics: Therapist Factorz;"))
    assert_new_version(server, before)
    page = get(server, "/")
    assert page.status_code == 200
    assert re.search(
        r"issues/2021-01\.md:\d+: error: unknown topic &quot;Therapist Factorz&quot;.*?"
        r'<code class="code" title="[^"]+">\[unknown-topic\]</code>',
        page.text,
    )
    assert re.search(r'id="summary">[1-9]\d* errors?, ', page.text)
    assert "The issue has errors" in get(server, "/email.html").text
    findings = get(server, "/findings.json").json()
    assert any(
        "Therapist Factorz" in finding["message"] and finding["code"] == "unknown-topic"
        for finding in findings["findings"]
    )

    issue_path.write_bytes(b"\xff\xfe\x00 not text at all")
    assert get(server, "/").status_code == 200

    broken = version(server)
    issue_path.write_text(good, encoding="utf-8")
    assert_new_version(server, broken)
    assert "0 errors" in get(server, "/").text


def test_a_broken_template_shows_its_error(server: PreviewServer, settings: Settings) -> None:
    (settings.templates_dir / "email" / "article.mjml.j2").write_text("{% if %}")
    page = get(server, "/")
    assert page.status_code == 200
    assert re.search(r"article\.mjml\.j2:1: template error", page.text)


def test_a_deleted_issue_file_is_reported(server: PreviewServer, issue_path: Path) -> None:
    issue_path.unlink()
    page = get(server, "/")
    assert page.status_code == 200 and "error" in page.text


def test_everything_on_the_page_is_escaped(server: PreviewServer, issue_path: Path) -> None:
    source = issue_path.read_text(encoding="utf-8")
    issue_path.write_text(
        re.sub(r"^subject: .*$", 'subject: "<script>alert(1)</script>"', source, flags=re.M)
    )
    page = get(server, "/").text
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_unknown_paths_are_404(server: PreviewServer) -> None:
    assert get(server, "/nope").status_code == 404


def test_preview_command_serves_until_interrupted(project: Path, clean_env: None) -> None:
    """The real command in a subprocess: it prints its address, answers, and stops on SIGINT."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEWSLETTER_", "SENDGRID_"))}
    # A shell without job control starts background jobs (`pytest &`) with SIGINT ignored, and a
    # child inherits that: Python would then never raise KeyboardInterrupt in the command. With a
    # handler set here, the command starts with the default instead, as it does from a terminal.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "newsletter",
                "--project",
                str(project),
                "preview",
                "2021-01",
                "--port",
                "0",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.search(r"at (http://127\.0\.0\.1:\d+/)", line)
        assert match, line + (process.stderr.read() if process.stderr else "")
        response = httpx.get(match.group(1) + "version", timeout=10)
        assert json.loads(response.text)["version"]
        events = Events(match.group(1))  # a page left open: Ctrl-C must not wait for it
        assert events.next()["event"] == "version"
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 130
        assert events.ended.wait(timeout=10), "the event stream outlived the server"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_save_is_pushed_to_every_open_stream_with_a_new_number(
    server: PreviewServer, issue_path: Path
) -> None:
    first, second = Events(server.url), Events(server.url)
    now = version(server)
    for events in (first, second):  # on connecting: the current version
        assert events.next() == {
            "id": str(now),
            "event": "version",
            "data": f'{{"version": {now}}}',
        }
    save(issue_path, issue_path.read_text().replace("Burnout Among", "Exhaustion Among"))
    for events in (first, second):
        pushed = events.next()
        assert int(pushed["id"]) > now and json.loads(pushed["data"])["version"] == int(
            pushed["id"]
        )
    panel = get(server, "/panel.json").json()
    assert panel["version"] == int(pushed["id"])
    assert "Exhaustion Among Psychological Practitioners" in panel["text"]
    assert "0 errors, 0 warnings" in panel["panel"]


def test_a_reconnecting_page_is_told_only_what_it_missed(
    server: PreviewServer, issue_path: Path
) -> None:
    now = version(server)
    behind = Events(server.url, last_event_id=str(now - 1))  # it missed the current version
    assert behind.next()["id"] == str(now)
    current = Events(server.url, last_event_id=str(now))  # it has it: nothing until a save
    save(issue_path, issue_path.read_text().replace("Burnout Among", "Fatigue Among"))
    assert int(current.next()["id"]) > now


def test_each_change_is_rendered_once_whatever_the_number_of_pages(
    server: PreviewServer, issue_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    previewer = server.previewer
    renders: list[int] = []
    real_render = previewer._render

    def counting(version: int, choice: object) -> object:
        renders.append(version)
        return real_render(version, choice)  # type: ignore[arg-type]

    monkeypatch.setattr(previewer, "_render", counting)
    pages = [Events(server.url) for _ in range(3)]
    for events in pages:
        events.next()
    save(issue_path, issue_path.read_text().replace("Burnout Among", "Strain Among"))
    for events in pages:
        events.next()
        for path in ("/panel.json", "/email.html", "/email.html", "/"):
            assert get(server, path).status_code == 200
    assert "Strain Among" in get(server, "/email.html").text
    assert len(renders) == 1, renders


def test_closing_the_server_ends_an_open_stream(settings: Settings, issue_path: Path) -> None:
    server = PreviewServer(source_for(settings, issue_path)).start()
    events = Events(server.url)
    events.next()
    closing = threading.Thread(target=server.close)
    closing.start()
    closing.join(timeout=10)
    assert not closing.is_alive(), "close() waited on the open stream"
    assert events.ended.wait(timeout=10)


def test_the_panel_shows_whether_the_issue_is_a_draft_or_ready(
    server: PreviewServer, issue_path: Path
) -> None:
    assert '<span id="status" class="badge ready">ready</span>' in get(server, "/").text
    save(issue_path, issue_path.read_text().replace("status: ready", "status: Draft"))
    page = get(server, "/").text
    assert '<span id="status" class="badge draft">draft</span>' in page
    assert "will not send it" in page
    assert get(server, "/findings.json").json()["status"] == "draft"


def test_the_subject_and_status_show_while_the_body_has_errors(
    server: PreviewServer, issue_path: Path
) -> None:
    good = issue_path.read_text()
    save(issue_path, good.replace("Topics: Therapist Factors;", "Topics: Nope;"))
    page = get(server, "/").text
    assert "unknown topic" in page  # the body is broken ...
    assert (  # ... and the front matter still shows
        '<dd id="subject">Therapist well-being — burnout in the NHS and mentalizing as a buffer</dd>'
    ) in page
    assert '<dd id="preheader">Two studies on how practitioners fare' in page
    assert '<span id="status" class="badge ready">ready</span>' in page
    save(issue_path, good.replace("---\n\nThis month", "---\n\n## \nThis month"))
    assert "Therapist well-being" in get(server, "/panel.json").json()["panel"]


def test_each_finding_shows_its_code_and_what_it_means(
    server: PreviewServer, issue_path: Path
) -> None:
    good = issue_path.read_text()
    save(issue_path, good.replace("subject: Therapist", "subject: " + "Very " * 20 + "Therapist"))
    page = get(server, "/").text
    match = re.search(r'<li class="warning">([^<]*)<code class="code" title="([^"]+)">', page)
    assert match, page
    assert ": warning: the subject has " in match.group(1)
    assert "subject" in match.group(2)  # the code's meaning, from newsletter/codes.py
    assert "[subject-length]</code>" in page
    found = get(server, "/findings.json").json()["findings"]
    assert [(f["code"], f["severity"]) for f in found] == [("subject-length", "warning")]


def test_the_picker_offers_every_variant_the_topics_give(settings: Settings) -> None:
    issue = write_issue(settings)  # three articles: 1 Attachment, 2 Depression, 3 Therapist
    with PreviewServer(source_for(settings, issue.path)) as server:
        page = get(server, "/").text
        offered = re.findall(r'<option value="([^"]+)"', page)
        assert offered[0] == "1,2,3" and '<option value="1,2,3" selected>' in page
        assert set(offered) == {
            "1,2,3", "1*,2,3", "1", "2*,1,3", "2", "3*,1,2", "3",
            "1*,2*,3", "1,2", "1*,3*,2", "1,3", "2*,3*,1", "2,3", "1*,2*,3*",
        }  # fmt: skip
        assert len(offered) == len(set(offered))
        assert ">Depression and Depressive Symptoms: only theirs (2)</option>" in page
        chosen = get(server, "/?variant=2*,3*,1").text
        assert '<option value="2*,3*,1" selected>' in chosen
        assert "Variant: <code>2*,3*,1</code> — " in chosen
        assert "email.html?v=" in chosen and "&amp;variant=2%2A%2C3%2A%2C1" in chosen
        assert articles_in(get(server, "/email.txt?variant=2*,3*,1").text) == (2, 3, 1)
        assert articles_in(get(server, "/email.html?variant=2*,3*,1").text) == (2, 3, 1)


def test_the_version_follows_contents_not_timestamps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from newsletter.web import preview_live
    from newsletter.web.preview_live import Versions, WatchedFiles

    watched = tmp_path / "issue.md"
    watched.write_text("one")
    (tmp_path / "templates" / "email").mkdir(parents=True)
    versions = Versions(
        WatchedFiles([watched, tmp_path / "missing.yaml"], [tmp_path / "templates"])
    )
    first = versions.current
    watched.write_text("one")  # saved unchanged: no new version, no event
    assert versions.refresh() == first
    (tmp_path / "templates" / "email" / "new.j2").write_text("x")  # a new file in a folder
    second = versions.refresh()
    assert second.number == first.number + 1
    # A save in the same mtime tick that keeps the size: the stats say nothing ...
    monkeypatch.setattr(WatchedFiles, "stats", lambda self: ())
    versions.refresh()
    watched.write_text("two")
    assert versions.refresh() == second
    monkeypatch.setattr(preview_live, "RECHECK_S", 0.0)  # ... the periodic hash finds it
    assert versions.refresh().number == second.number + 1


def test_the_email_is_shown_in_the_sites_language(settings: Settings, issue_path: Path) -> None:
    import dataclasses

    source = dataclasses.replace(source_for(settings, issue_path), lang="fr-CA")
    with PreviewServer(source) as server:
        assert re.search(r'<html[^>]*\blang="fr-CA"', get(server, "/email.html").text)
