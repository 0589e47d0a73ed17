"""Time sanity on the queue path, and what a worker that dies mid-call leaves behind."""

from __future__ import annotations

from datetime import timedelta

import pytest

from sipreg.core.port import CoreCall, CoreOutcome, Rejected
from sipreg.store.registrations import RegistrationStatus
from tests.support.worker_events import SIP_URI, T0, delete, message, upsert
from tests.support.worker_fakes import default_answer, world


def test_an_event_from_beyond_the_clock_skew_is_rejected_and_freezes_nothing() -> None:
    # Given the worker's clock at T0 and an upsert dated 2099 sent straight to the queue
    w = world()
    far = T0.replace(year=2099)
    report = w.run(message(upsert("wrong-clock", at=far)))
    # Then it is rejected, naming occurred_at, and nothing reached the core or the record
    assert report.failed == [] and w.core.calls == []
    [item] = w.journal.entries
    assert item.outcome == "rejected" and "occurred_at" in (item.reason or "")
    assert w.journal.records == {}
    # And a later, correctly dated event applies as if it had never been
    w.run(message(upsert("right-clock", at=T0 + timedelta(seconds=1))))
    assert w.journal.record().status is RegistrationStatus.ACTIVE


def test_an_event_within_the_skew_applies() -> None:
    w = world()
    w.run(message(upsert("slightly-ahead", at=T0 + timedelta(minutes=4))))
    assert w.journal.record().status is RegistrationStatus.ACTIVE


class WorkerDied(BaseException):
    pass


def test_a_worker_dying_after_its_core_call_leaves_applying_and_a_later_delete_reaches_the_core() -> None:
    # Given a registration the core rejected (nothing on the core, as far as sipreg knows)
    w = world(lambda call: Rejected(message="no such PBX"))
    w.run(message(upsert("first", at=T0)))
    assert w.journal.record().status is RegistrationStatus.REJECTED

    # When a new upsert reaches the core and its worker dies before saving the outcome
    def lands_then_dies(call: CoreCall) -> CoreOutcome:
        default_answer(call)
        raise WorkerDied()

    w.core.script = lands_then_dies
    with pytest.raises(WorkerDied):
        w.run(message(upsert("second", at=T0 + timedelta(seconds=1))))
    # Then its item says `applying` and the record says the call may have landed
    item = next(e for e in w.journal.entries if e.event_id == "second")
    assert (item.outcome, item.tries) == ("applying", 1)
    record = w.journal.record()
    assert record.status is RegistrationStatus.PENDING
    assert record.in_flight is not None and record.in_flight.event_id == "second"
    # And a delete sent now goes to the core, though no applied state was ever recorded
    w.core.script = default_answer
    w.run(message(delete("third", at=T0 + timedelta(seconds=2))))
    assert [op for op, _, uri in w.core.operations()][-1] == "delete"
    assert w.journal.record().status is RegistrationStatus.DELETED
    assert w.journal.record().in_flight is None


def test_the_redelivered_event_after_a_dead_worker_applies_and_clears_the_trace() -> None:
    w = world()

    def dies(call: CoreCall) -> CoreOutcome:
        raise WorkerDied()

    w.core.script = dies
    with pytest.raises(WorkerDied):
        w.run(message(upsert("e1", at=T0)))
    w.core.script = default_answer
    report = w.run(message(upsert("e1", at=T0), receive_count=2))
    assert report.failed == []
    [item] = w.journal.entries
    assert (item.outcome, item.tries, item.decisions) == ("active", 2, 1)
    assert w.journal.record().in_flight is None
    assert w.journal.record(sip_uri=SIP_URI).status is RegistrationStatus.ACTIVE
