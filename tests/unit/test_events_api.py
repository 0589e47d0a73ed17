"""The events API handler, as API Gateway calls it, with fakes at the service's ports."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sipreg.api.problems import SecretsUnavailableError
from sipreg.api.service import EventsService
from sipreg.config import ConfigError, EventsApiSettings
from sipreg.events import DeleteEvent, EventType, RevokeEvent, UpsertEvent
from sipreg.models import ApiVersion, RouteSpec
from sipreg.store.event_log import EventLogEntry, Outcome, encode_cursor
from sipreg.store.registrations import RegistrationRecord, RegistrationStatus
from sipreg.store.subscribers import ConsentStatus, SubscriberRecord
from tests.support.events_api import (
    OPERATOR_ARN,
    ROOT,
    SAMPLES,
    SECRET,
    FakeEventLog,
    FakeQueue,
    FakeRegistrations,
    FakeRequestIds,
    http_event,
    load_app,
    operator_event,
    resign,
    template_globals,
    template_resource,
    upsert,
)
from tests.support.lambda_context import LambdaContext

app = load_app()
MSISDN = "+4799990000"


@pytest.fixture
def queue() -> FakeQueue:
    return FakeQueue()


@pytest.fixture
def registrations() -> FakeRegistrations:
    return FakeRegistrations()


@pytest.fixture
def event_log() -> FakeEventLog:
    return FakeEventLog()


@pytest.fixture
def service(queue: FakeQueue, registrations: FakeRegistrations, event_log: FakeEventLog) -> EventsService:
    return EventsService(
        queue=queue,
        secrets=lambda: (SECRET, "previous-secret"),
        registrations=registrations,
        event_log=event_log,
        request_ids=FakeRequestIds(),
        clock=lambda: datetime(2026, 1, 1, tzinfo=UTC),
    )


def call(service: EventsService, event: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
    answer = app.lambda_handler(event, LambdaContext(), service=service)
    headers = {k.lower(): v for k, v in (answer.get("headers") or {}).items()}
    body = json.loads(answer["body"]) if answer.get("body") else {}
    return answer["statusCode"], body, headers


def post_events(
    service: EventsService, body: Any, **options: Any
) -> tuple[int, dict[str, Any], dict[str, str]]:
    return call(service, http_event("POST", "/v1/events", body, **options))


# --- POST /v1/events ----------------------------------------------------------------------------


def test_an_event_dated_beyond_the_clock_skew_is_400_naming_occurred_at_and_nothing_is_queued(
    service: EventsService, queue: FakeQueue
) -> None:
    # Given our clock at 2026-01-01T00:00:00Z and 5 minutes of allowed skew
    status, body, _ = post_events(service, upsert("evt-far", occurred_at="2099-01-01T00:00:00Z"))
    assert status == 400
    assert [e["field"] for e in body["errors"]] == ["occurred_at"]
    # And in a batch, the one event is named and none of the batch is queued
    batch = {
        "events": [
            upsert("evt-ok", occurred_at="2026-01-01T00:04:59Z"),
            upsert("evt-late", occurred_at="2026-01-01T00:05:01Z"),
        ]
    }
    status, body, _ = post_events(service, batch)
    assert status == 400
    assert [e["field"] for e in body["errors"]] == ["events.1.occurred_at"]
    assert queue.sent == []


@pytest.mark.parametrize(
    "occurred_at",
    [
        pytest.param("0001-01-01T00:00:00+23:59", id="before year 1 in UTC"),
        pytest.param("9999-12-31T23:59:59-23:59", id="after year 9999 in UTC"),
        pytest.param("1969-12-31T23:59:59Z", id="before 1970"),
        pytest.param("1970-01-01T00:59:59+01:00", id="before 1970 in UTC"),
    ],
)
def test_an_occurred_at_outside_1970_to_our_clock_is_400_naming_it_and_nothing_is_queued(
    service: EventsService, queue: FakeQueue, occurred_at: str
) -> None:
    status, body, _ = post_events(service, upsert("evt-odd", occurred_at=occurred_at))

    assert status == 400
    assert [e["field"] for e in body["errors"]] == ["occurred_at"]
    assert occurred_at not in json.dumps(body)
    assert queue.sent == []


def test_an_occurred_at_at_1970_in_utc_is_accepted(service: EventsService) -> None:
    assert post_events(service, upsert(occurred_at="1970-01-01T01:00:00+01:00"))[0] == 202


def test_one_event_is_queued_and_answered_202_with_its_id(service: EventsService, queue: FakeQueue) -> None:
    status, body, headers = post_events(service, upsert("evt-1"))

    assert (status, body) == (202, {"accepted": ["evt-1"]})
    assert headers["content-type"] == "application/json"
    assert len(queue.sent) == 1
    assert isinstance(queue.sent[0], UpsertEvent)
    assert queue.sent[0].registration.sip_uri == "sips:pbx.example.com:5061"


def test_a_batch_is_queued_in_order(service: EventsService, queue: FakeQueue) -> None:
    batch = {"events": [upsert(f"evt-{n}", msisdn=f"+47999900{n:02}") for n in range(100)]}

    status, body, _ = post_events(service, batch)

    assert status == 202
    assert body["accepted"] == [f"evt-{n}" for n in range(100)]
    assert [event.id for event in queue.sent] == body["accepted"]


def test_a_batch_with_bad_events_is_refused_whole_naming_each_by_index_and_field(
    service: EventsService, queue: FakeQueue
) -> None:
    batch = {
        "events": [
            upsert("ok-0"),
            upsert("bad-1", msisdn="12345"),
            upsert("ok-2"),
            upsert("bad-3", registration={"route_type": "fork", "sip_uri": "sip:pbx.example.com"}),
            upsert("bad-4", type="subscriber.revoke"),
            upsert("bad-5", colour="blue"),
        ]
    }

    status, body, headers = post_events(service, batch)

    assert status == 400
    assert headers["content-type"] == "application/problem+json"
    assert body["status"] == 400
    assert body["type"] == "urn:sipreg:problem:invalid-request"
    assert [error["field"] for error in body["errors"]] == [
        "events.1.msisdn",
        "events.3.registration.sip_uri",
        "events.4.type",
        "events.5.colour",
    ]
    assert body["errors"][0]["message"].startswith("must be E.164")
    assert "internal" in body["errors"][2]["message"]
    assert body["errors"][3]["message"] == "is not a known field"
    assert queue.sent == []


def test_a_single_bad_event_is_refused_naming_its_fields(service: EventsService, queue: FakeQueue) -> None:
    status, body, _ = post_events(service, upsert(occurred_at="2025-06-01T12:00:00", msisdn="+1"))

    assert status == 400
    assert {error["field"] for error in body["errors"]} == {"msisdn", "occurred_at"}
    assert queue.sent == []


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        pytest.param({"events": []}, "events", "must hold 1 to 100 events", id="empty batch"),
        pytest.param(
            {"events": [upsert(f"e{n}") for n in range(101)]}, "events", "must hold 1 to 100 events", id="101"
        ),
        pytest.param(
            {"events": [upsert("a"), upsert("a")]}, "events.1.id", "repeats the id of events.0", id="dup"
        ),
        pytest.param({"events": [upsert(), 5]}, "events.1", "must be an object", id="not an object"),
        pytest.param(
            {"events": [upsert("sipreg:refresh:1")]},
            "events.0.id",
            "must not begin with 'sipreg:': those ids are sipreg's own",
            id="an id of sipreg's own",
        ),
        pytest.param({"events": "all"}, "events", "must be a list", id="events not a list"),
        pytest.param(
            {"events": [upsert()], "more": 1}, "more", "is not a known field", id="unknown beside events"
        ),
        pytest.param([upsert()], "body", "must be one event object", id="a bare list"),
        pytest.param("text", "body", "must be one event object", id="a JSON string"),
        pytest.param(b"", "body", "is required", id="empty body"),
        pytest.param(b"{nope", "body", "must be valid JSON", id="broken JSON"),
        pytest.param(b"[" * 100_000, "body", "must be valid JSON", id="nested too deep"),
        pytest.param(b'{"id": "\xff"}', "body", "must be UTF-8", id="not UTF-8"),
    ],
)
def test_malformed_bodies_get_400_naming_what_is_wrong(
    service: EventsService, queue: FakeQueue, body: Any, field: str, message: str
) -> None:
    if isinstance(body, list | str):
        body = json.dumps(body)
    status, answer, _ = post_events(service, body)

    assert status == 400
    assert {"field": field, "message": message} in [
        {"field": e["field"], "message": e["message"][: len(message)]} for e in answer["errors"]
    ]
    assert queue.sent == []


def test_a_partial_queue_failure_is_503_naming_exactly_the_ids_not_accepted(
    service: EventsService, queue: FakeQueue
) -> None:
    queue.refuse = {"evt-3", "evt-11"}
    batch = {"events": [upsert(f"evt-{n}", msisdn=f"+47999900{n:02}") for n in range(15)]}

    status, body, headers = post_events(service, batch)

    assert status == 503
    assert headers["content-type"] == "application/problem+json"
    assert body["not_accepted"] == ["evt-3", "evt-11"]
    assert body["accepted"] == [f"evt-{n}" for n in range(15) if n not in (3, 11)]


def test_a_delete_event_is_queued_as_a_delete(service: EventsService, queue: FakeQueue) -> None:
    delete = {
        **upsert("del-1"),
        "type": "registration.delete",
        "registration": {"sip_uri": "sips:pbx.example.com"},
    }

    status, _, _ = post_events(service, delete)

    assert status == 202
    assert isinstance(queue.sent[0], DeleteEvent)


# --- the gate: signature, size, content type ----------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"secret": None}, id="missing"),
        pytest.param({"secret": "wrong-secret"}, id="wrong secret"),
        pytest.param({"skew": -600}, id="stale"),
        pytest.param({"skew": 600}, id="future"),
        pytest.param({"headers": {"sipreg-signature": "t=1,v2=00"}}, id="garbage"),
        pytest.param({"headers": {"sipreg-signature": f"t={'9' * 400},v2=00"}}, id="t beyond a float"),
        pytest.param({"headers": {"sipreg-signature": f"t={'9' * 5000},v2=00"}}, id="t of 5000 digits"),
    ],
)
def test_unsigned_or_badly_signed_requests_get_401_without_detail(
    service: EventsService, queue: FakeQueue, options: dict[str, Any]
) -> None:
    if "skew" in options:  # signed that far from now (taken now, not when the tests were collected)
        options = {"timestamp": int(datetime.now(UTC).timestamp()) + options["skew"]}
    status, body, headers = post_events(service, upsert(msisdn="bad"), **options)

    assert status == 401
    assert body == {"type": "about:blank", "title": "Unauthorized", "status": 401}
    assert headers["content-type"] == "application/problem+json"
    assert queue.sent == []


def test_every_401_names_the_scheme_to_authenticate_with_in_www_authenticate(
    service: EventsService,
) -> None:
    # Given the 401s of the producer route: no signature, a wrong one, a used request id
    replayed = http_event("POST", "/v1/events", upsert("once-1"))
    assert call(service, replayed)[0] == 202
    producer = [
        http_event("POST", "/v1/events", upsert(), secret=None),
        http_event("POST", "/v1/events", upsert(), secret="wrong-secret"),
        replayed,
    ]
    # Then each names the producers' scheme (RFC 9110 section 11.6.1: a 401 must)
    for event in producer:
        status, _, headers = call(service, event)
        assert (status, headers.get("www-authenticate")) == (401, "Sipreg-Signature")
    # And an operator's change replayed with its used request id names SigV4's
    revoke = operator_event("POST", f"/v1/subscribers/{MSISDN}/revoke")
    assert call(service, revoke)[0] == 202
    status, _, headers = call(service, revoke)
    assert (status, headers.get("www-authenticate")) == (401, "AWS4-HMAC-SHA256")


def test_only_a_401_carries_www_authenticate(service: EventsService) -> None:
    for status, _, headers in [
        post_events(service, upsert(msisdn="bad")),
        call(service, http_event("GET", f"/v1/registrations/{MSISDN}", secret=SECRET)),
        post_events(service, upsert()),
    ]:
        assert status != 401 and "www-authenticate" not in headers, status


def test_a_body_changed_after_signing_gets_401(service: EventsService, queue: FakeQueue) -> None:
    event = http_event("POST", "/v1/events", upsert("evt-1"))
    event["body"] = event["body"].replace("evt-1", "evt-2")

    status, _, _ = call(service, event)

    assert status == 401
    assert queue.sent == []


def test_a_signature_with_the_previous_secret_is_accepted(service: EventsService) -> None:
    status, _, _ = post_events(service, upsert(), secret="previous-secret")

    assert status == 202


def test_operator_routes_refuse_producers_and_the_unsigned_with_403(service: EventsService) -> None:
    # Given the operator routes, reached without an IAM identity: unsigned, or HMAC-signed with the
    # producers' webhook secret (a fitting signature for exactly that request)
    for method, path in [
        ("GET", f"/v1/registrations/{MSISDN}"),
        ("POST", f"/v1/subscribers/{MSISDN}/revoke"),
        *(("POST", f"/v1/registrations/{MSISDN}/{action}") for action in ("disable", "enable", "refresh")),
    ]:
        for secret in (None, SECRET):
            # Then each is forbidden: producers cannot read or revoke
            status, body, _ = call(service, http_event(method, path, secret=secret))
            assert status == 403, (path, secret)
            assert "operators" in body["detail"]

    status, document, _ = call(service, http_event("GET", "/v1/openapi.json", secret=None))
    assert status == 200
    assert document["openapi"].startswith("3.")


def test_a_signed_request_replayed_as_it_was_is_refused_and_queues_nothing(
    service: EventsService, queue: FakeQueue
) -> None:
    # Given a producer's signed POST /v1/events that was accepted
    event = http_event("POST", "/v1/events", upsert("once-1"))
    assert call(service, event)[0] == 202
    # When the same bytes arrive again within the five minutes
    status, body, _ = call(service, event)
    # Then they are refused: the request id is used up
    assert status == 401
    assert "request id" in body["detail"]
    assert [e.id for e in queue.sent] == ["once-1"]


@pytest.mark.parametrize(
    ("method", "path", "query"),
    [
        ("POST", "/v1/events", {"x": "1"}),  # another query
        ("PUT", "/v1/events", {}),  # another method
        ("POST", "/v1/events/", {}),  # another path
    ],
)
def test_a_producer_signature_fits_only_its_own_method_path_and_query(
    service: EventsService, queue: FakeQueue, method: str, path: str, query: dict[str, str]
) -> None:
    # Given a signature made for POST /v1/events (no query) ...
    signed = http_event("POST", "/v1/events", upsert("moved-1"))
    # ... put on a request with another method, path or query
    moved = http_event(method, path, upsert("moved-1"), secret=None, query=query)
    moved["headers"].update({k: v for k, v in signed["headers"].items() if k.startswith("sipreg-")})
    # Then it fits nothing: refused before anything is read
    status, _, _ = call(service, moved)
    assert status in (401, 403, 404)
    assert queue.sent == []


def test_a_producer_request_without_a_request_id_is_401(service: EventsService, queue: FakeQueue) -> None:
    event = http_event("POST", "/v1/events", upsert())
    del event["headers"]["sipreg-request-id"]

    assert call(service, event)[0] == 401
    assert queue.sent == []


def test_a_loop_mo_on_a_v0_stack_is_400_naming_route_type_and_nothing_is_queued(
    service: EventsService, queue: FakeQueue
) -> None:
    # Given a stack calling SipBreakoutService v0, which has only loop, fork and fallback
    batch = {
        "events": [
            upsert("v0-1"),
            upsert("v0-2", registration={"route_type": "LOOP_MO", "sip_uri": "sips:a.example"}),
        ]
    }
    # When a producer asks for LOOP_MO
    status, body, _ = post_events(service, batch)
    # Then the API refuses it at once, naming the field (not a 202 and a rejection later)
    assert status == 400
    assert [e["field"] for e in body["errors"]] == ["events.1.registration.route_type"]
    assert "v1" in body["errors"][0]["message"]
    assert queue.sent == []


def test_a_delete_naming_a_route_type_a_v0_stack_lacks_is_400_naming_it(
    service: EventsService, queue: FakeQueue
) -> None:
    # Given a stack calling SipBreakoutService v0, and a delete that names its route type
    delete = {
        **upsert("del-mo"),
        "type": "registration.delete",
        "registration": {"route_type": "loop_mo", "sip_uri": "sips:a.example"},
    }
    # When it names one v0 lacks, Then it is refused as an upsert of it is (no such registration
    # can have been made here: the producer has the stack wrong)
    status, body, _ = post_events(service, delete)
    assert status == 400
    assert [e["field"] for e in body["errors"]] == ["registration.route_type"]
    assert queue.sent == []
    # And a delete naming only its sip_uri, or a v0 route type, is queued
    assert post_events(service, {**delete, "registration": {"sip_uri": "sips:a.example"}})[0] == 202
    fork = {**delete, "id": "del-fork", "registration": {"route_type": "FORK", "sip_uri": "sips:a.example"}}
    assert post_events(service, fork)[0] == 202


def test_a_loop_mo_on_a_v1_stack_is_accepted(service: EventsService, queue: FakeQueue) -> None:
    service._api_version = ApiVersion.V1
    event = upsert("v1-1", registration={"route_type": "loop_mo", "sip_uri": "sips:a.example"})

    assert post_events(service, event)[0] == 202
    assert [e.id for e in queue.sent] == ["v1-1"]


def test_a_base64_body_is_verified_and_read_as_the_bytes_sent(
    service: EventsService, queue: FakeQueue
) -> None:
    status, body, _ = post_events(service, upsert("b64-1"), base64_body=True)

    assert (status, body) == (202, {"accepted": ["b64-1"]})
    assert queue.sent[0].id == "b64-1"


def test_a_body_over_256_kib_gets_413(service: EventsService, queue: FakeQueue) -> None:
    padded = json.dumps(upsert()).encode()[:-1] + b"," + b" " * (256 * 1024) + b'"x": 1}'

    status, body, _ = post_events(service, padded)

    assert status == 413
    assert body["status"] == 413
    assert queue.sent == []


def test_a_body_of_exactly_256_kib_is_read(service: EventsService) -> None:
    raw = json.dumps(upsert()).encode()
    padded = raw[:-1] + b" " * (256 * 1024 - len(raw)) + b"}"
    assert len(padded) == 256 * 1024

    status, _, _ = post_events(service, padded)

    assert status == 202


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/x-www-form-urlencoded", "application/xml"]
)
def test_a_body_that_is_not_declared_json_gets_415(
    service: EventsService, queue: FakeQueue, content_type: str | None
) -> None:
    status, body, _ = post_events(service, upsert(), content_type=content_type)

    assert status == 415
    assert body["title"] == "Unsupported Media Type"
    assert queue.sent == []


def test_json_with_a_charset_is_json(service: EventsService) -> None:
    status, _, _ = post_events(service, upsert(), content_type="Application/JSON; charset=utf-8")

    assert status == 202


def test_unreadable_signing_secrets_answer_503_not_500(service: EventsService) -> None:
    def unavailable() -> tuple[str, ...]:
        raise SecretsUnavailableError()

    service._secrets = unavailable

    status, body, _ = post_events(service, upsert())

    assert status == 503
    assert "secret" not in json.dumps(body).lower()


def test_no_answer_ever_contains_the_signing_secret(service: EventsService) -> None:
    bodies = [
        post_events(service, upsert(source=SECRET[:60]))[1],
        post_events(service, upsert(msisdn=SECRET))[1],
        post_events(service, upsert(), secret="wrong")[1],
    ]

    assert all(SECRET not in json.dumps(body) for body in bodies)


def test_an_unknown_route_gets_a_404_problem(service: EventsService) -> None:
    status, body, _ = call(service, operator_event("GET", "/v1/nothing-here"))

    assert (status, body["title"]) == (404, "Not Found")


# --- GET /v1/registrations/{msisdn} -------------------------------------------------------------


def test_the_status_of_a_known_msisdn_lists_its_registrations_and_events(
    service: EventsService, registrations: FakeRegistrations, event_log: FakeEventLog
) -> None:
    moment = datetime(2025, 6, 1, 12, tzinfo=UTC)
    registrations.records.append(
        RegistrationRecord(
            msisdn=MSISDN,
            sip_uri="sips:pbx.example.com",
            status=RegistrationStatus.ACTIVE,
            desired=RouteSpec(route_type="fork"),  # type: ignore[arg-type]
            applied=RouteSpec(route_type="fork"),  # type: ignore[arg-type]
            expires_at=moment,
            last_event_id="evt-1",
            last_event_type="registration.upsert",
            last_event_at=moment,
            recent_event_ids=("evt-1",),
            updated_at=moment,
            version=3,
        )
    )
    event_log.entries.append(
        EventLogEntry(
            msisdn=MSISDN,
            event_id="evt-1",
            event_type="registration.upsert",
            outcome=Outcome.ACTIVE,
            sip_uri="sips:pbx.example.com",
            occurred_at=moment,
            recorded_at=moment,
            source="crm",
            tries=1,
        )
    )

    status, body, _ = call(service, operator_event("GET", f"/v1/registrations/{MSISDN}"))

    assert status == 200
    assert body["msisdn"] == MSISDN
    [registration] = body["registrations"]
    assert registration["status"] == "active"
    assert registration["desired"]["route_type"] == "fork"
    assert registration["applied"]["route_type"] == "fork"
    assert registration["expires_at"] == "2025-06-01T12:00:00Z"
    assert registration["last_event_id"] == "evt-1"
    assert "version" not in registration and "recent_event_ids" not in registration
    assert body["events"] == [
        {
            "event_id": "evt-1",
            "event_type": "registration.upsert",
            "outcome": "active",
            "reason": None,
            "sip_uri": "sips:pbx.example.com",
            "occurred_at": "2025-06-01T12:00:00Z",
            "recorded_at": "2025-06-01T12:00:00Z",
            "source": "crm",
            "tries": 1,
        }
    ]
    assert body["next_cursor"] is None


def test_the_status_shows_the_consent_and_never_a_token(
    queue: FakeQueue, registrations: FakeRegistrations, event_log: FakeEventLog
) -> None:
    # Given a subscriber whose consent came without a refresh token
    consented = SubscriberRecord(
        msisdn=MSISDN,
        status=ConsentStatus.CONSENTED,
        access_token_ciphertext=b"never shown",
        access_expires_at=datetime(2026, 1, 1, 1, tzinfo=UTC).timestamp(),
        scopes=("openid", "call.control:answer_and_initiate"),
        consented_at=datetime(2026, 1, 1, tzinfo=UTC),
        refresh_token_missing=True,
        updated_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    service = EventsService(
        queue=queue,
        secrets=lambda: (SECRET,),
        registrations=registrations,
        event_log=event_log,
        request_ids=FakeRequestIds(),
        consents=type("Consents", (), {"consent_of": lambda self, msisdn: consented})(),
    )
    status, body, _ = call(service, operator_event("GET", f"/v1/registrations/{MSISDN}"))
    # Then the status says so, and carries nothing of the token
    assert status == 200
    assert body["consent"] == {
        "status": "consented",
        "consented_at": "2026-01-01T00:00:00Z",
        "revoked_at": None,
        "revoked_reason": None,
        "refresh_token": False,
        "access_expires_at": "2026-01-01T01:00:00Z",
        "scopes": ["openid", "call.control:answer_and_initiate"],
    }
    assert "never shown" not in json.dumps(body)


def test_the_status_of_an_unknown_msisdn_is_404(service: EventsService) -> None:
    status, body, _ = call(service, operator_event("GET", f"/v1/registrations/{MSISDN}"))

    assert status == 404
    assert body["status"] == 404


def test_a_percent_encoded_plus_in_the_path_is_the_same_msisdn(
    service: EventsService, event_log: FakeEventLog
) -> None:
    now = datetime.now(UTC)
    event_log.entries.append(
        EventLogEntry(
            msisdn=MSISDN,
            event_id="e",
            event_type="t",
            outcome=Outcome.ACTIVE,
            occurred_at=now,
            recorded_at=now,
        )
    )

    status, body, _ = call(service, operator_event("GET", "/v1/registrations/%2B4799990000"))

    assert (status, body["msisdn"]) == (200, MSISDN)


def logged(event_id: str, event_type: str, at: datetime, outcome: Outcome = Outcome.ACTIVE) -> EventLogEntry:
    return EventLogEntry(
        msisdn=MSISDN,
        event_id=event_id,
        event_type=event_type,
        outcome=outcome,
        sip_uri="sips:pbx.example.com",
        occurred_at=at,
        recorded_at=at,
    )


def status_of(service: EventsService, **query: str) -> tuple[int, dict[str, Any]]:
    status, body, _ = call(service, operator_event("GET", f"/v1/registrations/{MSISDN}", query=query))
    return status, body


def test_an_hour_of_refreshes_never_hides_the_numbers_change_history(
    service: EventsService, event_log: FakeEventLog
) -> None:
    # Given one CRM upsert, then sixty refreshes after it (newer than the upsert)
    start = datetime(2025, 6, 1, 12, tzinfo=UTC)
    event_log.entries.append(logged("crm-1", "registration.upsert", start))
    event_log.entries += [
        logged(f"refresh-{n}", "registration.refresh", start + timedelta(minutes=n + 1), Outcome.REFRESHED)
        for n in range(60)
    ]
    # When the status is asked for, Then the history shows the CRM event, not the refreshes
    status, body = status_of(service)
    assert status == 200
    assert [e["event_id"] for e in body["events"]] == ["crm-1"]
    # And the refreshes page on their own, newest first
    status, body = status_of(service, type="registration.refresh", limit="10")
    assert [e["event_id"] for e in body["events"]] == [f"refresh-{n}" for n in range(59, 49, -1)]
    assert body["next_cursor"]


def test_the_cursor_pages_through_every_event_once(service: EventsService, event_log: FakeEventLog) -> None:
    start = datetime(2025, 6, 1, 12, tzinfo=UTC)
    event_log.entries += [
        logged(f"e{n:03}", "registration.upsert", start + timedelta(seconds=n)) for n in range(120)
    ]
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        status, body = status_of(service, **({"cursor": cursor} if cursor else {}))
        assert status == 200
        seen += [e["event_id"] for e in body["events"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == [f"e{n:03}" for n in range(119, -1, -1)]


def test_events_filter_by_type_and_outcome(service: EventsService, event_log: FakeEventLog) -> None:
    start = datetime(2025, 6, 1, 12, tzinfo=UTC)
    event_log.entries += [
        logged("up-ok", "registration.upsert", start),
        logged("up-bad", "registration.upsert", start + timedelta(seconds=1), Outcome.REJECTED),
        logged("del", "registration.delete", start + timedelta(seconds=2), Outcome.DELETED),
        logged("dead", "registration.delete", start + timedelta(seconds=3), Outcome.DEAD_LETTERED),
    ]
    assert [e["event_id"] for e in status_of(service, outcome="rejected")[1]["events"]] == ["up-bad"]
    assert [e["event_id"] for e in status_of(service, type="registration.delete")[1]["events"]] == [
        "dead",
        "del",
    ]
    both = status_of(service, type="registration.delete", outcome="dead_lettered")[1]
    assert [e["event_id"] for e in both["events"]] == ["dead"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"type": "registration.upsertx"}, "type"),
        ({"outcome": "fine"}, "outcome"),
        ({"cursor": "not-a-cursor!"}, "cursor"),
    ],
)
def test_a_bad_query_parameter_is_400_naming_it(
    service: EventsService, event_log: FakeEventLog, query: dict[str, str], field: str
) -> None:
    event_log.entries.append(logged("e", "registration.upsert", datetime(2025, 6, 1, tzinfo=UTC)))
    status, body = status_of(service, **query)
    assert status == 400
    assert [error["field"] for error in body["errors"]] == [field]


def test_a_cursor_of_another_number_is_refused(service: EventsService, event_log: FakeEventLog) -> None:
    # Given a cursor handed out for another number's events
    other = EventLogEntry(
        msisdn="+4711111111",
        event_id="x",
        event_type="registration.upsert",
        outcome=Outcome.ACTIVE,
        occurred_at=datetime(2025, 6, 1, tzinfo=UTC),
        recorded_at=datetime(2025, 6, 1, tzinfo=UTC),
    )
    forged = encode_cursor(other)
    event_log.entries.append(logged("e", "registration.upsert", datetime(2025, 6, 1, tzinfo=UTC)))
    # Then it cannot be used to read from this number's page (or the other's)
    status, body = status_of(service, cursor=forged)
    assert status == 400 and [e["field"] for e in body["errors"]] == ["cursor"]


# API Gateway decodes the path once: %252B... arrives as %2B4799990000, which is no MSISDN; %C2%84 (a
# control character) and %20 (a space) arrive as themselves, which no route pattern takes as written
@pytest.mark.parametrize(
    "msisdn", ["4799990000", "+47", "+4799990000x", "%2Bhello", "%252B4799990000", "%C2%84", "+47%209999"]
)
def test_a_malformed_msisdn_in_the_path_is_400_naming_it(service: EventsService, msisdn: str) -> None:
    status, body, _ = call(service, operator_event("GET", f"/v1/registrations/{msisdn}"))

    assert status == 400
    assert [error["field"] for error in body["errors"]] == ["msisdn"]


# --- POST /v1/subscribers/{msisdn}/revoke -------------------------------------------------------


def test_a_revoke_queues_an_internal_revoke_event(service: EventsService, queue: FakeQueue) -> None:
    status, body, _ = call(service, operator_event("POST", f"/v1/subscribers/{MSISDN}/revoke"))

    assert status == 202
    [event] = queue.sent
    assert isinstance(event, RevokeEvent)
    assert event.type is EventType.SUBSCRIBER_REVOKE
    assert event.id.startswith("sipreg:revoke:")  # not an id a producer may take first
    assert event.msisdn == MSISDN
    assert body == {"accepted": [event.id]}


def test_a_revoke_the_queue_did_not_take_is_503(service: EventsService, queue: FakeQueue) -> None:
    class Refusing(FakeQueue):
        def send(self, events: Any) -> Any:
            self.refuse = {event.id for event in events}
            return super().send(events)

    service._queue = Refusing()

    status, body, _ = call(service, operator_event("POST", f"/v1/subscribers/{MSISDN}/revoke"))

    assert status == 503
    assert len(body["not_accepted"]) == 1


def test_a_revoke_names_the_operator_in_the_log_and_cannot_be_replayed(
    service: EventsService, queue: FakeQueue, caplog: pytest.LogCaptureFixture
) -> None:
    # Given an operator's revoke, let through by API Gateway's IAM check
    event = operator_event("POST", f"/v1/subscribers/{MSISDN}/revoke")
    with caplog.at_level("INFO"):
        assert call(service, event)[0] == 202
    assert OPERATOR_ARN in caplog.text
    # When the same request is replayed (SigV4 alone would let it through for 5 minutes)
    status, _, _ = call(service, event)
    # Then its used request id refuses it, and no second revoke is queued
    assert status == 401
    assert len(queue.sent) == 1


@pytest.mark.parametrize("signed_headers", ["host;x-amz-date", None])
def test_a_revoke_needs_a_request_id_its_signature_covers(
    service: EventsService, queue: FakeQueue, signed_headers: str | None
) -> None:
    # Given a revoke whose request id is unsigned (an attacker could swap it) or missing
    event = operator_event(
        "POST", f"/v1/subscribers/{MSISDN}/revoke", signed_headers=signed_headers or "host"
    )
    if signed_headers is None:
        del event["headers"]["sipreg-request-id"]
    # Then it is 400 naming the header, and nothing is queued
    status, body, _ = call(service, event)
    assert status == 400
    assert [e["field"] for e in body["errors"]] == ["Sipreg-Request-Id"]
    assert queue.sent == []


# --- the samples in events/ and the published OpenAPI document -------------------------------------


@pytest.mark.parametrize(
    ("sample", "expected"),
    [
        ("post_event.json", 202),
        ("post_events_batch.json", 202),
        ("post_events_base64.json", 202),
        ("get_registrations.json", 404),
        ("post_revoke.json", 202),
        ("get_openapi.json", 200),
    ],
)
def test_each_sample_request_is_answered_as_documented(
    service: EventsService, sample: str, expected: int
) -> None:
    event = json.loads((SAMPLES / sample).read_text())

    status, _, _ = call(service, resign(event))

    assert status == expected


def test_a_sample_replayed_as_signed_long_ago_is_refused(service: EventsService) -> None:
    event = json.loads((SAMPLES / "post_event.json").read_text())

    assert call(service, event)[0] == 401


def test_the_sample_batch_body_is_the_documented_example(service: EventsService, queue: FakeQueue) -> None:
    event = json.loads((SAMPLES / "post_events_base64.json").read_text())
    body = json.loads(base64.b64decode(event["body"]))

    call(service, resign(event))

    assert [e.id for e in queue.sent] == [body["id"]]


def test_the_published_openapi_document_matches_the_api() -> None:
    published = json.loads((ROOT / "docs" / "openapi.json").read_text())

    assert published == json.loads(app.openapi_document()), (
        "docs/openapi.json is stale: regenerate with `python functions/events_api/app.py > docs/openapi.json`"
    )


def test_the_openapi_document_describes_the_problem_answers_and_the_signature() -> None:
    document = json.loads(app.openapi_document())
    post = document["paths"]["/v1/events"]["post"]

    assert set(post["responses"]) == {"202", "400", "401", "413", "415", "503"}
    assert "application/problem+json" in post["responses"]["400"]["content"]
    assert post["security"] == [{"SipregSignature": [], "SipregRequestId": []}]
    assert document["components"]["securitySchemes"]["SipregSignature"] == {
        "type": "apiKey",
        "in": "header",
        "name": "Sipreg-Signature",
    }
    controls = [
        (f"/v1/registrations/{{msisdn}}/{action}", "post") for action in ("disable", "enable", "refresh")
    ]
    for path, method in [
        ("/v1/registrations/{msisdn}", "get"),
        ("/v1/subscribers/{msisdn}/revoke", "post"),
        *controls,
    ]:
        operation = document["paths"][path][method]
        assert operation["security"] == [{"AwsSigV4": []}], path
        assert "403" in operation["responses"], path
    assert set(document["paths"]) == {
        "/v1/events",
        "/v1/registrations/{msisdn}",
        "/v1/subscribers/{msisdn}/revoke",
        *(path for path, _ in controls),
    }


def test_the_openapi_document_lists_a_401_only_on_the_routes_that_can_answer_one() -> None:
    # Given that a GET spends no request id (only changes do) and carries no producer signature
    paths = json.loads(app.openapi_document())["paths"]
    # Then the status route promises no 401, and every route that checks a request id does
    assert "401" not in paths["/v1/registrations/{msisdn}"]["get"]["responses"]
    changes = [
        ("/v1/events", "post"),
        ("/v1/subscribers/{msisdn}/revoke", "post"),
        *((f"/v1/registrations/{{msisdn}}/{action}", "post") for action in ("disable", "enable", "refresh")),
    ]
    for path, method in changes:
        assert "401" in paths[path][method]["responses"], path


def test_the_openapi_document_names_the_503_of_an_unreadable_signing_secret(service: EventsService) -> None:
    # Given signing secrets that cannot be read
    def unavailable() -> tuple[str, ...]:
        raise SecretsUnavailableError()

    service._secrets = unavailable
    # When a producer posts, Then the answer is a plain 503 (no secret named in it) ...
    status, body, _ = post_events(service, upsert())
    assert (status, body["type"]) == (503, "about:blank")
    # ... and both the OpenAPI document and docs/events-api.md say so
    post = json.loads(app.openapi_document())["paths"]["/v1/events"]["post"]
    assert "signing secret" in post["responses"]["503"]["description"]
    assert "503 `about:blank`" in DOC and "signing secret cannot be read" in DOC


def _event_schema(document: dict[str, Any]) -> Any:
    import jsonschema  # type: ignore[import-untyped]  # noqa: PLC0415  # no stubs; only these tests need it

    body = document["paths"]["/v1/events"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    return jsonschema.Draft202012Validator({**body, "components": document["components"]})


@pytest.mark.parametrize(
    ("registration", "accepted"),
    [
        pytest.param({"route_type": "FORK"}, True, id="route type upper-case"),
        pytest.param({"route_type": "Loop_Mo"}, True, id="route type mixed case"),
        pytest.param({"route_type": "forward"}, False, id="route type unknown"),
        pytest.param({"route_type": "fork", "mobile_originating_prefix": ""}, True, id="empty prefix: none"),
        pytest.param({"route_type": "fork", "mobile_originating_prefix": None}, True, id="null prefix"),
        pytest.param({"route_type": "fork", "mobile_terminating_prefix": "12345678"}, True, id="prefix of 8"),
        pytest.param(
            {"route_type": "fork", "mobile_terminating_prefix": "123456789"}, False, id="prefix of 9"
        ),
        pytest.param(
            {"route_type": "fork", "mobile_terminating_prefix": "0a"}, False, id="prefix not digits"
        ),
    ],
)
def test_the_published_schema_admits_what_the_api_accepts_and_refuses_what_it_refuses(
    service: EventsService, registration: dict[str, Any], accepted: bool
) -> None:
    # Given a v1 stack (every route type) and the published document
    service._api_version = ApiVersion.V1
    event = upsert(registration={"sip_uri": "sips:a.example", **registration})
    schema = _event_schema(json.loads((ROOT / "docs" / "openapi.json").read_text()))
    # Then the API and the schema agree on the event
    assert post_events(service, event)[0] == (202 if accepted else 400)
    assert [e.message for e in schema.iter_errors(event)] == [] if accepted else not schema.is_valid(event)


# --- what docs/events-api.md says ------------------------------------------------------------------

DOC = (ROOT / "docs" / "events-api.md").read_text()


def _documented_routes() -> set[tuple[str, str]]:
    table = DOC.split("## Routes and who may call them", 1)[1].split("\n\n", 2)[1]
    found: set[tuple[str, str]] = set()
    for row in table.splitlines()[2:]:
        for method, path in re.findall(r"`(GET|POST) (/v1/[^` ]+)`", row.split("|")[1]):
            stem, _, actions = path.rpartition("/")
            found |= (
                {(method, f"{stem}/{action}") for action in actions.split("|")}
                if "|" in path
                else {(method, path)}
            )
    return found


def _served_routes() -> set[tuple[str, str]]:
    function = template_resource("EventsApiFunction")["Properties"]
    return {(e["Properties"]["Method"], e["Properties"]["Path"]) for e in function["Events"].values()}


def test_the_route_table_of_the_docs_lists_every_route_the_function_serves() -> None:
    assert _documented_routes() == _served_routes()


CONTROLS = "/v1/registrations/{msisdn}/disable|enable|refresh"


def test_the_docs_name_every_route_that_answers_415(service: EventsService) -> None:
    # Given the docs' 415 line, and every POST route sent a JSON body labelled text/plain
    line = next(line for line in DOC.splitlines() if "415:" in line)
    for method, path in sorted(route for route in _served_routes() if route[0] == "POST"):
        concrete = path.replace("{msisdn}", MSISDN)
        if path == "/v1/events":
            event = http_event(method, concrete, upsert(), content_type="text/plain")
        else:
            event = operator_event(
                method, concrete, body={"sip_uri": "sips:a.example"}, content_type="text/plain"
            )
        # Then the line names exactly those that answer 415 (the controls as one)
        is_control = path.rpartition("/")[0] + "/disable|enable|refresh" == CONTROLS
        named = f"`{method} {CONTROLS if is_control else path}`" in line
        assert (call(service, event)[0] == 415) == named, path


@pytest.mark.parametrize("internal", [t for t in EventType if not t.external], ids=str)
def test_the_docs_name_every_internal_event_type_the_api_refuses(
    service: EventsService, queue: FakeQueue, internal: EventType
) -> None:
    status, body, _ = post_events(service, upsert(type=internal.value))

    assert status == 400 and "internal" in body["errors"][0]["message"]
    assert f"`{internal.value}`" in DOC.split("## Events", 1)[1].split("## Routes", 1)[0]
    assert queue.sent == []


def test_an_upper_case_hex_signature_is_refused_as_the_docs_say(service: EventsService) -> None:
    # Given a request signed right, its v2 value written in upper-case hex
    event = http_event("POST", "/v1/events", upsert())
    stamp, _, digest = event["headers"]["sipreg-signature"].partition(",v2=")
    event["headers"]["sipreg-signature"] = f"{stamp},v2={digest.upper()}"
    # Then it is refused, and the docs say v2 is lower-case hex
    assert call(service, event)[0] == 401
    assert "v2=<lower-case hex HMAC-SHA256" in DOC


def test_a_leap_second_is_refused_as_the_docs_say(service: EventsService, queue: FakeQueue) -> None:
    status, body, _ = post_events(service, upsert(occurred_at="2016-12-31T23:59:60Z"))

    assert (status, [e["field"] for e in body["errors"]]) == (400, ["occurred_at"])
    assert "leap second" in DOC and "23:59:60" in DOC
    assert queue.sent == []


def test_a_missing_setting_fails_at_cold_start_naming_the_variable() -> None:
    environment = {"EVENTS_QUEUE_URL": "https://sqs.example/q.fifo", "REGISTRATIONS_TABLE": "Registrations"}

    with pytest.raises(ConfigError) as caught:
        EventsApiSettings.from_env(environment)

    assert "WEBHOOK_SECRET_ARN" in str(caught.value)
    assert "EVENT_LOG_TABLE" in str(caught.value)


def test_the_settings_read_every_variable_the_template_gives_the_function() -> None:
    settings = EventsApiSettings.from_env(
        {
            "EVENTS_QUEUE_URL": "https://sqs.example/q.fifo",
            "WEBHOOK_SECRET_ARN": "arn:aws:secretsmanager:eu-west-1:1:secret:s",
            "REGISTRATIONS_TABLE": "Registrations",
            "EVENT_LOG_TABLE": "EventLog",
            "SUBSCRIBERS_TABLE": "Subscribers",
            "REQUEST_IDS_TABLE": "RequestIds",
            "API_VERSION": "v1",
        }
    )

    assert settings.webhook_secret_max_age == 300
    assert settings.request_ids_table == "RequestIds"
    assert settings.api_version is ApiVersion.V1
    assert settings.event_log_table == "EventLog"


def test_the_template_gives_the_function_every_setting_and_only_scoped_policies() -> None:
    function = template_resource("EventsApiFunction")["Properties"]
    required = {field.alias for field in EventsApiSettings.model_fields.values() if field.is_required()}
    routes = {(e["Properties"]["Method"], e["Properties"]["Path"]) for e in function["Events"].values()}
    given = set(function["Environment"]["Variables"]) | set(template_globals()["Environment"]["Variables"])

    assert required <= given
    assert routes == {
        ("POST", "/v1/events"),
        ("GET", "/v1/registrations/{msisdn}"),
        ("POST", "/v1/subscribers/{msisdn}/revoke"),
        ("POST", "/v1/registrations/{msisdn}/disable"),
        ("POST", "/v1/registrations/{msisdn}/enable"),
        ("POST", "/v1/registrations/{msisdn}/refresh"),
        ("GET", "/v1/openapi.json"),
    }
    templates = [next(iter(policy)) for policy in function["Policies"] if "Statement" not in policy]
    assert sorted(templates) == ["AWSSecretsManagerGetSecretValuePolicy", "SQSSendMessagePolicy"]
    statements = [s for policy in function["Policies"] if "Statement" in policy for s in policy["Statement"]]
    kms = [s for s in statements if str(s["Action"]).startswith("kms:") or "kms:" in str(s["Action"])]
    # The data key only through a service, for a resource the encryption context names: never a
    # decrypt of its own (a token), never another secret, queue or table.
    assert {s["Sid"] for s in kms} == {
        "SigningSecretOnly",
        "SendToTheEncryptedQueue",
        "ReadTheEncryptedTables",
    }
    for statement in kms:
        (keys,) = statement["Condition"].values()
        assert "kms:ViaService" in keys
        assert any(key.startswith("kms:EncryptionContext:") for key in keys), statement["Sid"]
    writes = [s["Resource"] for s in statements if "Put" in str(s["Action"]) or "Update" in str(s["Action"])]
    # It writes nothing but the used request ids
    assert writes == [{"Fn::GetAtt": ["RequestIdsTable", "Arn"]}]
    assert not [s for s in statements if "dynamodb:Scan" in str(s["Action"])]
    # Operators only on the status and revoke routes
    auth = {e["Properties"]["Path"]: (e["Properties"].get("Auth") or {}) for e in function["Events"].values()}
    assert (
        auth["/v1/registrations/{msisdn}"]
        == auth["/v1/subscribers/{msisdn}/revoke"]
        == {"Authorizer": "AWS_IAM"}
    )
    assert auth["/v1/events"] == auth["/v1/openapi.json"] == {}
