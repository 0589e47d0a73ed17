"""POST /v1/registrations/{msisdn}/disable|enable|refresh: an operator's control of one
registration, queued as an internal event in the number's order; a bad body is a 4xx naming the
field and queues nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from sipreg.api.service import EventsService
from sipreg.events import ControlEvent, EventType
from sipreg.models import RouteSpec
from sipreg.store.registrations import RegistrationRecord, RegistrationStatus
from tests.support.events_api import (
    FakeEventLog,
    FakeQueue,
    FakeRegistrations,
    FakeRequestIds,
    operator_event,
)
from tests.support.lambda_context import LambdaContext, load_function
from tests.unit.test_events_api import call

MSISDN = "+4799990000"
PBX = "sips:pbx.acme.example:5061"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def queue() -> FakeQueue:
    return FakeQueue()


@pytest.fixture
def service(queue: FakeQueue) -> EventsService:
    known = RegistrationRecord(
        msisdn=MSISDN,
        sip_uri=PBX,
        status=RegistrationStatus.ACTIVE,
        desired=RouteSpec(route_type="fork"),  # type: ignore[arg-type]
        updated_at=T0,
    )
    return EventsService(
        queue=queue,
        secrets=lambda: ("secret",),
        registrations=FakeRegistrations([known]),
        event_log=FakeEventLog(),
        request_ids=FakeRequestIds(),
        clock=lambda: T0,
    )


def control(action: str, body: Any, **options: Any) -> dict[str, Any]:
    return operator_event(
        "POST", f"/v1/registrations/{MSISDN.replace('+', '%2B')}/{action}", body=body, **options
    )


@pytest.mark.parametrize(
    ("action", "event_type"),
    [
        ("disable", EventType.REGISTRATION_DISABLE),
        ("enable", EventType.REGISTRATION_ENABLE),
        ("refresh", EventType.REGISTRATION_FORCE_REFRESH),
    ],
)
def test_each_control_queues_its_internal_event_for_the_registration(
    service: EventsService, queue: FakeQueue, action: str, event_type: EventType
) -> None:
    status, body, _ = call(service, control(action, {"sip_uri": PBX, "reason": "ticket 4711"}))

    assert status == 202
    [event] = queue.sent
    assert isinstance(event, ControlEvent)
    assert (event.type, event.msisdn, event.registration.sip_uri) == (event_type, MSISDN, PBX)
    assert event.reason == "ticket 4711" and event.source == "events-api"
    assert event.id.startswith(f"sipreg:{event_type.value.removeprefix('registration.')}:")
    assert body == {"accepted": [event.id]}


def test_a_control_of_a_registration_sipreg_does_not_have_is_404_and_queues_nothing(
    service: EventsService, queue: FakeQueue
) -> None:
    status, body, _ = call(service, control("disable", {"sip_uri": "sips:other.example"}))

    assert status == 404
    assert "no registration at that sip_uri" in body["detail"]
    assert queue.sent == []


@pytest.mark.parametrize(
    ("body", "content_type", "status", "field"),
    [
        pytest.param({}, None, 400, "sip_uri", id="no sip_uri"),
        pytest.param({"sip_uri": "sip:pbx.acme.example"}, None, 400, "sip_uri", id="not sips"),
        pytest.param({"sip_uri": PBX, "reason": "x" * 201}, None, 400, "reason", id="reason too long"),
        pytest.param({"sip_uri": PBX, "route_type": "fork"}, None, 400, "route_type", id="unknown field"),
        pytest.param(b"{not json", "application/json", 400, "body", id="not JSON"),
        pytest.param(b"[]", "application/json", 400, "body", id="not an object"),
        pytest.param(b"", "application/json", 400, "body", id="empty"),
        pytest.param(json.dumps({"sip_uri": PBX}), "text/plain", 415, None, id="not application/json"),
    ],
)
def test_a_bad_body_is_refused_naming_the_field_and_queues_nothing(  # noqa: PLR0917  # parametrized
    service: EventsService,
    queue: FakeQueue,
    body: Any,
    content_type: str | None,
    status: int,
    field: str | None,
) -> None:
    answer_status, answer, _ = call(service, control("disable", body, content_type=content_type))

    assert answer_status == status, answer
    if field is not None:
        assert field in [e["field"] for e in answer["errors"]], answer
    assert queue.sent == []


def test_a_control_cannot_be_replayed(service: EventsService, queue: FakeQueue) -> None:
    event = control("disable", {"sip_uri": PBX})
    assert call(service, event)[0] == 202
    assert call(service, event)[0] == 401
    assert len(queue.sent) == 1


def test_the_lambda_handler_answers_a_control(service: EventsService) -> None:
    app = load_function("events_api")
    answer = app.lambda_handler(control("refresh", {"sip_uri": PBX}), LambdaContext(), service=service)
    assert answer["statusCode"] == 202
