"""On the local AWS engine, wg2sim and a real Kamailio: an operator's disable / enable /
force_refresh through the events queue, and the endpoint health check that marks a stopped PBX
down and, with `suspend`, takes its LOOP and FORK registrations off the core until it is back."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from devstack.pbx import LocalPbx
from devstack.wg2sim.process import Wg2simProcess
from sipreg.config import DownAction
from sipreg.health import HealthCheck
from sipreg.models import RouteSpec
from sipreg.notify import EventBridgePublisher
from sipreg.queue import EventQueue
from sipreg.sip import probe_all
from sipreg.store.endpoints import EndpointHealth, EndpointHealthStore
from sipreg.store.registrations import RegistrationRecord, RegistrationStatus, RegistrationStore
from tests.support.worker import Rig, build_rig, received, status_events_queue
from tests.support.worker_events import control, upsert

PBX = "sips:pbx.acme.example:5061"
Status = RegistrationStatus


@pytest.fixture
def rig(aws: str, wg2sim_faults: Wg2simProcess) -> Iterator[Rig]:
    yield build_rig(aws, wg2sim_faults)


def now() -> datetime:
    return datetime.now(UTC)


# --- operator controls through the queue --------------------------------------------------------


def test_disable_enable_and_force_refresh_through_the_queue(rig: Rig, new_msisdn: Callable[[], str]) -> None:
    msisdn = new_msisdn()
    rig.consent(msisdn)
    bus = status_events_queue(rig)
    rig.send(upsert("crm-1", msisdn=msisdn, sip_uri=PBX, route_type="fork", at=now()))
    rig.drain()
    assert [r["sip_uri"] for r in rig.on_core(msisdn)] == [PBX]
    # Disabled: gone from the core, the desired state kept
    rig.send(control("disable", "op-disable-1", msisdn=msisdn, sip_uri=PBX, reason="pause", at=now()))
    rig.drain()
    record = rig.record(msisdn, PBX)
    assert record is not None and record.status is Status.DISABLED and record.disabled
    assert record.desired == RouteSpec(route_type="fork")  # type: ignore[arg-type]
    assert rig.on_core(msisdn) == []
    # A CRM change meanwhile is recorded, not applied
    rig.send(upsert("crm-2", msisdn=msisdn, sip_uri=PBX, route_type="loop", at=now()))
    rig.drain()
    assert rig.on_core(msisdn) == []
    # Enabled: the newest desired state goes on the core
    rig.send(control("enable", "op-enable-1", msisdn=msisdn, sip_uri=PBX, at=now()))
    rig.drain()
    assert [r["route_type"] for r in rig.on_core(msisdn)] == ["ROUTE_TYPE_LOOP"]
    enabled = rig.record(msisdn, PBX)
    assert enabled is not None and enabled.status is Status.ACTIVE and enabled.expires_at is not None
    # Force refresh: re-upserted now, the expiry moves
    rig.send(control("force_refresh", "op-refresh-1", msisdn=msisdn, sip_uri=PBX, at=now()))
    rig.drain()
    refreshed = rig.record(msisdn, PBX)
    assert refreshed is not None and refreshed.expires_at is not None
    assert refreshed.expires_at > enabled.expires_at
    outcomes = [(e.event_id, e.outcome) for e in rig.log(msisdn)]
    assert outcomes == [
        ("crm-1", "active"),
        ("op-disable-1", "disabled"),
        ("crm-2", "disabled"),
        ("op-enable-1", "active"),
        ("op-refresh-1", "active"),
    ]
    # Each status change is on the status bus, named by the control that made it
    changes = [m["detail"] for m in received(rig, bus, at_least=3)]
    assert [(c["event_type"], c["old_status"], c["new_status"]) for c in changes] == [
        ("registration.upsert", None, "active"),
        ("registration.disable", "active", "disabled"),
        ("registration.enable", "disabled", "active"),
    ]


# --- the ByEndpoint index -----------------------------------------------------------------------


def record(
    msisdn: str, sip_uri: str, *, desired: str | None = "fork", suspended: bool = False
) -> RegistrationRecord:
    return RegistrationRecord(
        msisdn=msisdn,
        sip_uri=sip_uri,
        status=Status.ACTIVE if desired else Status.DELETED,
        desired=RouteSpec(route_type=desired) if desired else None,  # type: ignore[arg-type]
        suspended=suspended,
        updated_at=now(),
    )


def test_the_index_lists_each_endpoint_in_use_once_and_the_registrations_of_one(
    rig: Rig, new_msisdn: Callable[[], str]
) -> None:
    store = RegistrationStore(rig.ref("RegistrationsTable"))
    a, longer, other = "sips:a.example:5061", "sips:a.example:50610", "sips:b.example"
    numbers = [new_msisdn() for _ in range(40)]  # spread over the 16 shards
    for msisdn in numbers[:30]:
        store.save(record(msisdn, a), read_version=None)
    store.save(record(numbers[30], longer), read_version=None)
    store.save(record(numbers[31], other, desired=None), read_version=None)  # deleted: not in use
    store.save(record(numbers[32], other, desired=None, suspended=True), read_version=None)
    assert store.endpoints_in_use() == [a, longer, other]
    assert sorted(store.registrations_at(a)) == sorted((m, False) for m in numbers[:30])
    assert list(store.registrations_at(longer)) == [(numbers[30], False)]
    assert list(store.registrations_at(other)) == [(numbers[32], True)]


# --- endpoint health against a real Kamailio ------------------------------------------------------


def endpoint_events_queue(rig: Rig) -> str:
    """An SQS queue receiving the status bus's EndpointHealthChanged events."""
    sqs, events = rig.aws("sqs"), rig.aws("events")
    url = sqs.create_queue(QueueName=f"endpoints-{uuid.uuid4().hex[:10]}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    bus = rig.ref("StatusBus")
    pattern = {"source": ["sipreg"], "detail-type": ["EndpointHealthChanged"]}
    events.put_rule(Name="ops-endpoints", EventBusName=bus, EventPattern=json.dumps(pattern))
    events.put_targets(Rule="ops-endpoints", EventBusName=bus, Targets=[{"Id": "ops", "Arn": arn}])
    return str(url)


def health_check(rig: Rig, ca_file: str | None) -> HealthCheck:
    def prober(uris: Any) -> Any:
        return probe_all(uris, timeout=1.0, ca_file=ca_file)

    return HealthCheck(
        RegistrationStore(rig.ref("RegistrationsTable")),
        EndpointHealthStore(rig.ref("EndpointsTable")),
        prober,
        EventQueue(rig.queue_url),
        EventBridgePublisher(rig.ref("StatusBus"), client=rig.aws("events")),
        action=DownAction.SUSPEND,
    )


def stored(endpoints: EndpointHealthStore, sip_uri: str) -> EndpointHealth:
    health = endpoints.get_many([sip_uri])[sip_uri]
    assert health is not None, f"no health recorded for {sip_uri}"
    return health


def test_a_stopped_pbx_is_down_and_its_fork_leaves_the_core_until_it_answers_again(
    rig: Rig, new_msisdn: Callable[[], str], tmp_path: Path
) -> None:
    pbx = LocalPbx.start(tmp_path / "pbx", log_file=tmp_path / "pbx.log")
    try:
        forked, fallback = new_msisdn(), new_msisdn()
        for msisdn in (forked, fallback):
            rig.consent(msisdn)
        rig.send(
            upsert("crm-fork", msisdn=forked, sip_uri=pbx.pbx_uri, route_type="fork", at=now()),
            upsert("crm-vm", msisdn=fallback, sip_uri=pbx.pbx_uri, route_type="fallback", at=now()),
        )
        rig.drain()
        health, bus = health_check(rig, pbx.ca_file), endpoint_events_queue(rig)
        endpoints = EndpointHealthStore(rig.ref("EndpointsTable"))
        assert health.run().down == 0
        assert stored(endpoints, pbx.pbx_uri).up

        # When the SIP server stops
        ports, tls = (pbx.pbx_port, pbx.voicemail_port), pbx.tls
        pbx.stop()
        report = health.run()
        # Then it is down with the reason, published, and the FORK (not the FALLBACK) leaves the core
        assert report.down == 1 and report.suspends == 2
        down = stored(endpoints, pbx.pbx_uri)
        assert not down.up and down.reason.startswith("connect:")
        [published] = received(rig, bus, at_least=1)
        assert published["detail"]["sip_uri"] == pbx.pbx_uri and published["detail"]["up"] is False
        rig.drain()
        assert rig.on_core(forked) == []
        assert [r["sip_uri"] for r in rig.on_core(fallback)] == [pbx.pbx_uri]
        suspended = rig.record(forked, pbx.pbx_uri)
        assert suspended is not None and suspended.status is Status.SUSPENDED
        assert (suspended.last_error or "").startswith("suspended: endpoint down: connect:")

        # When it starts again (same ports, same certificate)
        pbx = LocalPbx.start(tmp_path / "pbx", tls=tls, ports=ports, log_file=tmp_path / "pbx.log")
        report = health.run()
        # Then both are resumed through the queue (the FALLBACK only loses its flag) and the FORK
        # is back on the core
        assert report.resumes == 2 and report.down == 0
        assert stored(endpoints, pbx.pbx_uri).up
        rig.drain()
        assert [r["sip_uri"] for r in rig.on_core(forked)] == [pbx.pbx_uri]
        resumed = rig.record(forked, pbx.pbx_uri)
        assert resumed is not None and resumed.status is Status.ACTIVE and not resumed.suspended
        assert [m["detail"]["up"] for m in received(rig, bus, at_least=1)] == [True]
        assert [e.outcome for e in rig.log(forked)][-2:] == ["suspended", "active"]
        assert health.run().resumes == 0  # nothing left to resume
    finally:
        pbx.stop()


def test_the_down_time_is_kept_while_the_endpoint_stays_down(rig: Rig) -> None:
    # No registration points at a PBX that does not exist: then none is in use and none probed.
    health = health_check(rig, None)
    assert health.run().endpoints == 0
    store = RegistrationStore(rig.ref("RegistrationsTable"))
    store.save(record("+4791234567", "sips:127.0.0.1:9"), read_version=None)  # nothing listens on 9
    first = health.run()
    kept = stored(EndpointHealthStore(rig.ref("EndpointsTable")), "sips:127.0.0.1:9")
    second = health.run()
    again = stored(EndpointHealthStore(rig.ref("EndpointsTable")), "sips:127.0.0.1:9")
    assert (first.down, first.changed, second.down, second.changed) == (1, 1, 1, 0)
    assert again.since == kept.since and again.checked_at > kept.checked_at
    assert again.since < now() + timedelta(seconds=1)
