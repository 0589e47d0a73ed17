"""The refresher: keeps active registrations alive before the core's 3600-second TTL runs out.

    report = process_refresher().run(remaining_seconds)   # on a schedule, every 5 minutes

Each run queries the sparse `RefreshDue` index (only active registrations are in it, spread over
16 shard keys so no partition runs hot), shard by shard, one page at a time in turn, for what
expires within the margin, soonest first, and enqueues a `registration.refresh` for each. The
worker re-upserts it with its stored parameters, if it is still the desired state.

- No doubles: the refresh event id (and so the SQS deduplication id) comes from the MSISDN, the
  sip_uri and the expiry being refreshed. Overlapping runs, or a run that sees the same
  registration again before the worker moved its expiry, enqueue the same id: SQS drops it within
  its 5-minute window and the worker's record absorbs it after that.
- Bounded work: at most `max_items` per run, and no new page when the invocation's remaining
  time falls below the reserve. The continuation is the index itself: what was not enqueued is
  still due and comes first in its shard next run (soonest expiry first); shards are visited
  in turn, so a backlog is spread over all of them, not left to the last ones. The margin
  (default 20 minutes) against the period (5 minutes) leaves several runs for every registration.
- `overdue` counts active registrations whose expiry has already passed: the core has dropped
  them (the refresh re-creates them). The metric feeds an alarm.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any, Protocol

from sipreg.config import RefresherSettings
from sipreg.events import AnyEvent, EventType, RefreshEvent, RegistrationRef
from sipreg.queue import EventQueue, SendResult
from sipreg.store.registrations import RegistrationRecord, RegistrationStore

logger = logging.getLogger(__name__)

SOURCE = "sipreg-refresher"


class DueRegistrations(Protocol):
    def all_shards(self) -> Any: ...

    def due_for_refresh(
        self, shard: str, before: datetime, *, limit: int, start_key: dict[str, Any] | None = None
    ) -> tuple[list[RegistrationRecord], dict[str, Any] | None]: ...


class EventSink(Protocol):
    def send(self, events: Sequence[AnyEvent]) -> SendResult: ...


@dataclass(frozen=True)
class RefreshReport:
    enqueued: int  # refresh events the queue took (SQS may still drop some as duplicates)
    not_accepted: int  # the queue refused them after retries: they stay due for the next run
    overdue: int  # active registrations already past their expiry
    complete: bool  # every due registration was seen (False: the rest waits for the next run)

    def as_dict(self) -> dict[str, Any]:
        return {
            "enqueued": self.enqueued,
            "not_accepted": self.not_accepted,
            "overdue": self.overdue,
            "complete": self.complete,
        }


def refresh_event_id(msisdn: str, sip_uri: str, expires_at: datetime) -> str:
    """The same (registration, expiry) always gives the same id; a new expiry a new one."""
    key = f"{msisdn}|{sip_uri}|{expires_at.astimezone(UTC).isoformat()}"
    return "refresh-" + hashlib.sha256(key.encode()).hexdigest()[:40]


def refresh_event(record: RegistrationRecord, now: datetime) -> RefreshEvent:
    assert record.expires_at is not None and record.applied is not None  # what the index holds
    applied = record.applied
    return RefreshEvent(
        id=refresh_event_id(record.msisdn, record.sip_uri, record.expires_at),
        type=EventType.REGISTRATION_REFRESH,
        msisdn=record.msisdn,
        occurred_at=now,
        source=SOURCE,
        registration=RegistrationRef(
            sip_uri=record.sip_uri,
            route_type=applied.route_type,
            mobile_originating_prefix=applied.mobile_originating_prefix,
            mobile_terminating_prefix=applied.mobile_terminating_prefix,
        ),
    )


class Refresher:
    def __init__(
        self,
        registrations: DueRegistrations,
        queue: EventSink,
        *,
        margin_seconds: float = 1200,
        max_items: int = 5000,
        page_size: int = 100,
        time_reserve_seconds: float = 10.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._registrations = registrations
        self._queue = queue
        self._margin = timedelta(seconds=margin_seconds)
        self._max_items = max_items
        self._page_size = page_size
        self._reserve = time_reserve_seconds
        self._clock = clock

    def run(self, remaining_seconds: Callable[[], float]) -> RefreshReport:
        now = self._clock()
        before = now + self._margin
        cursors: dict[str, dict[str, Any] | None] = dict.fromkeys(self._registrations.all_shards())
        budget = self._max_items
        enqueued = not_accepted = overdue = 0
        while cursors and budget > 0 and remaining_seconds() > self._reserve:
            # One page per shard in turn, the budget shared out evenly: fair under a backlog.
            shards = list(cursors)
            for position, shard in enumerate(shards):
                if budget <= 0 or remaining_seconds() <= self._reserve:
                    break
                share = -(-budget // (len(shards) - position))  # ceil: the rest of the round gets the rest
                page, next_key = self._registrations.due_for_refresh(
                    shard, before, limit=min(self._page_size, share), start_key=cursors[shard]
                )
                budget -= len(page)
                overdue += sum(1 for r in page if r.expires_at is not None and r.expires_at <= now)
                if page:
                    result = self._queue.send([refresh_event(record, now) for record in page])
                    enqueued += len(result.accepted)
                    not_accepted += len(result.not_accepted)
                if next_key is None:
                    del cursors[shard]
                else:
                    cursors[shard] = next_key
        report = RefreshReport(enqueued, not_accepted, overdue, complete=not cursors)
        logger.info(
            "refresher: %d enqueued, %d not accepted, %d overdue%s",
            enqueued,
            not_accepted,
            overdue,
            "" if report.complete else "; the rest is left for the next run",
            extra=report.as_dict(),
        )
        return report


def build_refresher(settings: RefresherSettings | None = None) -> Refresher:
    config = settings or RefresherSettings.from_env()
    return Refresher(
        RegistrationStore(config.registrations_table),
        EventQueue(config.events_queue_url),
        margin_seconds=config.refresh_margin_seconds,
        max_items=config.max_items,
        page_size=config.page_size,
        time_reserve_seconds=config.time_reserve_seconds,
    )


@cache
def process_refresher() -> Refresher:
    """The process's refresher, configured from the environment at the first call."""
    return build_refresher()
