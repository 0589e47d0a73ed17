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

from sipreg.consent.announcements import AnnouncementError
from sipreg.consent.flow import BadRequestError, Consented, ConsentFlow, Declined, RefusalReason, Refused
from sipreg.consent.id_tokens import IdTokenVerifier
from sipreg.store.subscribers import ConsentStatus
from sipreg.tokens import (
    ACCESS_TOKEN,
    REFRESH_TOKEN,
    IdentityServerRejectedError,
    IdentityServerUnavailableError,
    TokenResponse,
    TokenService,
)
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

ASKED = ("openid", "phone", "offline_access", "call.routing:write")  # what the flow asks for


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
        verified: object = True,  # phone_number_verified as the ID token says it; None: unsaid
        nonce: str | None = None,
        refresh_token: bool = True,
        extra: dict[str, Any] | None = None,
        granted: tuple[str, ...] = ASKED,  # the answer's scope
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
        if verified is not None:
            claims["phone_number_verified"] = verified
        claims.update(extra or {})
        tokens = self.identity.issue(MSISDN, refresh_token=refresh_token, scopes=granted)
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
        scopes=ASKED,
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
    assert parts.events.event_ids[0].startswith("sipreg:consented:")  # no producer may take it first


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


@pytest.mark.parametrize("state", ["s" * 2049, "s" * 129, "not base64url!", "é" * 43])
def test_a_state_sipreg_never_issues_is_unknown_without_asking_the_table(parts: Parts, state: str) -> None:
    # The table itself refuses a key over 2048 bytes (an error, not "unknown")
    assert parts.callback({"code": "c", "state": state}) == Refused(RefusalReason.STATE_UNKNOWN)


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


def test_consent_required_is_a_decline_too(parts: Parts) -> None:
    _, record = parts.started(return_to="https://crm.example/done")
    outcome = parts.callback({"error": "consent_required", "state": record.state})
    assert outcome == Declined(error="consent_required", return_to="https://crm.example/done")


@pytest.mark.parametrize("error", ["server_error", "temporarily_unavailable"])
def test_a_provider_error_that_passes_is_the_identity_server_down_not_a_decline(
    parts: Parts, error: str
) -> None:
    # RFC 6749 §4.1.2.1: only access_denied is the subscriber saying no
    _, record = parts.started(return_to="https://crm.example/done")
    outcome = parts.callback({"error": error, "state": record.state})
    assert outcome == Refused(RefusalReason.IDENTITY_SERVER_DOWN, transient=True)
    assert parts.store.records == {}
    assert parts.states.items == {}


