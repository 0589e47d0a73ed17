"""Helpers for the events API tests: the handler module, API Gateway payload 2.0 requests, fakes.

The fakes stand at the service's ports (queue, secrets, stores) and are for unit tests only;
integration tests use the real adapters against moto server.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import unquote, urlencode

import boto3

from devstack import TEMPLATE
from devstack.host import LocalHost
from devstack.host.template import load_template
from sipreg import signing
from sipreg.events import AnyEvent
from sipreg.queue import SendResult
from sipreg.store.event_log import EventKind, EventLogEntry, Outcome, decode_cursor, encode_cursor
from sipreg.store.registrations import RegistrationRecord
from tests.support.lambda_context import load_function

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "events" / "events_api"
SECRET = "unit-test-signing-secret"


def load_app() -> ModuleType:
    return load_function("events_api")


def http_event(
    method: str,
    path: str,
    body: bytes | str | dict[str, Any] | None = None,
    *,
    secret: str | None = SECRET,
    content_type: str | None = "application/json",
    base64_body: bool = False,
    timestamp: int | None = None,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    request_id: str | None = None,
) -> dict[str, Any]:
    """An API Gateway HTTP API (payload 2.0) request, signed as a producer signs it (a new request
    id, HMAC over method, path, query, time, id and body) with `secret` unless it is None."""
    if isinstance(body, dict):
        raw = json.dumps(body).encode()
    elif isinstance(body, str):
        raw = body.encode()
    else:
        raw = body or b""
    query_string = urlencode(query or {})
    all_headers = {"host": "api.example.test"}
    if content_type is not None:
        all_headers["content-type"] = content_type
    if secret is not None:
        request = signing.Request(method, path, query_string, request_id or signing.new_request_id(), raw)
        all_headers["sipreg-request-id"] = request.request_id
        all_headers["sipreg-signature"] = signing.sign(request, secret, timestamp=timestamp)
    all_headers.update(headers or {})
    # `path` as the client sends it; an HTTP API hands it on percent-decoded (the query as sent)
    decoded_path = unquote(path)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": decoded_path,
        "rawQueryString": query_string,
        "headers": all_headers,
        "requestContext": {
            "http": {"method": method, "path": decoded_path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1"},
            "requestId": "test",
            "routeKey": "$default",
            "stage": "$default",
        },
        "isBase64Encoded": base64_body,
    }
    if query:
        event["queryStringParameters"] = dict(query)
    if raw:
        try:
            event["body"] = base64.b64encode(raw).decode() if base64_body else raw.decode()
        except UnicodeDecodeError:  # API Gateway base64-encodes what is not text
            event["body"], event["isBase64Encoded"] = base64.b64encode(raw).decode(), True
    return event


OPERATOR_ARN = "arn:aws:sts::123456789012:assumed-role/sipreg-operators/alice"


def operator_event(
    method: str,
    path: str,
    *,
    query: dict[str, str] | None = None,
    request_id: str | None = None,
    signed_headers: str = "host;sipreg-request-id;x-amz-date",
    body: bytes | str | dict[str, Any] | None = None,
    content_type: str | None = None,
) -> dict[str, Any]:
    """A request API Gateway let through an AWS_IAM route: the caller's identity in
    `requestContext.authorizer.iam`, its SigV4 Authorization header (naming what it signed), and
    for a change a request id. A dict `body` is sent as application/json."""
    headers = {
        "authorization": (
            "AWS4-HMAC-SHA256 Credential=ASIAOPERATOR/20260101/eu-west-1/execute-api/aws4_request, "
            f"SignedHeaders={signed_headers}, Signature=00"
        ),
        "x-amz-date": "20260101T000000Z",
    }
    if method != "GET":
        headers["sipreg-request-id"] = request_id or signing.new_request_id()
    if isinstance(body, dict) and content_type is None:
        content_type = "application/json"
    event = http_event(
        method, path, body, secret=None, content_type=content_type, headers=headers, query=query
    )
    event["requestContext"]["authorizer"] = {
        "iam": {
            "accessKey": "ASIAOPERATOR",
            "accountId": "123456789012",
            "callerId": "AROAOPERATOR:alice",
            "cognitoIdentity": None,
            "principalOrgId": None,
            "userArn": OPERATOR_ARN,
            "userId": "AROAOPERATOR:alice",
        }
    }
    return event


def resign(event: dict[str, Any], secret: str = SECRET) -> dict[str, Any]:
    """A sample event signed again, now, with a new request id, so it passes the 5-minute tolerance."""
    raw = event.get("body") or ""
    body = base64.b64decode(raw) if event.get("isBase64Encoded") else raw.encode()
    http = event["requestContext"]["http"]
    request = signing.Request(
        http["method"], event["rawPath"], event.get("rawQueryString") or "", signing.new_request_id(), body
    )
    headers = {
        **event["headers"],
        "sipreg-request-id": request.request_id,
        "sipreg-signature": signing.sign(request, secret),
    }
    return {**event, "headers": headers}


@dataclass
class FakeRequestIds:
    """The RequestIds table's rule over a dict: a key is taken once until its window is over."""

    until: dict[str, float] = field(default_factory=dict)

    def first_use(self, key: str, *, now: float, until: float) -> bool:
        if self.until.get(key, 0) >= now:
            return False
        self.until[key] = until
        return True


