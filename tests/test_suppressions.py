"""SendGrid suppression sync against the stand-in serving the four lists, paged, per the spec."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.cli import main
from newsletter.config import Settings, load_settings
from newsletter.delivery.sendgrid.suppressions import PAGE_SIZE, sync_suppressions
from newsletter.errors import PermanentDeliveryError
from newsletter.models import SubscriberStatus
from newsletter.store.engine import open_database
from newsletter.store.subscribers import SubscriberStore
from tests.peers.sendgrid_server import Answer, Fault, SendGridServer
from tests.peers.sendgrid_suppressions import (
    LISTS,
    SuppressionLists,
    query_parameter,
    response_schema,
)


@pytest.fixture
def lists(sendgrid_server: SendGridServer) -> SuppressionLists:
    return SuppressionLists().install(sendgrid_server)


@pytest.fixture
def sg_env(sendgrid_server: SendGridServer) -> dict[str, str]:
    return {
        "NEWSLETTER_SENDGRID_HOST": sendgrid_server.url,
        "SENDGRID_API_KEY": sendgrid_server.api_key,
    }


@pytest.fixture
def sg_settings(
    project: Path, clean_env: None, sg_env: dict[str, str], database_url: str
) -> Settings:
    """SendGrid's stand-in, on each kind of database (SQLite, PostgreSQL)."""
    return dataclasses.replace(load_settings(project, env=sg_env), database_url=database_url)


@pytest.fixture
def store(sg_settings: Settings) -> SubscriberStore:
    return SubscriberStore(open_database(sg_settings.database_url))


def test_the_stand_in_follows_the_spec() -> None:
    """The page size bound and response shapes come from SendGrid's own API description."""
    for name in LISTS:
        assert query_parameter(name, "limit")["schema"]["maximum"] == PAGE_SIZE
        assert query_parameter(name, "offset")["schema"]["minimum"] == 0
        assert response_schema(name)["type"] == "array"


def test_each_list_maps_to_a_status_with_a_recorded_event(
    sg_settings: Settings, store: SubscriberStore, lists: SuppressionLists
) -> None:
    people = {name: store.add(f"{name}@example.com") for name in LISTS}
    bystander = store.add("still.here@example.com")
    for name in LISTS:
        lists.add(name, f"{name.upper()}@Example.com", created=1_763_600_000)

    report = sync_suppressions(sg_settings, store)

    expected = {
        "unsubscribes": SubscriberStatus.UNSUBSCRIBED,
        "bounces": SubscriberStatus.BOUNCED,
        "spam_reports": SubscriberStatus.COMPLAINED,
        "invalid_emails": SubscriberStatus.BOUNCED,
    }
    for name, person in people.items():
        assert store.get(person.email).status is expected[name]  # type: ignore[union-attr]
        event = store.events(person.id)[-1]
        assert event.source == "sync"
        assert event.to_status is expected[name]
        assert name.replace("_", " ").split()[0] in event.reason
        assert "2025-11-20" in event.reason  # when SendGrid recorded it (1763600000)
    bounce_reason = store.events(people["bounces"].id)[-1].reason
    assert "550 5.1.1" in bounce_reason
    assert store.get(bystander.email).status is SubscriberStatus.ACTIVE  # type: ignore[union-attr]
    assert report.changed == 4
    assert store.is_suppressed("bounces@example.com")


def test_a_second_sync_changes_nothing(
    sg_settings: Settings, store: SubscriberStore, lists: SuppressionLists
) -> None:
    person = store.add("twice@example.com")
    lists.add("bounces", "twice@example.com")
    lists.add("spam_reports", "twice@example.com")

    first = sync_suppressions(sg_settings, store)
    events = store.events(person.id)
    second = sync_suppressions(sg_settings, store)

    assert first.changed == 1
    assert second.changed == 0
    assert store.events(person.id) == events
    assert store.get("twice@example.com").status is SubscriberStatus.BOUNCED  # type: ignore[union-attr]


def test_a_record_applied_once_does_not_undo_a_manual_reactivation(
    sg_settings: Settings, store: SubscriberStore, lists: SuppressionLists
) -> None:
    person = store.add("back@example.com")
    lists.add("bounces", "back@example.com", created=1_700_000_000)
    sync_suppressions(sg_settings, store)
    store.set_status(person.id, SubscriberStatus.ACTIVE, reason="mailbox fixed", source="cli")

    assert sync_suppressions(sg_settings, store).changed == 0
    assert store.get("back@example.com").status is SubscriberStatus.ACTIVE  # type: ignore[union-attr]

    lists.add("bounces", "back@example.com", created=1_800_000_000)  # it bounced again
    assert sync_suppressions(sg_settings, store).changed == 1