@pytest.mark.parametrize(
    "error",
    [
        "invalid_request",
        "unauthorized_client",
        "unsupported_response_type",
        "invalid_scope",
        "login_required",
        "interaction_required",
        "some_future_code",
    ],
)
def test_any_other_provider_error_is_our_configuration_refused_and_logged_with_its_code(
    parts: Parts, error: str, caplog: pytest.LogCaptureFixture
) -> None:
    _, record = parts.started(return_to="https://crm.example/done")
    outcome = parts.callback(
        {"error": error, "error_description": "echoed input <b>x</b>", "state": record.state}
    )
    assert outcome == Refused(RefusalReason.CLIENT_REFUSED)
    assert parts.store.records == {}
    (line,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert error in line.getMessage()
    assert "echoed input" not in caplog.text


@pytest.mark.parametrize("error", ["<script>alert(1)</script>", "x" * 65, "Server_Error", "a b"])
def test_a_provider_error_off_the_vocabulary_is_logged_as_unrecognised(
    parts: Parts, error: str, caplog: pytest.LogCaptureFixture
) -> None:
    _, record = parts.started()
    outcome = parts.callback({"error": error, "state": record.state})
    assert outcome == Refused(RefusalReason.CLIENT_REFUSED)
    assert "unrecognised" in caplog.text
    assert error not in caplog.text


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


@pytest.mark.parametrize(
    ("phone_number", "verified"),
    [(None, None), (MSISDN, None)],
    ids=["no-number-in-the-id-token", "not-said-whether-verified"],
)
def test_phone_number_comes_from_userinfo_when_the_id_token_lacks_it(
    parts: Parts, phone_number: str | None, verified: object
) -> None:
    _, record = parts.started()
    code = parts.issue_code(record, phone_number=phone_number, verified=verified)
    parts.identity.userinfo_answer = {
        "sub": "pairwise-1",
        "phone_number": MSISDN,
        "phone_number_verified": True,
    }
    assert parts.callback({"code": code, "state": record.state}) == Consented(MSISDN, None)


@pytest.mark.parametrize(
    "userinfo",
    [
        {"sub": "someone-else", "phone_number": "+4799990077"},
        {"sub": "pairwise-1 ", "phone_number": MSISDN},
        {"phone_number": MSISDN},
    ],
    ids=["other-sub", "sub-not-exactly-equal", "no-sub"],
)
def test_userinfo_about_another_subject_is_not_used(parts: Parts, userinfo: dict[str, Any]) -> None:
    # OIDC Core §5.3.2: userinfo's sub MUST match the ID token's exactly, else its values MUST NOT be used
    _, record = parts.started()
    code = parts.issue_code(record, phone_number=None)
    parts.identity.userinfo_answer = userinfo
    outcome = parts.callback({"code": code, "state": record.state})
    assert outcome == Refused(RefusalReason.ID_TOKEN_INVALID)
    assert parts.store.records == {}
    assert parts.events.consented_msisdns == []


@pytest.mark.parametrize(
    ("phone_number", "verified", "userinfo"),
    [
        pytest.param(MSISDN, False, None, id="id-token-false"),
        pytest.param(MSISDN, "true", None, id="id-token-a-string"),
        # the ID token says nothing of it, and neither does /userinfo
        pytest.param(MSISDN, None, {"sub": "pairwise-1", "phone_number": MSISDN}, id="unsaid-anywhere"),
        pytest.param(
            None,
            None,
            {"sub": "pairwise-1", "phone_number": MSISDN, "phone_number_verified": False},
            id="userinfo-false",
        ),
        # the ID token's verified claim says nothing of the number /userinfo gives
        pytest.param(None, True, {"sub": "pairwise-1", "phone_number": MSISDN}, id="userinfo-unsaid"),
    ],
)
def test_a_number_the_provider_has_not_verified_is_refused(
    parts: Parts, phone_number: str | None, verified: object, userinfo: dict[str, Any] | None
) -> None:
    # OIDC Core §5.1: phone_number_verified true, and nothing else, says the number is the subscriber's
    _, record = parts.started()
    code = parts.issue_code(record, phone_number=phone_number, verified=verified)
    if userinfo is not None:
        parts.identity.userinfo_answer = userinfo
    answer = parts.identity.codes[code][1]
    outcome = parts.callback({"code": code, "state": record.state})
    assert outcome == Refused(RefusalReason.PHONE_NOT_VERIFIED)
    assert parts.store.records == {}
    assert parts.events.consented_msisdns == []
    assert (ACCESS_TOKEN, answer.access_token) in parts.identity.revoked


@pytest.mark.parametrize(
    "granted",
    [("openid", "phone", "offline_access"), ("openid", "offline_access", "call.routing:write")],
    ids=["no-service-scope", "no-phone-scope"],
)
def test_a_grant_of_less_than_was_asked_is_refused(parts: Parts, granted: tuple[str, ...]) -> None:
    # RFC 6749 §3.3: the subscriber (or the server) may grant less; the consent would be of no use
    _, record = parts.started()
    code = parts.issue_code(record, granted=granted)
    answer = parts.identity.codes[code][1]
    outcome = parts.callback({"code": code, "state": record.state})
    assert outcome == Refused(RefusalReason.SCOPE_NOT_GRANTED)
    assert parts.store.records == {}
    assert parts.events.consented_msisdns == []
    assert parts.identity.revoked == [
        (REFRESH_TOKEN, answer.refresh_token),
        (ACCESS_TOKEN, answer.access_token),
    ]


@pytest.mark.parametrize(
    "granted",
    [("openid", "phone", "call.routing:write"), ()],
    ids=["no-offline-access: lasts as its access token", "no-scope-in-the-answer: all that was asked"],
)
def test_a_grant_without_offline_access_or_without_a_scope_answer_is_a_consent(
    parts: Parts, granted: tuple[str, ...]
) -> None:
    _, record = parts.started()
    code = parts.issue_code(record, granted=granted)
    outcome = parts.callback({"code": code, "state": record.state})
    assert isinstance(outcome, Consented)
    assert parts.events.consented_msisdns == [MSISDN]


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


# --- a consent stored but not announced ---------------------------------------------------------


@pytest.mark.parametrize(
    "failure",
    [AnnouncementError("the events queue did not take subscriber.consented"), RuntimeError("SQS: boom")],
    ids=["queue-incomplete", "anything-else"],
)
def test_a_consent_stored_but_not_announced_says_so_and_a_second_run_finishes_it(
    parts: Parts, failure: Exception
) -> None:
    # Given a queue that does not take the announcement (QueueConsentEvents raises when incomplete)
    parts.events.fail_with = failure
    _, record = parts.started(return_to="https://crm.example/done")
    outcome = parts.callback({"code": parts.issue_code(record), "state": record.state})
    # Then the outcome says the consent was saved but not announced (try again), not "nothing stored"
    assert outcome == Refused(RefusalReason.NOT_ANNOUNCED, transient=True)
    first = parts.store.records[MSISDN]
    assert first.status is ConsentStatus.CONSENTED
    assert parts.identity.revoked == []  # the stored tokens are kept
    # When the subscriber runs the flow again and the queue takes it
    parts.events.fail_with = None
    _, again = parts.started(return_to="https://crm.example/done")
    outcome = parts.callback({"code": parts.issue_code(again), "state": again.state})
    # Then it is stored (the newer tokens replace the first) and announced, once
    assert outcome == Consented(MSISDN, "https://crm.example/done")
    second = parts.store.records[MSISDN]
    assert second.status is ConsentStatus.CONSENTED
    assert second.access_token_ciphertext != first.access_token_ciphertext
    assert parts.events.consented_msisdns == [MSISDN]


# --- a flow started for one number, and the tokens of a refused callback ------------------------


def test_a_flow_started_for_one_number_is_refused_when_the_sign_in_is_for_another(parts: Parts) -> None:
    # login_hint is only a hint: the subscriber may sign in as someone else
    _, record = parts.started(msisdn="+4799990001", return_to="https://crm.example/done")
    outcome = parts.callback({"code": parts.issue_code(record), "state": record.state})
    assert outcome == Refused(RefusalReason.OTHER_NUMBER)
    assert parts.store.records == {}
    assert parts.events.consented_msisdns == []


def test_a_flow_started_for_a_number_ends_consented_when_signed_in_as_it(parts: Parts) -> None:
    _, record = parts.started(msisdn=MSISDN, return_to="https://crm.example/done")
    outcome = parts.callback({"code": parts.issue_code(record), "state": record.state})
    assert outcome == Consented(MSISDN, "https://crm.example/done")


def test_a_flow_started_without_a_number_accepts_the_one_signed_in(parts: Parts) -> None:
    _, record = parts.started()
    outcome = parts.callback(
        {"code": parts.issue_code(record, phone_number="+4799990002"), "state": record.state}
    )
    assert outcome == Consented("+4799990002", None)


def _refused_after_the_exchange(parts: Parts, case: str) -> tuple[Any, TokenResponse]:
    """Runs a flow that the code exchange succeeds for and a later check refuses."""
    _, record = parts.started(msisdn="+4799990001" if case == "other-number" else None)
    match case:
        case "other-number":
            code = parts.issue_code(record)
        case "no-phone-number":
            code = parts.issue_code(record, phone_number=None)
        case "bad-id-token":
            code = parts.issue_code(record, nonce="someone-elses-nonce")
        case "userinfo-of-another-subject":
            code = parts.issue_code(record, phone_number=None)
            parts.identity.userinfo_answer = {"sub": "someone-else", "phone_number": MSISDN}
    answer = parts.identity.codes[code][1]
    return parts.callback({"code": code, "state": record.state}), answer


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("other-number", RefusalReason.OTHER_NUMBER),
        ("no-phone-number", RefusalReason.NO_PHONE_NUMBER),
        ("bad-id-token", RefusalReason.ID_TOKEN_INVALID),
        ("userinfo-of-another-subject", RefusalReason.ID_TOKEN_INVALID),
    ],
)
def test_a_refusal_after_the_code_exchange_revokes_the_issued_tokens(
    parts: Parts, case: str, reason: RefusalReason
) -> None:
    outcome, answer = _refused_after_the_exchange(parts, case)
    assert outcome == Refused(reason)
    assert parts.store.records == {}
    assert parts.identity.revoked == [
        (REFRESH_TOKEN, answer.refresh_token),
        (ACCESS_TOKEN, answer.access_token),
    ]
    assert parts.identity.live_refresh == {}


