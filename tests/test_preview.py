"""The preview server, through real HTTP requests: the page, the reload signal, broken files."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from newsletter.config import Settings
from newsletter.web.preview import PreviewServer, PreviewSource


@pytest.fixture
def issue_path(settings: Settings) -> Path:
    return settings.issues_dir / "2021-01.md"


@pytest.fixture
def server(settings: Settings, issue_path: Path) -> Iterator[PreviewServer]:
    source = PreviewSource(
        issue_path=issue_path,
        topics_file=settings.topics_file,
        templates_dir=settings.templates_dir,
        sender=settings.sender,
        links=settings.links,
        display_path="issues/2021-01.md",
    )
    with PreviewServer(source, port=0) as running:
        yield running


def get(server: PreviewServer, path: str) -> httpx.Response:
    return httpx.get(server.url.rstrip("/") + path, timeout=10)


def version(server: PreviewServer) -> str:
    response = get(server, "/version")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    return str(response.json()["version"])


def assert_new_version(server: PreviewServer, old: str) -> None:
    """``/version`` hashes the watched files on each request: it differs as soon as a save returns.

    (The page polls it every 400 ms; that pace is the page's, not something to time here.)
    """
    assert version(server) != old, "/version did not change after the save"


def test_listens_on_loopback_only(server: PreviewServer) -> None:
    assert server.url.startswith("http://127.0.0.1:")


def test_page_shows_both_widths_the_text_and_the_checks(server: PreviewServer) -> None:
    response = get(server, "/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    page = response.text
    assert "Preview of issues/2021-01.md" in page
    assert "Therapist well-being — burnout in the NHS" in page
    assert page.count('<iframe src="/email.html') == 2
    assert "Desktop, 700 px" in page and "Phone, 375 px" in page
    assert ".desktop iframe { width: 700px; }" in page and ".phone iframe { width: 375px; }" in page
    assert "0 errors, 0 warnings" in page
    assert "No findings" in page
    assert "Burnout Among Psychological Practitioners in the NHS\n~~~~" in page  # the text version
    assert 'fetch("/version"' in page


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
        r"issues/2021-01\.md:\d+: error: unknown topic &quot;Therapist Factorz&quot;", page.text
    )
    assert re.search(r'id="summary">[1-9]\d* errors?, ', page.text)
    assert "The issue has errors" in get(server, "/email.html").text
    findings = get(server, "/findings.json").json()
    assert any("Therapist Factorz" in finding for finding in findings["findings"])

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
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 130
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.browser
def test_the_open_page_reloads_itself_after_a_save(server: PreviewServer, issue_path: Path) -> None:
    """In a real browser: the page's poll notices the save and shows the new findings."""
    from tests.browser import chromium, page_at

    with chromium() as browser, page_at(browser, 1280) as page:
        page.goto(server.url)
        assert page.locator("#summary").text_content() == "0 errors, 0 warnings"
        assert page.locator("iframe").count() == 2
        good = issue_path.read_text(encoding="utf-8")
        issue_path.write_text(good.replace("Topics: Therapist Factors;", "Topics: Nope;"))
        page.wait_for_function(
            "document.querySelector('#summary').textContent.startsWith('2 errors')",
            timeout=10_000,  # a deadline, not a speed check: the poll runs every 0.4 s
        )
        assert page.locator("iframe").count() == 0
        assert "unknown topic" in (page.locator(".findings").text_content() or "")
        issue_path.write_text(good, encoding="utf-8")
        page.wait_for_function(
            "document.querySelector('#summary').textContent.startsWith('0 errors')", timeout=10_000
        )
