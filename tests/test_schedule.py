"""Send times: the shipped rule, several day rules across DST changes and month ends, crontab lines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from newsletter.cli import main
from newsletter.config import Settings, load_settings
from newsletter.errors import ConfigError
from newsletter.schedule import latest_fire_time, next_fire_times, send_time_in
from tests.schedkit import add_people, settings_for, write_issue

TORONTO = ZoneInfo("America/Toronto")


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=TORONTO)  # type: ignore[misc]


def shown(times: list[datetime]) -> list[str]:
    return [t.strftime("%Y-%m-%d %H:%M %z") for t in times]


def test_shipped_schedule_sends_on_the_first_tuesday_at_nine_in_toronto(settings: Settings) -> None:
    times = next_fire_times(settings, 2, local(2026, 11, 26))
    assert times == [local(2026, 12, 1, 9), local(2027, 1, 5, 9)]
    assert [t.astimezone(UTC).hour for t in times] == [14, 14]


def test_nine_local_on_both_sides_of_each_dst_change(settings: Settings) -> None:
    # Shipped rule (1st tue): October is daylight time (UTC-4), November standard (UTC-5) …
    autumn = next_fire_times(settings, 2, local(2026, 9, 30))
    assert shown(autumn) == ["2026-10-06 09:00 -0400", "2026-11-03 09:00 -0500"]
    # … and back again in spring.
    spring = next_fire_times(settings, 2, local(2027, 2, 15))
    assert shown(spring) == ["2027-03-02 09:00 -0500", "2027-04-06 09:00 -0400"]
    assert [t.astimezone(UTC).hour for t in autumn + spring] == [13, 14, 14, 13]


def test_on_the_very_days_the_clocks_change(project: Path, clean_env: None) -> None:
    first_sunday = settings_for(project, day="1st sun")  # 2026-11-01: clocks go back
    assert shown(next_fire_times(first_sunday, 2, local(2026, 10, 1))) == [
        "2026-10-04 09:00 -0400",
        "2026-11-01 09:00 -0500",
    ]
    second_sunday = settings_for(project, day="2nd sun")  # 2027-03-14: clocks go forward
    assert shown(next_fire_times(second_sunday, 2, local(2027, 2, 1))) == [
        "2027-02-14 09:00 -0500",
        "2027-03-14 09:00 -0400",
    ]


def test_a_wall_time_that_happens_twice_is_one_send(project: Path, clean_env: None) -> None:
    settings = settings_for(project, day="1st sun", time="01:30")
    times = next_fire_times(settings, 3, local(2026, 10, 15))
    assert [t.strftime("%Y-%m-%d") for t in times] == ["2026-11-01", "2026-12-06", "2027-01-03"]


def test_a_wall_time_that_does_not_exist_still_sends_that_day(
    project: Path, clean_env: None
) -> None:
    settings = settings_for(project, day="2nd sun", time="02:30")
    times = next_fire_times(settings, 2, local(2027, 3, 1))
    assert times[0].astimezone(TORONTO).date().isoformat() == "2027-03-14"
    assert times[1].strftime("%Y-%m-%d %H:%M") == "2027-04-11 02:30"


def test_last_friday(project: Path, clean_env: None) -> None:
    settings = settings_for(project, day="last fri")
    assert [t.strftime("%Y-%m-%d") for t in next_fire_times(settings, 4, local(2026, 12, 26))] == [
        "2027-01-29",
        "2027-02-26",
        "2027-03-26",
        "2027-04-30",
    ]


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        ("31", ["2027-01-31", "2027-02-28", "2027-03-31", "2027-04-30", "2027-05-31"]),
        ("30", ["2027-01-30", "2027-02-28", "2027-03-30", "2027-04-30", "2027-05-30"]),
        ("last", ["2027-01-31", "2027-02-28", "2027-03-31", "2027-04-30", "2027-05-31"]),
    ],
)
def test_month_ends_never_skip_a_month(
    project: Path, clean_env: None, day: str, expected: list[str]
) -> None:
    settings = settings_for(project, day=day)
    times = next_fire_times(settings, 5, local(2027, 1, 1))
    assert [t.strftime("%Y-%m-%d") for t in times] == expected
    assert all(t.strftime("%H:%M") == "09:00" for t in times)


def test_leap_february(project: Path, clean_env: None) -> None:
    for day in ("29", "30", "31"):
        settings = settings_for(project, day=day)
        february = [t for t in next_fire_times(settings, 3, local(2028, 1, 15)) if t.month == 2]
        assert [t.strftime("%Y-%m-%d") for t in february] == ["2028-02-29"], day


@pytest.mark.parametrize(
    ("cron", "expected"),
    [
        # crontab numbers weekdays from Sunday = 0 (APScheduler 3 itself starts at Monday)
        ("0 9 * * 2", ["Tue 2026-12-01 09:00", "Tue 2026-12-08 09:00", "Tue 2026-12-15 09:00"]),
        ("30 7 1-7 * 1", ["Mon 2026-12-07 07:30", "Mon 2027-01-04 07:30", "Mon 2027-02-01 07:30"]),
        ("0 9 * * 0", ["Sun 2026-11-29 09:00", "Sun 2026-12-06 09:00", "Sun 2026-12-13 09:00"]),
        ("0 9 * * 7", ["Sun 2026-11-29 09:00", "Sun 2026-12-06 09:00", "Sun 2026-12-13 09:00"]),
        (
            "0 9 * * sat-sun",
            ["Sat 2026-11-28 09:00", "Sun 2026-11-29 09:00", "Sat 2026-12-05 09:00"],
        ),
        ("0 9 * * */3", ["Sat 2026-11-28 09:00", "Sun 2026-11-29 09:00", "Wed 2026-12-02 09:00"]),
        ("15 10 1 */2 *", ["Fri 2027-01-01 10:15", "Mon 2027-03-01 10:15", "Sat 2027-05-01 10:15"]),
    ],
)
def test_crontab_lines(project: Path, clean_env: None, cron: str, expected: list[str]) -> None:
    settings = settings_for(project, cron=cron)
    times = next_fire_times(settings, 3, local(2026, 11, 26, 12))
    assert [t.strftime("%a %Y-%m-%d %H:%M") for t in times] == expected


def test_a_cron_line_overrides_day_and_time_across_dst(project: Path, clean_env: None) -> None:
    settings = settings_for(project, day="15", cron="0 9 1-7 * 2")
    times = next_fire_times(settings, 2, local(2026, 10, 1))
    assert shown(times) == ["2026-10-06 09:00 -0400", "2026-11-03 09:00 -0500"]


@pytest.mark.parametrize(
    "cron", ["0 9 * * 8", "61 9 * * *", "0 9 32 * *", "0 9 * * fri-mon", "0 9 30 2 *"]
)
def test_a_bad_cron_line_names_the_key(project: Path, clean_env: None, cron: str) -> None:
    settings = settings_for(project, cron=cron)
    with pytest.raises(ConfigError, match=r"`send\.cron`"):
        next_fire_times(settings, 1, local(2026, 11, 26))


def test_latest_fire_time(settings: Settings) -> None:
    grace = timedelta(hours=6)
    assert latest_fire_time(settings, local(2026, 12, 1, 14, 59), grace) == local(2026, 12, 1, 9)
    assert latest_fire_time(settings, local(2026, 12, 1, 15, 1), grace) is None
    assert latest_fire_time(settings, local(2026, 12, 1, 8, 59), grace) is None


def test_schedule_command_lists_times_issues_and_readiness(project: Path, clean_env: None) -> None:
    write_issue(project, "2026-12", "ready")
    write_issue(project, "2027-01", "draft")
    write_issue(project, "2027-02", broken=True)

    result = CliRunner().invoke(
        main, ["--project", str(project), "schedule", "--next", "4", "--after", "2026-11-26"]
    )

    assert result.exit_code == 0, result.output
    lines = [line.split() for line in result.output.splitlines()]
    rows = [line for line in lines if line and line[0][:2] == "20"]
    assert rows == [
        ["2026-12-01", "09:00", "EST", "2026-12-01", "14:00", "issues/2026-12.md", "ready"],
        ["2027-01-05", "09:00", "EST", "2027-01-05", "14:00", "issues/2027-01.md", "draft"],
        [
            "2027-02-02",
            "09:00",
            "EST",
            "2027-02-02",
            "14:00",
            "issues/2027-02.md",
            "has",
            "errors",
            "(1)",  # the misspelt "Citaton:", and no follow-on "no Citation: line"
        ],
        ["2027-03-02", "09:00", "EST", "2027-03-02", "14:00", "issues/2027-03.md", "missing"],
    ]
    assert "1st tue" in result.output and "America/Toronto" in result.output


def test_schedule_command_next_3_defaults_to_now(project: Path, clean_env: None) -> None:
    settings = load_settings(project, env={})
    before = datetime.now(TORONTO)
    result = CliRunner().invoke(main, ["--project", str(project), "schedule", "--next", "3"])
    after = datetime.now(TORONTO)
    assert result.exit_code == 0, result.output
    # "now" is somewhere in [before, after]: the same three times unless a send time fell inside.
    shown = [
        [fire.strftime("%Y-%m-%d %H:%M") for fire in next_fire_times(settings, 3, moment)]
        for moment in (before, after)
    ]
    assert any(all(line in result.output for line in lines) for lines in shown), result.output


def test_schedule_command_refuses_a_bad_date(project: Path, clean_env: None) -> None:
    result = CliRunner().invoke(main, ["--project", str(project), "schedule", "--after", "soon"])
    assert result.exit_code == 2
    assert "--after" in result.output


def _ahead_rows(output: str) -> list[list[str]]:
    """The rows of the "Issues ahead" table, split into words."""
    _, _, ahead = output.partition("Issues ahead:")
    return [line.split() for line in ahead.splitlines() if line.strip().startswith("issues/")]


def test_schedule_lists_a_later_draft_issue_with_its_send_time(
    project: Path, clean_env: None
) -> None:
    write_issue(project, "2026-12", "ready")
    write_issue(project, "2027-09", "draft")  # far past the six send times listed
    write_issue(project, "2027-11", broken=True)

    result = CliRunner().invoke(
        main, ["--project", str(project), "schedule", "--after", "2026-11-26"]
    )

    assert result.exit_code == 0, result.output
    assert "issues/2027-09.md" not in result.output.partition("Issues ahead:")[0]
    assert "Issues ahead: 3 issue file(s) from 2026-11 on, not sent yet:" in result.output
    assert _ahead_rows(result.output) == [
        ["issues/2026-12.md", "ready", "2026-12-01", "09:00", "EST", "2026-12-01", "14:00"],
        ["issues/2027-09.md", "draft", "2027-09-07", "09:00", "EDT", "2027-09-07", "13:00"],
        [
            "issues/2027-11.md",
            "has",
            "errors",
            "(1)",
            "2027-11-02",
            "09:00",
            "EDT",
            "2027-11-02",
            "13:00",
        ],
    ]
    # the older sample issues (2020-11 to 2021-01) are behind, not ahead
    assert "issues/2021-01.md" not in result.output


def test_schedule_leaves_sent_issues_out_of_the_work_ahead(
    project: Path, settings: Settings
) -> None:
    write_issue(project, "2027-01", "ready")
    write_issue(project, "2027-02", "draft")
    add_people(settings)
    sent = CliRunner().invoke(main, ["--project", str(project), "send", "2027-01", "--yes"])
    assert sent.exit_code == 0, sent.output

    result = CliRunner().invoke(
        main, ["--project", str(project), "schedule", "--next", "1", "--after", "2026-12-20"]
    )

    assert result.exit_code == 0, result.output
    assert "issues/2027-01.md   already sent" in result.output  # the send-times table
    assert _ahead_rows(result.output) == [
        ["issues/2027-02.md", "draft", "2027-02-02", "09:00", "EST", "2027-02-02", "14:00"]
    ]


def test_schedule_works_without_a_database_and_creates_none(project: Path, clean_env: None) -> None:
    database = project / "subscribers" / "subscribers.db"
    assert not database.exists()
    write_issue(project, "2027-04", "ready")
    result = CliRunner().invoke(
        main, ["--project", str(project), "schedule", "--next", "1", "--after", "2027-03"]
    )
    assert result.exit_code == 0, result.output
    assert _ahead_rows(result.output) == [
        ["issues/2027-04.md", "ready", "2027-04-06", "09:00", "EDT", "2027-04-06", "13:00"]
    ]
    assert not database.exists()


def test_a_send_time_already_passed_is_marked(project: Path, clean_env: None) -> None:
    write_issue(project, "2027-04", "draft")
    result = CliRunner().invoke(
        main, ["--project", str(project), "schedule", "--after", "2027-04-10"]
    )
    assert result.exit_code == 0, result.output
    assert _ahead_rows(result.output) == [
        [
            "issues/2027-04.md",
            "draft",
            "2027-04-06",
            "09:00",
            "EDT",
            "(passed)",
            "2027-04-06",
            "13:00",
        ]
    ]


def test_no_issue_ahead_says_so(project: Path, clean_env: None) -> None:
    result = CliRunner().invoke(main, ["--project", str(project), "schedule", "--after", "2031-01"])
    assert result.exit_code == 0, result.output
    assert "Issues ahead: no issue file from 2031-01 on is waiting to be sent." in result.output


def test_send_time_in_a_month(project: Path, clean_env: None) -> None:
    settings = settings_for(project)
    assert send_time_in(settings, "2027-09") == local(2027, 9, 7, 9)
    cron = settings_for(project, cron="0 9 1 1,7 *")  # twice a year
    assert send_time_in(cron, "2027-07") == local(2027, 7, 1, 9)
    assert send_time_in(cron, "2027-08") is None
