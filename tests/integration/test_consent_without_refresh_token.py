"""Given an identity server that grants no refresh token (the consent's token response has none,
as when a provider ignores offline_access), sipreg stores the consent marked so, counts it, shows
it in the status API, and once its access token is due the worker records the subscriber's
registrations `awaiting_consent` with the reason, without calling the core or the identity
server. Real functions on the local host, real worker, moto server, wg2sim processes."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from urllib.parse import urlencode

import httpx
import pytest

from devstack.consent_walk import walk_consent
from devstack.wg2sim.process import Wg2simProcess
from sipreg.models import ApiVersion
from sipreg.store.registrations import RegistrationStatus
from sipreg.tokens import CONSENT_ENDED_WITHOUT_REFRESH, SERVICE_SCOPES
from tests.support.consent import ConsentStack, consent_stack, query_of
from tests.support.worker import Rig, build_rig
from tests.support.worker_events import upsert

PBX = "sips:pbx.acme.example"
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


WITHOUT_OFFLINE_ACCESS = f"openid phone {SERVICE_SCOPES[ApiVersion.V0]}"


@pytest.fixture
def rig(aws: str, wg2sim_fast: Wg2simProcess) -> Iterator[Rig]:
    yield build_rig(aws, wg2sim_fast)


@pytest.fixture(scope="module")
def stack(
    aws_endpoint: str, wg2sim: Wg2simProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ConsentStack]:
    """The consent functions asking for no offline access: the identity server grants no refresh token."""
    logs = tmp_path_factory.mktemp("no-refresh-logs")
    with consent_stack(aws_endpoint, wg2sim, logs, consent_env={"SCOPES": WITHOUT_OFFLINE_ACCESS}) as running:
        yield running


def test_the_consent_is_stored_marked_counted_and_shown_by_the_status_api(
    stack: ConsentStack, new_msisdn: Callable[[], str]
) -> None:
    msisdn = new_msisdn()
    with httpx.Client(timeout=10) as browser:
        walk = walk_consent(
            browser, f"{stack.api_url}/oauth/start?{urlencode({'msisdn': msisdn})}", msisdn=msisdn
        )
    # Then the subscriber is told it is short-lived
    assert walk.final.status_code == 200
    assert "short time only" in walk.final.text
    # And the record says so: an access token, no refresh token
    item = stack.raw_subscriber(msisdn)
    assert item is not None
    assert item["refresh_token_missing"] == {"BOOL": True}
    assert "access_token_ciphertext" in item
    assert "refresh_token_ciphertext" not in item
    # And the callback counted it (an EMF metric in its log)
    assert '"ConsentsWithoutRefreshToken":[1.0]' in stack.function_logs().replace(" ", "")
    # And the status API shows it
    answer = stack.status(msisdn)
    assert answer.status == 200, answer.body
    consent = answer.json()["consent"]
    assert (consent["status"], consent["refresh_token"]) == ("consented", False)
    assert consent["access_expires_at"]


def consent_without_refresh_token(rig: Rig, msisdn: str) -> None:
    """The pages walked and the code exchanged as the callback does, for a grant without
    offline_access: the token response carries no refresh token."""
    verifier = secrets.token_urlsafe(48)
    url = rig.identity.authorization_url(
        state=secrets.token_urlsafe(16),
        code_verifier=verifier,
        nonce=secrets.token_urlsafe(16),
        scopes=("openid", "phone", SERVICE_SCOPES[ApiVersion.V0]),
        login_hint=msisdn,
    )
    with httpx.Client(timeout=10) as http:
        walk = walk_consent(http, url, msisdn=msisdn, follow_callback=False)
    answer = rig.identity.exchange_code(query_of(walk.callback_url)["code"][0], code_verifier=verifier)
    assert answer.refresh_token is None
    rig.tokens.record_consent(msisdn, answer, subject=None)


def test_when_its_access_token_is_due_the_registration_awaits_consent_saying_why(
    rig: Rig, new_msisdn: Callable[[], str]
) -> None:
    msisdn = new_msisdn()
    consent_without_refresh_token(rig, msisdn)
    # Then the subscriber's record says the consent has no refresh token
    subscriber = rig.subscriber(msisdn)
    assert subscriber is not None
    assert subscriber.refresh_token_missing is True
    assert subscriber.refresh_token_ciphertext is None
    # When the CRM provisions the number after the access token's life (one real second here)
    calls_before = rig.sim.stats()["calls"]
    rig.send(upsert("c1", msisdn=msisdn, sip_uri=PBX, route_type="fork", at=T0))
    rig.drain()
    # Then the registration waits for consent, and its last error (the status API shows it) says why
    record = rig.record(msisdn, PBX)
    assert record is not None
    assert record.status is RegistrationStatus.AWAITING_CONSENT
    assert record.last_error is not None
    assert CONSENT_ENDED_WITHOUT_REFRESH in record.last_error
    assert [entry.outcome for entry in rig.log(msisdn)] == ["awaiting_consent"]
    # And the core was not called with the dead token, nothing is on the core
    assert rig.sim.stats()["calls"] == calls_before
    assert rig.on_core(msisdn) == []
    # And the stored consent is left as it was (a new consent replaces it)
    after = rig.subscriber(msisdn)
    assert after is not None
    assert after.refresh_lease_until is None
    assert after.version == subscriber.version
