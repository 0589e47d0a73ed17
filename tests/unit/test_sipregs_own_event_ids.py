"""sipreg's own event ids are a namespace producers cannot use.

The worker takes an event whose id the record remembers for a duplicate, and some of sipreg's own
ids can be worked out from the outside: the health check's resume from the `since` it publishes on
the status bus, a refresh from the expiry in a registration's status. A producer that gave its
upsert such an id, even one superseded or harmless, would have the real resume or refresh dropped.
So sipreg's ids begin with `sipreg:`, and a producer's event with such an id is refused, at the
API and at the worker, naming `id`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import pytest

from sipreg.config import DownAction
from sipreg.events import AnyEvent, InvalidEventsError, parse_event, parse_events
from sipreg.health import HealthCheck, control_event_id
from sipreg.models import SIPREG_ID_PREFIX
from sipreg.notify import Change, EndpointChange
from sipreg.queue import SendResult
from sipreg.refresher import refresh_event, refresh_event_id
from sipreg.sip import ProbeResult
from sipreg.store.event_log import Outcome
from sipreg.store.registrations import RegistrationStatus
from tests.support.health_fakes import Records
from tests.support.worker_events import (
    MSISDN,
    PRODUCER_SENDER,
    SIP_URI,
    SIPREG_SENDER,
    T0,
    message,
    upsert,
)
from tests.support.worker_fakes import World, world


def producer_upsert_body(event_id: str, at: datetime) -> str:
    """What a producer may put on the queue itself: any id it likes."""
    return json.dumps(
        {
            "id": event_id,
            "type": "registration.upsert",
            "msisdn": MSISDN,
            "occurred_at": at.isoformat(),
            "registration": {"route_type": "fork", "sip_uri": SIP_URI},
        }
    )


class _Directory:
    def __init__(self, w: World) -> None:
        self._w = w

    def endpoints_in_use(self) -> list[str]:
        return sorted({r.sip_uri for r in self._w.journal.records.values() if r.desired is not None})

    def registrations_at(self, sip_uri: str) -> Iterable[tuple[str, bool]]:
        return [(r.msisdn, r.suspended) for r in self._w.journal.records.values() if r.sip_uri == sip_uri]

    def suspended_registrations(self) -> Mapping[str, Sequence[str]]:
        held: dict[str, list[str]] = {}
        for record in self._w.journal.records.values():
            if record.suspended:
                held.setdefault(record.sip_uri, []).append(record.msisdn)
        return held


class _Prober:
    def __init__(self) -> None:
        self.up = False

    def __call__(self, uris: Sequence[str]) -> Mapping[str, ProbeResult]:
        reason = "200 OK" if self.up else "timeout"
        return {u: ProbeResult(u, self.up, 200 if self.up else None, reason, 0.01) for u in uris}


class _QueueToWorker:
    """The events queue as the health check sees it; the worker takes each event from sipreg's role."""

    def __init__(self, w: World) -> None:
        self._w = w
        self.sent: list[AnyEvent] = []

    def send(self, events: Sequence[AnyEvent]) -> SendResult:
        self.sent.extend(events)
        for event in events:
            self._w.run(message(event, sender=SIPREG_SENDER))
        return SendResult(tuple(e.id for e in events), ())


class _Bus:
    def __init__(self) -> None:
        self.details: list[dict[str, object]] = []

    def publish(self, changes: Sequence[Change]) -> None:
        self.details += [c.detail() for c in changes if isinstance(c, EndpointChange)]


def outcomes_of(w: World, event_id: str) -> list[str]:
    return [e.outcome for e in w.journal.history if e.event_id == event_id]


