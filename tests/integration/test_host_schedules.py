"""The local host fires the template's schedules (rate and cron), faster with a time factor, and
can fire one on demand."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from devstack.host import LocalHost
from devstack.host.schedule_expr import At, Cron, Rate, ScheduleExpressionError, parse
from tests.fixtures.host.hosting import items, start_host, wait_until


@pytest.fixture(scope="module")
def host(aws_endpoint: str) -> Iterator[LocalHost]:
    # rate(1 minute) fires every second
    host = start_host(aws_endpoint, time_factor=60)
    yield host
    host.stop()


def test_rate_schedule_fires_with_the_time_factor(
    host: LocalHost, aws_endpoint: str, aws_account: str
) -> None:
    # Given ScheduledFunction's rate(1 minute) and a time factor of 60
    table, name = host.resources["RecordTable"]["Ref"], host.resources["ScheduledFunction"]["Ref"]

    def two_scheduled_events() -> list[dict[str, Any]] | None:
        events = [json.loads(str(item["event"])) for item in items(aws_endpoint, table, name)]
        scheduled = [e for e in events if e.get("source") == "aws.events"]
        return scheduled if len(scheduled) >= 2 else None

    # When a few seconds pass, Then it has fired about once a second with EventBridge's event
    events = wait_until(two_scheduled_events, timeout=6)
    event = events[0]
    assert event["detail-type"] == "Scheduled Event"
    assert event["account"] == aws_account
    assert event["region"] == "eu-west-1"
    assert event["detail"] == {}
    resources = event["resources"]
    assert isinstance(resources, list) and resources[0].startswith(
        f"arn:aws:events:eu-west-1:{aws_account}:rule/"
    )
    fired = sorted(datetime.fromisoformat(str(e["time"])) for e in events)
    assert abs((fired[0] - datetime.now(UTC)).total_seconds()) < 30


def test_trigger_schedule_fires_the_named_schedule_now(host: LocalHost) -> None:
    # Given the Nightly ScheduleV2 with an Input using a Scheduler context attribute
    # When it is triggered now, Then the function gets the Input, with the attribute filled in
    event = host.trigger_schedule("ScheduledFunction", "Nightly")
    assert event["job"] == "nightly"
    assert datetime.fromisoformat(event["at"]).tzinfo is not None


def test_trigger_schedule_needs_a_name_when_a_function_has_several(host: LocalHost) -> None:
    with pytest.raises(ValueError, match=r"EveryMinute.*Nightly|Nightly.*EveryMinute"):
        host.trigger_schedule("ScheduledFunction")


def test_rate_expression() -> None:
    assert parse("rate(5 minutes)") == Rate(300)
    assert parse("rate(1 hour)") == Rate(3600)
    assert parse("rate(2 days)") == Rate(172800)


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("cron(0 3 * * ? *)", "2026-01-01T04:00", "2026-01-02T03:00"),
        ("cron(*/15 * * * ? *)", "2026-01-01T04:07", "2026-01-01T04:15"),
        ("cron(0,30 8-9 ? * MON-FRI *)", "2026-01-02T09:30", "2026-01-05T08:00"),  # Fri -> Mon
        ("cron(15 10 ? * 1 *)", "2026-01-01T00:00", "2026-01-04T10:15"),  # 1 = Sunday
        ("cron(0 0 1 JAN,JUL ? *)", "2026-01-01T00:00", "2026-07-01T00:00"),
        ("cron(0 12 29 2 ? 2028)", "2026-01-01T00:00", "2028-02-29T12:00"),
    ],
)
def test_cron_expression_next_fire_time(expression: str, after: str, expected: str) -> None:
    cron = parse(expression)
    assert isinstance(cron, Cron)
    moment = datetime.fromisoformat(after).replace(tzinfo=UTC)
    assert cron.next_after(moment) == datetime.fromisoformat(expected).replace(tzinfo=UTC)


def test_cron_runs_in_the_schedules_time_zone() -> None:
    # 03:00 in Oslo is 02:00 UTC in winter, 01:00 UTC in summer
    oslo = ZoneInfo("Europe/Oslo")
    cron = parse("cron(0 3 * * ? *)", oslo)
    assert isinstance(cron, Cron)
    assert cron.next_after(datetime(2026, 1, 1, tzinfo=UTC), oslo) == datetime(2026, 1, 1, 2, tzinfo=UTC)
    assert cron.next_after(datetime(2026, 7, 1, tzinfo=UTC), oslo) == datetime(2026, 7, 1, 1, tzinfo=UTC)


def test_at_expression_is_one_moment() -> None:
    assert parse("at(2030-01-02T03:04:05)") == At(datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC))


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("cron(0 3 * * *)", "6 fields"),
        ("cron(0 3 * * * *)", "exactly one of"),
        ("cron(0 3 L * ? *)", "not supported"),
        ("cron(0 3 ? * 2#1 *)", "not supported"),
        ("cron(61 3 * * ? *)", "outside 0-59"),
        ("rate(1 minutes)", "rate"),
        ("every 5 minutes", "not a rate"),
    ],
)
def test_bad_schedule_expression_is_refused_clearly(expression: str, message: str) -> None:
    with pytest.raises(ScheduleExpressionError, match=message):
        parse(expression)
