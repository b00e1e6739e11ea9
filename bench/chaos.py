"""Benchmark (not a test): exactly once under SIGKILL, concurrent sends and a flaky SendGrid.

    .venv/bin/python bench/chaos.py --readers 100000 --kills 20 --seed 1

Seeds N active readers into a fresh project's SQLite file, starts the SendGrid stand-in
(``tests/peers/sendgrid_server.py``) in its own process, answering a random ``--fault-rate`` of
Mail Send requests with 500, 503 or 429 (``X-RateLimit-Reset`` 1–2 s ahead) instead of
accepting them and holding every request 5–20 ms, then runs ``--kills`` rounds of real
``newsletter send 2021-01 --yes`` / ``--resume`` processes. Each round waits until the stand-in
accepted one more request, then SIGKILLs one live process of the round at a random moment; about
one round in three starts two processes at once (two starts together, or a second ``--resume``
a moment after the first), where the one without the lease must refuse ("is being sent by").
It then resumes until the send is completed, reads ``report --json``, resends the unconfirmed
(``--resume --resend-unconfirmed``) and reads ``report --json --list-resent``. The verdict comes
from the stand-in's own count of accepted copies per reader: nobody never reached, and everybody
reached twice among those the report called unconfirmed and lists as resent.

``--topics`` gives the readers random topics and modes (as ``bench/send.py --topics``): the
stand-in then reads which variant each accepted request carries (the articles' order and marks
in its text) and the verdict also requires that every reader got exactly their variant, and that
``only`` readers with none of the issue's topics were never sent it and are ``skipped`` in the
ledger.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import multiprocessing.connection
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.send import make_project, seed  # noqa: E402
from newsletter.issues import load_topics, read_issue  # noqa: E402
from newsletter.store.engine import open_database  # noqa: E402
from newsletter.variants import SKIP, Variants  # noqa: E402
from tests.peers.sendgrid_server import (  # noqa: E402
    Answer,
    Fault,
    SendGridServer,
    mail_send_errors,
)
from tests.test_crash_resume import newsletter  # noqa: E402

MONTH = "2021-01"
TIMEOUT = 120.0  # no single wait of the script is longer
FINISH_TRIES = 10  # `send --resume` runs allowed to complete the send after the chaos rounds
DOUBLE_EVERY = 3  # about one round in this many starts two processes
DELAY = (0.005, 0.020)  # seconds the stand-in holds each request, so kills land mid-send
PAUSE = 0.1  # at most this long (about one batch's trip) between the kill's request and the kill
EXPECTED = ("killed", "stopped", "refused", "completed", "nothing to do", "interrupted")


class RunTimeout(Exception):
    """The whole run took longer than ``--max-seconds``."""


# --- the stand-in, in its own process ----------------------------------------------------------


class ChaosServer(SendGridServer):
    """The stand-in with random faults, a delay on every request and a count per recipient.

    Light validation as in bench/send.py: one request in ``validate_every`` is checked against
    the JSON Schema and SendGrid's limits, the others are parsed and counted.
    """

    def __init__(
        self,
        accepted: Any,
        *,
        fault_rate: float,
        seed: int,
        validate_every: int,
        titles: Sequence[str] = (),
    ) -> None:
        super().__init__(validate_every=max(1, validate_every), record=False)
        self.titles = tuple(titles)
        self.variants: dict[str, set[str]] = {}  # recipient → variant keys of the copies accepted
        self.fault_rate = fault_rate
        self.reached: Counter[str] = Counter()  # recipient → accepted copies
        self.faults: Counter[int] = Counter()  # status → times served
        self.shared_accepted = accepted  # a multiprocessing.Value the bench polls
        self._random = random.Random(seed)

    def _next_fault(self) -> Fault:
        """Every request waits a little; a ``fault_rate`` of them get an error instead."""
        with self._lock:
            delay = self._random.uniform(*DELAY)
            if self._random.random() >= self.fault_rate:
                return Fault(delay=delay, process=True)  # then handled normally
            status = self._random.choice((500, 503, 429))
            self.faults[status] += 1
        headers = {"X-RateLimit-Reset": str(math.ceil(time.time()) + 1)} if status == 429 else {}
        return Fault(status=status, headers=headers, delay=delay)

    def _mail_send_now(self, body: Any) -> Answer:
        with self._lock:
            self._mail_sends += 1
            check = (self._mail_sends - 1) % self.validate_every == 0
        errors = mail_send_errors(body) if check else []
        if errors:
            with self._lock:
                self.rejected.append((None, errors))
            return Answer(400, {"errors": errors})
        emails = [p["to"][0]["email"] for p in body["personalizations"]]
        text = next((c["value"] for c in body["content"] if c["type"] == "text/plain"), "")
        key = content_key(text, self.titles)
        with self._lock:
            self.accepted_count += 1
            self.recipient_count += len(emails)
            self.reached.update(emails)
            for email in emails:
                self.variants.setdefault(email, set()).add(key)
            number = self.accepted_count
        with self.shared_accepted.get_lock():
            self.shared_accepted.value += 1
        return Answer(202, None, {"X-Message-Id": f"chaos-{number}"})

    def tally(self, *, variants: bool = False) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": self.accepted_count,
                "recipients": self.recipient_count,
                "reached": Counter(self.reached),
                "faults": dict(self.faults),
                "rejected": len(self.rejected),
                "variants": {e: set(k) for e, k in self.variants.items()} if variants else {},
            }


MARK = "On a topic you follow"


def content_key(text: str, titles: Sequence[str]) -> str:
    """The variant key a plain-text body carries: article numbers in order, ``*`` when marked.

    The articles are read after the first rule line: above it, the "In this issue" list names
    every title too, without the marks.
    """
    rule = text.find("\n" + "-" * 72 + "\n")
    start = rule if rule >= 0 else 0
    found = sorted((text.find(title, start), number) for number, title in enumerate(titles, 1))
    return ",".join(
        f"{number}{'*' if MARK in text[max(0, at - 40) : at] else ''}"
        for at, number in found
        if at >= 0
    )


def serve(
    conn: multiprocessing.connection.Connection,
    accepted: Any,
    fault_rate: float,
    seed: int,
    validate_every: int,
    titles: Sequence[str],
) -> None:
    """The stand-in's process: report its URL, answer "tally" until "stop", then a last tally."""
    server = ChaosServer(
        accepted, fault_rate=fault_rate, seed=seed, validate_every=validate_every, titles=titles
    )
    with server:
        conn.send((server.url, server.api_key))
        while conn.recv() != "stop":
            conn.send(server.tally())
        conn.send(server.tally(variants=True))


