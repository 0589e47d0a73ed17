"""The grant logic and all state of one emulator's identity server: sign-ins, browser sessions,
grants, codes, tokens, userinfo and revocation (requests are checked in `authorization`, the
signing keys kept in `keys`), and the one provider each emulator has."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import unquote_plus

from devstack.wg2sim.oidc.authorization import check_request
from devstack.wg2sim.oidc.config import OidcClient, OidcConfig
from devstack.wg2sim.oidc.keys import SigningKeys
from devstack.wg2sim.oidc.model import (
    CODE_TTL_SECONDS,
    OFFLINE,
    OPENID,
    PHONE,
    SERVICE_SCOPES,
    SESSION_TTL_SECONDS,
    SIGN_IN_TTL_SECONDS,
    AuthPageError,
    BrowserSession,
    Code,
    Family,
    OAuthError,
    RefreshToken,
    SignIn,
    pairwise_subject,
)
from devstack.wg2sim.state import Wg2Sim
from devstack.wg2sim.tokens import Token

_VERIFIER = re.compile(r"[A-Za-z0-9._~-]{43,128}")


_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


class OidcProvider:
    """All identity-server state of one emulator; thread-safe (one lock)."""

    def __init__(self, sim: Wg2Sim, config: OidcConfig) -> None:
        self.sim = sim
        self.config = config
        self._lock = threading.RLock()
        self._sign_ins: dict[str, SignIn] = {}
        self._sessions: dict[str, BrowserSession] = {}
        self._codes: dict[str, Code] = {}
        self._refresh: dict[str, RefreshToken] = {}
        self._family_of_access: dict[str, Family] = {}
        self._keys = SigningKeys()

    # -- keys ---------------------------------------------------------------------------------------

    def rotate_keys(self, *, keep_previous: bool = True) -> list[str]:
        return self._keys.rotate(keep_previous=keep_previous)

    def jwks(self) -> dict[str, Any]:
        return self._keys.jwks()

    # -- clients ------------------------------------------------------------------------------------

    def client(self, client_id: str | None) -> OidcClient | None:
        with self._lock:
            return self.config.clients.get(client_id or "")

    def add_client(self, client: OidcClient) -> None:
        with self._lock:
            self.config.clients[client.client_id] = client

    def mark_unverified(self, msisdn: str) -> None:
        with self._lock:
            self.config.unverified_numbers.add(msisdn)

    def _verified(self, msisdn: str) -> bool:
        with self._lock:
            return msisdn not in self.config.unverified_numbers

    def authenticate(self, authorization: str | None, form: Mapping[str, str]) -> OidcClient:
        """HTTP Basic only (RFC 6749 §2.3.1: both parts form-urlencoded before base64)."""
        if "client_secret" in form:
            raise OAuthError("invalid_request", "client_secret in the body: use HTTP Basic only")
        if not authorization or not authorization.startswith("Basic "):
            raise OAuthError("invalid_client", "HTTP Basic client authentication required", 401)
        try:
            decoded = base64.b64decode(authorization[6:], validate=True).decode()
        except ValueError:
            raise OAuthError("invalid_client", "malformed Basic credentials", 401) from None
        client_id, colon, secret = decoded.partition(":")
        if _BAD_ESCAPE.search(decoded):
            raise OAuthError("invalid_client", "malformed Basic credentials (a bad %-escape)", 401)
        # Form decoding, as a certified provider does: '+' is a space, %2B a plus.
        client = self.client(unquote_plus(client_id))
        if not colon or client is None or not client.secret_matches(unquote_plus(secret)):
            raise OAuthError("invalid_client", "unknown client or wrong secret", 401)
        if form.get("client_id") not in (None, client.client_id):
            raise OAuthError("invalid_request", "client_id in the body differs from the authenticated one")
        return client

    # -- the authorization endpoint -----------------------------------------------------------------

    def begin(self, args: Mapping[str, list[str]]) -> tuple[str, SignIn]:
        """Checks an authorization request (raises as `check_request` does) and keeps it while
        the subscriber walks the pages."""
        sign_in = check_request(args, self.client)
        sign_in_id = secrets.token_urlsafe(24)
        with self._lock:
            self._purge()
            self._sign_ins[sign_in_id] = sign_in
        return sign_in_id, sign_in

    def sign_in(self, sign_in_id: str) -> SignIn:
        with self._lock:
            found = self._sign_ins.get(sign_in_id)
            if found is None or time.monotonic() - found.started > SIGN_IN_TTL_SECONDS:
                self._sign_ins.pop(sign_in_id, None)
                raise AuthPageError("This sign-in has expired", "It was not finished within 10 minutes.")
            return found

    def end_sign_in(self, sign_in_id: str) -> None:
        with self._lock:
            self._sign_ins.pop(sign_in_id, None)

    # -- browser sessions and grants ----------------------------------------------------------------

    def session(self, session_id: str | None) -> BrowserSession | None:
        with self._lock:
            found = self._sessions.get(session_id or "")
            if found is not None and time.monotonic() - found.started > SESSION_TTL_SECONDS:
                del self._sessions[session_id or ""]
                return None
            return found

    def open_session(self, msisdn: str) -> str:
        """A new signed-in browser session; the caller sets its id as the session cookie."""
        session_id = secrets.token_urlsafe(32)
        with self._lock:
            self._sessions[session_id] = BrowserSession(msisdn, int(time.time()), time.monotonic())
        return session_id

    def resume(self, sign_in: SignIn, session: BrowserSession | None) -> bool:
        """Signs the request in from the browser's session, unless it must sign in afresh
        (`prompt=login`, or a login_hint naming another number)."""
        if session is None or "login" in sign_in.prompt:
            return False
        if sign_in.login_hint and sign_in.login_hint != session.msisdn:
            return False
        sign_in.msisdn = session.msisdn
        sign_in.authenticated = True
        return True

    def already_granted(self, sign_in: SignIn, session: BrowserSession | None) -> bool:
        """True when the session's grant covers the request and nothing asks to show consent."""
        if session is None or "consent" in sign_in.prompt or not sign_in.authenticated:
            return False
        grant = session.grants.get(sign_in.client.client_id)
        return grant is not None and not grant.revoked and set(sign_in.scopes) <= set(grant.scopes)

    def issue_code(self, sign_in: SignIn, session: BrowserSession | None = None) -> str:
        """A code for the subscriber's grant: the session's grant for this client when there is
        one (a certified provider reuses it), else a new grant (remembered by the session)."""
        assert sign_in.msisdn is not None
        with self._lock:
            family = session.grants.get(sign_in.client.client_id) if session else None
            if family is None or family.revoked or family.msisdn != sign_in.msisdn:
                family = Family(
                    family_id=secrets.token_hex(12),
                    client_id=sign_in.client.client_id,
                    msisdn=sign_in.msisdn,
                    scopes=sign_in.scopes,
                    auth_time=session.auth_time if session else int(time.time()),
                )
                if session is not None:
                    session.grants[sign_in.client.client_id] = family
            else:
                family.scopes = tuple(dict.fromkeys((*family.scopes, *sign_in.scopes)))
            code = secrets.token_urlsafe(32)
            self._codes[code] = Code(
                family,
                sign_in.scopes,
                sign_in.nonce,
                sign_in.redirect_uri,
                sign_in.code_challenge,
                time.monotonic(),
            )
        return code

    def _purge(self) -> None:
        now = time.monotonic()
        for sign_in_id in [k for k, v in self._sign_ins.items() if now - v.started > SIGN_IN_TTL_SECONDS]:
            del self._sign_ins[sign_in_id]
        for code in [k for k, v in self._codes.items() if now - v.issued > 10 * CODE_TTL_SECONDS]:
            del self._codes[code]

    # -- the token endpoint -------------------------------------------------------------------------

    def token(self, client: OidcClient, form: Mapping[str, str], issuer: str) -> dict[str, Any]:
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            return self._authorization_code(client, form, issuer)
        if grant_type == "refresh_token":
            return self._refresh_token(client, form, issuer)
        if grant_type == "client_credentials":
            return self._client_credentials(client, form)
        raise OAuthError("unsupported_grant_type", f"grant_type {grant_type!r} is not supported")

    def _authorization_code(self, client: OidcClient, form: Mapping[str, str], issuer: str) -> dict[str, Any]:
        code_value = form.get("code")
        if not code_value:
            raise OAuthError("invalid_request", "code is required")
        with self._lock:
            code = self._codes.get(code_value)
            if code is None:
                raise OAuthError("invalid_grant", "unknown authorization code")
            if code.used:
                # RFC 6749 §4.1.2: a code used twice revokes what it produced.
                self._revoke_family(code.family)
                raise OAuthError("invalid_grant", "authorization code already used")
            code.used = True  # any attempt uses it up, right or wrong
        if time.monotonic() - code.issued > CODE_TTL_SECONDS:
            raise OAuthError("invalid_grant", "authorization code expired")
        if code.family.client_id != client.client_id:
            raise OAuthError("invalid_grant", "authorization code was issued to another client")
        if form.get("redirect_uri") != code.redirect_uri:
            raise OAuthError("invalid_grant", "redirect_uri differs from the authorization request")
        verifier = form.get("code_verifier")
        if not verifier:
            raise OAuthError("invalid_request", "code_verifier is required (PKCE)")
        if not _VERIFIER.fullmatch(verifier) or not hmac.compare_digest(_s256(verifier), code.code_challenge):
            raise OAuthError("invalid_grant", "code_verifier does not match the code_challenge")
        return self._issue(code.family, issuer, scopes=code.scopes, nonce=code.nonce)

    def _refresh_token(self, client: OidcClient, form: Mapping[str, str], issuer: str) -> dict[str, Any]:
        value = form.get("refresh_token")
        if not value:
            raise OAuthError("invalid_request", "refresh_token is required")
        with self._lock:
            found = self._refresh.get(value)
            if found is None or found.family.client_id != client.client_id or found.family.revoked:
                raise OAuthError("invalid_grant", "unknown or revoked refresh token")
            if found.used:
                self._revoke_family(found.family)  # reuse means theft or a lost race: kill it all
                raise OAuthError("invalid_grant", "refresh token already used; its grant is revoked")
            asked = tuple((form.get("scope") or "").split())
            if any(scope not in found.scopes for scope in asked):
                raise OAuthError("invalid_scope", "a refresh cannot widen the granted scopes")
            found.used = True
        return self._issue(found.family, issuer, scopes=asked or found.scopes, nonce=None)

    def _client_credentials(self, client: OidcClient, form: Mapping[str, str]) -> dict[str, Any]:
        asked = tuple((form.get("scope") or "").split()) or tuple(sorted(SERVICE_SCOPES))
        if any(scope not in SERVICE_SCOPES for scope in asked):
            raise OAuthError("invalid_scope", "client credentials carry service scopes only")
        token = self.sim.tokens.mint(None, asked, self.sim.token_ttl_seconds, client_id=client.client_id)
        return {
            "access_token": token.access_token,
            "token_type": "bearer",
            "expires_in": self._real_seconds(self.sim.token_ttl_seconds),
            "scope": " ".join(asked),
        }

    def _issue(
        self, family: Family, issuer: str, *, scopes: Sequence[str], nonce: str | None
    ) -> dict[str, Any]:
        granted = tuple(scopes)
        token = self.sim.tokens.mint(
            family.msisdn, granted, self.sim.token_ttl_seconds, client_id=family.client_id
        )
        answer: dict[str, Any] = {
            "access_token": token.access_token,
            "token_type": "bearer",
            "expires_in": self._real_seconds(self.sim.token_ttl_seconds),
            "scope": " ".join(granted),
        }
        with self._lock:
            family.access_tokens.add(token.access_token)
            self._family_of_access[token.access_token] = family
            if OFFLINE in granted:
                refresh = secrets.token_urlsafe(32)
                self._refresh[refresh] = RefreshToken(family, granted)
                family.refresh_tokens.add(refresh)
                answer["refresh_token"] = refresh
        if OPENID in granted:
            answer["id_token"] = self._id_token(family, issuer, scopes=granted, nonce=nonce)
        return answer

    def _id_token(self, family: Family, issuer: str, *, scopes: Sequence[str], nonce: str | None) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": issuer,
            "sub": pairwise_subject(family.client_id, family.msisdn),
            "aud": family.client_id,
            "iat": now,
            "exp": now + self._real_seconds(self.sim.token_ttl_seconds),
            "auth_time": family.auth_time,
            "sid": family.family_id,
        }
        if nonce:
            claims["nonce"] = nonce
        if PHONE in scopes and self.config.phone_number_in_id_token:
            claims["phone_number"] = family.msisdn
            claims["phone_number_verified"] = self._verified(family.msisdn)
        return self._keys.sign(claims)

    def _real_seconds(self, emulator_seconds: float) -> int:
        return max(1, round(emulator_seconds / self.sim.clock.time_scale))

    # -- userinfo and revocation --------------------------------------------------------------------

    def userinfo(self, access_token: str) -> dict[str, Any]:
        token: Token | None = self.sim.tokens.lookup(access_token)
        if token is None:
            raise OAuthError("invalid_token", "unknown, expired or revoked access token", 401)
        if token.msisdn is None or OPENID not in token.scopes:
            raise OAuthError("insufficient_scope", "user info needs a user token with the openid scope", 403)
        with self._lock:
            family = self._family_of_access.get(access_token)
        answer: dict[str, Any] = {"sub": pairwise_subject(token.client_id, token.msisdn)}
        if family is not None:
            answer["sid"] = family.family_id
        if PHONE in token.scopes:
            answer["phone_number"] = token.msisdn
            answer["phone_number_verified"] = self._verified(token.msisdn)
        return answer

    def revoke(self, client: OidcClient, token_value: str) -> None:
        """RFC 7009: unknown tokens are fine (200); another client's token is refused."""
        with self._lock:
            refresh = self._refresh.get(token_value)
            if refresh is not None:
                if refresh.family.client_id != client.client_id:
                    raise OAuthError("unauthorized_client", "the token belongs to another client")
                self._revoke_family(refresh.family)
                return
        access = self.sim.tokens.lookup(token_value)
        if access is not None:
            if access.client_id != client.client_id:
                raise OAuthError("unauthorized_client", "the token belongs to another client")
            self.sim.tokens.revoke(token_value)

    def _revoke_family(self, family: Family) -> None:
        with self._lock:
            family.revoked = True
            for access_token in family.access_tokens:
                self.sim.tokens.revoke(access_token)
                self._family_of_access.pop(access_token, None)
            for refresh in family.refresh_tokens:
                self._refresh.pop(refresh, None)
            family.access_tokens.clear()
            family.refresh_tokens.clear()


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


# --- one provider per emulator ------------------------------------------------------------------

_PROVIDERS: weakref.WeakKeyDictionary[Wg2Sim, OidcProvider] = weakref.WeakKeyDictionary()
_PROVIDERS_LOCK = threading.Lock()


def configure_oidc(sim: Wg2Sim, config: OidcConfig) -> OidcProvider:
    """Sets the identity server's clients and issuer for `sim` (before the HTTP app is made)."""
    with _PROVIDERS_LOCK:
        provider = _PROVIDERS[sim] = OidcProvider(sim, config)
        return provider


def provider_for(sim: Wg2Sim) -> OidcProvider:
    with _PROVIDERS_LOCK:
        if sim not in _PROVIDERS:
            _PROVIDERS[sim] = OidcProvider(sim, OidcConfig())
        return _PROVIDERS[sim]