@dataclass
class FakeQueue:
    """Accepts everything, except the ids listed in `refuse` (as SQS failing those entries)."""

    refuse: set[str] = field(default_factory=set)
    sent: list[AnyEvent] = field(default_factory=list)

    def send(self, events: Sequence[AnyEvent]) -> SendResult:
        taken = [event for event in events if event.id not in self.refuse]
        self.sent.extend(taken)
        return SendResult(
            accepted=tuple(e.id for e in taken),
            not_accepted=tuple(e.id for e in events if e.id in self.refuse),
        )


@dataclass
class FakeRegistrations:
    records: list[RegistrationRecord] = field(default_factory=list)

    def list_for(self, msisdn: str) -> list[RegistrationRecord]:
        return [record for record in self.records if record.msisdn == msisdn]


@dataclass
class FakeEventLog:
    """The EventLog's paging over a list: one kind's items by sort key, newest first, filtered."""

    entries: list[EventLogEntry] = field(default_factory=list)

    def page(
        self,
        msisdn: str,
        *,
        kind: EventKind = EventKind.CHANGES,
        limit: int = 50,
        cursor: str | None = None,
        event_type: str | None = None,
        outcome: Outcome | None = None,
    ) -> tuple[list[EventLogEntry], str | None]:
        start = decode_cursor(cursor, msisdn, kind)["sk"] if cursor else None
        ordered = sorted(
            (e for e in self.entries if e.msisdn == msisdn and e.key["sk"].startswith(f"{kind}#")),
            key=lambda e: e.key["sk"],
            reverse=True,
        )
        found = [
            e
            for e in ordered
            if (start is None or e.key["sk"] < start)
            and (event_type is None or e.event_type == event_type)
            and (outcome is None or e.outcome is outcome)
        ]
        page = found[:limit]
        return page, encode_cursor(page[-1]) if len(found) > limit else None


def upsert(event_id: str = "evt-1", msisdn: str = "+4799990000", **overrides: Any) -> dict[str, Any]:
    """A valid `registration.upsert` event as JSON-like data."""
    event: dict[str, Any] = {
        "id": event_id,
        "type": "registration.upsert",
        "msisdn": msisdn,
        "registration": {"route_type": "fork", "sip_uri": "sips:pbx.example.com:5061"},
        "occurred_at": "2025-06-01T12:00:00Z",
    }
    event.update(overrides)
    return event


# --- integration: the template's resources and the local host -----------------------------------

REGION = "eu-west-1"
# The webhook secret the host seeds, in the documented shape (sipreg.signing).
HOST_SECRET_VALUE = json.dumps({"current": SECRET, "previous": ["previous-secret"]})


def aws_client(endpoint: str, service: str) -> Any:
    # Explicit placeholder keys: module-scoped fixtures run before the per-test credentials fixture.
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def template_resource(logical_id: str) -> dict[str, Any]:
    """A resource of template.yaml as written (intrinsic functions unresolved)."""
    resource: dict[str, Any] = load_template(TEMPLATE)["Resources"][logical_id]
    return resource


def template_globals() -> dict[str, Any]:
    """The template's Globals.Function, as written."""
    found: dict[str, Any] = load_template(TEMPLATE)["Globals"]["Function"]
    return found


def events_queue_like(endpoint: str) -> str:
    """A new queue with the template's EventsQueue settings, only for the test that made it.

    The host's own EventsQueue may have a consumer (the registration worker); a test that reads
    what was sent reads it here.
    """
    props = template_resource("EventsQueue")["Properties"]
    plain = (
        "FifoQueue",
        "ContentBasedDeduplication",
        "DeduplicationScope",
        "FifoThroughputLimit",
        "VisibilityTimeout",
    )
    attributes = {
        name: str(props[name]).lower() if isinstance(props[name], bool) else str(props[name])
        for name in plain
    }
    name = f"events-{uuid.uuid4().hex[:12]}.fifo"
    return str(aws_client(endpoint, "sqs").create_queue(QueueName=name, Attributes=attributes)["QueueUrl"])


def drain(endpoint: str, queue_url: str) -> list[dict[str, Any]]:
    """Every message now in the queue (received and deleted), with its system attributes."""
    sqs = aws_client(endpoint, "sqs")
    messages: list[dict[str, Any]] = []
    while True:
        batch = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0, MessageSystemAttributeNames=["All"]
        ).get("Messages", [])
        if not batch:
            return messages
        messages.extend(batch)
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(batch)],
        )


def allow_sending_to(host: LocalHost, function_logical_id: str, queue_url: str) -> None:
    """A test's own queue stands in for the stack's: the function's role may send to it too (one
    more inline policy, on the queue only; everything else stays as the template says)."""
    endpoint = host.aws_endpoint
    arn = aws_client(endpoint, "sqs").get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    statement = {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": arn}
    aws_client(endpoint, "iam").put_role_policy(
        RoleName=host.roles[function_logical_id].role_arn.rsplit("/", 1)[-1],
        PolicyName="TestQueue",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [statement]}),
    )


@contextmanager
def events_host(endpoint: str, **env: str) -> Iterator[LocalHost]:
    """The local host running template.yaml, its webhook secret seeded with HOST_SECRET_VALUE.

    `env` overrides EventsApiFunction's variables (e.g. EVENTS_QUEUE_URL of a test's own queue).
    """
    host = LocalHost(
        TEMPLATE,
        endpoint,
        region=REGION,
        stack_name=f"ev{uuid.uuid4().hex[:8]}",
        secret_values={"WebhookSecret": HOST_SECRET_VALUE},
        function_env_overrides={"EventsApiFunction": env},
        sqs_wait_seconds=1,
    )
    with host:
        if "EVENTS_QUEUE_URL" in env:
            allow_sending_to(host, "EventsApiFunction", env["EVENTS_QUEUE_URL"])
        yield host