class StandIn:
    """The bench's handle on the stand-in process."""

    def __init__(
        self, fault_rate: float, seed: int, validate_every: int, titles: Sequence[str]
    ) -> None:
        self.accepted = multiprocessing.Value("q", 0)
        self.conn, child = multiprocessing.Pipe()
        self.process = multiprocessing.Process(
            target=serve,
            args=(child, self.accepted, fault_rate, seed, validate_every, tuple(titles)),
            daemon=True,
        )
        self.process.start()
        self.url, self.api_key = self._answer()

    def _answer(self) -> Any:
        if not self.conn.poll(TIMEOUT):
            raise RuntimeError("the stand-in did not answer")
        return self.conn.recv()

    @property
    def requests(self) -> int:
        return int(self.accepted.value)

    def tally(self) -> dict[str, Any]:
        self.conn.send("tally")
        return dict(self._answer())

    def stop(self) -> dict[str, Any] | None:
        if not self.process.is_alive():
            return None
        try:
            self.conn.send("stop")
            final = dict(self._answer())
        except (OSError, EOFError, RuntimeError):
            final = None
        self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(timeout=10)
        return final


# --- running `newsletter` processes ------------------------------------------------------------


@dataclass
class Bench:
    """The project, its environment, the stand-in, and what happened so far."""

    project: Path
    database: Path
    env: dict[str, str]
    stand_in: StandIn
    readers: int
    batch_size: int
    rng: random.Random
    deadline: float
    live: list[subprocess.Popen[str]] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    kills: int = 0
    double_starts: int = 0
    stopped_survivors: int = 0
    takeovers: int = 0
    kills_planned: int = 0  # rounds (--kills)
    completed_in: int | None = None  # the round after which the ledger said completed
    failures: list[str] = field(default_factory=list)
    reached: Counter[str] = field(default_factory=Counter)  # the stand-in's count after a round
    reached_in: dict[str, list[int]] = field(default_factory=dict)  # reader → rounds reached in
    expected: dict[str, str] = field(default_factory=dict)  # reader → variant key (SKIP: none)
    skipped: int = 0  # readers the send must skip (only their topics, none in the issue)

    def _query(self, sql: str) -> list[tuple[Any, ...]]:
        """Read the ledger straight from the SQLite file (a send process may be writing)."""
        conn = sqlite3.connect(self.database, timeout=TIMEOUT)
        try:
            return conn.execute(sql).fetchall()
        finally:
            conn.close()

    def unclaimed(self) -> int:
        """Readers without a ledger row yet."""
        return self.readers - int(self._query("SELECT count(*) FROM deliveries")[0][0])

    def ledger_state(self) -> str:
        """The send's status and its rows by status, e.g. "interrupted, sent 41,000, pending 2,000"."""
        send = self._query("SELECT status FROM sends")
        rows = self._query("SELECT status, count(*) FROM deliveries GROUP BY status ORDER BY 1")
        counts = ", ".join(f"{status} {count:,}" for status, count in rows)
        return f"{send[0][0] if send else 'no send'}" + (f", {counts}" if counts else "")

    def line(self, what: str, started: str, kinds: Sequence[str], before: int) -> str:
        """One line of the log: what ran, how it ended, the stand-in's and the ledger's counts."""
        return (
            f"{what:>9}: {started:<26} → {', '.join(kinds):<28} requests "
            f"{before:,} → {self.stand_in.requests:,}; ledger: {self.ledger_state()}"
        )

    def start(self, *args: str) -> subprocess.Popen[str]:
        process = newsletter(self.project, self.env, *args)
        self.live.append(process)
        return process

    def wait(self, process: subprocess.Popen[str], what: str) -> tuple[int, str]:
        """Exit code and output of ``process`` (killed, and a failure, after TIMEOUT)."""
        try:
            output, _ = process.communicate(timeout=self._timeout())
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate(timeout=10)
            self.failures.append(f"{what}: still running after {TIMEOUT:.0f} s; killed")
        self.live.remove(process)
        return process.returncode, output

    def cli(self, *args: str) -> tuple[int, str, str]:
        """Run a short command (report): exit code, stdout, stderr apart."""
        command = [sys.executable, "-m", "newsletter", "--project", str(self.project), *args]
        done = subprocess.run(
            command, env=self.env, capture_output=True, text=True, timeout=self._timeout()
        )
        return done.returncode, done.stdout, done.stderr

    def report(self, *extra: str) -> dict[str, Any]:
        code, out, err = self.cli("report", MONTH, "--json", *extra)
        if code != 0 or "Traceback" in out + err:
            raise RuntimeError(f"`report {MONTH} --json` failed ({code}): {out}{err}")
        return dict(json.loads(out))

    def _timeout(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise RunTimeout
        return min(TIMEOUT, left)

    def note(self, what: str, code: int, output: str) -> str:
        """Classify one finished process; failures are kept with its output."""
        kind = classify(code, output)
        self.outcomes[kind] += 1
        if "took over the send" in output:
            self.takeovers += 1
        if kind not in EXPECTED:
            self.failures.append(f"{what}: {kind} (exit {code}):\n{_indent(output)}")
        return kind

    def cleanup(self) -> None:
        for process in self.live:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)
        self.live.clear()


