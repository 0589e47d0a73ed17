"""Given a core that fails calls, the worker retries with real SQS redelivery and still converges;
what keeps failing goes to the DLQ with its last error on the registration."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from devstack.wg2sim.process import Wg2simProcess
from sipreg.store.registrations import RegistrationStatus
from tests.support.worker import Rig, build_rig
from tests.support.worker_events import delete, upsert

PBX = "sips:pbx.acme.example"
VOICEMAIL = "sips:voicemail.acme.example:5061"
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def rig(aws: str, wg2sim_faults: Wg2simProcess) -> Iterator[Rig]:
    yield build_rig(aws, wg2sim_faults, core_deadline_seconds=1.0)


def test_thirty_percent_unavailable_still_converges_to_the_right_final_state(
    rig: Rig, new_msisdn: Callable[[], str]
) -> None:
    numbers = [new_msisdn() for _ in range(8)]
    for msisdn in numbers:
        rig.consent(msisdn)
    rig.sim.set_faults(unavailable_rate=0.3, msisdns=numbers)
    # Given each number gets a FORK, then a FALLBACK at voicemail, then its FORK is deleted
    for msisdn in numbers:
        rig.send(
            upsert(msisdn=msisdn, sip_uri=PBX, route_type="fork", at=T0),
            upsert(msisdn=msisdn, sip_uri=VOICEMAIL, route_type="fallback", at=T0 + timedelta(seconds=1)),
            delete(msisdn=msisdn, sip_uri=PBX, at=T0 + timedelta(seconds=2)),
        )
    # When the worker works through the queue while 30 % of core calls fail UNAVAILABLE
    rig.drain(timeout=40)
    # Then every number ends with exactly its voicemail FALLBACK, on the core and here
    assert rig.sim.stats()["faults_injected"].get("unavailable", 0) > 0
    for msisdn in numbers:
        assert [(r["sip_uri"], r["route_type"]) for r in rig.on_core(msisdn)] == [
            (VOICEMAIL, "ROUTE_TYPE_FALLBACK")
        ]
        statuses = {r.sip_uri: r.status for r in rig.records(msisdn)}
        assert statuses == {PBX: RegistrationStatus.DELETED, VOICEMAIL: RegistrationStatus.ACTIVE}
    assert rig.queue_depth(rig.dlq_url) == 0


def test_a_failure_holds_back_only_its_own_msisdn(rig: Rig, new_msisdn: Callable[[], str]) -> None:
    broken, healthy = new_msisdn(), new_msisdn()
    for msisdn in (broken, healthy):
        rig.consent(msisdn)
    rig.sim.set_faults(unavailable_rate=1.0, msisdns=[broken])
    rig.send(
        upsert("b1", msisdn=broken, sip_uri=PBX, at=T0),
        upsert("h1", msisdn=healthy, sip_uri=PBX, at=T0),
        delete("b2", msisdn=broken, sip_uri=PBX, at=T0 + timedelta(seconds=1)),
    )
    delivery = rig.deliver()
    assert delivery is not None and len(delivery.message_ids) == 3
    # Then the broken number's upsert and its later delete are reported, the other number applied
    failed_bodies = {
        body
        for mid, body in zip(delivery.message_ids, delivery.bodies, strict=True)
        if mid in delivery.failed
    }
    assert {'"b1"' in b or '"b2"' in b for b in failed_bodies} == {True} and len(failed_bodies) == 2
    assert [r["msisdn"] for r in rig.on_core(healthy)] == [healthy]
    record = rig.record(broken, PBX)
    assert record is not None and record.status is RegistrationStatus.PENDING
    assert (record.last_error or "").startswith("UNAVAILABLE")
    # And once the core is back, the broken number's events apply in their order
    rig.sim.clear_faults()
    rig.drain()
    # (b1 tried twice: once failed, once applied)
    assert [(e.event_id, e.outcome, e.tries) for e in rig.log(broken)] == [
        ("b1", "active", 2),
        ("b2", "deleted", 1),
    ]
    assert rig.on_core(broken) == []
