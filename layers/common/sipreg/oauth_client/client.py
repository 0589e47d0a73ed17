"""`OAuthClient`: `IdentityServer` over HTTP.

Each request is built by authlib's OAuth 2.0 pieces (RFC 6749's authorization and token requests
and client authentication, RFC 7009's revocation request, RFC 7636's S256 challenge) and sent
with urllib3 (`sipreg.http`); each answer and failure is mapped onto sipreg's errors
here. Not authlib's httpx integration: importing it brings authlib's OpenID client and with it
joserfc, cryptography, httpx and anyio, about a fifth of the worker's cold start, for calls that
need none of them.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import quote_plus

from sipreg.http import Answer, Http, HttpError, Urllib3Http
from sipreg.oauth_client.metadata import ProviderMetadata, discover
from sipreg.oauth_client.port import (
    GrantRejectedError,
    IdentityServerRejectedError,
    IdentityServerUnavailableError,
    TokenResponse,
)
from sipreg.oauth_client.secret import SecretSource
from sipreg.text import kept

logger = logging.getLogger(__name__)

# The longest access or refresh token sipreg keeps: 4 KMS encryptions (sipreg.cipher), and twice
# what a core or an HTTP server takes in a header (gRPC's default metadata limit is 8 KB).
MAX_TOKEN_BYTES = 16_384
MAX_TOKEN_LIFETIME_SECONDS = 366 * 86_400
MAX_SCOPE_CHARS = 4096  # sipreg keeps the granted scope with the tokens
# RFC 6749 §3.3: scope = scope-token *( SP scope-token ), scope-token = 1*NQCHAR.
_SCOPE = re.compile(r"[\x21\x23-\x5B\x5D-\x7E]+(?: [\x21\x23-\x5B\x5D-\x7E]+)*")
# What a token request carries that must never be quoted back into a log (besides the secret).
_SECRET_PARAMETERS = ("code", "code_verifier", "refresh_token")

# What a token request carries besides its form (the headers of authlib's own clients).
TOKEN_HEADERS: Mapping[str, str] = {
    "Accept": "application/json",
    "Content-Type": "application/x-www-form-urlencoded;charset=UTF-8",
}


def _is_token_text(value: Any) -> bool:
    """RFC 6749 Appendix A: a token is 1*VSCHAR (%x20-7E); sipreg keeps up to MAX_TOKEN_BYTES."""
    return (
        isinstance(value, str) and value.isascii() and value.isprintable() and len(value) <= MAX_TOKEN_BYTES
    )


def _oauth_error(error: Any, description: Any, sent: Sequence[str | None]) -> IdentityServerRejectedError:
    """The identity server's OAuth error (RFC 6749 §5.2) without what the request carried that is
    secret (`sent`): a server may echo it, and the error's message goes into logs and items."""
    kind = GrantRejectedError if error == "invalid_grant" else IdentityServerRejectedError
    return kind(kept(error, secrets=sent), None if description is None else kept(description, secrets=sent))


def _lifetime(expires_in: Any) -> float:
    """RFC 6749 §5.1: the token's lifetime in seconds; without one, an hour is assumed. Anything
    else than a finite, non-negative number is a broken answer, never a token kept forever."""
    if expires_in is None or expires_in == "":
        return 3600.0
    try:
        seconds = float(expires_in) if not isinstance(expires_in, bool) else math.nan
    except (TypeError, ValueError):
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0:
        raise IdentityServerUnavailableError("token: expires_in is not a number of seconds")
    # A "never" such as 2**63 - 1 would overflow a datetime (the status API) and DynamoDB's
    # numbers: a longer lifetime is taken as a year, and the token renewed then.
    return min(seconds, MAX_TOKEN_LIFETIME_SECONDS)