def classify(code: int, output: str) -> str:
    """What a finished `newsletter send` did, from its exit code and output."""
    if "Traceback" in output:
        return "traceback"
    if code == -signal.SIGKILL:
        return "killed"
    if code == -signal.SIGTERM or "stopping after the current batch" in output:
        return "stopped"
    if code == 1 and "is being sent by pid" in output and "nothing done" in output:
        return "refused"
    if code == 0 and "nothing to do" in output:
        return "nothing to do"
    if code == 0 and f"{MONTH}: completed:" in output:
        return "completed"
    if code == 1 and f"{MONTH}: interrupted:" in output and "--resume" in output:
        return "interrupted"  # retries ran out on faults: the next --resume continues
    return "unexpected"


def _indent(text: str) -> str:
    return "\n".join("    | " + line for line in text.strip().splitlines()[-30:])


# --- the rounds --------------------------------------------------------------------------------


def plan_round(bench: Bench, number: int) -> tuple[str, list[tuple[str, ...]]]:
    """How a round starts its processes: one, two together, or a second one late; their args."""
    first = ("send", MONTH, "--yes") + (("--resume",) if number else ())
    if bench.rng.randrange(DOUBLE_EVERY):
        return "", [first]
    bench.double_starts += 1
    if bench.rng.random() < 0.5:
        return "together", [first, first]
    return "late", [first, ("send", MONTH, "--yes", "--resume")]


