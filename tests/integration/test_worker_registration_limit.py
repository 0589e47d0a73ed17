"""A number holds at most MAX_REGISTRATIONS_PER_NUMBER registrations that are not deleted: the
upsert of one more is rejected, naming the field, and changes nothing (not on the core, no
record); a change of one it holds still applies, and once one is deleted there is room again.
Real SQS, DynamoDB and core."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest

from devstack.wg2sim.process import Wg2simProcess
from sipreg.store.registrations import MAX_REGISTRATIONS_PER_NUMBER
from tests.support.worker import Rig, build_rig
from tests.support.worker_events import T0, delete, upsert


@pytest.fixture
def rig(aws: str, wg2sim: Wg2simProcess) -> Iterator[Rig]:
    yield build_rig(aws, wg2sim)


def pbx(index: int) -> str:
    return f"sips:pbx-{index:02}.acme.example"


def test_one_registration_past_the_limit_is_rejected_and_changes_nothing(
    rig: Rig, new_msisdn: Callable[[], str]
) -> None:
    msisdn = new_msisdn()
    rig.consent(msisdn)
    limit = MAX_REGISTRATIONS_PER_NUMBER
    # Given a number with as many registrations as it may have
    for start in range(0, limit, 10):  # SendMessageBatch takes 10
        rig.send(
            *[upsert(f"crm-{i}", msisdn=msisdn, sip_uri=pbx(i), at=T0) for i in range(start, start + 10)]
        )
    rig.drain()
    assert len(rig.on_core(msisdn)) == limit
    # When one more is upserted, and one it has changes its route type
    later = T0 + timedelta(minutes=1)
    rig.send(
        upsert("crm-one-more", msisdn=msisdn, sip_uri=pbx(limit), at=later),
        upsert("crm-change", msisdn=msisdn, sip_uri=pbx(0), route_type="loop", at=later),
    )
    rig.drain()
    # Then the new one is rejected with the field named, and is nowhere; the change applies
    outcomes = {e.event_id: (e.outcome, e.reason or "") for e in rig.log(msisdn)}
    outcome, reason = outcomes["crm-one-more"]
    assert outcome == "rejected"
    assert reason.startswith(f"registration.sip_uri: the number has {limit} registrations already")
    assert rig.record(msisdn, pbx(limit)) is None
    on_core = {r["sip_uri"]: r["route_type"] for r in rig.on_core(msisdn)}
    assert len(on_core) == limit and pbx(limit) not in on_core
    assert on_core[pbx(0)] == "ROUTE_TYPE_LOOP"
    assert outcomes["crm-change"][0] == "active"
    # When one is deleted, the one more fits (sent again, as a new event)
    rig.send(
        delete("crm-delete", msisdn=msisdn, sip_uri=pbx(1), at=later + timedelta(minutes=1)),
        upsert("crm-one-more-again", msisdn=msisdn, sip_uri=pbx(limit), at=later + timedelta(minutes=2)),
    )
    rig.drain()
    on_core_after = {r["sip_uri"] for r in rig.on_core(msisdn)}
    assert pbx(1) not in on_core_after and pbx(limit) in on_core_after
    assert len(on_core_after) == limit
