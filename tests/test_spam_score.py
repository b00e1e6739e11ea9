"""A sent message of each transport scores at most 0.1 with SpamAssassin (local rules only).

Debian's ``spamassassin -L -t`` reads the message as it left us: the Maildir file of the outbox,
the bytes aiosmtpd received over SMTP, and for SendGrid the message SendGrid makes from the
request the stand-in accepted. SendGrid builds that message on its side, so the test builds it
here from the JSON (our headers, From/To/Reply-To, the subject and both parts with the
substitutions filled, quoted-printable), after checking the request turns off every tracking
feature that would change the body (links, pixel). What SendGrid adds (DKIM-Signature,
Received, X-SG-EID) no local rule scores.

Hermetic: no network tests (``-L``), an empty user_prefs (``-p``), the site's plugin files
(``*.pre``) but not its ``local.cf`` (``--siteconfigpath``), and HOME in a temporary folder.
Without ``spamassassin`` the tests are skipped with the reason, except under CI, where that is
a failure (.ci/run installs it).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest

from newsletter.config import Settings, load_settings
from newsletter.delivery.sendgrid.transport import TRACKING_OFF
from newsletter.send import send_issue
from newsletter.values.clock import now_utc
from tests.dbkit import db
from tests.peers.sendgrid_server import SendGridServer
from tests.peers.smtp_server import SmtpServer
from tests.sendkit import load_issue, seed
from tests.test_send_smtp import smtp_settings

LIMIT = 0.1  # the most a newsletter may score; SpamAssassin's own spam threshold is 5.0
SITE_CONFIG_DIRS = (Path("/etc/spamassassin"), Path("/etc/mail/spamassassin"))
_TOTAL = re.compile(rb"Content analysis details:\s+\((-?\d+(?:\.\d+)?) points")
_HIT = re.compile(rb"^\s*(-?\d+(?:\.\d+)?) ([A-Z0-9_]+)\s")


@dataclass(frozen=True)
class Score:
    """SpamAssassin's verdict: the total and each rule hit with its points."""

    total: float
    hits: tuple[tuple[float, str], ...]

    @property
    def earned(self) -> float:
        """The points the message earns, before bonuses such as MAILING_LIST_MULTI (-1.0)."""
        return sum(points for points, _ in self.hits if points > 0)

    def __str__(self) -> str:
        rules = ", ".join(f"{rule} {points:+.1f}" for points, rule in self.hits)
        return f"score {self.total:.1f}, earned {self.earned:.1f} ({rules})"


def spamassassin() -> str:
    """The ``spamassassin`` program; skip without it (fail under CI, which installs it)."""
    found = shutil.which("spamassassin")
    if found is not None:
        return found
    message = "spamassassin is not installed (Debian package `spamassassin`)"
    if os.environ.get("CI"):
        pytest.fail(message + "; CI is set, so this is a failure", pytrace=False)
    pytest.skip(message)


