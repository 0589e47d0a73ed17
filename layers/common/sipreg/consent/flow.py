"""The consent flow: `/oauth/start` and `/oauth/callback` as plain logic, with ports injected.

    flow = sipreg.wiring.consent.from_env()                                # one per process
    started = flow.start(msisdn="+4799990000", return_to=None, browser=cookie)
    # 302 the browser to started.url, setting the cookie BROWSER_COOKIE = started.browser
    outcome = flow.callback({"code": ..., "state": ..., "iss": ...}, browser=cookie)
    # Consented | Declined | Refused

Start keeps a fresh state (256 random bits), PKCE verifier and nonce in the OAuthStates table,
with a hash of the browser's binding: a random value in a short-lived HttpOnly SameSite cookie,
so only the browser that started a flow can finish it (RFC 9700 §4.7: no login CSRF). It asks
for `offline_access` with `prompt=consent` (OIDC Core §11; see `sipreg.oauth_client`).

The callback consumes that state exactly once, refuses a callback from another browser and one
whose `iss` is not our issuer (RFC 9207; required when the provider announces it), exchanges the
code (with the verifier), checks the ID token (signature by the identity server's JWKS, `iss`,
`aud`, `azp`, `exp`, `iat`, `sub`, `nonce`), takes the MSISDN from its `phone_number` (or from
`/userinfo`, whose `sub` must be the ID token's: OIDC Core §5.3.2), refuses a number other than
the one the flow was started for (`login_hint` is only a hint), stores the KMS-encrypted tokens
and announces `subscriber.consented` so registrations waiting for consent get applied. A consent
without a refresh token is stored and says so (`Consented.refresh_token`).

An error answer is a decline only for `access_denied` (RFC 6749 §4.1.2.1) or OIDC's
`consent_required`; `server_error` and `temporarily_unavailable` are the identity server down, any
other code is our client's configuration. A refusal after the code was exchanged revokes the
tokens just issued (best effort). A consent stored but not announced is `NOT_ANNOUNCED`: running
the flow again stores it again and announces it (both are idempotent).
"""

from __future__ import annotations

import hmac
import logging
import re
import secrets
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from sipreg.consent.announcements import ConsentEvents
from sipreg.consent.browser_binding import BINDING, binding_digest
from sipreg.consent.id_tokens import IdTokenError, IdTokenVerifier
from sipreg.models import check_msisdn, mask_msisdn, sipreg_event_id
from sipreg.oauth_client import (
    GrantRejectedError,
    IdentityServer,
    IdentityServerRejectedError,
    IdentityServerUnavailableError,
    TokenResponse,
)
from sipreg.store.oauth_states import (
    LIFETIME_SECONDS,
    OAuthState,
    OAuthStates,
    StateProblem,
    StateRefusedError,
)
from sipreg.tokens import ACCESS_TOKEN, OFFLINE_ACCESS, REFRESH_TOKEN, ConsentTokens

logger = logging.getLogger(__name__)

# The authorization response's `error` (RFC 6749 §4.1.2.1, OIDC Core §3.1.2.6): what each means.
DECLINED_ERRORS = frozenset({"access_denied", "consent_required"})  # the subscriber said no
TRANSIENT_ERRORS = frozenset({"server_error", "temporarily_unavailable"})  # the identity server's trouble
ERROR_CODE = re.compile(r"[a-z_]{1,64}")  # what may be logged of an error code (it is the sender's input)
# What a state we issue can look like (token_urlsafe(32): 43 base64url characters), with room: any
# other is unknown without asking the table, which refuses a key over 2048 bytes with an error.
STATE_SHAPE = re.compile(r"[A-Za-z0-9_-]{1,128}")


# --- outcomes -----------------------------------------------------------------------------------