def test_unknown_addresses_are_ignored_and_counted(
    sg_settings: Settings, store: SubscriberStore, lists: SuppressionLists
) -> None:
    lists.add("unsubscribes", "stranger@example.com")
    report = sync_suppressions(sg_settings, store)
    unsubscribes = next(r for r in report.lists if r.name == "unsubscribes")
    assert unsubscribes.unknown == 1
    assert store.get("stranger@example.com") is None


def test_every_page_is_fetched(
    sg_settings: Settings, store: SubscriberStore, lists: SuppressionLists
) -> None:
    for number in range(2 * PAGE_SIZE + 3):
        lists.add("bounces", f"gone{number}@example.org", created=1_700_000_000 + number)
    last = store.add(f"gone{2 * PAGE_SIZE + 2}@example.org")  # on the third page
    first = store.add("gone0@example.org")

    report = sync_suppressions(sg_settings, store)

    offsets = [q["offset"][0] for name, q in lists.queries if name == "bounces"]
    limits = {q["limit"][0] for name, q in lists.queries if name == "bounces"}
    assert offsets == ["0", "500", "1000"]
    assert limits == {str(PAGE_SIZE)}
    assert store.get(last.email).status is SubscriberStatus.BOUNCED  # type: ignore[union-attr]
    assert store.get(first.email).status is SubscriberStatus.BOUNCED  # type: ignore[union-attr]
    assert next(r for r in report.lists if r.name == "bounces").fetched == 2 * PAGE_SIZE + 3


def test_a_list_that_is_a_whole_page_asks_once_more(
    sg_settings: Settings, store: SubscriberStore, lists: SuppressionLists
) -> None:
    for number in range(PAGE_SIZE):
        lists.add("spam_reports", f"s{number}@example.org")
    sync_suppressions(sg_settings, store)
    offsets = [q["offset"][0] for name, q in lists.queries if name == "spam_reports"]
    assert offsets == ["0", "500"]


def test_a_malformed_answer_is_a_clear_error(
    sg_settings: Settings, store: SubscriberStore, sendgrid_server: SendGridServer
) -> None:
    sendgrid_server.add_route("GET", "/v3/suppression/", lambda _r: Answer(200, {"result": []}))
    with pytest.raises(PermanentDeliveryError, match=r"/v3/suppression/unsubscribes.*JSON list"):
        sync_suppressions(sg_settings, store)


def test_a_refused_key_stops_the_sync(
    sg_settings: Settings,
    store: SubscriberStore,
    lists: SuppressionLists,
    sendgrid_server: SendGridServer,
) -> None:
    sendgrid_server.inject(Fault(status=403))
    with pytest.raises(PermanentDeliveryError, match="403"):
        sync_suppressions(sg_settings, store)


def test_cli_sync_reports_each_list(
    project: Path,
    sg_settings: Settings,
    store: SubscriberStore,
    lists: SuppressionLists,
    sg_env: dict[str, str],
) -> None:
    store.add("quit@example.com")
    lists.add("unsubscribes", "quit@example.com")
    lists.add("bounces", "nobody@example.com")
    sg_env = {**sg_env, "NEWSLETTER_DATABASE_URL": sg_settings.database_url}

    result = CliRunner().invoke(
        main,
        ["--project", str(project), "subscribers", "sync", "--transport", "sendgrid"],
        env=sg_env,
    )

    assert result.exit_code == 0, result.output
    assert "SendGrid list" in result.output
    assert "suppressed quit@example.com (unsubscribes)" in result.output
    assert "1 subscriber(s) suppressed by this sync" in result.output
    for name in LISTS:
        assert name in result.output
    schedule = project / "schedule.yaml"
    schedule.write_text(schedule.read_text().replace("transport: outbox", "transport: sendgrid"))
    again = CliRunner().invoke(main, ["--project", str(project), "subscribers", "sync"], env=sg_env)
    assert "0 subscriber(s) suppressed by this sync" in again.output


def test_cli_sync_without_an_api_key_is_a_configuration_error(
    project: Path, clean_env: None
) -> None:
    result = CliRunner().invoke(
        main, ["--project", str(project), "subscribers", "sync", "--transport", "sendgrid"]
    )
    assert result.exit_code == 2
    assert "SENDGRID_API_KEY" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("transport", ["outbox", "smtp"])
def test_cli_sync_for_a_transport_without_lists_says_so(
    project: Path, lists: SuppressionLists, sg_env: dict[str, str], transport: str
) -> None:
    """outbox and smtp keep no suppression lists: exit 2 with one line, nothing fetched."""
    result = CliRunner().invoke(
        main,
        ["--project", str(project), "subscribers", "sync", "--transport", transport],
        env=sg_env,
    )
    assert result.exit_code == 2
    assert f"`subscribers sync` is not available for the {transport} transport" in result.output
    assert "--transport sendgrid" in result.output
    assert "Traceback" not in result.output
    assert lists.queries == []
