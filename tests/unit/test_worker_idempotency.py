"""Exactly-once effect: duplicates are absorbed, stale events change nothing, refreshes stay in line."""

from __future__ import annotations

from datetime import timedelta

from sipreg.core.port import Transient
from sipreg.models import RouteSpec
from sipreg.store.registrations import RegistrationStatus
from tests.support.worker_events import T0, delete, message, refresh, upsert
from tests.support.worker_fakes import answers, world


def test_a_resent_duplicate_makes_no_second_core_call_and_no_write() -> None:
    w = world()
    event = upsert("evt-dup")
    w.run(message(event))
    commits = w.journal.commits
    report = w.run(message(event))  # the producer sent it again (a new message)
    assert len(w.core.calls) == 1
    assert w.journal.commits == commits
    assert report.outcomes["duplicate"] == 1 and report.failed == []


def test_a_redelivered_duplicate_sets_the_core_to_the_recorded_state_once() -> None:
    # Given an applied upsert whose message SQS hands out again (its first delivery may have died
    # after a core call of its own: only the record knows what the core should hold)
    w = world()
    event = upsert("evt-again")
    w.run(message(event))
    commits = w.journal.commits
    report = w.run(message(event, receive_count=2))
    # Then it is a duplicate that re-sends the recorded registration and confirms it with one write
    assert report.outcomes["duplicate"] == 1 and report.failed == []
    assert [op for op, _, _ in w.core.operations()] == ["upsert", "upsert"]
    assert w.journal.commits == commits + 1
    assert w.journal.outcomes() == ["active"]


def test_same_event_twice_in_one_batch_applies_once() -> None:
    w = world()
    event = upsert("evt-twice")
    w.run(message(event), message(event))
    assert len(w.core.calls) == 1


def test_stale_event_is_superseded_and_changes_nothing() -> None:
    w = world()
    w.run(message(upsert("new", route_type="loop", at=T0 + timedelta(minutes=5))))
    before = w.journal.record()
    report = w.run(message(upsert("old", route_type="fork", at=T0)))
    after = w.journal.record()
    assert report.outcomes["superseded"] == 1
    assert len(w.core.calls) == 1
    assert after.desired == after.applied == RouteSpec(route_type="loop")  # type: ignore[arg-type]
    assert after.status is before.status and after.last_event_id == "new"
    assert w.journal.entries[-1].outcome == "superseded"
    assert "before the last event" in (w.journal.entries[-1].reason or "")


def test_stale_delete_does_not_remove_a_newer_registration() -> None:
    w = world()
    w.run(message(upsert(at=T0 + timedelta(seconds=10))))
    w.run(message(delete(at=T0)))
    assert w.journal.record().status is RegistrationStatus.ACTIVE
    assert [op for op, _, _ in w.core.operations()] == ["upsert"]


def test_events_reordered_by_redelivery_end_in_the_newest_state() -> None:
    w = world()
    newest = delete("d", at=T0 + timedelta(seconds=2))
    w.run(message(newest))
    w.run(message(upsert("u", at=T0 + timedelta(seconds=1))))
    assert w.journal.record().status is RegistrationStatus.DELETED
    assert w.journal.outcomes()[-1] == "superseded"


def test_refresh_reupserts_an_active_registration_without_moving_its_event_time() -> None:
    w = world()
    w.run(message(upsert("u", route_type="loop", at=T0)))
    w.clock.advance(2400)
    report = w.run(message(refresh(at=T0 + timedelta(seconds=2400))))
    record = w.journal.record()
    assert report.outcomes["refreshed"] == 1
    assert record.expires_at == T0 + timedelta(seconds=2400 + 3600)
    assert record.last_event_at == T0 and record.last_event_id == "u"
    assert w.core.calls[-1].registration.route_type.value == "loop"
    # A CRM event that happened before the refresh but arrived after it still applies.
    w.run(message(upsert("late", route_type="fork", at=T0 + timedelta(seconds=60))))
    assert w.journal.record().applied == RouteSpec(route_type="fork")  # type: ignore[arg-type]


def test_a_second_copy_of_a_refresh_from_an_overlapping_run_makes_no_core_call() -> None:
    # SQS does not absorb it (sipreg's own events get a random deduplication id): the record does.
    w = world()
    w.run(message(upsert("u", at=T0)))
    w.clock.advance(2400)
    first, again = (
        message(refresh("refresh-x", at=w.clock.now)),
        message(refresh("refresh-x", at=w.clock.now)),
    )
    w.run(first)
    commits = w.journal.commits
    report = w.run(again)
    assert report.outcomes["duplicate"] == 1 and report.failed == []
    assert [op for op, _, _ in w.core.operations()] == ["upsert", "upsert"]
    assert w.journal.commits == commits


def test_refresh_of_a_registration_no_longer_active_is_superseded() -> None:
    w = world()
    w.run(message(upsert(at=T0)))
    w.run(message(delete(at=T0 + timedelta(seconds=1))))
    report = w.run(message(refresh()))
    assert report.outcomes["superseded"] == 1
    assert [op for op, _, _ in w.core.operations()] == ["upsert", "delete"]


def test_refresh_while_a_new_desired_state_is_pending_is_superseded() -> None:
    w = world(answers(Transient(code="UNAVAILABLE", detail="down")))
    w.run(message(upsert("u1", route_type="loop", at=T0)))  # fails: desired loop, nothing applied
    record = w.journal.record()
    assert record.status is RegistrationStatus.PENDING
    report = w.run(message(refresh()))
    assert report.outcomes["superseded"] == 1


def test_failed_refresh_keeps_the_registration_active_for_the_next_refresh() -> None:
    w = world()
    w.run(message(upsert(at=T0)))
    w.core.script = answers(Transient(code="UNAVAILABLE", detail="down"))
    report = w.run(message(refresh()))
    assert report.failed
    assert w.journal.record().status is RegistrationStatus.ACTIVE
    assert w.journal.record().last_error == "UNAVAILABLE: down"


def test_a_record_changed_meanwhile_is_read_again() -> None:
    w = world()
    w.journal.conflicts_to_raise = 1
    report = w.run(message(upsert()))
    assert report.failed == []
    assert w.journal.record().status is RegistrationStatus.ACTIVE
    # The prefetch, then the re-read; each attempt at the new registration counted its number's
    assert (w.journal.batch_gets, w.journal.gets) == (1, 3)


def test_recent_event_ids_are_bounded() -> None:
    w = world()
    for number in range(30):
        w.run(message(upsert(f"e{number}", at=T0 + timedelta(seconds=number))))
    ids = w.journal.record().recent_event_ids
    assert len(ids) == 20 and ids[-1] == "e29"