class BadRequestError(ValueError):
    """A start or callback parameter is wrong; `field` names it. Nothing was changed."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class RefusalReason(StrEnum):
    STATE_MISSING = "state_missing"
    STATE_UNKNOWN = "state_unknown"  # never issued, or used already
    STATE_EXPIRED = "state_expired"
    CODE_MISSING = "code_missing"
    CODE_REFUSED = "code_refused"  # the identity server said invalid_grant
    ID_TOKEN_INVALID = "id_token_invalid"  # noqa: S105  # a reason, not a secret
    NO_PHONE_NUMBER = "no_phone_number"
    PHONE_NOT_VERIFIED = "phone_not_verified"  # the identity server has not verified the number
    SCOPE_NOT_GRANTED = "scope_not_granted"  # the subscriber allowed less than sipreg needs
    OTHER_BROWSER = "other_browser"  # the callback came to a browser that did not start the flow
    ISSUER_MISMATCH = "issuer_mismatch"  # RFC 9207: `iss` missing or not our identity server
    IDENTITY_SERVER_DOWN = "identity_server_down"  # transient: try again later
    CLIENT_REFUSED = "client_refused"  # our client configuration: the operator must fix it
    OTHER_NUMBER = "other_number"  # the sign-in was for another number than the flow was started for
    NOT_ANNOUNCED = "not_announced"  # transient: the consent IS stored, but its announcement failed


@dataclass(frozen=True)
class Started:
    url: str  # where to send the browser (the identity server's authorization endpoint)
    browser: str  # the browser binding: set it as the BROWSER_COOKIE (see `browser_cookie`)


@dataclass(frozen=True)
class Consented:
    msisdn: str
    return_to: str | None
    # False: the identity server granted no refresh token; the consent ends with its access token.
    refresh_token: bool = True


@dataclass(frozen=True)
class Declined:
    """The subscriber said no (`access_denied`, or OIDC's `consent_required`); nothing was stored."""

    error: str
    return_to: str | None


@dataclass(frozen=True)
class Refused:
    """The callback could not complete; nothing was stored, except for NOT_ANNOUNCED (the consent
    is stored, but registrations waiting for it do not know yet: running the flow again does it)."""

    reason: RefusalReason
    transient: bool = False


CallbackOutcome = Consented | Declined | Refused


# --- the flow -----------------------------------------------------------------------------------


class ConsentFlow:
    def __init__(
        self,
        *,
        states: OAuthStates,
        tokens: ConsentTokens,
        identity: IdentityServer,
        id_tokens: IdTokenVerifier,
        events: ConsentEvents,
        scopes: tuple[str, ...],
        return_to_allowlist: tuple[str, ...] = (),
        issuer: str | None = None,
        secure_cookies: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._issuer = issuer  # None: the ID-token verifier's (they are the same in production)
        self._states = states
        self._tokens = tokens
        self._identity = identity
        self._id_tokens = id_tokens
        self._events = events
        self._scopes = scopes
        self._allowed_return = tuple(_url_parts(url) for url in return_to_allowlist)
        self._clock = clock
        self.secure_cookies = secure_cookies

    # -- /oauth/start -----------------------------------------------------------------------------

    def start(self, *, msisdn: str | None, return_to: str | None, browser: str | None = None) -> Started:
        """The authorization URL to send the browser to, and its binding (the cookie's value:
        `browser` again when it is a well-formed one, so flows in one browser share it).
        BadRequestError names a bad parameter."""
        if msisdn is not None:
            try:
                check_msisdn(msisdn)
            except ValueError as error:
                raise BadRequestError("msisdn", str(error)) from None
        if return_to is not None and not self._return_allowed(return_to):
            raise BadRequestError("return_to", "is not on this service's list of allowed return addresses")
        binding = browser if browser and BINDING.fullmatch(browser) else secrets.token_urlsafe(32)
        now = self._clock()
        record = OAuthState(
            state=secrets.token_urlsafe(32),  # 256 random bits
            code_verifier=secrets.token_urlsafe(64),  # 86 characters (RFC 7636: 43 to 128)
            nonce=secrets.token_urlsafe(32),
            created_at=now,
            expires_at=now + LIFETIME_SECONDS,
            return_to=return_to,
            login_hint=msisdn,
            browser_hash=binding_digest(binding),
        )
        url = self._identity.authorization_url(
            state=record.state,
            code_verifier=record.code_verifier,
            nonce=record.nonce,
            scopes=self._scopes,
            login_hint=msisdn,
        )
        self._states.put(record)
        logger.info("consent flow started%s", f" for {mask_msisdn(msisdn)}" if msisdn else "")
        return Started(url=url, browser=binding)

    def _return_allowed(self, url: str) -> bool:
        parts = _url_parts(url)
        if parts is None:
            return False
        scheme, netloc, path = parts
        for allowed in self._allowed_return:
            if allowed is None:
                continue
            a_scheme, a_netloc, a_path = allowed
            if (scheme, netloc) == (a_scheme, a_netloc) and (
                path == a_path or path.startswith(a_path.rstrip("/") + "/")
            ):
                return True
        return False

    # -- /oauth/callback --------------------------------------------------------------------------

    def callback(self, params: Mapping[str, str], *, browser: str | None = None) -> CallbackOutcome:
        pending = self._consume(params.get("state"))
        if isinstance(pending, Refused):
            return pending
        refused = self._foreign(pending, params.get("iss"), browser)
        if refused is not None:
            return refused
        if params.get("error"):
            return _error_answer(params["error"], pending)
        code = params.get("code")
        if not code:
            return Refused(RefusalReason.CODE_MISSING)
        try:
            return self._finish(code, pending)
        except (IdentityServerRejectedError, IdentityServerUnavailableError, IdTokenError) as error:
            return _refusal_for(error)

    def _foreign(self, pending: OAuthState, iss: str | None, browser: str | None) -> Refused | None:
        """Why this answer is not our flow's, coming back from our identity server; else None."""
        if pending.browser_hash is None or not hmac.compare_digest(
            binding_digest(browser or ""), pending.browser_hash
        ):
            # Login CSRF (RFC 9700 §4.7): someone else's flow, finished in this browser.
            logger.warning("callback from a browser that did not start the flow refused")
            return Refused(RefusalReason.OTHER_BROWSER)
        try:
            problem = self._issuer_problem(iss)
        except (IdentityServerRejectedError, IdentityServerUnavailableError) as error:
            return _refusal_for(error)
        if problem:
            logger.warning("callback refused: %s", problem)
            return Refused(RefusalReason.ISSUER_MISMATCH)
        return None

    def _issuer_problem(self, iss: str | None) -> str | None:
        """RFC 9207: an `iss` must be our issuer; a provider that announces it must send it."""
        expected = self._issuer or self._id_tokens.issuer
        if iss is not None:
            return None if iss == expected else "the authorization response names another issuer"
        if self._identity.issuer_in_authorization_response():
            return "the authorization response lacks the iss its identity server announces"
        return None

    def _consume(self, state: str | None) -> OAuthState | Refused:
        """The flow's saved state, taken out of the table (so it works once), or why not."""
        if not state:
            return Refused(RefusalReason.STATE_MISSING)
        if not STATE_SHAPE.fullmatch(state):
            logger.warning("callback with a state sipreg never issues refused")
            return Refused(RefusalReason.STATE_UNKNOWN)
        try:
            return self._states.consume(state, now=self._clock())
        except StateRefusedError as refused:
            logger.warning("callback with a %s state refused", refused.reason.value)
            if refused.reason is StateProblem.EXPIRED:
                return Refused(RefusalReason.STATE_EXPIRED)
            return Refused(RefusalReason.STATE_UNKNOWN)

    def _finish(self, code: str, pending: OAuthState) -> CallbackOutcome:
        answer = self._identity.exchange_code(code, code_verifier=pending.code_verifier)
        linked = self._linked(answer, pending)
        if isinstance(linked, Refused):
            return linked
        msisdn, subject = linked
        self._tokens.record_consent(msisdn, answer, subject=subject)
        try:
            self._events.consented(msisdn, event_id=sipreg_event_id("consented", uuid.uuid4().hex))
        except Exception as error:  # the consent is stored: whatever failed, the page must say so
            logger.error(
                "consent stored for %s but not announced (%s): the subscriber is asked to run the flow again",
                mask_msisdn(msisdn),
                type(error).__name__,
            )
            return Refused(RefusalReason.NOT_ANNOUNCED, transient=True)
        logger.info("consent stored for %s", mask_msisdn(msisdn))
        return Consented(msisdn=msisdn, return_to=pending.return_to, refresh_token=bool(answer.refresh_token))

    def _linked(self, answer: TokenResponse, pending: OAuthState) -> tuple[str, str] | Refused:
        """(the MSISDN, the subject) the issued tokens may be stored for, or why not. The identity
        server has issued tokens already: a refusal revokes them."""
        withheld = self._withheld(answer)
        if withheld:
            logger.warning("callback refused: the subscriber did not grant %s", " ".join(withheld))
            self._revoke_issued(answer)
            return Refused(RefusalReason.SCOPE_NOT_GRANTED)
        try:
            msisdn, verified, subject = self._subscriber(answer, pending)
        except (IdentityServerRejectedError, IdentityServerUnavailableError, IdTokenError) as error:
            self._revoke_issued(answer)
            return _refusal_for(error)
        if msisdn is None:
            logger.error("no usable phone_number in the ID token or /userinfo")
            self._revoke_issued(answer)
            return Refused(RefusalReason.NO_PHONE_NUMBER)
        if not verified:
            # OIDC Core §5.1: only phone_number_verified true says the provider checked the number is
            # the subscriber's; linking another would put someone else's calls in the PBX's path.
            logger.warning("callback refused: the identity server has not verified %s", mask_msisdn(msisdn))
            self._revoke_issued(answer)
            return Refused(RefusalReason.PHONE_NOT_VERIFIED)
        if pending.login_hint is not None and msisdn != pending.login_hint:
            logger.warning(
                "callback refused: the flow was started for %s, the sign-in was for %s",
                mask_msisdn(pending.login_hint),
                mask_msisdn(msisdn),
            )
            if self._tokens.holds_consent(msisdn):
                # A provider may issue a code under the grant of the consent we hold for that
                # number, and revoking its refresh token may end the whole grant (RFC 7009 §2.1).
                logger.info(
                    "tokens of the refused callback not revoked: that number's consent may share them"
                )
            else:
                self._revoke_issued(answer)
            return Refused(RefusalReason.OTHER_NUMBER)
        return msisdn, subject

    def _withheld(self, answer: TokenResponse) -> list[str]:
        """The scopes asked for but not granted (RFC 6749 §3.3: a server may grant less, and then
        names what in `scope`; no `scope` is all that was asked). Without offline_access the
        consent is stored and lasts as long as its access token (`refresh_token_missing`); without
        any other, the core or the ID token would refuse every use of it."""
        granted = set(answer.scopes) if answer.scopes else set(self._scopes)
        return [scope for scope in self._scopes if scope != OFFLINE_ACCESS and scope not in granted]

    def _subscriber(self, answer: TokenResponse, pending: OAuthState) -> tuple[str | None, bool, str]:
        """(the MSISDN, or None when none is usable; whether the provider verified it; the subject)
        from a verified ID token."""
        if answer.id_token is None:
            raise IdTokenError("ID token missing from the token response (was `openid` granted?)")
        claims = self._id_tokens.verify(answer.id_token, nonce=pending.nonce)
        subject: str = claims["sub"]  # the verifier requires a non-empty string
        return *self._phone_number(claims, subject, answer), subject

    def _phone_number(
        self, claims: Mapping[str, Any], subject: str, answer: TokenResponse
    ) -> tuple[str | None, bool]:
        """The number and its phone_number_verified, both from the ID token when it holds both, else
        from /userinfo (where certified providers put them in the code flow, OIDC Core §5.4)."""
        source: Mapping[str, Any] = claims
        if not isinstance(claims.get("phone_number"), str) or "phone_number_verified" not in claims:
            source = self._identity.userinfo(answer.access_token)
            if source and source.get("sub") != subject:
                # OIDC Core §5.3.2: it MUST match exactly, else its values MUST NOT be used.
                raise IdTokenError("the /userinfo answer is not about the ID token's subject")
        number, verified = source.get("phone_number"), source.get("phone_number_verified") is True
        if not isinstance(number, str):
            return None, False
        try:
            return check_msisdn(number), verified
        except ValueError:
            return None, False

    def _revoke_issued(self, answer: TokenResponse) -> None:
        """Best effort: no grant is left behind for a callback that stores nothing (refresh token
        first: revoking it may end the access token too). A failure is only logged."""
        for token, hint in ((answer.refresh_token, REFRESH_TOKEN), (answer.access_token, ACCESS_TOKEN)):
            if not token:
                continue
            try:
                self._identity.revoke(token, token_type_hint=hint)
            except Exception as error:  # best effort: the refusal stands either way
                logger.warning(
                    "the %s of the refused callback was not revoked: %s", hint, type(error).__name__
                )


def _error_answer(error: str, pending: OAuthState) -> Declined | Refused:
    """What the authorization response's `error` means (its description is never logged: it
    may carry the request's input)."""
    if error in DECLINED_ERRORS:
        logger.info("consent declined at the identity server: %s", error)
        return Declined(error=error, return_to=pending.return_to)
    if error in TRANSIENT_ERRORS:
        logger.warning("the identity server could not answer the authorization request: %s", error)
        return Refused(RefusalReason.IDENTITY_SERVER_DOWN, transient=True)
    code = error if ERROR_CODE.fullmatch(error) else "unrecognised"
    logger.error("the identity server refused the authorization request: %s", code)
    return Refused(RefusalReason.CLIENT_REFUSED)


def _refusal_for(error: Exception) -> Refused:
    """What a failure after the state was consumed means for the subscriber (logged, no secrets)."""
    match error:
        case GrantRejectedError():
            logger.warning("the identity server refused the authorization code")
            return Refused(RefusalReason.CODE_REFUSED)
        case IdentityServerRejectedError(error=code):
            logger.error("the identity server refused this client: %s", code)
            return Refused(RefusalReason.CLIENT_REFUSED)
        case IdentityServerUnavailableError():
            logger.warning("identity server unavailable during the callback: %s", error)
            return Refused(RefusalReason.IDENTITY_SERVER_DOWN, transient=True)
        case _:
            logger.error("%s", error)
            return Refused(RefusalReason.ID_TOKEN_INVALID)


def _url_parts(url: str) -> tuple[str, str, str] | None:
    """(scheme, host[:port], path) of an absolute http(s) URL without user info; else None."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme not in ("https", "http") or not parts.hostname or "@" in parts.netloc:
        return None
    if any(c in url for c in "\\\r\n\t "):
        return None
    return parts.scheme, parts.netloc.lower(), parts.path or "/"
