"""The host invokes a schedule's function as EventBridge does, asynchronously: a failed invocation is
tried twice more with the same event, a minute and then two minutes later (Lambda's retries of an
asynchronous invocation), scaled by the time factor; one that succeeds is not repeated."""

from __future__ import annotations

import time
from typing import Any

from devstack.host.invoker import InvocationError
from devstack.host.schedules import ASYNC_RETRY_SECONDS, Schedule, Scheduler


class Function:
    """Fails its first `failures` invocations; remembers each event and when it came."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls: list[tuple[float, Any]] = []

    def invoke(self, event: Any, trigger: str = "invoke") -> Any:
        self.calls.append((time.monotonic(), event))
        if len(self.calls) <= self.failures:
            raise InvocationError("Fn", "req", "Function.Unhandled", "boom")
        return {}


def fire(function: Function) -> list[tuple[float, Any]]:
    """Fires a schedule of `function` once, at a time factor of 600 (the waits: 0.1 s and 0.2 s),
    and waits until the host is done with it; returns the invocations."""
    schedule = Schedule(function=function, name="Tick", seconds=60, arn="arn:aws:events:::rule/tick")  # type: ignore[arg-type]
    scheduler = Scheduler([schedule], "123456789012", "eu-west-1", time_factor=600)
    try:
        scheduler.fire_async(schedule).result(timeout=5)
    finally:
        scheduler.stop()
    return function.calls


def test_a_failed_scheduled_invocation_is_tried_twice_more_with_the_same_event() -> None:
    calls = fire(Function(failures=2))
    assert len(calls) == 3
    assert len({event["id"] for _, event in calls}) == 1
    (first, _), (second, _), (third, _) = calls
    assert second - first >= ASYNC_RETRY_SECONDS[0] / 600 * 0.9
    assert third - second >= ASYNC_RETRY_SECONDS[1] / 600 * 0.9


def test_three_failures_end_it_and_a_success_is_not_repeated() -> None:
    assert len(fire(Function(failures=10))) == 3
    assert len(fire(Function(failures=0))) == 1
