"""Given real SQS messages on the template's events queue, the worker applies them to wg2sim's core
exactly once in effect, in order per MSISDN, and records each outcome (moto server + wg2sim)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from devstack.wg2sim.process import Wg2simProcess
from sipreg.store.registrations import RegistrationStatus
from tests.support.worker import Rig, build_rig, received, status_events_queue
from tests.support.worker_events import delete, upsert

PBX = "sips:pbx.acme.example:5061"
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def rig(aws: str, wg2sim_faults: Wg2simProcess) -> Iterator[Rig]:
    yield build_rig(aws, wg2sim_faults)


def core_calls(sim: Wg2simProcess, method: str = "UpsertRegistration") -> int:
    calls = sim.stats()["calls"]
    return sum(sum(counts.values()) for name, counts in calls.items() if name.endswith(f"/{method}"))


def test_upsert_then_delete_of_one_msisdn_in_one_batch_ends_deleted(
    rig: Rig, new_msisdn: Callable[[], str]
) -> None:
    msisdn = new_msisdn()
    rig.consent(msisdn)
    # Given an upsert and then a delete of the same registration, sent together
    rig.send(
        upsert("u1", msisdn=msisdn, sip_uri=PBX, at=T0),
        delete("d1", msisdn=msisdn, sip_uri=PBX, at=T0 + timedelta(seconds=1)),
    )
    # When one batch delivers both
    delivery = rig.deliver()
    # Then both were in it, applied in order, and the registration ends deleted everywhere
    assert delivery is not None and len(delivery.message_ids) == 2 and delivery.failed == []
    record = rig.record(msisdn, PBX)
    assert record is not None and record.status is RegistrationStatus.DELETED
    assert rig.on_core(msisdn) == []
    assert [(e.event_id, e.outcome) for e in rig.log(msisdn)] == [("u1", "active"), ("d1", "deleted")]


def test_a_duplicate_makes_one_core_call(rig: Rig, new_msisdn: Callable[[], str]) -> None:
    msisdn = new_msisdn()
    rig.consent(msisdn)
    event = upsert("dup-1", msisdn=msisdn, sip_uri=PBX, route_type="loop")
    rig.send(event)
    rig.drain()
    calls = core_calls(rig.sim)
    # When the producer resends the same event after SQS's deduplication window
    rig.send(event, resend=True)
    rig.drain()
    # Then the core is not called again, and the record and its log are unchanged
    assert core_calls(rig.sim) == calls
    assert [(e.event_id, e.outcome) for e in rig.log(msisdn)] == [("dup-1", "active")]
    assert [r["route_type"] for r in rig.on_core(msisdn)] == ["ROUTE_TYPE_LOOP"]


def test_a_stale_event_is_superseded(rig: Rig, new_msisdn: Callable[[], str]) -> None:
    msisdn = new_msisdn()
    rig.consent(msisdn)
    rig.send(upsert("newer", msisdn=msisdn, sip_uri=PBX, route_type="fallback", at=T0 + timedelta(minutes=1)))
    rig.drain()
    # When an event that happened earlier arrives later
    rig.send(upsert("older", msisdn=msisdn, sip_uri=PBX, route_type="fork", at=T0))
    rig.drain()
    # Then it changes nothing, on the core or here, and is logged superseded
    assert [r["route_type"] for r in rig.on_core(msisdn)] == ["ROUTE_TYPE_FALLBACK"]
    record = rig.record(msisdn, PBX)
    assert record is not None and record.applied is not None and record.applied.route_type.value == "fallback"
    # (the log is in event time: the older one first)
    assert [(e.event_id, e.outcome) for e in rig.log(msisdn)] == [
        ("older", "superseded"),
        ("newer", "active"),
    ]


def test_not_acceptable_is_recorded_with_the_core_reason_and_not_retried(
    rig: Rig, new_msisdn: Callable[[], str]
) -> None:
    msisdn = new_msisdn()
    rig.consent(msisdn)
    # Given a sip_uri our model accepts but the core refuses (its top label starts with a digit)
    rig.send(upsert("bad-host", msisdn=msisdn, sip_uri="sips:pbx.9acme"))
    rig.drain()
    record = rig.record(msisdn, "sips:pbx.9acme")
    assert record is not None and record.status is RegistrationStatus.REJECTED
    assert "sips:pbx.9acme" in (record.last_error or "")
    assert [e.outcome for e in rig.log(msisdn)] == ["rejected"]
    assert core_calls(rig.sim) >= 1 and rig.queue_depth() == 0 and rig.queue_depth(rig.dlq_url) == 0
    assert all(d.failed == [] for d in rig.deliveries)


def test_an_unparseable_message_is_recorded_and_does_not_block_its_group(
    rig: Rig, new_msisdn: Callable[[], str]
) -> None:
    msisdn = new_msisdn()
    rig.consent(msisdn)
    rig.send_raw('{"id": "broken", "type": "registration.upsert", "msisdn": "' + msisdn + '"', group=msisdn)
    rig.send(upsert("after-broken", msisdn=msisdn, sip_uri=PBX))
    rig.drain()
    outcomes = {e.event_id: e for e in rig.log(msisdn)}
    assert sorted(e.outcome for e in outcomes.values()) == ["active", "invalid"]
    [invalid] = [e for e in outcomes.values() if e.outcome == "invalid"]
    assert invalid.raw_body is not None and '"broken"' in invalid.raw_body
    assert invalid.reason and "JSON" in invalid.reason
    assert outcomes["after-broken"].outcome == "active"
    assert rig.queue_depth(rig.dlq_url) == 0


def test_status_changes_reach_eventbridge_for_crm_and_billing(
    rig: Rig, new_msisdn: Callable[[], str]
) -> None:
    crm = status_events_queue(rig)
    msisdn = new_msisdn()
    rig.consent(msisdn)
    rig.send(upsert("s1", msisdn=msisdn, sip_uri=PBX, at=T0), delete("s2", msisdn=msisdn, sip_uri=PBX, at=T0))
    rig.drain()
    events = received(rig, crm, at_least=2)
    assert {(e["source"], e["detail-type"]) for e in events} == {("sipreg", "RegistrationStatusChanged")}
    details = sorted((e["detail"] for e in events), key=lambda d: d["event_id"])
    assert [(d["msisdn"], d["old_status"], d["new_status"]) for d in details] == [
        (msisdn, None, "active"),
        (msisdn, "active", "deleted"),
    ]
    assert json.dumps(details)  # plain JSON for any consumer


def test_a_delete_of_what_the_core_does_not_hold_ends_deleted(
    rig: Rig, new_msisdn: Callable[[], str]
) -> None:
    msisdn = new_msisdn()
    rig.consent(msisdn)
    deletes = core_calls(rig.sim, "DeleteRegistration")
    # Given a delete of a registration sipreg never made (the core refuses it: it holds none)
    rig.send(delete("d-unknown", msisdn=msisdn, sip_uri=PBX))
    rig.drain()
    # Then what the delete wanted holds, and is recorded so: deleted, not rejected
    record = rig.record(msisdn, PBX)
    assert record is not None and record.status is RegistrationStatus.DELETED
    assert "holds no such registration" in (record.last_error or "")
    assert [(e.event_id, e.outcome) for e in rig.log(msisdn)] == [("d-unknown", "deleted")]
    assert core_calls(rig.sim, "DeleteRegistration") == deletes + 1  # asked once, not retried


def test_a_delete_retried_after_its_answer_was_lost_ends_deleted(
    rig: Rig, new_msisdn: Callable[[], str]
) -> None:
    msisdn = new_msisdn()
    rig.consent(msisdn)
    rig.send(upsert("u1", msisdn=msisdn, sip_uri=PBX, at=T0))
    rig.drain()
    # Given a delete that reaches the core after the worker gave up waiting (its answer is lost)
    rig.sim.set_faults(latency_ms=2_500, methods=["DeleteRegistration"], msisdns=[msisdn])
    rig.send(delete("d1", msisdn=msisdn, sip_uri=PBX, at=T0 + timedelta(seconds=1)))
    first = rig.deliver()
    assert first is not None and len(first.failed) == 1
    rig.run_until(lambda: rig.on_core(msisdn) == [])
    rig.sim.clear_faults()
    # When it is retried, and the core refuses to delete what it no longer holds
    rig.drain()
    # Then the registration ends deleted here too, nothing of it left as applied
    record = rig.record(msisdn, PBX)
    assert record is not None and record.status is RegistrationStatus.DELETED and record.applied is None
    assert [(e.event_id, e.outcome) for e in rig.log(msisdn)][-1] == ("d1", "deleted")
