"""`Schedule` events (EventBridge rules), fired with a time factor: with factor 60,
`rate(5 minutes)` fires every 5 s.

Only `rate(...)` runs: it is what template.yaml's schedules use. A `cron(...)` or any other
expression is refused when the template is loaded.

The event's `time` is the real time of firing: the functions compare it with their own clocks.

EventBridge invokes its target asynchronously, so the host does as Lambda does with such an
invocation: it runs beside one still running (the function's concurrency allows it), and one
that fails (an error, a timeout) is tried twice more with the same event, a minute and then two
minutes later (scaled by the time factor).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

from devstack.host.invoker import FunctionRuntime, InvocationError

log = logging.getLogger(__name__)

EVENT_PROPERTIES = frozenset({"Schedule", "Description"})
_RATE = re.compile(r"rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}
# Lambda's retries of a failed asynchronous invocation: the waits before the second and third try.
ASYNC_RETRY_SECONDS = (60, 120)
# Invocations of one schedule the host keeps going at once (each may be waiting to retry).
_RUNNING_PER_SCHEDULE = 4


class ScheduleExpressionError(ValueError):
    pass


def rate_seconds(expression: str) -> int:
    """The period of a `rate(...)` expression, in seconds."""
    rate = _RATE.fullmatch(expression.strip())
    if rate is None:
        raise ScheduleExpressionError(
            f"{expression!r} is not a rate() expression (the only kind run locally)"
        )
    amount, unit = int(rate.group(1)), rate.group(2).rstrip("s")
    if amount < 1 or (amount == 1) != (rate.group(2) == unit):
        raise ScheduleExpressionError(f"{expression!r}: use 'rate(1 minute)', 'rate(5 minutes)'")
    return amount * _UNIT_SECONDS[unit]


@dataclass
class Schedule:
    function: FunctionRuntime
    name: str  # the event's name in the template
    seconds: int  # its rate
    arn: str  # the EventBridge rule's

    def event(self, account_id: str, region: str, fired_at: datetime) -> Any:
        """What EventBridge sends the target of a scheduled rule."""
        return {
            "version": "0",
            "id": str(uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": account_id,
            "time": _iso(fired_at),
            "region": region,
            "resources": [self.arn],
            "detail": {},
        }


def make_schedule(function: FunctionRuntime, name: str, arn: str, properties: dict[str, Any]) -> Schedule:
    """A schedule from the properties of a Schedule event."""
    expression = properties.get("Schedule")
    if not isinstance(expression, str):
        raise ScheduleExpressionError(f"{function.spec.logical_id}.{name}: no schedule expression")
    return Schedule(function=function, name=name, seconds=rate_seconds(expression), arn=arn)


class Scheduler:
    def __init__(
        self, schedules: list[Schedule], account_id: str, region: str, time_factor: float = 1.0
    ) -> None:
        if time_factor <= 0:
            raise ValueError("time_factor must be positive")
        self.schedules = schedules
        self.account_id = account_id
        self.region = region
        self.time_factor = time_factor
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(
            max_workers=max(len(schedules), 1) * _RUNNING_PER_SCHEDULE, thread_name_prefix="schedule"
        )
        self._started_at = time.time()

    def start(self) -> None:
        self._started_at = time.time()
        if self.schedules:
            self._thread = threading.Thread(
                target=self._run, args=(self.schedules,), name="scheduler", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def fire(self, schedule: Schedule) -> Any:
        """Invokes the schedule's function now and returns its result (raises on its error)."""
        event = schedule.event(self.account_id, self.region, datetime.now(UTC))
        return schedule.function.invoke(event, trigger=f"schedule:{schedule.name}")

    def virtual_now(self, real: float | None = None) -> datetime:
        real = time.time() if real is None else real
        return datetime.fromtimestamp(self._started_at + (real - self._started_at) * self.time_factor, UTC)

    def real_time_of(self, virtual: datetime) -> float:
        return self._started_at + (virtual.timestamp() - self._started_at) / self.time_factor

    def next_fire(self, schedule: Schedule, after: datetime) -> datetime:
        """The next virtual time `schedule` fires after the virtual moment `after`."""
        start = datetime.fromtimestamp(self._started_at, UTC)
        periods = int((after - start).total_seconds() // schedule.seconds) + 1
        return start + timedelta(seconds=periods * schedule.seconds)

    def _run(self, schedules: list[Schedule]) -> None:
        now = self.virtual_now()
        upcoming = {id(s): self.next_fire(s, now) for s in schedules}
        while not self._stopping.is_set():
            moment, schedule = min(((upcoming[id(s)], s) for s in schedules), key=lambda pair: pair[0])
            if self._stopping.wait(max(self.real_time_of(moment) - time.time(), 0)):
                return
            upcoming[id(schedule)] = self.next_fire(schedule, moment)
            self.fire_async(schedule)

    def fire_async(self, schedule: Schedule) -> Future[None]:
        """Invokes the schedule's function as EventBridge does, asynchronously; done when it
        succeeded or its last try failed."""
        return self._pool.submit(self._invoke_async, schedule)

    def _invoke_async(self, schedule: Schedule) -> None:
        """Errors are logged by the invoker (an asynchronous invocation has no caller to tell), and
        a failed invocation is tried again as Lambda does."""
        event = schedule.event(self.account_id, self.region, datetime.now(UTC))
        waits = (0, *ASYNC_RETRY_SECONDS)
        for attempt, wait in enumerate(waits, start=1):
            if wait and self._stopping.wait(wait / self.time_factor):
                return
            try:
                schedule.function.invoke(event, trigger=f"schedule:{schedule.name}")
                return
            except InvocationError:
                log.info("%s: scheduled invocation failed (try %d of %d)", schedule.name, attempt, len(waits))


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
