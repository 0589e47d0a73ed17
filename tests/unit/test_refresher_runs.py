"""The refresher: what is due gets one refresh event, work per run is bounded, the rest waits."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sipreg.events import AnyEvent, RefreshEvent
from sipreg.models import RouteSpec
from sipreg.queue import SendResult, deduplication_id
from sipreg.refresher import Refresher, refresh_event_id, split_evenly
from sipreg.store.registrations import REFRESH_SHARDS, RegistrationRecord, RegistrationStatus, refresh_shard

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def active(
    number: int, expires_in: float, route_type: str = "fork", prefix: str | None = None
) -> RegistrationRecord:
    spec = RouteSpec(route_type=route_type, mobile_originating_prefix=prefix)  # type: ignore[arg-type]
    return RegistrationRecord(
        msisdn=f"+4790{number:06d}",
        sip_uri="sips:pbx.example.com",
        status=RegistrationStatus.ACTIVE,
        desired=spec,
        applied=spec,
        expires_at=NOW + timedelta(seconds=expires_in),
        updated_at=NOW,
    )


class FakeIndex:
    """The sparse RefreshDue index: per shard, soonest expiry first, paged by position."""

    def __init__(self, records: Sequence[RegistrationRecord]) -> None:
        self.records = list(records)
        self.queries: list[str] = []

    def all_shards(self) -> list[str]:
        return [str(n) for n in range(REFRESH_SHARDS)]

    def due_for_refresh(
        self, shard: str, before: datetime, *, limit: int, start_key: dict[str, Any] | None = None
    ) -> tuple[list[RegistrationRecord], dict[str, Any] | None]:
        self.queries.append(shard)
        due = sorted(
            (
                r
                for r in self.records
                if refresh_shard(r.msisdn) == shard and r.expires_at and r.expires_at < before
            ),
            key=lambda r: r.expires_at or NOW,
        )
        start = start_key["at"] if start_key else 0
        page = due[start : start + limit]
        more = start + limit < len(due)
        return page, {"at": start + limit} if more else None


class FakeQueue:
    def __init__(self, refuse: int = 0) -> None:
        self.sent: list[AnyEvent] = []
        self.refuse = refuse
        self._lock = threading.Lock()  # the refresher sends from several threads

    def send(self, events: Sequence[AnyEvent]) -> SendResult:
        with self._lock:
            refused = list(events[: self.refuse])
            self.refuse -= len(refused)
            taken = list(events[len(refused) :])
            self.sent.extend(taken)
        return SendResult(tuple(e.id for e in taken), tuple(e.id for e in refused))


def refresher(index: FakeIndex, queue: FakeQueue, **options: Any) -> Refresher:
    return Refresher(index, queue, clock=lambda: NOW, margin_seconds=1200, **options)


def test_registrations_due_within_the_margin_get_one_refresh_with_their_parameters() -> None:
    due = active(1, expires_in=600, route_type="loop", prefix="00")
    later = active(2, expires_in=3000)
    queue = FakeQueue()
    report = refresher(FakeIndex([due, later]), queue).run(lambda: 60.0)
    assert report.enqueued == 1 and report.complete and report.overdue == 0
    event = queue.sent[0]
    assert isinstance(event, RefreshEvent)
    assert event.msisdn == due.msisdn and event.registration.sip_uri == due.sip_uri
    assert event.registration.route_type is not None and event.registration.route_type.value == "loop"
    assert event.registration.mobile_originating_prefix == "00"


def test_every_shard_is_queried_never_a_scan() -> None:
    index = FakeIndex([])
    refresher(index, FakeQueue()).run(lambda: 60.0)
    assert sorted(index.queries, key=int) == [str(n) for n in range(REFRESH_SHARDS)]


def test_refresh_id_is_the_same_for_the_same_expiry_so_overlapping_runs_do_not_double() -> None:
    record = active(3, expires_in=300)
    first, second = FakeQueue(), FakeQueue()
    refresher(FakeIndex([record]), first).run(lambda: 60.0)
    refresher(FakeIndex([record]), second).run(lambda: 60.0)
    assert first.sent[0].id == second.sent[0].id
    assert deduplication_id(first.sent[0].id) == deduplication_id(second.sent[0].id)
    assert record.expires_at is not None
    moved = record.expires_at + timedelta(seconds=3600)
    assert refresh_event_id(record.msisdn, record.sip_uri, moved) != first.sent[0].id


def test_overdue_registrations_are_counted_and_still_refreshed() -> None:
    queue = FakeQueue()
    report = refresher(FakeIndex([active(4, -30), active(5, -1), active(6, 100)]), queue).run(lambda: 60.0)
    assert report.overdue == 2 and report.enqueued == 3


def test_work_per_run_is_bounded_and_spread_over_the_shards() -> None:
    records = [active(n, expires_in=60 + n) for n in range(200)]
    queue = FakeQueue()
    report = refresher(FakeIndex(records), queue, max_items=40, page_size=5).run(lambda: 60.0)
    assert report.enqueued == 40 and not report.complete
    shards = {refresh_shard(e.msisdn) for e in queue.sent}
    assert len(shards) >= 8, "a backlog must not be left to the last shards"


def test_the_rest_is_picked_up_by_the_next_run() -> None:
    records = [active(n, expires_in=60 + n) for n in range(30)]
    index, queue = FakeIndex(records), FakeQueue()
    refresher(index, queue, max_items=20).run(lambda: 60.0)
    refreshed = {e.msisdn for e in queue.sent}
    index.records = [r for r in records if r.msisdn not in refreshed]  # the worker moved their expiry
    report = refresher(index, queue, max_items=20).run(lambda: 60.0)
    assert report.complete and {e.msisdn for e in queue.sent} == {r.msisdn for r in records}


def test_no_new_page_when_the_invocation_is_about_to_time_out() -> None:
    queue = FakeQueue()
    report = refresher(FakeIndex([active(7, 60)]), queue, time_reserve_seconds=10).run(lambda: 5.0)
    assert report.enqueued == 0 and not report.complete


def test_entries_the_queue_refuses_are_reported_and_stay_due() -> None:
    queue = FakeQueue(refuse=1)
    report = refresher(FakeIndex([active(8, 60), active(9, 70)]), queue).run(lambda: 60.0)
    assert (report.enqueued, report.not_accepted) == (1, 1)


@pytest.mark.parametrize("expires_in", [1199, 1])
def test_margin_decides_what_is_due(expires_in: float) -> None:
    queue = FakeQueue()
    refresher(FakeIndex([active(10, expires_in)]), queue).run(lambda: 60.0)
    assert len(queue.sent) == 1


class MeetingIndex(FakeIndex):
    """An index whose queries wait for each other: they all return only if they run at once."""

    def __init__(self, records: Sequence[RegistrationRecord], parties: int) -> None:
        super().__init__(records)
        self.meeting = threading.Barrier(parties, timeout=5)

    def due_for_refresh(
        self, shard: str, before: datetime, *, limit: int, start_key: dict[str, Any] | None = None
    ) -> tuple[list[RegistrationRecord], dict[str, Any] | None]:
        if not start_key:
            self.meeting.wait()
        return super().due_for_refresh(shard, before, limit=limit, start_key=start_key)


def test_the_shards_of_a_round_are_read_and_sent_in_parallel() -> None:
    # Given a due registration in every shard, and queries that only return when all run at once
    records = [active(n, expires_in=60) for n in range(400)]
    index, queue = MeetingIndex(records, parties=REFRESH_SHARDS), FakeQueue()
    # When the refresher runs with a thread per shard
    report = refresher(index, queue, parallelism=REFRESH_SHARDS).run(lambda: 60.0)
    # Then every shard's first page was read at the same time, and everything due was sent once
    assert not index.meeting.broken
    assert report.complete and report.enqueued == 400 and len({e.id for e in queue.sent}) == 400


@pytest.mark.parametrize(
    ("budget", "parts", "cap", "shares"),
    [
        (40, 16, 5, [3] * 8 + [2] * 8),
        (7, 3, 100, [3, 2, 2]),
        (1000, 4, 100, [100] * 4),
        (2, 4, 10, [1, 1, 0, 0]),
    ],
)
def test_the_budget_is_split_evenly_and_capped_by_the_page(
    budget: int, parts: int, cap: int, shares: list[int]
) -> None:
    assert split_evenly(budget, parts, cap) == shares
