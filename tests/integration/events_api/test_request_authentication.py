"""Who may do what at the events API, over real HTTP: template.yaml on the local host, the local AWS
engine checking operators' SigV4 signatures and IAM policies as API Gateway's AWS_IAM routes do.

Producers sign with the webhook secret and may post events only; operators sign with AWS
credentials and may read and revoke; no signed request can be replayed as it was, nor on another
route, number or method, and a refused request changes nothing.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from devstack.host import LocalHost
from sipreg import signing
from sipreg.client import OperatorApi
from sipreg.store.request_ids import RequestIdStore
from tests.support.events_api import REGION, SECRET, aws_client, drain, upsert

A, B = "+4799996001", "+4799996002"


def iam_user(host: LocalHost, policy: str | None) -> Credentials:
    """A new IAM user of the local account holding one of the template's managed policies (or none)."""
    iam = aws_client(host.aws_endpoint, "iam")
    name = f"auth-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=name)
    if policy:
        iam.attach_user_policy(UserName=name, PolicyArn=host.resources[policy]["Ref"])
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return Credentials(key["AccessKeyId"], key["SecretAccessKey"])


@pytest.fixture(scope="module")
def operator(host: LocalHost) -> Credentials:
    return iam_user(host, "OperatorPolicy")


def sigv4(
    credentials: Credentials, method: str, url: str, headers: dict[str, str] | None = None
) -> dict[str, str]:
    request = AWSRequest(method=method, url=url, data=b"", headers=dict(headers or {}))
    SigV4Auth(credentials, "execute-api", REGION).add_auth(request)
    return dict(request.headers.items())


def queued(endpoint: str, queue_url: str) -> list[dict[str, Any]]:
    return [json.loads(m["Body"]) for m in drain(endpoint, queue_url)]


@pytest.fixture
def empty_queue(host: LocalHost, queue_url: str) -> str:
    drain(host.aws_endpoint, queue_url)
    return queue_url


def test_a_producers_signed_status_read_replayed_as_a_revoke_of_another_number_changes_nothing(
    api: str, host: LocalHost, empty_queue: str
) -> None:
    # Given a producer's fitting signature for GET /v1/registrations/A (empty body)
    read = signing.signed_headers(SECRET, "GET", f"/v1/registrations/{quote(A, safe='')}")
    # Then the read itself is forbidden: the webhook secret is no operator credential
    assert httpx.get(f"{api}/v1/registrations/{quote(A, safe='')}", headers=read).status_code == 403
    # When its headers are replayed within the window as POST /v1/subscribers/B/revoke
    replay = httpx.post(f"{api}/v1/subscribers/{quote(B, safe='')}/revoke", headers=read)
    # Then it is refused and nothing is queued (no revoke of B)
    assert replay.status_code == 403
    assert queued(host.aws_endpoint, empty_queue) == []


def test_a_captured_event_post_cannot_be_replayed_anywhere(
    api: str, host: LocalHost, empty_queue: str
) -> None:
    # Given a producer's POST /v1/events, accepted once
    body = json.dumps(upsert("auth-captured-1", msisdn=A)).encode()
    headers = {
        "Content-Type": "application/json",
        **signing.signed_headers(SECRET, "POST", "/v1/events", body),
    }
    assert httpx.post(f"{api}/v1/events", content=body, headers=headers).status_code == 202
    # When an eavesdropper replays it as it was, with a query, or on the revoke route
    again = httpx.post(f"{api}/v1/events", content=body, headers=headers)
    queried = httpx.post(f"{api}/v1/events?msisdn={quote(B)}", content=body, headers=headers)
    revoke = httpx.post(f"{api}/v1/subscribers/{quote(B, safe='')}/revoke", content=body, headers=headers)
    # Then each is refused (the id is used up; the signature fits no other request; producers
    # cannot revoke), and only the first one is on the queue
    assert (again.status_code, queried.status_code, revoke.status_code) == (401, 401, 403)
    assert [e["id"] for e in queued(host.aws_endpoint, empty_queue)] == ["auth-captured-1"]


