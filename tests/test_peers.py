"""The test peers themselves: their SendGrid spec files live in the repository, and without one
the SendGrid stand-in refuses to start with the file's name (not a dropped connection later)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.peers import sendgrid_server, sendgrid_suppressions
from tests.peers.sendgrid_server import MissingSpecError, SendGridServer
from tests.peers.sendgrid_suppressions import SuppressionLists

COPY = REPO / "tests" / "data" / "sendgrid-oai"


def test_the_spec_files_are_read_from_inside_the_repository() -> None:
    for path in (sendgrid_server.SCHEMA_PATH, sendgrid_suppressions.SPEC):
        assert path.is_file(), path
        assert path.resolve().is_relative_to(REPO), f"{path} is outside the repository"


def test_provenance_names_every_copied_file_with_its_checksum() -> None:
    provenance = (COPY / "PROVENANCE.md").read_text(encoding="utf-8")
    copied = [p for p in COPY.rglob("*") if p.is_file() and p.name != "PROVENANCE.md"]
    assert copied
    for path in copied:
        name = path.relative_to(COPY).as_posix()
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        row = next((line for line in provenance.splitlines() if f"`{name}`" in line), "")
        assert digest in row, f"PROVENANCE.md has no row for {name} with sha256 {digest}"
    assert "MIT License" in provenance and re.search(r"commit `[0-9a-f]{40}`", provenance)


def test_no_test_or_benchmark_reads_the_shared_folder_beside_the_repository() -> None:
    readers = [*REPO.joinpath("tests").rglob("*.py"), *REPO.joinpath("bench").rglob("*.py")]
    outside = re.compile(r"\.\./shared|[\"']shared[/\"']|(REPO|ROOT)\.parent|parents\[\d\]\.parent")
    found = [
        f"{path.relative_to(REPO)}:{number}"
        for path in readers
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if outside.search(line) and path.name != "test_peers.py"
    ]
    assert not found, f"these lines reach outside the repository: {found}"


def test_the_stand_in_names_a_missing_schema_at_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "mail_send_request_body.schema.json"
    monkeypatch.setattr(sendgrid_server, "SCHEMA_PATH", missing)
    monkeypatch.setattr(sendgrid_server, "_VALIDATOR", None)
    server = SendGridServer()
    with pytest.raises(MissingSpecError, match=re.escape(str(missing))):
        server.start()
    assert server._httpd is None  # nothing listening that could drop connections


def test_the_suppression_lists_name_a_missing_spec_when_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sendgrid_server: SendGridServer
) -> None:
    missing = tmp_path / "tsg_suppressions_v3.json"
    monkeypatch.setattr(sendgrid_suppressions, "SPEC", missing)
    sendgrid_suppressions.spec.cache_clear()
    sendgrid_suppressions.operation.cache_clear()
    try:
        with pytest.raises(MissingSpecError, match=re.escape(str(missing))):
            SuppressionLists().install(sendgrid_server)
    finally:
        sendgrid_suppressions.spec.cache_clear()
        sendgrid_suppressions.operation.cache_clear()
