"""The emulated operator identity server: OAuth 2.0 + OpenID Connect at WG2's paths, strict.

As strict as an OpenID Certified provider in the ways a client can trip over:

- `offline_access` is honoured only with `prompt=consent` (OIDC Core §11); otherwise no refresh token.
- A browser session (cookie `wg2sim_session`, set once the PIN is proven) signs the subscriber in
  for later authorizations, and every authorization of one client in that session adds to the
  same grant: a new code's tokens belong to the grant the earlier ones do.
- Revoking one refresh token revokes its whole grant (RFC 7009 §2.1 allows it), so revoking a
  token that a renewed consent replaced also kills the renewed one's tokens when they share it.
- The authorization response carries `iss` (RFC 9207), announced in the discovery document.
- `phone_number` may be left out of the ID token (`--oidc-phone-number-only-in-userinfo`), as
  certified providers do in the code flow.

A Flask blueprint on the emulator's HTTP app. Its access tokens are the emulator's own
(`Wg2Sim.tokens`), so the gRPC core accepts them: a user token carries the MSISDN the
subscriber proved with an SMS PIN, and the scopes granted.

    GET  /oauth2/auth              checks the request, then the pages: number -> PIN -> consent
                                   (signed in already: consent; granted already and no
                                   prompt=consent: straight back with a code)
    POST /oauth2/token             HTTP Basic client auth; authorization_code (single use, 60 s,
                                   bound to client, redirect URI and PKCE S256 verifier),
                                   refresh_token (rotation; reusing one revokes its family),
                                   client_credentials
    GET  /userinfo                 bearer; sub (pairwise), phone_number, phone_number_verified, sid
    POST /oauth2/revoke            HTTP Basic (RFC 7009); a refresh token revokes its family
    GET  /.well-known/openid-configuration, /.well-known/jwks.json   (ID tokens: RS256)
    GET  /oauth2/sessions/logout
    POST /_admin/rotate-keys       {"keep_previous": true}: a new signing key (old one published
                                   until the next rotation unless keep_previous is false)
    POST /_admin/oidc/clients      {"client_id", "client_secret", "redirect_uris": [...]}: add or replace

Token lifetimes are the emulator's `--token-ttl` in emulator seconds; `expires_in` and the ID
token's `exp` are given in real seconds (divided by `--time-scale`), since clients use real clocks.
Codes and sign-in pages run on real time too: a person types at real speed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit, urlunsplit

from flask import Blueprint, Response, jsonify, redirect, request
from flask.typing import ResponseReturnValue
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from devstack.wg2sim import oidc_pages as pages
from devstack.wg2sim.state import Wg2Sim
from devstack.wg2sim.tokens import SCOPE_V0, SCOPE_V1, Token
from devstack.wg2sim.validation import e164_problem

OPENID, PHONE, OFFLINE = "openid", "phone", "offline_access"
SERVICE_SCOPES = frozenset({SCOPE_V0, SCOPE_V1})
USER_SCOPES = frozenset({OPENID, PHONE, OFFLINE}) | SERVICE_SCOPES
SCOPE_TEXT = {
    OPENID: "Confirm that it is you",
    PHONE: "See your mobile number",
    OFFLINE: "Keep this access when you are not using it",
    SCOPE_V0: "Route your calls through its phone system (answer and start calls)",
    SCOPE_V1: "Change how your calls are routed",
}
CODE_TTL_SECONDS = 60.0
SIGN_IN_TTL_SECONDS = 600.0
SESSION_TTL_SECONDS = 8 * 3600.0
SESSION_COOKIE = "wg2sim_session"
PIN_ATTEMPTS = 3
PROMPT_VALUES = frozenset({"none", "login", "consent", "select_account"})
_VERIFIER = re.compile(r"[A-Za-z0-9._~-]{43,128}")
_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")


# --- configuration ------------------------------------------------------------------------------


@dataclass(frozen=True)
class OidcClient:
    client_id: str
    client_secret: str = field(repr=False)
    redirect_uris: tuple[str, ...]
    name: str = "sipreg"

    def secret_matches(self, secret: str) -> bool:
        return hmac.compare_digest(self.client_secret.encode(), secret.encode())


DEV_CLIENT = OidcClient(
    client_id="sipreg-local",
    client_secret="sipreg-local-secret",  # noqa: S106  # the documented dev client of a local emulator
    redirect_uris=("http://127.0.0.1:3000/oauth/callback", "http://localhost:3000/oauth/callback"),
)


def parse_client(text: str) -> OidcClient:
    """`id:secret:redirect_uri` (the redirect URI may hold ':' itself)."""
    client_id, _, rest = text.partition(":")
    secret, _, redirect_uri = rest.partition(":")
    if not client_id or not secret or not redirect_uri:
        raise ValueError(f"expected id:secret:redirect_uri, got {client_id or '?'}:...")
    _check_redirect_uri(redirect_uri)
    return OidcClient(client_id, secret, (redirect_uri,))


def load_clients(path: Path) -> list[OidcClient]:
    """A JSON list of {"client_id", "client_secret", "redirect_uris": [...], "name"?}."""
    data = json.loads(path.read_text())
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of clients")
    return [client_from_json(item, where=f"{path}[{index}]") for index, item in enumerate(data)]


def client_from_json(item: Any, *, where: str = "body") -> OidcClient:
    if not isinstance(item, dict):
        raise ValueError(f"{where}: expected an object")
    client_id, secret, uris = item.get("client_id"), item.get("client_secret"), item.get("redirect_uris")
    if not isinstance(client_id, str) or not client_id:
        raise ValueError(f"{where}.client_id: expected a non-empty string")
    if not isinstance(secret, str) or len(secret) < 8:
        raise ValueError(f"{where}.client_secret: expected a string of at least 8 characters")
    if not isinstance(uris, list) or not uris or not all(isinstance(u, str) for u in uris):
        raise ValueError(f"{where}.redirect_uris: expected a non-empty list of URLs")
    for uri in uris:
        _check_redirect_uri(uri)
    return OidcClient(client_id, secret, tuple(uris), name=str(item.get("name") or client_id))


def _check_redirect_uri(uri: str) -> None:
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.fragment:
        raise ValueError(f"redirect URI {uri!r} must be an absolute http(s) URL without a fragment")


@dataclass
class OidcConfig:
    clients: dict[str, OidcClient] = field(default_factory=lambda: {DEV_CLIENT.client_id: DEV_CLIENT})
    issuer: str | None = None  # None: the base URL the request came to (e.g. http://127.0.0.1:PORT)
    # False: phone_number only from /userinfo, as certified providers do in the code flow.
    phone_number_in_id_token: bool = True


# --- grants -------------------------------------------------------------------------------------


@dataclass
class SignIn:
    """One /oauth2/auth request in progress (the pages carry its id in a hidden field)."""

    client: OidcClient
    redirect_uri: str
    scopes: tuple[str, ...]
    state: str
    code_challenge: str
    nonce: str | None
    login_hint: str | None
    started: float
    prompt: frozenset[str] = frozenset()
    msisdn: str | None = None
    pin: str | None = None
    pin_attempts_left: int = PIN_ATTEMPTS
    authenticated: bool = False


@dataclass
class Family:
    """One grant: what a client holds for one subscriber. Every authorization of that client in
    the same browser session adds to it; revoking any of its refresh tokens kills all of it."""

    family_id: str
    client_id: str
    msisdn: str
    scopes: tuple[str, ...]  # everything granted so far
    auth_time: int
    access_tokens: set[str] = field(default_factory=set)
    refresh_tokens: set[str] = field(default_factory=set)
    revoked: bool = False


@dataclass
class BrowserSession:
    """A signed-in browser (cookie `wg2sim_session`): its number, and its grant per client."""

    msisdn: str
    auth_time: int
    started: float
    grants: dict[str, Family] = field(default_factory=dict)


@dataclass
class Code:
    family: Family
    scopes: tuple[str, ...]  # what this authorization granted (offline_access only with consent)
    nonce: str | None
    redirect_uri: str
    code_challenge: str
    issued: float
    used: bool = False


@dataclass
class RefreshToken:
    family: Family
    scopes: tuple[str, ...]
    used: bool = False


class OAuthError(Exception):
    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status


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
        self._keys: list[RSAKey] = []  # newest first; the first one signs

    # -- keys ---------------------------------------------------------------------------------------

    def _signing_key(self) -> RSAKey:
        with self._lock:
            if not self._keys:
                self.rotate_keys(keep_previous=False)
            return self._keys[0]

    def rotate_keys(self, *, keep_previous: bool = True) -> list[str]:
        key = RSAKey.generate_key(
            2048, parameters={"kid": secrets.token_hex(8), "use": "sig", "alg": "RS256"}
        )
        with self._lock:
            self._keys = [key, *self._keys[:1]] if keep_previous else [key]
            return [str(k.kid) for k in self._keys]

    def jwks(self) -> dict[str, Any]:
        self._signing_key()
        with self._lock:
            return dict(KeySet(list(self._keys)).as_dict(private=False))

    # -- clients ------------------------------------------------------------------------------------

    def client(self, client_id: str | None) -> OidcClient | None:
        with self._lock:
            return self.config.clients.get(client_id or "")

    def add_client(self, client: OidcClient) -> None:
        with self._lock:
            self.config.clients[client.client_id] = client

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
        client = self.client(unquote(client_id))
        if not colon or client is None or not client.secret_matches(unquote(secret)):
            raise OAuthError("invalid_client", "unknown client or wrong secret", 401)
        if form.get("client_id") not in (None, client.client_id):
            raise OAuthError("invalid_request", "client_id in the body differs from the authenticated one")
        return client

    # -- the authorization endpoint -----------------------------------------------------------------

    def begin(self, args: Mapping[str, list[str]]) -> tuple[str, SignIn]:
        """Validates an authorization request. Raises AuthPageError (no redirect: client or
        redirect URI untrusted) or RedirectError (tell the client)."""
        single = _single_values(args)
        client = self.client(single.get("client_id"))
        if client is None:
            raise AuthPageError("Unknown application", "client_id is missing or not registered here.")
        redirect_uri = single.get("redirect_uri")
        if redirect_uri not in client.redirect_uris:
            raise AuthPageError(
                "Wrong return address", "redirect_uri does not exactly match a registered one."
            )
        state = single.get("state")

        def refuse(error: str, description: str) -> RedirectError:
            return RedirectError(redirect_uri, state, error, description)

        if single.get("response_type") != "code":
            raise refuse("unsupported_response_type", "response_type must be 'code'")
        if not state:
            raise refuse("invalid_request", "state is required")
        challenge = single.get("code_challenge")
        if not challenge:
            raise refuse("invalid_request", "code_challenge is required (PKCE)")
        if single.get("code_challenge_method") != "S256":
            raise refuse("invalid_request", "code_challenge_method must be S256")
        if not _CHALLENGE.fullmatch(challenge):
            raise refuse("invalid_request", "code_challenge must be a base64url SHA-256 (43 characters)")
        scopes = tuple(dict.fromkeys((single.get("scope") or "").split()))
        unknown = [scope for scope in scopes if scope not in USER_SCOPES]
        if not scopes or unknown:
            raise refuse(
                "invalid_scope", f"unknown scopes: {' '.join(unknown)}" if unknown else "scope is required"
            )
        prompt = frozenset((single.get("prompt") or "").split())
        if prompt - PROMPT_VALUES:
            raise refuse(
                "invalid_request", f"unknown prompt value: {' '.join(sorted(prompt - PROMPT_VALUES))}"
            )
        if "none" in prompt and len(prompt) > 1:
            raise refuse("invalid_request", "prompt=none cannot be combined with other values")
        if OFFLINE in scopes and "consent" not in prompt:
            # OIDC Core §11: without prompt=consent the OP MUST ignore offline_access.
            scopes = tuple(scope for scope in scopes if scope != OFFLINE)
        sign_in = SignIn(
            client=client,
            redirect_uri=redirect_uri,
            scopes=scopes,
            state=state,
            code_challenge=challenge,
            nonce=single.get("nonce"),
            login_hint=single.get("login_hint"),
            started=time.monotonic(),
            prompt=prompt,
        )
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
            claims["phone_number_verified"] = True
        key = self._signing_key()
        return jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key, algorithms=["RS256"])

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
            answer["phone_number_verified"] = True
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


class AuthPageError(Exception):
    """Shown to the person in the browser; never redirected (the client is not trusted)."""

    def __init__(self, heading: str, message: str) -> None:
        super().__init__(message)
        self.heading = heading
        self.message = message


class RedirectError(Exception):
    """An error authorization response; `location(issuer)` adds `iss` (RFC 9207)."""

    def __init__(self, redirect_uri: str, state: str | None, error: str, description: str) -> None:
        super().__init__(description)
        self.redirect_uri = redirect_uri
        self.params = {"error": error, "error_description": description, "state": state}

    def location(self, issuer: str) -> str:
        return redirect_with(self.redirect_uri, **self.params, iss=issuer)


def redirect_with(uri: str, **params: str | None) -> str:
    parts = urlsplit(uri)
    extra = urlencode({key: value for key, value in params.items() if value is not None})
    query = "&".join(part for part in (parts.query, extra) if part)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def pairwise_subject(client_id: str, msisdn: str) -> str:
    return hashlib.sha256(f"{client_id}|{msisdn}".encode()).hexdigest()[:32]


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def _single_values(args: Mapping[str, list[str]]) -> dict[str, str]:
    repeated = [name for name, values in args.items() if len(values) > 1]
    if repeated:
        raise AuthPageError("Malformed request", f"parameter {repeated[0]} is repeated")
    return {name: values[0] for name, values in args.items() if values}


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


def add_oidc_arguments(parser: Any) -> None:
    group = parser.add_argument_group("identity server (OAuth 2.0 / OpenID Connect)")
    group.add_argument(
        "--oidc-client",
        action="append",
        default=[],
        metavar="ID:SECRET:REDIRECT_URI",
        help=f"register a client (repeatable); the dev client {DEV_CLIENT.client_id}:"
        f"{DEV_CLIENT.client_secret}:{DEV_CLIENT.redirect_uris[0]} always exists",
    )
    group.add_argument(
        "--oidc-clients-file",
        type=Path,
        metavar="PATH",
        help='JSON list of {"client_id", "client_secret", "redirect_uris": [...]}',
    )
    group.add_argument(
        "--oidc-issuer", metavar="URL", help="the ID tokens' iss (default: the URL the request came to)"
    )
    group.add_argument(
        "--oidc-phone-number-only-in-userinfo",
        action="store_true",
        help="leave phone_number out of the ID token (clients must ask /userinfo), as certified "
        "providers do in the code flow",
    )


def oidc_config_from_args(args: Any) -> OidcConfig:
    """Raises ValueError naming the bad flag."""
    config = OidcConfig(
        issuer=args.oidc_issuer.rstrip("/") if args.oidc_issuer else None,
        phone_number_in_id_token=not getattr(args, "oidc_phone_number_only_in_userinfo", False),
    )
    clients: list[OidcClient] = []
    try:
        clients += [parse_client(text) for text in args.oidc_client]
    except ValueError as error:
        raise ValueError(f"--oidc-client: {error}") from None
    if args.oidc_clients_file:
        try:
            clients += load_clients(args.oidc_clients_file)
        except (OSError, ValueError) as error:
            raise ValueError(f"--oidc-clients-file: {error}") from None
    for client in clients:
        config.clients[client.client_id] = client
    return config


# --- HTTP ---------------------------------------------------------------------------------------

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def oidc_blueprint(sim: Wg2Sim) -> Blueprint:
    bp = Blueprint("wg2sim_oidc", __name__)

    def provider() -> OidcProvider:
        return provider_for(sim)

    def issuer() -> str:
        return provider().config.issuer or request.url_root.rstrip("/")

    @bp.before_request
    def outage() -> ResponseReturnValue | None:
        """An injected identity-server outage (`identity_down` fault): every endpoint answers 503."""
        if not sim.faults.identity_down:
            return None
        sim.stats.record_fault("identity_down")
        response = jsonify(
            error="temporarily_unavailable", error_description="injected fault: identity server down"
        )
        response.status_code = 503
        response.headers.update(_NO_STORE)
        return response

    @bp.errorhandler(OAuthError)
    def oauth_error(error: OAuthError) -> ResponseReturnValue:
        response = jsonify(error=error.error, error_description=error.description)
        response.status_code = error.status
        response.headers.update(_NO_STORE)
        if error.status == 401 and error.error == "invalid_client":
            response.headers["WWW-Authenticate"] = 'Basic realm="wg2sim"'
        elif error.status in (401, 403):
            response.headers["WWW-Authenticate"] = f'Bearer error="{error.error}"'
        return response

    @bp.errorhandler(AuthPageError)
    def auth_page_error(error: AuthPageError) -> ResponseReturnValue:
        return _html(pages.error_page(error.heading, error.message), 400)

    @bp.errorhandler(RedirectError)
    def redirect_error(error: RedirectError) -> ResponseReturnValue:
        return redirect(error.location(issuer()), 302)

    _browser_routes(bp, provider, issuer)
    _machine_routes(bp, provider, issuer)
    _admin_routes(bp, provider)
    return bp


def _browser_routes(  # noqa: PLR0915  # one small function per route, kept together
    bp: Blueprint, provider: Callable[[], OidcProvider], issuer: Callable[[], str]
) -> None:
    def answer(sign_in: SignIn, **params: str) -> ResponseReturnValue:
        """The authorization response back to the client, with `iss` (RFC 9207)."""
        location = redirect_with(sign_in.redirect_uri, **params, state=sign_in.state, iss=issuer())
        return redirect(location, 302)

    def consent_page(sign_in_id: str, sign_in: SignIn) -> Response:
        assert sign_in.msisdn is not None
        scopes = [(scope, SCOPE_TEXT[scope]) for scope in sign_in.scopes]
        page = pages.consent_page(
            client_name=sign_in.client.name,
            msisdn=sign_in.msisdn,
            scopes=scopes,
            req=sign_in_id,
            action="/oauth2/auth/consent",
        )
        return _html(page)

    @bp.get("/oauth2/auth")
    def authorize() -> ResponseReturnValue:
        sign_in_id, sign_in = provider().begin(request.args.to_dict(flat=False))
        session = provider().session(request.cookies.get(SESSION_COOKIE))
        if provider().resume(sign_in, session):
            if provider().already_granted(sign_in, session):
                provider().end_sign_in(sign_in_id)
                code = provider().issue_code(sign_in, session)
                return answer(sign_in, code=code, scope=" ".join(sign_in.scopes))
            if "none" in sign_in.prompt:
                provider().end_sign_in(sign_in_id)
                return answer(sign_in, error="consent_required", error_description="consent is needed")
            return consent_page(sign_in_id, sign_in)
        if "none" in sign_in.prompt:
            provider().end_sign_in(sign_in_id)
            return answer(sign_in, error="login_required", error_description="the subscriber must sign in")
        hint = sign_in.login_hint if sign_in.login_hint and not e164_problem(sign_in.login_hint, "x") else ""
        return _html(
            pages.phone_page(
                client_name=sign_in.client.name, req=sign_in_id, action="/oauth2/auth/login", msisdn=hint
            )
        )

    @bp.post("/oauth2/auth/login")
    def login() -> ResponseReturnValue:
        sign_in_id = request.form.get("req", "")
        sign_in = provider().sign_in(sign_in_id)
        msisdn = request.form.get("msisdn", "").strip().replace(" ", "")
        problem = e164_problem(msisdn, "Mobile number")
        if problem:
            page = pages.phone_page(
                client_name=sign_in.client.name,
                req=sign_in_id,
                action="/oauth2/auth/login",
                msisdn=msisdn,
                error="Enter your number in international format, e.g. +4799990000.",
            )
            return _html(page, 400)
        sign_in.msisdn = msisdn
        sign_in.pin = f"{secrets.randbelow(10**6):06d}"
        sign_in.pin_attempts_left = PIN_ATTEMPTS
        sign_in.authenticated = False
        return _html(
            pages.pin_page(msisdn=msisdn, pin=sign_in.pin, req=sign_in_id, action="/oauth2/auth/pin")
        )

    @bp.post("/oauth2/auth/pin")
    def pin() -> ResponseReturnValue:
        sign_in_id = request.form.get("req", "")
        sign_in = provider().sign_in(sign_in_id)
        if sign_in.msisdn is None or sign_in.pin is None:
            raise AuthPageError("Sign-in out of order", "Enter your mobile number first.")
        if not hmac.compare_digest(request.form.get("pin", "").strip().encode(), sign_in.pin.encode()):
            sign_in.pin_attempts_left -= 1
            if sign_in.pin_attempts_left <= 0:
                provider().end_sign_in(sign_in_id)
                return answer(sign_in, error="access_denied", error_description="too many wrong PINs")
            page = pages.pin_page(
                msisdn=sign_in.msisdn,
                pin=sign_in.pin,
                req=sign_in_id,
                action="/oauth2/auth/pin",
                error=f"Wrong PIN. {sign_in.pin_attempts_left} attempt(s) left.",
            )
            return _html(page, 400)
        sign_in.authenticated = True
        response = consent_page(sign_in_id, sign_in)
        # The browser stays signed in: its next authorization skips number and PIN.
        response.set_cookie(
            SESSION_COOKIE,
            provider().open_session(sign_in.msisdn),
            max_age=int(SESSION_TTL_SECONDS),
            path="/",
            httponly=True,
            samesite="Lax",
            secure=request.is_secure,
        )
        return response

    @bp.post("/oauth2/auth/consent")
    def consent() -> ResponseReturnValue:
        sign_in_id = request.form.get("req", "")
        sign_in = provider().sign_in(sign_in_id)
        if not sign_in.authenticated:
            raise AuthPageError("Sign-in out of order", "Confirm your PIN first.")
        provider().end_sign_in(sign_in_id)
        if request.form.get("decision") != "allow":
            return answer(sign_in, error="access_denied", error_description="the subscriber declined")
        session = provider().session(request.cookies.get(SESSION_COOKIE))
        if session is not None and session.msisdn != sign_in.msisdn:
            session = None  # another number signed in meanwhile: its grants are not this one's
        code = provider().issue_code(sign_in, session)
        return answer(sign_in, code=code, scope=" ".join(sign_in.scopes))

    @bp.get("/oauth2/sessions/logout")
    def logout() -> ResponseReturnValue:
        return _html(pages.signed_out_page())


def _machine_routes(bp: Blueprint, provider: Callable[[], OidcProvider], issuer: Callable[[], str]) -> None:
    @bp.post("/oauth2/token")
    def token() -> ResponseReturnValue:
        form = _form()
        client = provider().authenticate(request.headers.get("Authorization"), form)
        response = jsonify(provider().token(client, form, issuer()))
        response.headers.update(_NO_STORE)
        return response

    @bp.route("/userinfo", methods=["GET", "POST"])
    def userinfo() -> ResponseReturnValue:
        authorization = request.headers.get("Authorization", "")
        if not authorization.startswith("Bearer ") or not authorization[7:].strip():
            raise OAuthError("invalid_token", "a bearer access token is required", 401)
        return jsonify(provider().userinfo(authorization[7:].strip()))

    @bp.post("/oauth2/revoke")
    def revoke() -> ResponseReturnValue:
        form = _form()
        client = provider().authenticate(request.headers.get("Authorization"), form)
        value = form.get("token")
        if not value:
            raise OAuthError("invalid_request", "token is required")
        provider().revoke(client, value)
        return Response(status=200, headers=_NO_STORE)

    @bp.get("/.well-known/openid-configuration")
    def discovery() -> ResponseReturnValue:
        base = request.url_root.rstrip("/")
        return jsonify(
            issuer=issuer(),
            authorization_endpoint=f"{base}/oauth2/auth",
            token_endpoint=f"{base}/oauth2/token",
            userinfo_endpoint=f"{base}/userinfo",
            revocation_endpoint=f"{base}/oauth2/revoke",
            end_session_endpoint=f"{base}/oauth2/sessions/logout",
            jwks_uri=f"{base}/.well-known/jwks.json",
            response_types_supported=["code"],
            grant_types_supported=["authorization_code", "refresh_token", "client_credentials"],
            subject_types_supported=["pairwise"],
            id_token_signing_alg_values_supported=["RS256"],
            token_endpoint_auth_methods_supported=["client_secret_basic"],
            revocation_endpoint_auth_methods_supported=["client_secret_basic"],
            code_challenge_methods_supported=["S256"],
            authorization_response_iss_parameter_supported=True,
            prompt_values_supported=sorted(PROMPT_VALUES),
            scopes_supported=sorted(USER_SCOPES),
            claims_supported=[
                "sub",
                "iss",
                "aud",
                "exp",
                "iat",
                "auth_time",
                "nonce",
                "sid",
                "phone_number",
                "phone_number_verified",
            ],
        )

    @bp.get("/.well-known/jwks.json")
    def jwks() -> ResponseReturnValue:
        return jsonify(provider().jwks())


def _admin_routes(bp: Blueprint, provider: Callable[[], OidcProvider]) -> None:
    @bp.post("/_admin/rotate-keys")
    def rotate_keys() -> ResponseReturnValue:
        body = request.get_json(silent=True) or {}
        keep = body.get("keep_previous", True) if isinstance(body, dict) else True
        if not isinstance(keep, bool):
            return jsonify(error="expected true or false", field="keep_previous"), 400
        kids = provider().rotate_keys(keep_previous=keep)
        return jsonify(signing_kid=kids[0], published_kids=kids)

    @bp.post("/_admin/oidc/clients")
    def add_client() -> ResponseReturnValue:
        try:
            client = client_from_json(request.get_json(silent=True))
        except ValueError as error:
            field_name = str(error).split(":", 1)[0].removeprefix("body.")
            return jsonify(error=str(error), field=field_name), 400
        provider().add_client(client)
        return jsonify(client_id=client.client_id, redirect_uris=list(client.redirect_uris)), 201


def _form() -> dict[str, str]:
    if request.mimetype != "application/x-www-form-urlencoded":
        raise OAuthError("invalid_request", "the body must be application/x-www-form-urlencoded")
    repeated = [name for name, values in request.form.lists() if len(values) > 1]
    if repeated:
        raise OAuthError("invalid_request", f"parameter {repeated[0]} is repeated")
    return request.form.to_dict()


def _html(body: str, status: int = 200) -> Response:
    return Response(
        body,
        status=status,
        mimetype="text/html",
        headers={
            **_NO_STORE,
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action *; "
            "frame-ancestors 'none'",
            "Referrer-Policy": "no-referrer",
            "X-Frame-Options": "DENY",
        },
    )
