"""Two invocations of the worker on one MSISDN group at once, driven directly (as SQS does when a
group's message comes back while an invocation still runs): the real tables, the real core
emulator, the core slow for upserts only, so the older upsert lands after the newer delete."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest

from devstack.wg2sim.process import Wg2simProcess
from sipreg.events import AnyEvent, to_json
from sipreg.store.registrations import RegistrationStatus
from sipreg.worker import QueuedMessage
from tests.support.worker import Rig, build_rig
from tests.support.worker_events import T0, delete, upsert

PBX = "sips:pbx.acme.example"


@pytest.fixture
def rig(aws: str, wg2sim_faults: Wg2simProcess) -> Iterator[Rig]:
    yield build_rig(aws, wg2sim_faults, core_deadline_seconds=5.0)


def queued(event: AnyEvent, number: int) -> QueuedMessage:
    return QueuedMessage(
        message_id=f"m-{number}",
        receipt_handle=f"rh-{number}",
        body=to_json(event),
        group=event.msisdn,
        receive_count=1,
    )


def test_an_older_upsert_landing_after_a_newer_delete_leaves_nothing_on_the_core(
    rig: Rig, new_msisdn: Callable[[], str]
) -> None:
    msisdn = new_msisdn()
    rig.consent(msisdn)
    # Given upserts of this number take 800 ms to reach the core, deletes none
    rig.sim.set_faults(latency_ms=800, msisdns=[msisdn], methods=["UpsertRegistration"])
    older = upsert("crm-1", msisdn=msisdn, sip_uri=PBX, route_type="fork", at=T0)
    newer = delete("crm-2", msisdn=msisdn, sip_uri=PBX, at=T0 + timedelta(seconds=1))
    reports: list[object] = []
    # When one invocation takes the upsert and, while its call is on the way, another the delete
    first = threading.Thread(
        target=lambda: reports.append(rig.worker.process([queued(older, 1)], lambda: 25.0))
    )
    first.start()
    time.sleep(0.3)
    reports.append(rig.worker.process([queued(newer, 2)], lambda: 25.0))
    first.join(10)
    # Then the core holds nothing, and sipreg's record agrees
    assert rig.on_core(msisdn) == []
    record = rig.record(msisdn, PBX)
    assert record is not None and record.status is RegistrationStatus.DELETED
    assert record.applied is None and record.in_flight is None
    assert {e.event_id: e.outcome for e in rig.log(msisdn)} == {"crm-1": "superseded", "crm-2": "deleted"}
    assert all(not report.failed for report in reports)  # type: ignore[attr-defined]
