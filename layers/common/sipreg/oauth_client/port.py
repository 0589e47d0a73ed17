"""What sipreg asks of the operator's identity server (`IdentityServer`), what a token endpoint
answers (`TokenResponse`) and how a call fails (`TokenError` and its kinds)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sipreg.text import kept

# --- errors -------------------------------------------------------------------------------------


class TokenError(Exception):
    """Base of every token failure; messages never contain a token or secret, and are kept short
    (`sipreg.text.kept`: they quote the identity server, and end up in items and logs)."""

    def __init__(self, message: str = "") -> None:
        super().__init__(kept(message))


class IdentityServerUnavailableError(TokenError):
    """No answer, a 5xx, or a garbled one: the same call may succeed later."""


class IdentityServerRejectedError(TokenError):
    """The identity server refused the request with an OAuth error (`error` says which), or it is
    not one sipreg can work with (its discovery document names another issuer, ...)."""

    def __init__(self, error: str, description: str | None = None) -> None:
        super().__init__(f"identity server refused: {error}" + (f" ({description})" if description else ""))
        self.error = error


class GrantRejectedError(IdentityServerRejectedError):
    """`invalid_grant`: the code or refresh token is unknown, used, expired or revoked."""


# --- the port -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenResponse:
    """A token endpoint answer; the tokens never show in its repr."""

    access_token: str = field(repr=False)
    expires_at: float  # epoch seconds, by our clock
    scopes: tuple[str, ...]
    refresh_token: str | None = field(default=None, repr=False)
    id_token: str | None = field(default=None, repr=False)


class IdentityServer(Protocol):
    """What sipreg asks of the operator's OAuth 2.0 / OpenID Connect server."""

    def authorization_url(
        self, *, state: str, code_verifier: str, nonce: str, scopes: Sequence[str], login_hint: str | None
    ) -> str: ...

    def issuer_in_authorization_response(self) -> bool:
        """True when the provider announces RFC 9207's `iss` in its authorization responses."""
        ...

    def exchange_code(self, code: str, *, code_verifier: str) -> TokenResponse: ...

    def refresh(self, refresh_token: str) -> TokenResponse: ...

    def client_credentials(self, scopes: Sequence[str]) -> TokenResponse: ...

    def revoke(self, token: str, *, token_type_hint: str) -> None: ...

    def userinfo(self, access_token: str) -> dict[str, Any]: ...

    def jwks(self) -> dict[str, Any]: ...
