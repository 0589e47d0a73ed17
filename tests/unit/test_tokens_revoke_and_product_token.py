"""Given consents and a client-credentials configuration, revoke cleans up at both ends and the
product token is fetched once per life; with fakes at the store, KMS and identity ports."""

from __future__ import annotations

import pytest

from sipreg.models import ApiVersion
from sipreg.store.subscribers import ConsentStatus
from sipreg.tokens import (
    ConsentMissing,
    IdentityServerUnavailableError,
    TokenService,
    default_user_scopes,
)
from tests.unit.consent_fakes import UNAVAILABLE, Clock, FakeCipher, FakeIdentityServer, FakeSubscribers

MSISDN = "+4799990002"


@pytest.fixture
def parts() -> tuple[Clock, FakeSubscribers, FakeIdentityServer, TokenService]:
    clock = Clock()
    store = FakeSubscribers()
    identity = FakeIdentityServer(clock)
    service = TokenService(
        store=store,
        cipher=FakeCipher(),
        identity=identity,
        service_scope="call.routing:write",
        refresh_margin_seconds=120,
        clock=clock,
    )
    return clock, store, identity, service


def test_revoke_revokes_both_tokens_at_the_server_and_deletes_them_here(parts) -> None:
    _, store, identity, tokens = parts
    answer = identity.issue(MSISDN)
    tokens.record_consent(MSISDN, answer, subject=None)
    tokens.revoke(MSISDN)
    assert identity.revoked == [
        ("refresh_token", answer.refresh_token),
        ("access_token", answer.access_token),
    ]
    record = store.records[MSISDN]
    assert record.status is ConsentStatus.REVOKED
    assert (record.access_token_ciphertext, record.refresh_token_ciphertext) == (None, None)
    assert record.revoked_at is not None


def test_renewed_consent_revokes_the_grant_it_replaces(parts) -> None:
    _, _, identity, tokens = parts
    first = identity.issue(MSISDN)
    tokens.record_consent(MSISDN, first, subject=None)
    # When the subscriber consents again
    second = identity.issue(MSISDN)
    tokens.record_consent(MSISDN, second, subject=None)
    # Then the old grant is revoked at the server, the new one is kept and used
    assert identity.revoked == [("refresh_token", first.refresh_token)]
    assert second.refresh_token in identity.live_refresh
    assert tokens.access_token_for(MSISDN) == second.access_token


def test_renewed_consent_is_stored_even_if_the_old_grant_cannot_be_revoked(parts) -> None:
    _, store, identity, tokens = parts
    tokens.record_consent(MSISDN, identity.issue(MSISDN), subject=None)
    second = identity.issue(MSISDN)
    identity.fail_with = UNAVAILABLE
    tokens.record_consent(MSISDN, second, subject=None)
    identity.fail_with = None
    assert store.records[MSISDN].status is ConsentStatus.CONSENTED
    assert tokens.access_token_for(MSISDN) == second.access_token


def test_revoke_twice_is_harmless(parts) -> None:
    _, _, identity, tokens = parts
    tokens.record_consent(MSISDN, identity.issue(MSISDN), subject=None)
    tokens.revoke(MSISDN)
    tokens.revoke(MSISDN)
    assert len(identity.revoked) == 2


def test_revoke_while_the_server_is_down_changes_nothing_here(parts) -> None:
    _, store, identity, tokens = parts
    tokens.record_consent(MSISDN, identity.issue(MSISDN), subject=None)
    before = store.records[MSISDN]
    identity.fail_with = UNAVAILABLE
    with pytest.raises(IdentityServerUnavailableError):
        tokens.revoke(MSISDN)
    assert store.records[MSISDN] == before


def test_revoke_of_an_unknown_subscriber_is_consent_missing(parts) -> None:
    *_, tokens = parts
    with pytest.raises(ConsentMissing):
        tokens.revoke("+4799990998")


def test_consent_after_revoke_is_usable_again(parts) -> None:
    _, store, identity, tokens = parts
    tokens.record_consent(MSISDN, identity.issue(MSISDN), subject=None)
    tokens.revoke(MSISDN)
    again = identity.issue(MSISDN)
    tokens.record_consent(MSISDN, again, subject=None)
    assert store.records[MSISDN].status is ConsentStatus.CONSENTED
    assert store.records[MSISDN].revoked_at is None
    assert tokens.access_token_for(MSISDN) == again.access_token


def test_product_token_is_fetched_once_and_refreshed_before_expiry(parts) -> None:
    clock, _, identity, tokens = parts
    first = tokens.product_token()
    assert tokens.product_token() == first
    assert identity.client_credentials_calls == 1
    clock.now += 3600 - 119
    second = tokens.product_token()
    assert second != first
    assert identity.client_credentials_calls == 2


def test_product_token_force_refresh_fetches_a_new_one(parts) -> None:
    _, _, identity, tokens = parts
    first = tokens.product_token()
    assert tokens.product_token(force_refresh=True) != first
    assert identity.client_credentials_calls == 2


@pytest.mark.parametrize(
    ("version", "scope"),
    [(ApiVersion.V0, "call.control:answer_and_initiate"), (ApiVersion.V1, "call.routing:write")],
)
def test_default_user_scopes_ask_for_id_token_phone_refresh_and_the_service(version, scope) -> None:
    assert default_user_scopes(version) == ("openid", "phone", "offline_access", scope)
