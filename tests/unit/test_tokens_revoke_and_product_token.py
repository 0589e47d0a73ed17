"""Given consents and a client-credentials configuration, revoke cleans up at both ends and the
product token is fetched once per life; with fakes at the store, KMS and identity ports."""

from __future__ import annotations

import pytest

from sipreg.models import ApiVersion
from sipreg.store.subscribers import ConsentStatus
from sipreg.tokens import (
    CONSENT_ENDED_WITHOUT_REFRESH,
    ConsentMissing,
    ConsentRevoked,
    IdentityServerUnavailableError,
    TokenService,
    default_user_scopes,
)
from tests.support.consent_fakes import UNAVAILABLE, Clock, FakeCipher, FakeIdentityServer, FakeSubscribers

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


def test_renewed_consent_revokes_nothing_so_a_shared_grant_survives(parts) -> None:
    _, store, identity, tokens = parts
    first = identity.issue(MSISDN)
    tokens.record_consent(MSISDN, first, subject=None)
    # When the subscriber consents again (the provider may have put it under the same grant)
    second = identity.issue(MSISDN)
    tokens.record_consent(MSISDN, second, subject=None)
    # Then nothing is revoked at the server (revoking the old token could kill the whole grant),
    # and the new tokens replace the old ones here
    assert identity.revoked == []
    assert tokens.access_token_for(MSISDN) == second.access_token
    assert store.records[MSISDN].refresh_token_ciphertext is not None
    assert tokens.access_token_for(MSISDN, force_refresh=True) != second.access_token
    assert identity.refresh_calls == 1  # with the new refresh token


def test_renewed_consent_is_stored_while_the_identity_server_is_down(parts) -> None:
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


def test_revoke_of_a_subscriber_without_consent_on_record_marks_it_revoked(parts) -> None:
    # (client mode keeps no tokens per subscriber: the mark is what keeps the number off the core)
    _, store, identity, tokens = parts
    assert not tokens.consent_revoked("+4799990998")
    tokens.revoke("+4799990998")
    assert identity.revoked == []
    assert store.records["+4799990998"].status is ConsentStatus.REVOKED
    assert tokens.consent_revoked("+4799990998")
    with pytest.raises(ConsentRevoked):
        tokens.access_token_for("+4799990998")
    # and a consent lifts it
    tokens.record_consent("+4799990998", identity.issue("+4799990998"), subject=None)
    assert not tokens.consent_revoked("+4799990998")


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


# --- a consent the identity server granted no refresh token ---------------------------------------


def test_a_consent_without_refresh_token_works_until_its_access_token_expires_then_says_why(parts) -> None:
    clock, store, identity, tokens = parts
    answer = identity.issue(MSISDN, refresh_token=False)
    tokens.record_consent(MSISDN, answer, subject=None)
    assert store.records[MSISDN].refresh_token_missing is True
    # While its access token lives, it is handed out
    assert tokens.access_token_for(MSISDN) == answer.access_token
    # When it is due (less than the margin left), in this process or a fresh one
    clock.now = answer.expires_at - 60
    for service in (
        tokens,
        TokenService(
            store=store,
            cipher=FakeCipher(),
            identity=identity,
            service_scope="call.routing:write",
            clock=clock,
        ),
    ):
        with pytest.raises(ConsentMissing) as caught:
            service.access_token_for(MSISDN)
        # Then the subscriber must consent again, and the error says so (the worker records it)
        assert str(caught.value) == CONSENT_ENDED_WITHOUT_REFRESH
    # And nobody asked the identity server, and no refresh lease was left behind
    assert identity.refresh_calls == 0
    assert store.records[MSISDN].refresh_lease_until is None


def test_a_forced_refresh_without_refresh_token_is_consent_missing(parts) -> None:
    _, _, identity, tokens = parts
    tokens.record_consent(MSISDN, identity.issue(MSISDN, refresh_token=False), subject=None)
    with pytest.raises(ConsentMissing, match="no refresh token"):
        tokens.access_token_for(MSISDN, force_refresh=True)
    assert identity.refresh_calls == 0


def test_a_renewed_consent_with_a_refresh_token_clears_the_mark(parts) -> None:
    _, store, identity, tokens = parts
    tokens.record_consent(MSISDN, identity.issue(MSISDN, refresh_token=False), subject=None)
    tokens.record_consent(MSISDN, identity.issue(MSISDN), subject=None)
    assert store.records[MSISDN].refresh_token_missing is False