def chaos_round(bench: Bench, number: int) -> str:
    """One round: start, wait for one more accepted request, SIGKILL one process, collect."""
    before = bench.stand_in.requests
    how, plan = plan_round(bench, number)
    processes = [bench.start(*args) for args in plan[: 1 if how == "late" else 2]]
    what = f"round {number + 1}"
    victim = None
    progressed = _wait_for_request(bench, processes, before, what)
    if how == "late":  # a --resume a moment after the first one started sending
        time.sleep(bench.rng.uniform(0.0, 0.3))
        processes.append(bench.start(*plan[1]))
    if progressed:
        victim = _kill_one(bench, processes, bench.kills_planned - number)
    for process in processes:
        if process is not victim and process.poll() is None:
            # A survivor would finish the whole send; stop it gracefully a moment later.
            time.sleep(bench.rng.uniform(0.0, 0.5))
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                bench.stopped_survivors += 1
    kinds = []
    for index, process in enumerate(processes):
        code, output = bench.wait(process, f"{what}, process {index + 1}")
        kinds.append(
            bench.note(f"{what}, process {index + 1} ({' '.join(plan[index])})", code, output)
        )
    if victim is not None and victim.returncode == -signal.SIGKILL:
        bench.kills += 1
    time.sleep(0.1)  # a request the victim left in the stand-in is counted before the tally
    _track(bench, number + 1)
    if bench.completed_in is None and bench.ledger_state().startswith("completed"):
        bench.completed_in = number + 1
    starts = " + ".join("resume" if "--resume" in args else "send" for args in plan)
    return bench.line(what, starts + (f" ({how})" if how else ""), kinds, before)


def _wait_for_request(
    bench: Bench, processes: Sequence[subprocess.Popen[str]], before: int, what: str
) -> bool:
    """Wait until the stand-in accepted a request more (True) or every process ended."""
    deadline = time.monotonic() + TIMEOUT
    while bench.stand_in.requests <= before:
        if all(p.poll() is not None for p in processes):
            return False
        if time.monotonic() > deadline:
            bench.failures.append(f"{what}: no request accepted within {TIMEOUT:.0f} s")
            return False
        if time.monotonic() > bench.deadline:
            raise RunTimeout
        time.sleep(0.01)
    return True


def _kill_one(
    bench: Bench, processes: Sequence[subprocess.Popen[str]], rounds_left: int
) -> subprocess.Popen[str] | None:
    """SIGKILL a live process of the round at a random moment.

    The moment is drawn so the kills spread over the whole send: after a random number of
    further accepted requests (on average this round's fair share of those still to come),
    then a random pause shorter than one batch's trip, so it lands anywhere in the cycle.
    """
    left = math.ceil(bench.unclaimed() / bench.batch_size)  # batches still to claim
    # A round also uses the request waited for and the one or two batches claimed meanwhile.
    most = min(left - 1, round(2 * (left / max(1, rounds_left) - 2)))
    target = bench.stand_in.requests + bench.rng.randint(0, max(0, most))
    deadline = time.monotonic() + TIMEOUT
    while bench.stand_in.requests < target and time.monotonic() < deadline:
        if all(p.poll() is not None for p in processes):
            return None
        time.sleep(0.005)
    time.sleep(bench.rng.uniform(0.0, PAUSE))
    alive = [p for p in processes if p.poll() is None]
    if not alive:
        return None
    victim = bench.rng.choice(alive)
    victim.send_signal(signal.SIGKILL)
    return victim


def _track(bench: Bench, round_number: int) -> None:
    """Note in which round each reader got each copy (from the stand-in's counts)."""
    now = bench.stand_in.tally()["reached"]
    for email, count in now.items():
        more = count - bench.reached[email]
        if more > 0:
            bench.reached_in.setdefault(email, []).extend([round_number] * more)
    bench.reached = now


# --- the finish ----------------------------------------------------------------------------------