def score(raw: bytes, folder: Path) -> Score:
    """``spamassassin -L -t`` on ``raw``, from a clean configuration of its own."""
    program = spamassassin()
    site = folder / "site"
    site.mkdir(exist_ok=True)
    for config_dir in SITE_CONFIG_DIRS:
        for plugins in sorted(config_dir.glob("*.pre")):  # which plugins run; no local.cf
            shutil.copy(plugins, site / plugins.name)
    prefs = folder / "user_prefs"
    prefs.write_text("use_bayes 0\n", encoding="ascii")
    command = [program, "-L", "-t", "-p", str(prefs), "--siteconfigpath", str(site)]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(folder), "LANG": "C"}
    done = subprocess.run(command, input=raw, capture_output=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return parse_report(done.stdout)


def parse_report(output: bytes) -> Score:
    """The total and the rules of the report ``-t`` appends (a rule's description may wrap)."""
    total = _TOTAL.search(output)
    assert total is not None, f"no SpamAssassin report in: {output[-2000:]!r}"
    table = output[total.end() :].split(b"\n---- ", 1)[1].split(b"\n", 1)[1]
    hits = []
    for line in table.splitlines():
        if not line.strip():
            break
        hit = _HIT.match(line)
        if hit is not None:
            hits.append((float(hit[1]), hit[2].decode("ascii")))
    return Score(float(total[1]), tuple(hits))


def check(found: Score) -> None:
    assert found.total <= LIMIT and found.earned <= LIMIT, f"SpamAssassin: {found}"


def test_the_report_parser_reads_points_and_wrapped_rules() -> None:
    report = (
        b"Content analysis details:   (-0.3 points, 5.0 required)\n\n"
        b" pts rule name              description\n"
        b"---- ---------------------- ------------------------------------------\n"
        b"-0.0 NO_RECEIVED            Informational: message has no Received headers\n"
        b" 0.7 HTML_FONT_LOW_CONTRAST BODY: HTML font color similar or identical to\n"
        b"                            background\n"
        b"-1.0 MAILING_LIST_MULTI     Multiple indicators imply a widely-seen list\n"
        b"\n"
        b"--===============123==--\n"
    )
    found = parse_report(report)
    assert found.total == -0.3
    assert [rule for _, rule in found.hits] == [
        "NO_RECEIVED",
        "HTML_FONT_LOW_CONTRAST",
        "MAILING_LIST_MULTI",
    ]
    assert found.earned == 0.7
    with pytest.raises(AssertionError, match="HTML_FONT_LOW_CONTRAST"):
        check(found)  # a bonus does not hide what the message earned


def test_spamassassin_sees_a_spammy_message(tmp_path: Path) -> None:
    """The scorer is live: a message that shouts, says nothing else and hides its text scores."""
    mail = EmailMessage(policy=SMTP)
    mail["From"] = "winner@example.org"
    mail["To"] = "you@example.com"
    mail["Subject"] = "FREE MONEY!!! ACT NOW!!! 100% GUARANTEED"
    html = (
        "<html><body><font color='#ffffff' style='color:#ffffff'>free money viagra casino</font>"
        "<p>CLICK HERE TO CLAIM YOUR PRIZE!!! <a href='http://198.51.100.7/claim'>CLAIM</a></p>"
        "</body></html>"
    )
    mail.set_content(html, subtype="html")
    found = score(mail.as_bytes(), tmp_path)
    assert found.earned > LIMIT, str(found)


@pytest.mark.slow  # a send and a run of SpamAssassin (about a second each)
@pytest.mark.parametrize("transport", ["outbox", "smtp", "sendgrid"])
def test_a_sent_message_scores_at_most_a_tenth(
    transport: str, project: Path, clean_env: None, tmp_path: Path
) -> None:
    spamassassin()
    check(score(sent_through(transport, project), tmp_path))


def sent_through(transport: str, project: Path) -> bytes:
    """The first message a send of the sample issue to three readers hands ``transport``."""
    if transport == "outbox":
        send_to_three(load_settings(project, env={}))
        [first, *_] = sorted((project / "outbox" / "new").iterdir())
        return first.read_bytes()
    if transport == "smtp":
        with SmtpServer() as server:
            send_to_three(smtp_settings(project, server))
            return server.messages[0].raw
    with SendGridServer() as sendgrid:
        path = project / "schedule.yaml"
        text = path.read_text(encoding="utf-8").replace("transport: outbox", "transport: sendgrid")
        path.write_text(text, encoding="utf-8")
        env = {"NEWSLETTER_SENDGRID_HOST": sendgrid.url, "SENDGRID_API_KEY": sendgrid.api_key}
        send_to_three(load_settings(project, env=env))
        [body] = sendgrid.accepted
    assert body["tracking_settings"] == TRACKING_OFF  # nothing of SendGrid's in the body
    return as_sendgrid_sends_it(body)


def send_to_three(settings: Settings) -> None:
    seed(settings, 3)
    summary = send_issue(settings, db(settings), load_issue(settings))
    assert summary.sent == 3


def as_sendgrid_sends_it(body: dict[str, Any], index: int = 0) -> bytes:
    """The message SendGrid makes for one personalization of a Mail Send request."""
    person = body["personalizations"][index]
    subs: dict[str, str] = person.get("substitutions", {})

    def filled(text: str) -> str:
        for key, value in subs.items():
            text = text.replace(key, value)
        return text

    mail = EmailMessage(policy=SMTP.clone(max_line_length=76))
    mail["From"] = _address(body["from"])
    [to] = person["to"]
    mail["To"] = _address(to)
    mail["Subject"] = filled(body["subject"])
    mail["Date"] = format_datetime(now_utc())
    if "reply_to" in body:
        mail["Reply-To"] = _address(body["reply_to"])
    for name, value in {**body.get("headers", {}), **person.get("headers", {})}.items():
        mail[name] = value
    text, *html = body["content"]
    mail.set_content(filled(text["value"]), charset="utf-8", cte="quoted-printable")
    for part in html:
        mail.add_alternative(
            filled(part["value"]), subtype="html", charset="utf-8", cte="quoted-printable"
        )
    return mail.as_bytes()


def _address(value: dict[str, str]) -> Address:
    return Address(value.get("name", ""), addr_spec=value["email"])
