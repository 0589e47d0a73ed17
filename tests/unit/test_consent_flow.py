"""Given the consent flow with fakes at its ports (state table, subscriber table, KMS, identity
server, queue), start keeps what the callback needs, and the callback stores a consent exactly
when everything checks out and nothing otherwise."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from sipreg.consent.flow import BadRequestError, Consented, ConsentFlow, Declined, RefusalReason, Refused
from sipreg.consent.id_tokens import IdTokenVerifier
from sipreg.store.subscribers import ConsentStatus
from sipreg.tokens import IdentityServerRejectedError, TokenResponse, TokenService
from tests.support.consent_fakes import (
    UNAVAILABLE,
    Clock,
    FakeCipher,
    FakeEvents,
    FakeIdentityServer,
    FakeStates,
    FakeSubscribers,
)

ISSUER = "https://id.example"
CLIENT = "sipreg"
MSISDN = "+4799990003"
KEY = RSAKey.generate_key(2048, parameters={"kid": "k1", "alg": "RS256"})
ALLOWED = ("https://crm.example/done", "http://localhost:8080/")


@dataclass
class Parts:
    clock: Clock
    states: FakeStates
    store: FakeSubscribers
    identity: FakeIdentityServer
    events: FakeEvents
    flow: ConsentFlow

    browser: str | None = None  # the binding cookie the last start gave this browser

    def started(self, **kwargs: Any) -> tuple[str, Any]:
        started = self.flow.start(
            msisdn=kwargs.get("msisdn"), return_to=kwargs.get("return_to"), browser=self.browser
        )
        self.browser = started.browser
        (record,) = self.states.items.values()
        return started.url, record

    def callback(self, params: dict[str, str], *, browser: str | None = "this") -> Any:
        """The callback, from this browser by default (`browser=None`: one without the cookie)."""
        return self.flow.callback(params, browser=self.browser if browser == "this" else browser)

    def issue_code(
        self,
        record: Any,
        *,
        phone_number: str | None = MSISDN,
        nonce: str | None = None,
        refresh_token: bool = True,
    ) -> str:
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "aud": CLIENT,
            "sub": "pairwise-1",
            "iat": int(self.clock()),
            "exp": int(self.clock()) + 600,
            "nonce": nonce or record.nonce,
        }
        if phone_number:
            claims["phone_number"] = phone_number
        tokens = self.identity.issue(MSISDN, refresh_token=refresh_token)
        answer = TokenResponse(
            access_token=tokens.access_token,
            expires_at=tokens.expires_at,
            scopes=tokens.scopes,
            refresh_token=tokens.refresh_token,
            id_token=jwt.encode({"alg": "RS256", "kid": "k1"}, claims, KEY),
        )
        self.identity.codes["code-1"] = (record.code_verifier, answer)
        return "code-1"


@pytest.fixture
def parts() -> Parts:
    clock = Clock()
    states, store, events = FakeStates(), FakeSubscribers(), FakeEvents()
    identity = FakeIdentityServer(clock)
    identity.keys = dict(KeySet([KEY]).as_dict(private=False))
    tokens = TokenService(
        store=store, cipher=FakeCipher(), identity=identity, service_scope="call.routing:write", clock=clock
    )
    flow = ConsentFlow(
        states=states,
        tokens=tokens,
        identity=identity,
        id_tokens=IdTokenVerifier(identity.jwks, issuer=ISSUER, audience=CLIENT, clock=clock),
        events=events,
        scopes=("openid", "phone", "offline_access", "call.routing:write"),
        return_to_allowlist=ALLOWED,
        clock=clock,
    )
    return Parts(clock, states, store, identity, events, flow)


# --- start --------------------------------------------------------------------------------------


def test_start_keeps_state_verifier_and_nonce_for_ten_minutes(parts: Parts) -> None:
    url, record = parts.started(msisdn=MSISDN, return_to="https://crm.example/done/42")
    query = parse_qs(urlsplit(url).query)
    assert query["state"] == [record.state]
    assert query["nonce"] == [record.nonce]
    assert query["login_hint"] == [MSISDN]
    assert len(record.state) >= 43  # 256 bits, base64url
    assert 43 <= len(record.code_verifier) <= 128
    assert record.expires_at - record.created_at == 600
    assert record.return_to == "https://crm.example/done/42"


def test_every_start_gets_its_own_state(parts: Parts) -> None:
    parts.flow.start(msisdn=None, return_to=None, browser=None)
    parts.flow.start(msisdn=None, return_to=None, browser=None)
    first, second = parts.states.items.values()
    assert len({first.state, second.state}) == 2
    assert len({first.code_verifier, second.code_verifier}) == 2


@pytest.mark.parametrize(
    "return_to",
    [
        "https://crm.example.evil.test/done",
        "https://crm.example/donezo",
        "http://crm.example/done",
        "https://user@crm.example/done",
        "https://crm.example:444/done",
        "//crm.example/done",
        "javascript:alert(1)",
    ],
)
def test_return_to_off_the_allow_list_is_refused_naming_the_field(parts: Parts, return_to: str) -> None:
    with pytest.raises(BadRequestError) as caught:
        parts.flow.start(msisdn=None, return_to=return_to)
    assert caught.value.field == "return_to"
    assert parts.states.items == {}


def test_bad_msisdn_is_refused_naming_the_field(parts: Parts) -> None:
    with pytest.raises(BadRequestError) as caught:
        parts.flow.start(msisdn="0047 9999", return_to=None)
    assert caught.value.field == "msisdn"
    assert parts.states.items == {}


# --- callback -----------------------------------------------------------------------------------


def test_callback_stores_the_consent_and_announces_it(parts: Parts) -> None:
    _, record = parts.started(return_to="http://localhost:8080/welcome")
    code = parts.issue_code(record)
    outcome = parts.callback({"code": code, "state": record.state})
    assert outcome == Consented(msisdn=MSISDN, return_to="http://localhost:8080/welcome", refresh_token=True)
    stored = parts.store.records[MSISDN]
    assert stored.status is ConsentStatus.CONSENTED
    assert stored.subject == "pairwise-1"
    assert stored.access_token_ciphertext is not None
    assert parts.events.consented_msisdns == [MSISDN]


def test_state_is_consumed_so_a_replay_is_refused(parts: Parts) -> None:
    _, record = parts.started()
    code = parts.issue_code(record)
    parts.callback({"code": code, "state": record.state})
    assert parts.callback({"code": code, "state": record.state}) == Refused(RefusalReason.STATE_UNKNOWN)
    assert parts.events.consented_msisdns == [MSISDN]


def test_expired_state_is_refused_and_nothing_is_stored(parts: Parts) -> None:
    _, record = parts.started()
    code = parts.issue_code(record)
    parts.clock.now += 601
    assert parts.callback({"code": code, "state": record.state}) == Refused(RefusalReason.STATE_EXPIRED)
    assert parts.store.records == {}


@pytest.mark.parametrize("params", [{"code": "c"}, {"code": "c", "state": ""}, {}])
def test_missing_state_is_refused(parts: Parts, params: dict[str, str]) -> None:
    assert parts.callback(params) == Refused(RefusalReason.STATE_MISSING)


def test_declined_consent_stores_nothing_and_uses_up_the_state(parts: Parts) -> None:
    _, record = parts.started(return_to="https://crm.example/done")
    outcome = parts.callback({"error": "access_denied", "state": record.state})
    assert outcome == Declined(error="access_denied", return_to="https://crm.example/done")
    assert parts.store.records == {}
    assert parts.events.consented_msisdns == []
    assert parts.states.items == {}


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        ({"nonce": "someone-elses-nonce"}, RefusalReason.ID_TOKEN_INVALID),
        ({"code": "never-issued"}, RefusalReason.CODE_REFUSED),
        ({"code": ""}, RefusalReason.CODE_MISSING),
    ],
)
def test_bad_code_or_id_token_is_refused_and_stores_nothing(
    parts: Parts, tamper: dict[str, str], reason: RefusalReason
) -> None:
    _, record = parts.started()
    code = parts.issue_code(record, nonce=tamper.get("nonce"))
    outcome = parts.callback({"code": tamper.get("code", code), "state": record.state})
    assert outcome == Refused(reason)
    assert parts.store.records == {}
    assert parts.events.consented_msisdns == []


def test_phone_number_comes_from_userinfo_when_the_id_token_lacks_it(parts: Parts) -> None:
    _, record = parts.started()
    code = parts.issue_code(record, phone_number=None)
    parts.identity.userinfo_answer = {"phone_number": MSISDN}
    assert parts.callback({"code": code, "state": record.state}) == Consented(MSISDN, None)


def test_no_phone_number_anywhere_is_refused(parts: Parts) -> None:
    _, record = parts.started()
    code = parts.issue_code(record, phone_number=None)
    outcome = parts.callback({"code": code, "state": record.state})
    assert outcome == Refused(RefusalReason.NO_PHONE_NUMBER)
    assert parts.store.records == {}


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (UNAVAILABLE, Refused(RefusalReason.IDENTITY_SERVER_DOWN, transient=True)),
        (IdentityServerRejectedError("invalid_client"), Refused(RefusalReason.CLIENT_REFUSED)),
    ],
)
def test_identity_server_trouble_is_a_clear_refusal(
    parts: Parts, failure: Exception, expected: Refused
) -> None:
    _, record = parts.started()
    code = parts.issue_code(record)
    parts.identity.fail_with = failure
    assert parts.callback({"code": code, "state": record.state}) == expected
    assert parts.store.records == {}


def test_callback_logs_no_code_state_or_token(parts: Parts, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    _, record = parts.started(msisdn=MSISDN)
    code = parts.issue_code(record)
    access = parts.identity.codes[code][1].access_token
    parts.callback({"code": code, "state": record.state})
    assert "consent stored" in caplog.text
    for secret in (code, record.state, record.code_verifier, record.nonce, access, MSISDN):
        assert secret not in caplog.text


# --- the browser that started the flow, and the issuer (RFC 9700 §4.7, RFC 9207) ---------------


def test_start_binds_the_flow_to_the_browser_and_reuses_a_browsers_binding(parts: Parts) -> None:
    _, first = parts.started()
    binding = parts.browser
    assert binding is not None
    assert len(binding) == 43
    assert first.browser_hash is not None
    assert binding not in first.browser_hash  # only its hash is stored
    parts.states.items.clear()
    _, second = parts.started()  # the same browser (its cookie) starts another flow
    assert parts.browser == binding
    assert second.browser_hash == first.browser_hash


def test_a_malformed_binding_cookie_is_replaced(parts: Parts) -> None:
    started = parts.flow.start(msisdn=None, return_to=None, browser="x; Path=/")
    assert started.browser != "x; Path=/"
    assert len(started.browser) == 43


@pytest.mark.parametrize("browser", [None, "A" * 43])
def test_a_callback_in_another_browser_is_refused_and_stores_nothing(
    parts: Parts, browser: str | None
) -> None:
    # Login CSRF: the attacker's own flow, finished in the victim's browser (no or another cookie)
    _, record = parts.started()
    code = parts.issue_code(record)
    outcome = parts.callback({"code": code, "state": record.state}, browser=browser)
    assert outcome == Refused(RefusalReason.OTHER_BROWSER)
    assert parts.store.records == {}
    assert parts.events.consented_msisdns == []
    assert "code-1" in parts.identity.codes  # the code was never exchanged


def test_a_callback_naming_another_issuer_is_refused(parts: Parts) -> None:
    _, record = parts.started()
    code = parts.issue_code(record)
    outcome = parts.callback({"code": code, "state": record.state, "iss": "https://evil.example"})
    assert outcome == Refused(RefusalReason.ISSUER_MISMATCH)
    assert parts.store.records == {}
    assert "code-1" in parts.identity.codes


def test_a_callback_with_our_issuer_is_accepted(parts: Parts) -> None:
    parts.identity.announces_iss = True
    _, record = parts.started()
    code = parts.issue_code(record)
    outcome = parts.callback({"code": code, "state": record.state, "iss": ISSUER})
    assert isinstance(outcome, Consented)


def test_iss_is_required_when_the_identity_server_announces_it(parts: Parts) -> None:
    parts.identity.announces_iss = True
    _, record = parts.started()
    code = parts.issue_code(record)
    assert parts.callback({"code": code, "state": record.state}) == Refused(RefusalReason.ISSUER_MISMATCH)
    assert parts.store.records == {}


def test_an_error_response_from_another_issuer_is_refused_too(parts: Parts) -> None:
    _, record = parts.started()
    outcome = parts.callback({"error": "access_denied", "state": record.state, "iss": "https://evil.example"})
    assert outcome == Refused(RefusalReason.ISSUER_MISMATCH)


# --- a consent without a refresh token ----------------------------------------------------------


def test_a_consent_without_a_refresh_token_is_stored_and_says_so(parts: Parts) -> None:
    _, record = parts.started()
    code = parts.issue_code(record, refresh_token=False)
    outcome = parts.callback({"code": code, "state": record.state})
    assert outcome == Consented(MSISDN, None, refresh_token=False)
    stored = parts.store.records[MSISDN]
    assert stored.refresh_token_missing is True
    assert stored.refresh_token_ciphertext is None
    assert parts.events.consented_msisdns == [MSISDN]