def finish_send(bench: Bench, rounds: int) -> dict[str, Any]:
    """`send --resume` until the ledger says completed; the report then."""
    for attempt in range(1, FINISH_TRIES + 1):
        report = bench.report()
        if report["status"] == "completed":
            return report
        before = bench.stand_in.requests
        code, output = bench.wait(bench.start("send", MONTH, "--yes", "--resume"), "finish")
        kind = bench.note(f"finishing --resume #{attempt}", code, output)
        _track(bench, rounds + 1)
        print(bench.line("finish", "resume", [kind], before), flush=True)
    report = bench.report()
    if report["status"] != "completed":
        bench.failures.append(f"the send is still {report['status']} after {FINISH_TRIES} resumes")
    return report


def resend_unconfirmed(bench: Bench, rounds: int) -> dict[str, Any]:
    """`--resume --resend-unconfirmed` until nothing is unconfirmed; the report --list-resent."""
    for attempt in range(1, FINISH_TRIES + 1):
        args = ("send", MONTH, "--yes", "--resume", "--resend-unconfirmed")
        before = bench.stand_in.requests
        code, output = bench.wait(bench.start(*args), "resend")
        kind = bench.note(f"--resend-unconfirmed #{attempt}", code, output)
        _track(bench, rounds + 2)
        print(bench.line("resend", "resume --resend-unconfirmed", [kind], before), flush=True)
        if not bench.report()["unconfirmed"]:
            break
    return bench.report("--list-resent")


# --- the verdict ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    once: int
    twice: set[str]
    more: dict[str, int]
    never: set[str]
    strangers: set[str]
    doubled_before_resend: set[str]
    unconfirmed: set[str]
    resent: set[str]
    skipped_reached: set[str] = field(default_factory=set)  # skipped readers sent it anyway
    wrong_variant: dict[str, str] = field(default_factory=dict)  # reader → what they got

    @property
    def silent(self) -> set[str]:
        """Reached twice, yet the report never said they might be."""
        return self.twice - (self.unconfirmed & self.resent)


def judge(
    readers: int,
    reached: Counter[str],
    before_resend: Counter[str],
    report: dict[str, Any],
    final: dict[str, Any],
    expected: dict[str, str] | None = None,
    got: dict[str, set[str]] | None = None,
) -> Verdict:
    """``expected``: reader → the variant key they must get (``SKIP``: never sent)."""
    everyone = {f"r{i}@example.com" for i in range(readers)}
    expected = expected or {}
    skipped = {email for email, key in expected.items() if key == SKIP}
    wrong = {
        email: ";".join(sorted(keys))
        for email, keys in (got or {}).items()
        if email in expected and email not in skipped and keys != {expected[email]}
    }
    return Verdict(
        once=sum(1 for email in everyone if reached[email] == 1),
        twice={email for email, count in reached.items() if count == 2},
        more={email: count for email, count in reached.items() if count > 2},
        never=everyone - skipped - set(reached),
        strangers=set(reached) - everyone,
        doubled_before_resend={email for email, count in before_resend.items() if count > 1},
        unconfirmed=set(report["unconfirmed"]),
        resent=set(final.get("resent", [])),
        skipped_reached=skipped & set(reached),
        wrong_variant=wrong,
    )


def expected_variants(database: Path, variants: Variants) -> dict[str, str]:
    """Reader → the variant key of the issue they must get, from their stored topics and mode."""
    conn = sqlite3.connect(database)
    try:
        rows = conn.execute("SELECT email, topics, topic_mode FROM subscribers").fetchall()
    finally:
        conn.close()
    return {str(email): variants.key_for_row(topics, mode) for email, topics, mode in rows}


def ledger_rows(database: Path, emails: Sequence[str]) -> list[tuple[Any, ...]]:
    """What the ledger says about these readers (status, batch, error, resent)."""
    if not emails:
        return []
    conn = sqlite3.connect(database)
    try:
        marks = ",".join("?" * len(emails))
        return conn.execute(
            "SELECT email, status, batch, resent, error FROM deliveries "
            f"WHERE email IN ({marks}) ORDER BY id",
            list(emails),
        ).fetchall()
    finally:
        conn.close()