class OAuthClient:
    """`IdentityServer` over HTTP, one per process.

    The provider's metadata is read on first use and kept for the life of the process (a
    failure to read it is not kept: the next call tries again). One connection pool (it can be
    shared between threads) carries every request; nothing else is kept between calls.
    """

    def __init__(
        self,
        base_url: str,
        *,
        issuer: str | None = None,
        client_id: str,
        client_secret: SecretSource,
        redirect_uri: str | None = None,
        timeout_seconds: float = 5.0,
        clock: Callable[[], float] = time.time,
        http: Http | None = None,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        # Compared exactly, as configured (OIDC Discovery §4.3, RFC 8414 §3.3): a trailing slash is
        # part of an issuer; only the default, the base URL, is derived.
        self._issuer = issuer or self._base_url
        self._client_id = client_id
        self._secret = client_secret
        self._redirect_uri = redirect_uri
        self._clock = clock
        # A fake at the HTTP boundary in unit tests.
        self._http = http or Urllib3Http(timeout_seconds)
        self._metadata_lock = threading.Lock()
        self._metadata: ProviderMetadata | None = None

    # -- metadata -----------------------------------------------------------------------------------

    def metadata(self) -> ProviderMetadata:
        with self._metadata_lock:
            if self._metadata is None:
                self._metadata = discover(self._http, self._base_url, issuer=self._issuer)
            return self._metadata

    def issuer_in_authorization_response(self) -> bool:
        return self.metadata().iss_parameter_supported

    # -- the browser leg: no secret needed ------------------------------------------------------

    def authorization_url(
        self, *, state: str, code_verifier: str, nonce: str, scopes: Sequence[str], login_hint: str | None
    ) -> str:
        from authlib.oauth2.rfc6749.parameters import prepare_grant_uri  # noqa: PLC0415
        from authlib.oauth2.rfc7636 import create_s256_code_challenge  # noqa: PLC0415

        extra = {"nonce": nonce}
        if "offline_access" in scopes:
            # OIDC Core §11: without prompt=consent the provider MUST ignore offline_access.
            extra["prompt"] = "consent"
        if login_hint:
            extra["login_hint"] = login_hint
        url = prepare_grant_uri(
            self.metadata().authorization_endpoint,
            client_id=self._client_id,
            response_type="code",
            redirect_uri=self._redirect_uri,
            scope=" ".join(scopes),
            state=state,
            **extra,
            code_challenge=create_s256_code_challenge(code_verifier),
            code_challenge_method="S256",
        )
        return str(url)

    # -- the token endpoint -----------------------------------------------------------------------

    def exchange_code(self, code: str, *, code_verifier: str) -> TokenResponse:
        token = self._token(
            "authorization_code", code=code, code_verifier=code_verifier, redirect_uri=self._redirect_uri
        )
        return self._token_response(token, requested=())

    def refresh(self, refresh_token: str) -> TokenResponse:
        token = self._token("refresh_token", refresh_token=refresh_token)
        # RFC 6749 §6: without a new refresh token in the answer, the one used stays valid.
        token.setdefault("refresh_token", refresh_token)
        return self._token_response(token, requested=())

    def client_credentials(self, scopes: Sequence[str]) -> TokenResponse:
        token = self._token("client_credentials", scope=" ".join(scopes))
        return self._token_response(token, requested=tuple(scopes))

    def revoke(self, token: str, *, token_type_hint: str) -> None:
        from authlib.oauth2.rfc7009 import prepare_revoke_token_request  # noqa: PLC0415

        metadata = self.metadata()
        if metadata.revocation_endpoint is None:
            # Nothing to call: the provider offers no revocation (its tokens die with their lifetime).
            logger.warning("the identity server publishes no revocation_endpoint: not revoked there")
            return
        body, headers = prepare_revoke_token_request(token, token_type_hint)
        for attempt in range(2):
            response = self._post(
                "revoke",
                metadata.revocation_endpoint,
                body,
                headers,
                auth_method=metadata.revocation_auth_method,
                force_secret=attempt > 0,
            )
            if response.status != 401 or attempt > 0:
                break  # a plain 401 from an endpoint with client auth: the secret, read once more
        if response.status >= 400:  # the secret is read again only to take it out of a refusal
            self._raise_for_status(response, sent=[token, self._secret(False)])

    # -- public endpoints ---------------------------------------------------------------------------

    def userinfo(self, access_token: str) -> dict[str, Any]:
        endpoint = self.metadata().userinfo_endpoint
        if endpoint is None:
            return {}
        answer = self._get("userinfo", endpoint, {"Authorization": f"Bearer {access_token}"})
        return self._json_object(answer, sent=[access_token])

    def jwks(self) -> dict[str, Any]:
        return self._json_object(self._get("jwks", self.metadata().jwks_uri, {}))

    # -- plumbing -----------------------------------------------------------------------------------

    def _token(self, grant_type: str, **parameters: str | None) -> dict[str, Any]:
        """One token request (RFC 6749 §4-6): the answer's JSON object. Sent once more with a
        re-read secret when the server says `invalid_client` (the secret may have been rotated)."""
        from authlib.oauth2.rfc6749.parameters import prepare_token_request  # noqa: PLC0415

        metadata = self.metadata()
        body = prepare_token_request(grant_type, **parameters)
        for attempt in range(2):
            response = self._post(
                "token",
                metadata.token_endpoint,
                body,
                TOKEN_HEADERS,
                auth_method=metadata.token_auth_method,
                force_secret=attempt > 0,
            )
            token = self._token_object(response)
            error = token.get("error")
            if "error" not in token:
                return token
            if error == "invalid_client" and attempt == 0:
                continue
            sent = [self._secret(False), *(parameters.get(name) for name in _SECRET_PARAMETERS)]
            raise _oauth_error(error, token.get("error_description"), sent)
        raise AssertionError("unreachable: the second attempt returns or raises")

    def _token_object(self, response: Answer) -> dict[str, Any]:
        """A token endpoint's answer as authlib's clients read it: a JSON object (an OAuth error
        too, whatever its status), else the HTTP status is the failure."""
        if response.status < 500:
            try:
                token = response.json()
            except ValueError:
                token = None
            if isinstance(token, dict):
                return token
            if response.is_success:
                raise IdentityServerUnavailableError("token: the answer was not a JSON object")
        raise self._status_error("token", response.status)

    def _post(
        self,
        what: str,
        url: str,
        body: str,
        headers: Mapping[str, str],
        *,
        auth_method: str,
        force_secret: bool,
    ) -> Answer:
        """POSTs a form with the client's authentication (`client_secret_basic` or `_post`)."""
        from authlib.oauth2.auth import ClientAuth  # noqa: PLC0415

        client_id, secret = self._client_id, self._secret(force_secret)
        if auth_method == "client_secret_basic":
            # RFC 6749 §2.3.1: each part form-urlencoded before base64 (authlib sends them raw, so a
            # secret with '+', '%' or a space fails at a provider that decodes them, as certified ones do)
            client_id, secret = quote_plus(client_id, safe=""), quote_plus(secret, safe="")
        client_auth = ClientAuth(client_id, secret, auth_method)
        url, signed_headers, signed_body = client_auth.prepare("POST", url, dict(headers), body)
        try:
            return self._http.post(url, signed_body, signed_headers)
        except HttpError as failure:
            raise IdentityServerUnavailableError(f"{what}: {failure}") from None

    def _get(self, what: str, url: str, headers: Mapping[str, str]) -> Answer:
        try:
            return self._http.get(url, headers)
        except HttpError as failure:
            raise IdentityServerUnavailableError(f"{what}: {failure}") from None

    @staticmethod
    def _status_error(what: str, status: int) -> IdentityServerRejectedError | IdentityServerUnavailableError:
        if status >= 500 or status == 429:
            return IdentityServerUnavailableError(f"{what}: HTTP {status}")
        return IdentityServerRejectedError(f"http_{status}", f"{what} answered HTTP {status}")

    def _token_response(self, token: Mapping[str, Any], *, requested: tuple[str, ...]) -> TokenResponse:
        access_token = token.get("access_token")
        if not isinstance(access_token, str) or not access_token:
            raise IdentityServerUnavailableError("token: the answer has no access_token")
        refresh_token, id_token = token.get("refresh_token") or None, token.get("id_token") or None
        for name, value in (("access_token", access_token), ("refresh_token", refresh_token)):
            if value is not None and not _is_token_text(value):
                raise IdentityServerRejectedError(
                    "invalid_token_response",
                    f"the {name} is not {MAX_TOKEN_BYTES:,} or fewer visible ASCII characters",
                )
        if id_token is not None and not isinstance(id_token, str):
            raise IdentityServerRejectedError("invalid_token_response", "the id_token is not a string")
        lifetime = _lifetime(token.get("expires_in"))
        scope = token.get("scope")
        if scope not in (None, "") and not (
            isinstance(scope, str) and len(scope) <= MAX_SCOPE_CHARS and _SCOPE.fullmatch(scope)
        ):
            raise IdentityServerRejectedError(
                "invalid_token_response",
                f"the scope is not {MAX_SCOPE_CHARS:,} or fewer characters of space-separated scope tokens",
            )
        return TokenResponse(
            access_token=access_token,
            expires_at=self._clock() + lifetime,
            scopes=tuple(scope.split()) if isinstance(scope, str) else requested,
            refresh_token=refresh_token,
            id_token=id_token,
        )

    @staticmethod
    def _raise_for_status(response: Answer, sent: Sequence[str | None] = ()) -> None:
        """`sent`: what the request carried that is secret."""
        if response.status < 400:
            return
        if response.status >= 500 or response.status == 429:
            raise IdentityServerUnavailableError(f"HTTP {response.status}")
        try:
            body = response.json()
            error = body.get("error", f"http_{response.status}")
            description = body.get("error_description")
        except (ValueError, AttributeError):
            error, description = f"http_{response.status}", None
        raise _oauth_error(error, description, sent)

    def _json_object(self, response: Answer, sent: Sequence[str] = ()) -> dict[str, Any]:
        self._raise_for_status(response, sent)
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise IdentityServerUnavailableError("the answer was not a JSON object")
        return body