def test_a_failed_revocation_is_logged_without_the_token_and_changes_no_outcome(
    parts: Parts, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unavailable(token: str, *, token_type_hint: str) -> None:
        raise IdentityServerUnavailableError("revoke: ConnectError")

    monkeypatch.setattr(parts.identity, "revoke", unavailable)
    outcome, answer = _refused_after_the_exchange(parts, "other-number")
    assert outcome == Refused(RefusalReason.OTHER_NUMBER)
    assert "not revoked" in caplog.text
    assert answer.access_token not in caplog.text
    assert str(answer.refresh_token) not in caplog.text


def test_a_refusal_for_a_number_with_a_stored_consent_leaves_its_grant_alone(parts: Parts) -> None:
    # Given MSISDN consented before (a provider may issue its next code under the same grant,
    # and revoking a refresh token may revoke the whole grant: RFC 7009 §2.1)
    _, record = parts.started()
    assert isinstance(parts.callback({"code": parts.issue_code(record), "state": record.state}), Consented)
    stored = parts.store.records[MSISDN]
    # When a flow started for another number is signed in as MSISDN
    outcome, _ = _refused_after_the_exchange(parts, "other-number")
    # Then it is refused, and neither the stored consent nor the grant it may share is touched
    assert outcome == Refused(RefusalReason.OTHER_NUMBER)
    assert parts.store.records[MSISDN] == stored
    assert parts.identity.revoked == []


@pytest.mark.parametrize("keys", [{}, {"keys": None}, {"keys": "x"}])
def test_a_broken_key_set_is_a_refusal_not_an_exception(parts: Parts, keys: dict[str, Any]) -> None:
    parts.identity.keys = keys
    _, record = parts.started()
    outcome = parts.callback({"code": parts.issue_code(record), "state": record.state})
    assert outcome == Refused(RefusalReason.ID_TOKEN_INVALID)
    assert parts.store.records == {}
