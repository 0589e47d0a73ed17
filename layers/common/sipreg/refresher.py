"""The refresher: keeps active registrations alive before the core's 3600-second TTL runs out.

    report = sipreg.wiring.refresher.from_env().run(remaining_seconds)   # every 5 minutes

Each run queries the sparse `RefreshDue` index (only active registrations are in it, spread over
16 shard keys so no partition runs hot), shard by shard, one page at a time in turn, for what
expires within the margin, soonest first, and enqueues a `registration.refresh` for each. The
worker re-upserts it with its stored parameters, if it is still the desired state.

- No doubles: the refresh event id comes from the MSISDN, the sip_uri and the expiry being
  refreshed. Overlapping runs, or a run that sees the same registration again before the worker
  moved its expiry, enqueue the same id, and the worker's record absorbs the second (its SQS
  deduplication id is random, see `sipreg.queue`: a producer must not be able to take it first).
- Bounded work: at most `max_items` per run, and no new round when the invocation's remaining
  time falls below the reserve. The continuation is the index itself: what was not enqueued is
  still due and comes first in its shard next run (soonest expiry first). A run goes in rounds:
  one page from every shard with more to give, the budget split evenly between them, so a
  backlog is spread over all shards, not left to the last ones. The margin (default 20 minutes)
  against the period (5 minutes) leaves several runs for every registration.
- Fast enough for a million: a round's pages are read and sent by `parallelism` threads (boto3
  clients are thread-safe), so a run is not one SendMessageBatch after the other. Each
  registration is refreshed about 1.4 times an hour (every 3600 s minus the margin, give or take
  a period), so 1,000,000 registrations need ~118,000 refreshes per 5-minute run.
- `overdue` counts active registrations whose expiry has already passed: the core has dropped
  them (the refresh re-creates them). The metric feeds an alarm.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sipreg.events import AnyEvent, EventType, RefreshEvent, RegistrationRef
from sipreg.models import sipreg_event_id
from sipreg.queue import SendResult
from sipreg.store.registrations import RegistrationRecord

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
    return sipreg_event_id("refresh", hashlib.sha256(key.encode()).hexdigest()[:40])


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


@dataclass(frozen=True)
class _Page:
    shard: str
    read: int
    enqueued: int
    not_accepted: int
    overdue: int
    next_key: dict[str, Any] | None


def split_evenly(budget: int, parts: int, cap: int) -> list[int]:
    """`budget` over `parts` as evenly as integers allow (the first ones get the remainder), each
    at most `cap`."""
    base, extra = divmod(budget, parts)
    return [min(cap, base + (1 if position < extra else 0)) for position in range(parts)]


class Refresher:
    def __init__(
        self,
        registrations: DueRegistrations,
        queue: EventSink,
        *,
        margin_seconds: float = 1200,
        max_items: int = 200_000,
        page_size: int = 100,
        parallelism: int = 16,
        time_reserve_seconds: float = 10.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._registrations = registrations
        self._queue = queue
        self._margin = timedelta(seconds=margin_seconds)
        self._max_items = max_items
        self._page_size = page_size
        self._parallelism = parallelism
        self._reserve = time_reserve_seconds
        self._clock = clock

    def run(self, remaining_seconds: Callable[[], float]) -> RefreshReport:
        now = self._clock()
        before = now + self._margin
        cursors: dict[str, dict[str, Any] | None] = dict.fromkeys(self._registrations.all_shards())
        budget = self._max_items
        enqueued = not_accepted = overdue = 0
        with ThreadPoolExecutor(max_workers=self._parallelism, thread_name_prefix="refresh") as pool:
            while cursors and budget > 0 and remaining_seconds() > self._reserve:
                # One round: a page from every shard with more, the budget shared out evenly.
                shares = split_evenly(budget, len(cursors), self._page_size)
                rounds = [(shard, share) for shard, share in zip(cursors, shares, strict=True) if share]
                pages = pool.map(
                    lambda job: self._refresh_page(job[0], job[1], cursors[job[0]], before, now), rounds
                )
                for page in list(pages):
                    budget -= page.read
                    enqueued += page.enqueued
                    not_accepted += page.not_accepted
                    overdue += page.overdue
                    if page.next_key is None:
                        del cursors[page.shard]
                    else:
                        cursors[page.shard] = page.next_key
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

    def _refresh_page(
        self, shard: str, limit: int, start_key: dict[str, Any] | None, before: datetime, now: datetime
    ) -> _Page:
        records, next_key = self._registrations.due_for_refresh(
            shard, before, limit=limit, start_key=start_key
        )
        accepted = refused = 0
        if records:
            result = self._queue.send([refresh_event(record, now) for record in records])
            accepted, refused = len(result.accepted), len(result.not_accepted)
        overdue = sum(1 for r in records if r.expires_at is not None and r.expires_at <= now)
        return _Page(shard, len(records), accepted, refused, overdue, next_key)
