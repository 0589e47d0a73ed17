"""The local host fires the template's schedules (`rate(...)`, the only kind template.yaml uses),
faster with a time factor, and can fire one on demand."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from devstack.host import LocalHost
from devstack.host.schedules import ScheduleExpressionError, rate_seconds
from tests.support.host import items, start_host, wait_until


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


def test_trigger_schedule_fires_the_named_schedule_now(host: LocalHost, aws_account: str) -> None:
    # Given ScheduledFunction's Daily schedule, When it is triggered now,
    # Then the function gets EventBridge's scheduled event of that rule, dated now
    event = host.trigger_schedule("ScheduledFunction", "Daily")
    assert event["detail-type"] == "Scheduled Event"
    assert event["resources"][0].startswith(f"arn:aws:events:eu-west-1:{aws_account}:rule/")
    assert "Daily" in event["resources"][0]
    assert abs((datetime.fromisoformat(event["time"]) - datetime.now(UTC)).total_seconds()) < 30


def test_trigger_schedule_needs_a_name_when_a_function_has_several(host: LocalHost) -> None:
    with pytest.raises(ValueError, match=r"EveryMinute.*Daily|Daily.*EveryMinute"):
        host.trigger_schedule("ScheduledFunction")


def test_rate_expression() -> None:
    assert rate_seconds("rate(5 minutes)") == 300
    assert rate_seconds("rate(1 hour)") == 3600
    assert rate_seconds("rate(2 days)") == 172800


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("rate(1 minutes)", "rate"),
        ("rate(0 minutes)", "rate"),
        ("every 5 minutes", "not a rate"),
        ("cron(0 3 * * ? *)", "not a rate"),  # template.yaml uses none: refused, not guessed
        ("at(2030-01-02T03:04:05)", "not a rate"),
    ],
)
def test_bad_schedule_expression_is_refused_clearly(expression: str, message: str) -> None:
    with pytest.raises(ScheduleExpressionError, match=message):
        rate_seconds(expression)
