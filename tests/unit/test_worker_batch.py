"""A batch: groups by MSISDN at once, order inside a group, failures held to their group."""

from __future__ import annotations

import json
from datetime import timedelta

from sipreg.core.port import CoreCall, CoreOutcome, Transient
from sipreg.events import to_json
from sipreg.store.event_log import Outcome
from sipreg.store.registrations import RegistrationStatus
from tests.support.worker_events import T0, delete, message, upsert
from tests.support.worker_fakes import Script, default_answer, world

OTHER = "+4799990001"


def fail_for(msisdn: str) -> Script:
    def script(call: CoreCall) -> CoreOutcome:
        if call.registration.msisdn == msisdn:
            return Transient(code="UNAVAILABLE", detail="down")
        return default_answer(call)

    return script


def test_upsert_then_delete_of_one_msisdn_in_one_batch_ends_deleted() -> None:
    w = world()
    report = w.run(message(upsert(at=T0)), message(delete(at=T0 + timedelta(seconds=1))))
    assert report.failed == []
    assert w.journal.record().status is RegistrationStatus.DELETED
    assert [op for op, _, _ in w.core.operations()] == ["upsert", "delete"]


def test_failure_holds_back_later_events_of_its_msisdn_only() -> None:
    w = world(fail_for("+4799990000"))
    first = message(upsert(at=T0))
    other = message(upsert(msisdn=OTHER, at=T0))
    later = message(delete(at=T0 + timedelta(seconds=1)))
    report = w.run(first, other, later)
    assert report.failed == [first.message_id, later.message_id]
    assert w.journal.record(OTHER).status is RegistrationStatus.ACTIVE
    # The held-back delete was never tried, and comes back with the failed upsert, after it.
    assert [op for op, m, _ in w.core.operations() if m == "+4799990000"] == ["upsert"]
    assert w.visibility.delays == [(first.receipt_handle, 30), (later.receipt_handle, 30)]
    assert report.outcomes["not_started"] == 1


def test_an_event_dated_where_utc_has_no_date_is_recorded_invalid_and_fails_no_other_number() -> None:
    # Given a batch: another number's upsert, and one sent straight to the queue dated
    # 0001-01-01T00:00:00+23:59 (in UTC the day before year 1)
    w = world()
    other = message(upsert(msisdn=OTHER, at=T0))
    body = json.loads(to_json(upsert(at=T0)))
    poison = message(json.dumps({**body, "occurred_at": "0001-01-01T00:00:00+23:59"}))
    # When the batch runs
    report = w.run(other, poison)
    # Then no record fails: the other number applies, the odd one is recorded invalid, naming the field
    assert report.failed == []
    assert w.journal.record(OTHER).status is RegistrationStatus.ACTIVE
    [invalid] = [e for e in w.journal.entries if e.outcome == "invalid"]
    assert "occurred_at" in (invalid.reason or "")


def test_retry_delay_grows_with_the_receive_count_up_to_the_cap() -> None:
    w = world()
    assert [w.worker.retry_delay(n) for n in (1, 2, 3, 4, 5, 50)] == [30, 60, 120, 240, 300, 300]


def test_groups_run_at_once_so_ten_msisdns_cost_about_one_core_round_trip() -> None:
    # Given a core that answers only once all ten numbers' calls are in flight together
    w = world(together=10)
    events = [message(upsert(msisdn=f"+47999900{n:02d}")) for n in range(10)]
    # Then the batch goes through: one group at a time would break the rendezvous
    report = w.run(*events)
    assert report.failed == [] and len(w.core.calls) == 10
    assert [e.outcome for e in w.journal.entries].count(Outcome.ACTIVE) == 10


def test_order_inside_a_group_is_the_batch_order() -> None:
    w = world(latency=0.01)
    events = [
        message(upsert(f"e{n}", route_type=rt, at=T0 + timedelta(seconds=n)))
        for n, rt in enumerate(["loop", "fork", "fallback", "loop"])
    ]
    w.run(*events)
    assert [c.registration.route_type.value for c in w.core.calls] == ["loop", "fork", "fallback", "loop"]


def test_unparseable_body_is_recorded_with_its_reason_and_does_not_block_its_group() -> None:
    w = world()
    bad = message('{"id": "x1", "type": "registration.upsert", "msisdn": "+4799990000"}')
    after = message(upsert(at=T0))
    report = w.run(bad, after)
    assert report.failed == []
    invalid = next(e for e in w.journal.entries if e.outcome == "invalid")
    assert invalid.msisdn == "+4799990000" and invalid.event_type == "registration.upsert"
    assert "registration" in (invalid.reason or "") and "occurred_at" in (invalid.reason or "")
    assert invalid.raw_body is not None and '"x1"' in invalid.raw_body
    assert w.journal.record().status is RegistrationStatus.ACTIVE


def test_body_that_is_not_json_is_kept_truncated() -> None:
    w = world()
    report = w.run(message("x" * 10_000, group="not-a-number"))
    entry = w.journal.entries[0]
    assert report.failed == []
    assert entry.msisdn == "unknown" and entry.outcome == "invalid"
    assert entry.raw_body is not None and len(entry.raw_body) == 4000


def test_records_are_not_started_when_the_invocation_is_about_to_time_out() -> None:
    w = world()
    first, second = message(upsert()), message(upsert(msisdn=OTHER))
    report = w.run(first, second, remaining=3.0)
    assert report.failed == [first.message_id, second.message_id]
    assert w.core.calls == []
    assert sorted(w.visibility.delays) == sorted([(first.receipt_handle, 0), (second.receipt_handle, 0)])


def test_an_unexpected_error_fails_only_its_group() -> None:
    w = world()

    def explode(call: CoreCall) -> CoreOutcome:
        if call.registration.msisdn == OTHER:
            raise RuntimeError("bug")
        return default_answer(call)

    w.core.script = explode
    ok, broken = message(upsert()), message(upsert(msisdn=OTHER))
    report = w.run(ok, broken)
    assert report.failed == [broken.message_id]


def test_status_changes_are_published_together_once_per_batch() -> None:
    w = world()
    w.run(message(upsert()), message(upsert(msisdn=OTHER)), message(delete(at=T0 + timedelta(seconds=1))))
    assert len(w.publisher.published) == 1
    changes = w.publisher.published[0]
    assert sorted((c.msisdn, c.old_status or "-", c.new_status) for c in changes) == [
        ("+4799990000", "-", "active"),
        ("+4799990000", "active", "deleted"),
        (OTHER, "-", "active"),
    ]
    detail = changes[0].detail()
    assert json.dumps(detail)  # serialisable as EventBridge detail
    assert set(detail) >= {"msisdn", "old_status", "new_status", "reason"}


def test_no_status_change_publishes_nothing() -> None:
    w = world()
    event = upsert()
    w.run(message(event))
    w.run(message(event))
    assert len(w.publisher.published) == 1
