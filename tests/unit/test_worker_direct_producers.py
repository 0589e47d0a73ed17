"""What an AWS-native producer (ProducerPolicy: sqs:SendMessage on the events queue) can send the
worker that the events API would have refused or shaped: a message group that is not the number,
an event dated ahead, a body padded past what its record can hold, a body naming the keep-alive's
type. Each is recorded, and none holds back or reorders the number's other events."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sipreg.events import to_json
from sipreg.store.event_log import EventKind, kind_of
from sipreg.store.registrations import RegistrationStatus
from sipreg.text import PEER_TEXT_LIMIT
from tests.support.worker_events import MSISDN, SIP_URI, T0, delete, message, revoke, upsert
from tests.support.worker_fakes import world


def test_an_event_outside_its_numbers_message_group_is_recorded_invalid_and_not_applied() -> None:
    # Given an upsert in the number's group, then a delete of the same registration that a producer
    # grouped by its own job id (the two would run side by side, here and in two invocations)
    w = world()
    report = w.run(message(upsert(at=T0)), message(delete(at=T0), group="billing-job-2"))
    # Then the one outside the number's group is recorded invalid under the number, saying why,
    # and only the number's own group was applied
    assert report.failed == []
    assert w.journal.record().status is RegistrationStatus.ACTIVE
    [invalid] = [e for e in w.journal.entries if e.outcome == "invalid"]
    assert invalid.msisdn == MSISDN
    assert "MessageGroupId" in (invalid.reason or "")
    assert [operation for operation, _, _ in w.core.operations()] == ["upsert"]


def test_a_revoke_dated_ahead_is_rejected_and_does_not_freeze_the_number() -> None:
    # Given an active registration, and a revoke dated in year 9999
    w = world()
    w.run(message(upsert(at=T0)))
    w.run(message(revoke(at=datetime(9999, 1, 1, tzinfo=UTC))))
    # Then it is rejected (a change dated ahead would supersede every later one) and changes nothing
    assert w.journal.entries[-1].outcome == "rejected"
    assert w.tokens.revoked == []
    # And a change made now is applied, not superseded
    w.clock.advance(60)
    w.run(message(upsert(at=T0 + timedelta(seconds=60), route_type="loop")))
    assert w.journal.entries[-1].outcome == "active", w.journal.entries[-1].reason


def test_a_body_padded_with_unknown_fields_is_recorded_invalid_and_holds_back_nothing() -> None:
    # Given an upsert padded with 24,000 unknown fields (under SQS's 256 KiB: one error each would
    # not fit a DynamoDB item), and a good upsert behind it in the number's group
    padded = json.dumps(
        {**json.loads(to_json(upsert(at=T0))), **{f"k{i}": 0 for i in range(24_000)}}, separators=(",", ":")
    )
    assert len(padded.encode()) < 256 * 1024
    w = world()
    report = w.run(message(padded), message(upsert(at=T0 + timedelta(seconds=1))))
    # Then the padded one is recorded invalid with a bounded reason, and the good one applied
    assert report.failed == []
    [invalid] = [e for e in w.journal.entries if e.outcome == "invalid"]
    assert len(invalid.reason or "") <= PEER_TEXT_LIMIT
    assert w.journal.record(MSISDN, SIP_URI).status is RegistrationStatus.ACTIVE


def test_a_body_that_is_no_event_is_filed_with_the_changes_whatever_type_it_names() -> None:
    w = world()
    w.run(message('{"type": "registration.refresh", "msisdn": "+4799990000"}'))
    [entry] = w.journal.entries
    # Not among the keep-alives (kept 3 days, left out of the status API's history by default)
    assert (entry.outcome, kind_of(entry.event_type)) == ("invalid", EventKind.CHANGES)
