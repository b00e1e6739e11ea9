"""Files holding readers' addresses or the link key are owner-only, whatever the umask.

The database (and its -wal/-shm), ``.secret_key`` and the outbox Maildir: files 0600, folders
0700 when created. The real CLI runs in a subprocess with umask 000; the -wal/-shm files exist
only while a connection is open, so they are checked in-process with the umask set to 000.
And the outbox's tmp/: what a killed run left there goes on the next run.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from newsletter.config import load_settings
from newsletter.delivery.outbox import TMP_MAX_AGE, sweep_tmp
from newsletter.store.engine import open_database
from newsletter.store.subscribers import SubscriberStore
from newsletter.tokens import KEY_FILE_NAME, load_key
from tests.sendkit import MONTH, seed


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask_000() -> Iterator[None]:
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def newsletter(project: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "newsletter", "--project", str(project), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        umask=0,
    )


@pytest.fixture
def private_project(project: Path, clean_env: None) -> tuple[Path, Path, dict[str, str]]:
    """The project with its database in a folder that does not exist yet; the child's env."""
    database = project / "private" / "list.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEWSLETTER_", "SENDGRID_"))}
    env["NEWSLETTER_DATABASE_URL"] = f"sqlite:///{database}"
    return project, database, env


def test_cli_creates_database_key_and_outbox_owner_only_under_umask_000(private_project):
    project, database, env = private_project
    added = newsletter(project, env, "subscribers", "add", "first@example.com")
    assert added.returncode == 0, added.stderr
    assert mode(database) == 0o600
    assert mode(database.parent) == 0o700

    settings = load_settings(
        project, env={"NEWSLETTER_DATABASE_URL": env["NEWSLETTER_DATABASE_URL"]}
    )
    seed(settings, 5)
    sent = newsletter(project, env, "send", MONTH, "--yes")
    assert sent.returncode == 0, sent.stdout + sent.stderr

    assert mode(database) == 0o600
    assert mode(database.parent / KEY_FILE_NAME) == 0o600
    outbox = project / "outbox"
    for folder in (outbox, outbox / "tmp", outbox / "new", outbox / "cur"):
        assert mode(folder) == 0o700, folder
    messages = list((outbox / "new").iterdir())
    assert len(messages) >= 4
    assert {mode(message) for message in messages} == {0o600}
    # and what is not private keeps the umask's modes
    assert mode(project / "archive") == 0o777


def test_wal_and_shm_take_the_database_mode(tmp_path: Path, umask_000: None) -> None:
    database = tmp_path / "new-folder" / "list.db"
    engine = open_database(f"sqlite:///{database}")
    store = SubscriberStore(engine)
    with engine.connect():  # -wal and -shm exist while a connection is open
        store.add("reader@example.com")
        siblings = {path.name: mode(path) for path in database.parent.iterdir()}
    engine.dispose()
    assert siblings == {"list.db": 0o600, "list.db-wal": 0o600, "list.db-shm": 0o600}
    assert mode(database.parent) == 0o700


def test_existing_database_and_folder_are_left_as_they_are(tmp_path: Path) -> None:
    """Only what is created is made private: an operator's chosen modes are not changed."""
    tmp_path.chmod(0o755)
    database = tmp_path / "list.db"
    open_database(f"sqlite:///{database}").dispose()
    database.chmod(0o640)
    open_database(f"sqlite:///{database}").dispose()
    assert mode(database) == 0o640
    assert mode(tmp_path) == 0o755


def test_key_file_is_0600_under_umask_000(settings, umask_000: None) -> None:
    key = load_key(settings)
    path = settings.root / "subscribers" / KEY_FILE_NAME
    assert path.read_text(encoding="ascii").strip().encode("ascii") == key
    assert mode(path) == 0o600


# --- the outbox's tmp/ ---------------------------------------------------------------------------


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _tmp_file(outbox: Path, name: str, age: float = 0.0) -> Path:
    (outbox / "tmp").mkdir(parents=True, exist_ok=True)
    for folder in ("new", "cur"):
        (outbox / folder).mkdir(exist_ok=True)
    path = outbox / "tmp" / name
    path.write_bytes(b"To: half@example.com\nSubject: cut off mid-wr")
    if age:
        then = time.time() - age
        os.utime(path, (then, then))
    return path


def _our_name(pid: int) -> str:
    import newsletter.delivery.outbox as outbox_module

    return f"{int(time.time())}.M12345P{pid}Q1.{outbox_module._HOST}"


def test_send_removes_what_a_killed_run_left_in_tmp(private_project):
    project, _, env = private_project
    outbox = project / "outbox"
    killed = _tmp_file(outbox, _our_name(_dead_pid()))
    stale = _tmp_file(outbox, "1600000000.M1P1Q1.otherhost", age=TMP_MAX_AGE + 60)
    fresh_foreign = _tmp_file(outbox, "1600000000.M1P1Q2.otherhost", age=60)
    running = _tmp_file(outbox, _our_name(os.getpid()))  # this test process is alive

    newsletter(project, env, "subscribers", "add", "first@example.com")
    seed(load_settings(project, env={"NEWSLETTER_DATABASE_URL": env["NEWSLETTER_DATABASE_URL"]}), 3)
    sent = newsletter(project, env, "send", MONTH, "--yes")
    assert sent.returncode == 0, sent.stdout + sent.stderr

    left = set((outbox / "tmp").iterdir())
    assert killed not in left and stale not in left
    assert left == {fresh_foreign, running}
    assert len(list((outbox / "new").iterdir())) >= 2  # the send itself went out


def test_sweep_tmp_keeps_files_of_running_writers(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    mine = _tmp_file(outbox, _our_name(os.getpid()), age=60)
    other = _tmp_file(outbox, "notes.txt", age=60)
    assert sweep_tmp(outbox) == []
    removed = sweep_tmp(outbox, now=time.time() + TMP_MAX_AGE + 120)
    assert sorted(removed) == sorted([mine, other])
    assert list((outbox / "tmp").iterdir()) == []
