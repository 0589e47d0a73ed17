"""Schedules (`Schedule`, `ScheduleV2` events, `AWS::Events::Rule`, `AWS::Scheduler::Schedule`),
fired with a time factor: with factor 60, `rate(5 minutes)` fires every 5 s, and cron times are
reached 60 times faster (a virtual clock that starts at the real time when the host starts).

The event's `time` is the real time of firing: the functions compare it with their own clocks.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from uuid import uuid4
from zoneinfo import ZoneInfo

from devstack.host.invoker import FunctionRuntime, InvocationError
from devstack.host.schedule_expr import At, Cron, Expression, Rate, parse

log = logging.getLogger(__name__)


@dataclass
class Schedule:
    function: FunctionRuntime
    name: str  # the event's name in the template (or the rule's logical id)
    expression: Expression
    kind: str  # "rule" (EventBridge rule) or "scheduler" (EventBridge Scheduler)
    arn: str
    input: str | None
    enabled: bool
    zone: tzinfo = UTC

    def event(self, account_id: str, region: str, fired_at: datetime) -> Any:
        """What the target receives: the Input if given, else the service's own event."""
        if self.kind == "scheduler":
            text = self.input if self.input is not None else "{}"
            for name, value in {
                "<aws.scheduler.schedule-arn>": self.arn,
                "<aws.scheduler.scheduled-time>": _iso(fired_at),
                "<aws.scheduler.execution-id>": str(uuid4()),
                "<aws.scheduler.attempt-number>": "1",
            }.items():
                text = text.replace(name, value)
            return json.loads(text)
        if self.input is not None:
            return json.loads(self.input)
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


def make_schedule(
    function: FunctionRuntime, name: str, kind: str, arn: str, properties: dict[str, Any]
) -> Schedule:
    """A schedule from the properties of a Schedule/ScheduleV2 event or a rule/schedule resource."""
    zone_name = properties.get("ScheduleExpressionTimezone")
    zone: tzinfo = ZoneInfo(zone_name) if zone_name else UTC
    expression = properties.get("Schedule") or properties.get("ScheduleExpression")
    if not isinstance(expression, str):
        raise ValueError(f"{function.spec.logical_id}.{name}: no schedule expression")
    state = str(properties.get("State", "ENABLED")).upper()
    enabled = properties.get("Enabled", True) not in (False, "false", "False") and state == "ENABLED"
    raw_input = properties.get("Input")
    return Schedule(
        function=function,
        name=name,
        expression=parse(expression, zone),
        kind=kind,
        arn=arn,
        input=raw_input if raw_input is None or isinstance(raw_input, str) else json.dumps(raw_input),
        enabled=enabled,
        zone=zone,
    )


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
        self._pool = ThreadPoolExecutor(max_workers=max(len(schedules), 1), thread_name_prefix="schedule")
        self._started_at = time.time()

    def start(self) -> None:
        self._started_at = time.time()
        active = [s for s in self.schedules if s.enabled]
        if active:
            self._thread = threading.Thread(target=self._run, args=(active,), name="scheduler", daemon=True)
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

    def next_fire(self, schedule: Schedule, after: datetime) -> datetime | None:
        """The next virtual time `schedule` fires after the virtual moment `after`."""
        expression = schedule.expression
        if isinstance(expression, Rate):
            start = datetime.fromtimestamp(self._started_at, UTC)
            periods = int((after - start).total_seconds() // expression.seconds) + 1
            return start + timedelta(seconds=periods * expression.seconds)
        if isinstance(expression, Cron):
            return expression.next_after(after, schedule.zone)
        assert isinstance(expression, At)
        return expression.moment if expression.moment > after else None

    def _run(self, schedules: list[Schedule]) -> None:
        now = self.virtual_now()
        upcoming = {id(s): self.next_fire(s, now) for s in schedules}
        while not self._stopping.is_set():
            due = [(moment, s) for s in schedules if (moment := upcoming[id(s)]) is not None]
            if not due:
                return
            moment, schedule = min(due, key=lambda pair: pair[0])
            if self._stopping.wait(max(self.real_time_of(moment) - time.time(), 0)):
                return
            upcoming[id(schedule)] = self.next_fire(schedule, moment)
            self._pool.submit(self._fire_logged, schedule)

    def _fire_logged(self, schedule: Schedule) -> None:
        # Logged by the invoker; an asynchronous invocation has no caller to tell.
        with contextlib.suppress(InvocationError):
            self.fire(schedule)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
