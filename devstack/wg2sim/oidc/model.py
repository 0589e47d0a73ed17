"""What the identity server holds and answers with: scopes and lifetimes, the records of
sign-ins, browser sessions and grants, and the protocol's errors."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit, urlunsplit

from devstack.wg2sim.oidc.config import OidcClient
from devstack.wg2sim.tokens import SCOPE_V0, SCOPE_V1

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