def explain(
    bench: Bench, verdict: Verdict, database: Path, final: dict[str, Any], tally: dict[str, Any]
) -> list[str]:
    """What broke, one line per kind, with the ledger's rows of up to ten readers each."""
    problems = []
    groups = [
        ("never reached", sorted(verdict.never)),
        ("reached more than twice", sorted(verdict.more)),
        ("reached twice but not both unconfirmed and resent", sorted(verdict.silent)),
        (
            "reached twice before the resend (a resume resent them unasked)",
            sorted(verdict.doubled_before_resend),
        ),
        ("reached though not on the list", sorted(verdict.strangers)),
        (
            "reached though they read only their topics and the issue has none",
            sorted(verdict.skipped_reached),
        ),
        ("sent another variant than theirs", sorted(verdict.wrong_variant)),
    ]
    for what, emails in groups:
        if not emails:
            continue
        problems.append(f"{len(emails):,} reader(s) {what}:")
        rows = {row[0]: row[1:] for row in ledger_rows(database, emails[:10])}
        for email in emails[:10]:
            status, batch, resent, error = rows.get(email, ("no row", "-", "-", None))
            problems.append(
                f"    {email}: copies {bench.reached[email]} in rounds "
                f"{bench.reached_in.get(email, [])}; ledger {status}, batch {batch}, "
                f"resent {resent}, error {error!r}"
            )
    counts = final["counts"]
    to_send = bench.readers - bench.skipped
    if (
        counts.get("sent") != to_send
        or counts.get("skipped", 0) != bench.skipped
        or counts.get("unconfirmed")
        or counts.get("failed")
    ):
        problems.append(
            f"the final ledger counts are {counts}, not {to_send:,} sent "
            f"and {bench.skipped:,} skipped"
        )
    for email in sorted(verdict.wrong_variant)[:10]:
        problems.append(
            f"    {email}: expected variant {bench.expected[email]!r}, "
            f"got {verdict.wrong_variant[email]!r}"
        )
    if tally["rejected"]:
        problems.append(f"the stand-in rejected {tally['rejected']} request(s) as invalid")
    return problems + bench.failures


# --- main --------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--readers", type=int, default=100_000)
    parser.add_argument("--kills", type=int, default=20, help="chaos rounds, one SIGKILL each")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--fault-rate", type=float, default=0.05)
    parser.add_argument("--validate-every", type=int, default=100)
    parser.add_argument("--max-seconds", type=float, default=1800, help="the run stops itself")
    parser.add_argument(
        "--topics",
        action="store_true",
        help="readers with random topics and modes (as bench/send.py --topics); checks variants",
    )
    args = parser.parse_args()
    started = time.monotonic()
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(int(args.max_seconds) + 60)  # a backstop behind the deadline of every wait
    try:
        with tempfile.TemporaryDirectory(prefix="bench-chaos-") as tmp:
            return run(args, Path(tmp), started)
    except RunTimeout:
        print(f"STOPPED: the run took longer than {args.max_seconds:.0f} s", flush=True)
        return 1
    except (RuntimeError, subprocess.TimeoutExpired) as err:
        print(f"FAILED: {err}", flush=True)
        return 1
    finally:
        signal.alarm(0)


def _alarm(_signum: int, _frame: object) -> None:
    raise RunTimeout


def run(args: argparse.Namespace, tmp: Path, started: float) -> int:
    root = make_project(tmp, args.batch_size)
    database = root / "subscribers" / "subscribers.db"
    url = f"sqlite:///{database}"
    open_database(url).dispose()
    settings_topics = load_topics(root / "issues" / "topics.yaml")
    seeding = seed(database, args.readers, settings_topics if args.topics else None)
    issue = read_issue(root / "issues" / f"{MONTH}.md", settings_topics)
    expected = expected_variants(database, Variants(issue))
    titles = [article.title for article in issue.articles]
    stand_in = StandIn(args.fault_rate, args.seed, args.validate_every, titles)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEWSLETTER_", "SENDGRID_"))}
    env |= {
        "NEWSLETTER_SECRET_KEY": "bench-" + "k" * 32,
        "NEWSLETTER_SENDGRID_HOST": stand_in.url,
        "SENDGRID_API_KEY": stand_in.api_key,
        "NEWSLETTER_DATABASE_URL": url,
    }
    bench = Bench(
        root,
        database,
        env,
        stand_in,
        args.readers,
        args.batch_size,
        random.Random(args.seed),
        deadline=started + args.max_seconds,
        kills_planned=args.kills,
        expected=expected,
        skipped=sum(1 for key in expected.values() if key == SKIP),
    )
    variants = Counter(expected.values())
    print(
        "variants expected: "
        + ", ".join(f"{key or 'skipped'} ×{n:,}" for key, n in variants.most_common()),
        flush=True,
    )
    print(
        f"{args.readers:,} readers (seeded in {seeding:.1f} s), batch size {args.batch_size}, "
        f"{args.kills} rounds, seed {args.seed}, fault rate {args.fault_rate:g} "
        f"(500/503/429), {DELAY[0] * 1000:.0f}–{DELAY[1] * 1000:.0f} ms per request",
        flush=True,
    )
    try:
        for number in range(args.kills):
            print(chaos_round(bench, number), flush=True)
        report = finish_send(bench, args.kills)
        before_resend = Counter(bench.reached)
        final = resend_unconfirmed(bench, args.kills)
    finally:
        bench.cleanup()
        tally = stand_in.stop()
    if tally is None:
        print("FAILED: the stand-in died")
        return 1
    return conclude(bench, args, report, before_resend, final, tally, database, started)


