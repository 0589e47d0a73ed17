"""The events API over real HTTP, served by the local host from template.yaml (payload 2.0).

A schemathesis run against the published OpenAPI document finds no 5xx and no answer the document
does not describe; a few routes are then checked end to end against moto server.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import boto3
import httpx
import pytest
import requests
import schemathesis
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from devstack.aws_engine import ROOT
from devstack.host import LocalHost
from sipreg import signing
from sipreg.client import OperatorApi
from sipreg.models import RouteSpec
from sipreg.store import registrations
from sipreg.store.event_log import EventLog, EventLogEntry, Outcome
from sipreg.store.registrations import RegistrationRecord, RegistrationStatus, RegistrationStore
from tests.support.events_api import REGION, SECRET, drain, upsert
from tests.support.events_api import ROOT as REPO

SCHEMA = schemathesis.openapi.from_dict(json.loads((REPO / "docs" / "openapi.json").read_text()))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


class Signed(requests.auth.AuthBase):
    """Signs each request as it is about to be sent, as its caller must: `POST /v1/events` as a
    producer (HMAC over the exact request), every other route as an operator (SigV4 with the local
    account's root credentials, a request id on changes)."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        body = request.body if isinstance(request.body, bytes) else str(request.body or "").encode()
        url = urlsplit(str(request.url))
        method = str(request.method)
        if url.path.endswith("/v1/events"):
            request.headers.update(signing.signed_headers(SECRET, method, url.path, body, query=url.query))
            return request
        aws = AWSRequest(method=method, url=str(request.url), data=body, headers=dict(request.headers))
        if method != "GET":
            aws.headers[signing.REQUEST_ID_HEADER] = signing.new_request_id()
        SigV4Auth(Credentials(ROOT.access_key_id, ROOT.secret_access_key), "execute-api", REGION).add_auth(
            aws
        )
        request.headers.update(dict(aws.headers.items()))
        return request


@pytest.fixture(scope="module")
def signed_session() -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.auth = Signed()
        yield session


@SCHEMA.parametrize()
@settings(
    max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None, derandomize=True
)
def test_no_request_gets_a_5xx_or_an_answer_the_document_does_not_describe(
    case: Any, api: str, signed_session: requests.Session
) -> None:
    case.call_and_validate(base_url=api, session=signed_session, checks=CHECKS, timeout=10)


def signed(body: bytes) -> dict[str, str]:
    return {"Content-Type": "application/json", **signing.signed_headers(SECRET, "POST", "/v1/events", body)}


def test_a_signed_batch_over_http_lands_on_the_queue(api: str, queue_url: str, aws_endpoint: str) -> None:
    drain(aws_endpoint, queue_url)  # what the fuzzing above left there
    body = json.dumps({"events": [upsert("http-1"), upsert("http-2", msisdn="+4799990009")]}).encode()

    answer = httpx.post(f"{api}/v1/events", content=body, headers=signed(body))

    assert (answer.status_code, answer.json()) == (202, {"accepted": ["http-1", "http-2"]})
    assert sorted(json.loads(m["Body"])["id"] for m in drain(aws_endpoint, queue_url)) == [
        "http-1",
        "http-2",
    ]


def test_a_body_over_256_kib_is_refused_413_over_http(api: str) -> None:
    body = b'{"pad": "' + b"x" * (256 * 1024) + b'"}'

    answer = httpx.post(f"{api}/v1/events", content=body, headers=signed(body))

    assert answer.status_code == 413
    assert answer.headers["content-type"] == "application/problem+json"


def test_the_running_api_serves_the_published_openapi_document(api: str) -> None:
    answer = httpx.get(f"{api}/v1/openapi.json")

    assert answer.status_code == 200
    assert answer.json() == json.loads((REPO / "docs" / "openapi.json").read_text())


def test_the_status_route_reads_the_template_tables(aws: str, api: str, host: LocalHost) -> None:
    msisdn, moment = "+4799997777", datetime(2025, 6, 1, 12, tzinfo=UTC)
    RegistrationStore(host.resources["RegistrationsTable"]["Ref"]).save(
        RegistrationRecord(
            msisdn=msisdn,
            sip_uri="sips:pbx.example.com",
            status=RegistrationStatus.REJECTED,
            desired=RouteSpec(route_type="loop"),  # type: ignore[arg-type]
            last_error="NOT_ACCEPTABLE: unknown TAS",
            last_event_id="crm-9",
            updated_at=moment,
        ),
        read_version=None,
    )
    EventLog(host.resources["EventLogTable"]["Ref"]).write(
        EventLogEntry(
            msisdn=msisdn,
            event_id="crm-9",
            event_type="registration.upsert",
            outcome=Outcome.REJECTED,
            reason="unknown TAS",
            sip_uri="sips:pbx.example.com",
            occurred_at=moment,
            recorded_at=datetime.now(UTC),
        )
    )
    operator = Credentials(ROOT.access_key_id, ROOT.secret_access_key)

    with OperatorApi(api, region=REGION, credentials=operator) as client:
        status, body = client.status(msisdn)
        unknown, _ = client.status("+4799997778")

    assert status == 200
    assert [(r["sip_uri"], r["status"], r["last_error"]) for r in body["registrations"]] == [
        ("sips:pbx.example.com", "rejected", "NOT_ACCEPTABLE: unknown TAS")
    ]
    assert [(e["event_id"], e["outcome"]) for e in body["events"]] == [("crm-9", "rejected")]
    assert unknown == 404


def boto3_table(endpoint: str, name: str) -> Any:
    return boto3.resource("dynamodb", endpoint_url=endpoint, region_name=REGION).Table(name)


def test_a_number_with_thousands_of_deleted_registrations_still_has_a_status(
    aws: str, api: str, host: LocalHost
) -> None:
    # Given a number whose producer made and deleted 5,000 sip_uris, each with a long last error:
    # all of them would be 6.5 MB of JSON, past what Lambda answers (the host refuses it, as Lambda)
    msisdn, table = "+4799997779", host.resources["RegistrationsTable"]["Ref"]
    first = datetime(2025, 6, 1, 12, tzinfo=UTC)
    with boto3_table(aws, table).batch_writer() as batch:
        for index in range(5000):
            record = RegistrationRecord(
                msisdn=msisdn,
                sip_uri=f"sips:pbx-{index:04}.example.com",
                status=RegistrationStatus.DELETED,
                last_error="x" * 1000,
                updated_at=first + timedelta(seconds=index),
            )
            batch.put_item(Item=registrations._to_item(record))
    live = RegistrationRecord(
        msisdn=msisdn,
        sip_uri="sips:voicemail.example.com",
        status=RegistrationStatus.ACTIVE,
        desired=RouteSpec(route_type="fallback"),  # type: ignore[arg-type]
        updated_at=first,
    )
    RegistrationStore(table).save(live, read_version=None)
    operator = Credentials(ROOT.access_key_id, ROOT.secret_access_key)
    # When an operator asks for its status
    with OperatorApi(api, region=REGION, credentials=operator) as client:
        status, body = client.status(msisdn)
    # Then it shows the live one and the 20 deleted last, and counts the others
    assert status == 200
    shown = [r["sip_uri"] for r in body["registrations"]]
    assert shown == sorted(
        [f"sips:pbx-{index:04}.example.com" for index in range(4980, 5000)] + [live.sip_uri]
    )
    assert body["deleted_not_shown"] == 4980
