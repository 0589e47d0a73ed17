"""Given a subscriber who consented through the real flow, `sipreg.tokens` refreshes with rotation
(even with two refreshers at once), records a refused refresh as revoked consent, revokes at both
ends, and serves client-credentials tokens. Over real sockets: moto server, wg2sim, local host."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from urllib.parse import urlencode

import grpc
import httpx
import pytest

from devstack.consent_walk import walk_consent
from devstack.wg2sim.process import Wg2simProcess
from sipreg.proto.wgtwo.sipbreakout.v0 import sipbreakout_pb2 as v0
from sipreg.proto.wgtwo.sipbreakout.v0 import sipbreakout_pb2_grpc as v0_grpc
from sipreg.store.subscribers import ConsentStatus, SubscriberStore
from sipreg.tokens import (
    ConsentRevoked,
    KmsCipher,
    TokenService,
)
from sipreg.wiring import parts
from tests.support.consent import ConsentStack, consent_stack


@pytest.fixture(scope="module")
def stack(
    aws_endpoint: str, wg2sim: Wg2simProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ConsentStack]:
    with consent_stack(aws_endpoint, wg2sim, tmp_path_factory.mktemp("token-logs")) as running:
        yield running


@pytest.fixture
def consented(stack: ConsentStack, new_msisdn: Callable[[], str]) -> str:
    """A fresh subscriber who walked the consent pages and allowed."""
    msisdn = new_msisdn()
    with httpx.Client(timeout=10) as http:
        walk = walk_consent(
            http, f"{stack.api_url}/oauth/start?{urlencode({'msisdn': msisdn})}", msisdn=msisdn
        )
    assert walk.final.status_code == 200, walk.final.text
    return msisdn


def stored(stack: ConsentStack, msisdn: str) -> tuple[str, str]:
    record = SubscriberStore(stack.subscribers_table).get(msisdn)
    assert record is not None
    assert record.access_token_ciphertext is not None
    assert record.refresh_token_ciphertext is not None
    cipher = KmsCipher(stack.ref("DataKey", "Arn"), client=stack.aws("kms"))
    return (
        cipher.decrypt(record.access_token_ciphertext, msisdn=msisdn),
        cipher.decrypt(record.refresh_token_ciphertext, msisdn=msisdn),
    )


def upsert(stack: ConsentStack, wg2_channel, token: str, phone_number: str | None = None) -> int:
    registration = v0.Registration(sip_uri="sips:pbx.acme.example", route_type=v0.ROUTE_TYPE_FALLBACK)
    if phone_number:
        registration.phone_number.e164 = phone_number
    try:
        answer = v0_grpc.SipBreakoutServiceStub(wg2_channel(stack.sim)).UpsertRegistration(
            v0.UpsertRegistrationRequest(registration=registration),
            metadata=[("authorization", f"Bearer {token}")],
            timeout=5,
        )
    except grpc.RpcError as error:
        return -error.code().value[0]  # type: ignore[no-any-return]
    return int(answer.status_code)


UNAUTHENTICATED = -grpc.StatusCode.UNAUTHENTICATED.value[0]


def test_refresh_rotates_the_stored_tokens_and_the_old_refresh_token_dies(
    stack: ConsentStack, consented: str, aws: str, wg2_channel, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    old_access, old_refresh = stored(stack, consented)
    # When the core refused the token and the worker forces a refresh
    new_access = stack.token_service().access_token_for(consented, force_refresh=True)
    # Then a new access token and a rotated refresh token are stored (encrypted)
    stored_access, new_refresh = stored(stack, consented)
    assert new_access == stored_access != old_access
    assert new_refresh != old_refresh
    raw = json.dumps(stack.raw_subscriber(consented), default=repr)
    assert new_access not in raw
    assert new_refresh not in raw
    # And the new token works at the core
    assert upsert(stack, wg2_channel, new_access) == v0.STATUS_CODE_OK
    # And no token appears in our log lines
    for token in (old_access, old_refresh, new_access, new_refresh):
        assert token not in caplog.text
    # And the rotated-out refresh token is refused by the server
    assert stack.refresh_at_identity_server(old_refresh).json()["error"] == "invalid_grant"


def test_two_refreshers_at_once_end_with_one_working_token_set(
    stack: ConsentStack, consented: str, aws: str, wg2_channel, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sipreg.tokens")
    # Given two worker processes (own caches) that both find the token due for refresh
    workers = [stack.token_service(refresh_margin_seconds=10_000) for _ in range(2)]
    barrier = threading.Barrier(2)
    results: list[str] = []
    errors: list[BaseException] = []

    def work(tokens: TokenService) -> None:
        barrier.wait()
        try:
            results.append(tokens.access_token_for(consented))
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    # Then neither saw invalid_grant (or any error), and both use the same new token
    assert errors == []
    assert len(results) == 2
    assert results[0] == results[1]
    assert caplog.text.count("refreshed the access token") == 1  # one refresh, the other waited
    access, refresh = stored(stack, consented)
    assert access == results[0]
    record = SubscriberStore(stack.subscribers_table).get(consented)
    assert record is not None
    assert record.status is ConsentStatus.CONSENTED
    assert record.refresh_lease_until is None
    # And the stored token set works: the core takes the access token, the server the refresh token
    assert upsert(stack, wg2_channel, access) == v0.STATUS_CODE_OK
    assert "access_token" in stack.refresh_at_identity_server(refresh).json()


def test_invalid_grant_at_refresh_marks_the_subscriber_revoked(
    stack: ConsentStack, consented: str, aws: str
) -> None:
    # Given the subscriber's grant was revoked at the identity server (e.g. in the operator's app)
    _, refresh = stored(stack, consented)
    answer = stack.revoke_at_identity_server(refresh)
    assert answer.status_code == 200
    # When a refresh is attempted, Then ConsentRevoked, and the subscriber is marked so, tokens gone
    tokens = stack.token_service()
    with pytest.raises(ConsentRevoked):
        tokens.access_token_for(consented, force_refresh=True)
    item = stack.raw_subscriber(consented)
    assert item is not None
    assert item["status"]["S"] == "revoked"
    assert "access_token_ciphertext" not in item
    assert "refresh_token_ciphertext" not in item
    # And nobody retries it: a fresh process is refused at once too
    with pytest.raises(ConsentRevoked):
        stack.token_service().access_token_for(consented)


def test_revoke_works_at_both_ends(stack: ConsentStack, consented: str, aws: str, wg2_channel) -> None:
    access, refresh = stored(stack, consented)
    assert upsert(stack, wg2_channel, access) == v0.STATUS_CODE_OK
    # When sipreg revokes the subscriber
    stack.token_service().revoke(consented)
    # Then the core refuses the access token, the server the refresh token
    assert upsert(stack, wg2_channel, access) == UNAUTHENTICATED
    assert stack.refresh_at_identity_server(refresh).json()["error"] == "invalid_grant"
    assert stack.userinfo(access).status_code == 401
    # And nothing usable is stored any more
    item = stack.raw_subscriber(consented)
    assert item is not None
    assert item["status"]["S"] == "revoked"
    assert {"access_token_ciphertext", "refresh_token_ciphertext"}.isdisjoint(item)


def test_a_renewed_consent_in_the_same_browser_leaves_working_tokens(
    stack: ConsentStack, new_msisdn: Callable[[], str], aws: str, wg2_channel
) -> None:
    # Defect: the provider reuses the browser session's grant for the new code; revoking the
    # replaced refresh token (RFC 7009 §2.1) revoked the whole grant, the new tokens with it.
    msisdn = new_msisdn()
    link = f"{stack.api_url}/oauth/start?{urlencode({'msisdn': msisdn})}"
    with httpx.Client(timeout=10) as browser:
        assert walk_consent(browser, link, msisdn=msisdn).final.status_code == 200
        first_access, first_refresh = stored(stack, msisdn)
        # When the same subscriber consents again in the same browser (signed in already)
        again = walk_consent(browser, link, msisdn=msisdn)
    assert again.pin is None  # no number or PIN asked: the same session
    assert again.final.status_code == 200, again.final.text
    # Then the new tokens are stored and work: the core takes the access token
    second_access, second_refresh = stored(stack, msisdn)
    assert second_refresh != first_refresh
    assert upsert(stack, wg2_channel, second_access) == v0.STATUS_CODE_OK
    # And a forced refresh with the stored refresh token gives a working access token
    refreshed = stack.token_service().access_token_for(msisdn, force_refresh=True)
    assert refreshed != second_access
    assert upsert(stack, wg2_channel, refreshed) == v0.STATUS_CODE_OK
    assert upsert(stack, wg2_channel, first_access) == v0.STATUS_CODE_OK  # the grant lives on


def test_client_credentials_mode_gets_one_product_token_the_core_takes(
    stack: ConsentStack, aws: str, wg2_channel, new_msisdn: Callable[[], str]
) -> None:
    tokens = parts.token_service(stack.token_settings(AUTH_MODE="client"))
    first = tokens.product_token()
    assert tokens.product_token() == first  # cached per process
    msisdn = new_msisdn()
    assert upsert(stack, wg2_channel, first, phone_number=msisdn) == v0.STATUS_CODE_OK
    assert msisdn in [r["msisdn"] for r in stack.sim.registrations()]
    assert tokens.product_token(force_refresh=True) != first