def conclude(
    bench: Bench,
    args: argparse.Namespace,
    report: dict[str, Any],
    before_resend: Counter[str],
    final: dict[str, Any],
    tally: dict[str, Any],
    database: Path,
    started: float,
) -> int:
    bench.reached = tally["reached"]
    verdict = judge(
        args.readers,
        tally["reached"],
        before_resend,
        report,
        final,
        bench.expected,
        tally["variants"],
    )
    gone_out = verdict.unconfirmed & {e for e, c in before_resend.items() if c >= 1}
    faults = ", ".join(f"{s} ×{n}" for s, n in sorted(tally["faults"].items())) or "none"
    print()
    print(f"readers reached once:             {verdict.once:,}")
    print(
        f"readers reached twice:            {len(verdict.twice):,} (called unconfirmed by the "
        f"report before the resend: {len(verdict.twice & verdict.unconfirmed):,}; listed as "
        f"resent: {len(verdict.twice & verdict.resent):,})"
    )
    print(f"readers reached more than twice:  {len(verdict.more):,}")
    print(f"readers never reached:            {len(verdict.never):,}")
    print(
        f"readers skipped (only, none of their topics): {bench.skipped:,} expected, "
        f"{final['counts'].get('skipped', 0):,} in the ledger, "
        f"{len(verdict.skipped_reached):,} sent it anyway; "
        f"readers sent another variant than theirs: {len(verdict.wrong_variant):,}"
    )
    print(
        f"unconfirmed before the resend:    {len(verdict.unconfirmed):,} ({len(gone_out):,} had "
        f"already been accepted by the stand-in, {len(verdict.unconfirmed - gone_out):,} had not)"
    )
    outcomes = ", ".join(f"{kind} {n}" for kind, n in sorted(bench.outcomes.items()))
    print(
        f"kills (SIGKILL): {bench.kills}; double starts: {bench.double_starts}; refusals seen: "
        f"{bench.outcomes['refused']}; takeovers: {bench.takeovers}; survivors stopped with "
        f"SIGTERM: {bench.stopped_survivors}"
    )
    print(f"process outcomes: {outcomes}")
    if bench.kills < args.kills and bench.completed_in is not None:
        print(
            f"note: the send was completed in round {bench.completed_in} of {args.kills}, so "
            f"only {bench.kills} round(s) killed a process (more batches: --batch-size)"
        )
    print(
        f"stand-in: {tally['requests']:,} requests accepted ({tally['recipients']:,} "
        f"recipients), faults served: {faults}, rejected as invalid: {tally['rejected']}"
    )
    print(
        f"final report: status {final['status']}, counts {final['counts']}, remaining "
        f"{final['remaining']}, resent_after_unconfirmed {final['resent_after_unconfirmed']:,}"
    )
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"wall time {time.monotonic() - started:.1f} s; load average {load}; cores {os.cpu_count()}"
    )
    problems = explain(bench, verdict, database, final, tally)
    if not problems:
        print("VERDICT: 0 lost, 0 silent duplicates")
        return 0
    print("VERDICT: FAILED")
    for line in problems:
        print("  " + line)
    return 1


if __name__ == "__main__":
    sys.exit(main())