def test_an_operator_reads_and_revokes_and_a_revoke_cannot_be_replayed(
    api: str, host: LocalHost, operator: Credentials, empty_queue: str
) -> None:
    # Given an IAM user holding the stack's OperatorPolicy
    with OperatorApi(api, region=REGION, credentials=operator) as client:
        # When it reads a number's status and revokes it
        status = client.request("GET", f"/v1/registrations/{quote(A, safe='')}")
        revoke = client.request("POST", f"/v1/subscribers/{quote(A, safe='')}/revoke", change=True)
    # Then both are done (sipreg knows nothing of A yet: 404; the revoke is queued)
    assert status.status == 404
    assert revoke.status == 202
    [revoked] = queued(host.aws_endpoint, empty_queue)
    assert (revoked["type"], revoked["msisdn"]) == ("subscriber.revoke", A)
    # When the exact signed revoke is sent again (SigV4 alone accepts it for 5 minutes)
    url = f"{api}/v1/subscribers/{quote(A, safe='')}/revoke"
    headers = sigv4(operator, "POST", url, {signing.REQUEST_ID_HEADER: signing.new_request_id()})
    assert httpx.post(url, headers=headers).status_code == 202
    replayed = httpx.post(url, headers=headers)
    # Then its used request id refuses it: one more revoke queued, not two
    assert replayed.status_code == 401
    assert len(queued(host.aws_endpoint, empty_queue)) == 1


def test_an_operators_signature_fits_only_its_number_and_method(
    api: str, host: LocalHost, operator: Credentials, empty_queue: str
) -> None:
    # Given an operator's signed GET /v1/registrations/A
    url = f"{api}/v1/registrations/{quote(A, safe='')}"
    headers = sigv4(operator, "GET", url)
    # When its headers are put on a read of B, and on a revoke of A
    other_number = httpx.get(f"{api}/v1/registrations/{quote(B, safe='')}", headers=headers)
    other_method = httpx.post(f"{api}/v1/subscribers/{quote(A, safe='')}/revoke", headers=headers)
    # Then API Gateway's check refuses both (the signature does not match), and nothing is queued
    assert other_number.status_code == other_method.status_code == 403
    assert "signature" in other_number.json()["message"]
    assert queued(host.aws_endpoint, empty_queue) == []


def test_aws_credentials_without_the_operator_policy_are_refused(api: str, host: LocalHost) -> None:
    # Given an AWS-native producer (ProducerPolicy: it may send to the queue) and a user with nothing
    for policy in ("ProducerPolicy", None):
        credentials = iam_user(host, policy)
        with OperatorApi(api, region=REGION, credentials=credentials) as client:
            answer = client.request("GET", f"/v1/registrations/{quote(A, safe='')}")
        # Then neither may read status
        assert answer.status == 403, policy
        assert "execute-api:Invoke" in answer.json()["message"]


def test_an_unsigned_or_wrongly_signed_operator_request_is_refused(api: str, operator: Credentials) -> None:
    url = f"{api}/v1/registrations/{quote(A, safe='')}"
    forged = Credentials(operator.access_key, "not-the-secret")

    assert httpx.get(url).status_code == 403
    assert httpx.get(url, headers=sigv4(forged, "GET", url)).status_code == 403


def test_a_request_id_is_taken_once_until_its_window_is_over(aws: str, host: LocalHost) -> None:
    store = RequestIdStore(host.resources["RequestIdsTable"]["Ref"])
    key, now = f"test:{uuid.uuid4().hex}", time.time()

    assert store.first_use(key, now=now, until=now + 300)
    assert not store.first_use(key, now=now + 1, until=now + 301)
    # TTL deletion lags: an id whose window is over is taken again though its item is still there
    assert store.first_use(key, now=now + 302, until=now + 602)
