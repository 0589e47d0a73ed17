"""A batch reads every record its events name in one BatchGetItem; a group's later events on the
same registration use what its earlier event committed; a conflict reads again from the store.
The upsert of a new registration also counts its number's (one Query: a number holds at most
MAX_REGISTRATIONS_PER_NUMBER). Each event that calls the core writes twice: its claim before the
call, its outcome after."""

from __future__ import annotations

from datetime import timedelta

from sipreg.core.port import CoreCall, CoreOutcome
from sipreg.events import AnyEvent
from sipreg.store.registrations import RecordKey, RegistrationRecord, RegistrationStatus
from tests.support.worker_events import MSISDN, SIP_URI, T0, delete, message, revoke, upsert
from tests.support.worker_fakes import World, default_answer, world

NUMBERS = [f"+47999900{n:02d}" for n in range(10)]


def counts(w: World) -> tuple[int, int, int]:
    return w.journal.batch_gets, w.journal.gets, w.journal.commits


def reset(w: World) -> None:
    w.journal.batch_gets = w.journal.gets = w.journal.commits = 0


def test_a_batch_of_ten_groups_reads_all_records_in_one_batch_get() -> None:
    # Given ten registrations that exist, and one that does not yet
    w = world()
    w.run(*[message(upsert(msisdn=number, route_type="fork")) for number in NUMBERS[:9]])
    reset(w)
    # When a batch changes all ten
    later = T0 + timedelta(seconds=1)
    report = w.run(*[message(upsert(msisdn=n, route_type="loop", at=later)) for n in NUMBERS])
    # Then one BatchGetItem read them all, no GetItem (the new one's number counted in one Query),
    # two writes each (claim, outcome)
    assert report.failed == []
    assert counts(w) == (1, 1, 20)
    assert [w.journal.record(n).version for n in NUMBERS] == [4] * 9 + [2]
    assert {c.registration.route_type.value for c in w.core.calls[9:]} == {"loop"}


def test_three_events_of_one_group_on_one_registration_read_it_once() -> None:
    w = world()
    events: list[AnyEvent] = [
        upsert(route_type="fork", at=T0),
        upsert(route_type="loop", at=T0 + timedelta(seconds=1)),
        delete(at=T0 + timedelta(seconds=2)),
    ]
    report = w.run(*[message(event) for event in events])
    assert report.failed == []
    # Each commit expected the version the previous one saved: no conflict, no second read (the
    # first, a new registration, counted its number's)
    assert counts(w) == (1, 1, 6)
    record = w.journal.record()
    assert record.status is RegistrationStatus.DELETED and record.version == 6
    assert [op for op, _, _ in w.core.operations()] == ["upsert", "upsert", "delete"]


def test_a_duplicate_in_the_batch_leaves_the_known_record_as_it_was() -> None:
    w = world()
    first = upsert("evt-1", at=T0)
    report = w.run(message(first), message(first), message(delete(at=T0 + timedelta(seconds=1))))
    assert report.outcomes["duplicate"] == 1 and report.failed == []
    assert counts(w) == (1, 1, 4)  # the Query: the first upsert's, of a new registration
    assert w.journal.record().status is RegistrationStatus.DELETED and w.journal.record().version == 4


def test_a_record_changed_by_another_writer_is_read_again_from_the_store() -> None:
    # Given a registration, and another writer that saves it while our core call is under way
    w = world()
    w.run(message(upsert("evt-0", at=T0)))
    reset(w)
    interloped = False

    def interlope(call: CoreCall) -> CoreOutcome:
        nonlocal interloped
        if not interloped:
            interloped = True
            current = w.journal.record()
            changed = current.model_copy(update={"recent_event_ids": (*current.recent_event_ids, "other")})
            w.journal.commit([(changed, current.version)], [])
        return default_answer(call)

    w.core.script = interlope
    # When the batch's first event commits from the prefetched (now stale) version
    later = [upsert(f"evt-{n}", route_type="loop", at=T0 + timedelta(seconds=n)) for n in (1, 2)]
    report = w.run(*[message(event) for event in later])
    # Then the version check refused it, the record was read again from the store (one GetItem),
    # the event decided again on the fresh record (claimed and called again: the core ends with
    # evt-1 sent after the other writer's save), and the next event used what that one saved
    assert report.failed == []
    assert (w.journal.batch_gets, w.journal.gets) == (1, 1)
    record = w.journal.record()
    assert (
        record.version == 8
    )  # evt-0 (2), the other writer, evt-1 (claim, lost save, claim, save), evt-2 (2)
    assert record.recent_event_ids == ("evt-0", "other", "evt-1", "evt-2")
    assert len(w.core.calls) == 4  # evt-0, evt-1 twice, evt-2


def test_when_the_batch_read_fails_each_event_reads_its_own_record() -> None:
    w = world()

    def broken(keys: object) -> dict[RecordKey, RegistrationRecord | None]:
        raise RuntimeError("throttled")

    w.journal.get_many = broken  # type: ignore[method-assign]
    report = w.run(message(upsert()), message(upsert(msisdn=NUMBERS[1])))
    assert report.failed == []
    assert w.journal.gets == 4  # each its record, and (both new) its number's count
    assert w.journal.record().status is RegistrationStatus.ACTIVE


def test_a_revoke_commit_is_what_the_groups_next_upsert_sees() -> None:
    w = world()
    w.run(message(upsert(at=T0)))
    reset(w)
    report = w.run(
        message(revoke(at=T0 + timedelta(seconds=1))), message(upsert(at=T0 + timedelta(seconds=2)))
    )
    assert report.failed == []
    # The revoke's Query is its own read; the upsert after it needs none (each: claim, outcome)
    assert counts(w) == (1, 1, 4)
    assert w.journal.record(MSISDN, SIP_URI).status is RegistrationStatus.ACTIVE