def test_a_producer_cannot_keep_a_registration_suspended_once_its_endpoint_answers_again() -> None:
    # Given an active FORK registration a producer made, and the health check in `suspend` mode
    w = world()
    w.run(message(upsert("crm-1", at=T0), sender=PRODUCER_SENDER))
    prober, queue, bus = _Prober(), _QueueToWorker(w), _Bus()
    health = HealthCheck(
        _Directory(w), Records(), prober, queue, bus, action=DownAction.SUSPEND, clock=w.clock
    )
    w.clock.advance(60)
    health.run()  # the PBX stops answering: suspended
    assert w.journal.record().status is RegistrationStatus.SUSPENDED
    # When a producer, reading EndpointHealthChanged on the status bus, gives its next (harmless,
    # same desired state) upsert the id the health check's resume will have
    [down] = [d for d in bus.details if d["up"] is False]
    resume_id = control_event_id("resume", SIP_URI, datetime.fromisoformat(str(down["since"])), MSISDN)
    w.clock.advance(30)
    w.run(message(producer_upsert_body(resume_id, w.clock.now), sender=PRODUCER_SENDER))
    # And the PBX answers again
    prober.up = True
    w.clock.advance(30)
    health.run()
    assert [e.id for e in queue.sent][-1] == resume_id
    # Then the producer's upsert was refused naming its id, and the registration is back on the core
    [refused] = [e for e in w.journal.history if e.outcome == Outcome.INVALID]
    assert refused.event_id.startswith("sqs:")
    assert refused.reason is not None and refused.reason.startswith("id: must not begin with 'sipreg:'")
    assert outcomes_of(w, resume_id)[-1] == Outcome.ACTIVE
    assert w.journal.record().status is RegistrationStatus.ACTIVE


def test_a_producer_cannot_have_a_refresh_dropped_by_a_superseded_upsert_with_its_id() -> None:
    # Given an active registration and the refresh its expiry will get
    w = world()
    w.run(message(upsert("crm-1", at=T0), sender=PRODUCER_SENDER))
    record = w.journal.record()
    coming = refresh_event(record, w.clock.now + timedelta(minutes=40))
    assert coming.id == refresh_event_id(MSISDN, SIP_URI, record.expires_at or T0)
    # When a producer sends an upsert older than the record's (superseded: changes nothing) with it
    w.run(message(producer_upsert_body(coming.id, T0 - timedelta(minutes=1)), sender=PRODUCER_SENDER))
    w.clock.advance(40 * 60)
    w.run(message(coming, sender=SIPREG_SENDER))
    # Then the refresh is applied: the registration's expiry moved on
    assert outcomes_of(w, coming.id)[-1] == Outcome.REFRESHED
    assert w.journal.record().expires_at != record.expires_at


def test_every_id_sipreg_makes_is_in_its_namespace() -> None:
    since = T0 - timedelta(minutes=5)
    made = [
        control_event_id("resume", SIP_URI, since, MSISDN),
        control_event_id("suspend", SIP_URI, since, MSISDN),
        refresh_event_id(MSISDN, SIP_URI, T0),
    ]
    assert all(made_id.startswith(SIPREG_ID_PREFIX) for made_id in made)
    assert all(parse_event(_event_of(made_id), allow_internal=True).id == made_id for made_id in made)


def _event_of(event_id: str) -> dict[str, Any]:
    return {
        "id": event_id,
        "type": "registration.resume",
        "msisdn": MSISDN,
        "occurred_at": T0.isoformat(),
        "registration": {"sip_uri": SIP_URI},
    }


@pytest.mark.parametrize("event_type", ["registration.upsert", "registration.delete"])
def test_a_producers_event_with_an_id_of_sipregs_namespace_is_refused_naming_id(event_type: str) -> None:
    body = json.loads(producer_upsert_body("sipreg:resume:abc", T0)) | {"type": event_type}

    with pytest.raises(InvalidEventsError) as refused:
        parse_events([body])

    [error] = refused.value.errors
    assert error.field == "events.0.id"
    assert "sipreg:" in error.message
    # the same id, but not at its start, is the producer's to use
    assert parse_events([body | {"id": "crm:sipreg:1"}])[0].id == "crm:sipreg:1"
