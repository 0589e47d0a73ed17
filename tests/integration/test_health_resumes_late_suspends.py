"""A suspend the worker applies after its endpoint came back (its number's events were held behind
a retrying one) is undone by the next health check run, through the sparse `Suspended` index;
before, the registration stayed off the core until the PBX went down and up again. Real SQS,
DynamoDB (the template's indexes) and core; the probe's answers are given."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import pytest

from devstack.wg2sim.process import Wg2simProcess
from sipreg.config import DownAction
from sipreg.health import HealthCheck, HealthReport
from sipreg.notify import EventBridgePublisher
from sipreg.queue import EventQueue
from sipreg.sip import ProbeResult
from sipreg.store.endpoints import EndpointHealthStore
from sipreg.store.registrations import RegistrationStatus, RegistrationStore
from tests.support.worker import Rig, build_rig
from tests.support.worker_events import T0, upsert

PBX = "sips:pbx.acme.example:5061"


@pytest.fixture
def rig(aws: str, wg2sim: Wg2simProcess) -> Iterator[Rig]:
    yield build_rig(aws, wg2sim)


class Probe:
    def __init__(self) -> None:
        self.up = True

    def __call__(self, uris: Sequence[str]) -> dict[str, ProbeResult]:
        reason = "200 OK" if self.up else "timeout: no final response within 5 s"
        return {uri: ProbeResult(uri, self.up, 200 if self.up else None, reason, 0.01) for uri in uris}


def fork_on_core(rig: Rig, msisdn: str, event_id: str) -> str:
    """A consented number with a FORK to the PBX, applied."""
    rig.consent(msisdn)
    rig.send(upsert(event_id, msisdn=msisdn, sip_uri=PBX, route_type="fork", at=T0))
    rig.drain()
    return msisdn


def test_a_suspend_applied_after_its_endpoint_came_back_is_resumed_by_the_next_run(
    rig: Rig, new_msisdn: Callable[[], str]
) -> None:
    msisdn = fork_on_core(rig, new_msisdn(), "crm-fork")
    probe = Probe()
    registrations = RegistrationStore(rig.ref("RegistrationsTable"))
    check = HealthCheck(
        registrations,
        EndpointHealthStore(rig.ref("EndpointsTable")),
        probe,
        EventQueue(rig.queue_url),
        EventBridgePublisher(rig.ref("StatusBus"), client=rig.aws("events")),
        action=DownAction.SUSPEND,
    )
    assert check.run().down == 0
    # Given the PBX stops answering: its FORK's suspend is queued, and not yet applied
    probe.up = False
    assert check.run().suspends == 1
    # When the PBX answers again before the worker gets to the suspend
    probe.up = True
    assert check.run().resumes == 0  # nothing suspended yet
    rig.drain()
    late = rig.record(msisdn, PBX)
    assert late is not None and late.status is RegistrationStatus.SUSPENDED
    assert rig.on_core(msisdn) == []
    assert registrations.suspended_registrations() == {PBX: [msisdn]}
    # Then the next run resumes it, and the FORK is back on the core
    assert check.run().resumes == 1
    rig.drain()
    back = rig.record(msisdn, PBX)
    assert back is not None and back.status is RegistrationStatus.ACTIVE and not back.suspended
    assert [r["route_type"] for r in rig.on_core(msisdn)] == ["ROUTE_TYPE_FORK"]
    assert registrations.suspended_registrations() == {}
    assert check.run().resumes == 0  # nothing left suspended


class ProbeDown(Probe):
    def __init__(self) -> None:
        super().__init__()
        self.up = False


class ProbeRunningAnotherCheck(ProbeDown):
    """Answers down, after running `other` whole first: a second run side by side, which read the
    endpoint's health as this one did (Lambda overlaps a schedule's invocations when one runs long,
    and retries a failed one)."""

    def __init__(self, other: HealthCheck) -> None:
        super().__init__()
        self.other: HealthCheck | None = other
        self.other_report: HealthReport | None = None

    def __call__(self, uris: Sequence[str]) -> dict[str, ProbeResult]:
        if self.other is not None:
            other, self.other = self.other, None
            self.other_report = other.run()
        return super().__call__(uris)


def test_of_two_runs_side_by_side_one_records_the_outage_suspends_and_tells(
    rig: Rig, new_msisdn: Callable[[], str]
) -> None:
    fork_on_core(rig, new_msisdn(), "crm-fork-2")
    registrations = RegistrationStore(rig.ref("RegistrationsTable"))
    endpoints = EndpointHealthStore(rig.ref("EndpointsTable"))

    def check(probe: Probe) -> HealthCheck:
        publisher = EventBridgePublisher(rig.ref("StatusBus"), client=rig.aws("events"))
        return HealthCheck(
            registrations, endpoints, probe, EventQueue(rig.queue_url), publisher, action=DownAction.SUSPEND
        )

    assert check(Probe()).run().down == 0
    # Given the PBX stops answering, and two runs find it so, each having read it up
    probe = ProbeRunningAnotherCheck(check(ProbeDown()))
    first = check(probe).run()
    second = probe.other_report
    assert second is not None
    # Then one of them records the outage, queues the suspend and tells; the other leaves it
    assert (first.changed + second.changed, first.suspends + second.suspends) == (1, 1)
    assert rig.queue_depth() == 1
    health = endpoints.get_many([PBX])[PBX]
    assert health is not None and not health.up
