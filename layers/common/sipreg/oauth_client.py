"""The OAuth 2.0 / OpenID Connect client: what sipreg asks of the operator's identity server.

    client = sipreg.wiring.parts.identity_server(settings, redirect_uri=...)   # one per process
    client.authorization_url(state=..., code_verifier=..., nonce=..., scopes=..., login_hint=...)
    client.exchange_code(code, code_verifier=...)           # -> TokenResponse
    client.refresh(refresh_token) / client.client_credentials(scopes) / client.revoke(token, ...)

Endpoints come from the issuer's discovery document (`<IdentityServerUrl>/.well-known/
openid-configuration`, OpenID Connect Discovery 1.0 / RFC 8414), read once per process and
checked against the configured issuer; only a provider that publishes no document at all (404)
gets WG2's paths, and that fallback is logged. The JWKS comes from `jwks_uri`, client
authentication is the first of HTTP Basic and form post that the provider supports.

The protocol work is authlib's (httpx client); this module maps its answers and failures onto
sipreg's errors, whose messages never carry a token or secret.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import httpx
    from authlib.integrations.httpx_client import OAuth2Client

logger = logging.getLogger(__name__)

DISCOVERY_PATH = "/.well-known/openid-configuration"
# WG2's layout (docs/reference/wg2-interfaces.md §2): only for a provider that publishes no discovery
# document.
WG2_PATHS: Mapping[str, str] = {
    "authorization_endpoint": "/oauth2/auth",
    "token_endpoint": "/oauth2/token",
    "userinfo_endpoint": "/userinfo",
    "revocation_endpoint": "/oauth2/revoke",
    "jwks_uri": "/.well-known/jwks.json",
}
# Client authentication we can do, best first. RFC 8414 §2: an omitted list means HTTP Basic.
CLIENT_AUTH_METHODS = ("client_secret_basic", "client_secret_post")


# --- errors -------------------------------------------------------------------------------------


class TokenError(Exception):
    """Base of every token failure; messages never contain a token or secret."""


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


# --- provider metadata (discovery) --------------------------------------------------------------


@dataclass(frozen=True)
class ProviderMetadata:
    """The parts of a provider's metadata sipreg uses."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None
    revocation_endpoint: str | None
    token_auth_method: str
    revocation_auth_method: str
    iss_parameter_supported: bool
    discovered: bool  # False: WG2's paths (the provider published no discovery document)

    @classmethod
    def wg2_fallback(cls, base_url: str, *, issuer: str) -> ProviderMetadata:
        base = base_url.rstrip("/")
        return cls(
            issuer=issuer,
            authorization_endpoint=base + WG2_PATHS["authorization_endpoint"],
            token_endpoint=base + WG2_PATHS["token_endpoint"],
            jwks_uri=base + WG2_PATHS["jwks_uri"],
            userinfo_endpoint=base + WG2_PATHS["userinfo_endpoint"],
            revocation_endpoint=base + WG2_PATHS["revocation_endpoint"],
            token_auth_method=CLIENT_AUTH_METHODS[0],
            revocation_auth_method=CLIENT_AUTH_METHODS[0],
            iss_parameter_supported=False,
            discovered=False,
        )

    @classmethod
    def from_document(cls, document: Mapping[str, Any], *, issuer: str) -> ProviderMetadata:
        """Checks a discovery document; IdentityServerRejectedError names what is wrong."""
        published = document.get("issuer")
        if published != issuer:
            # OIDC Discovery §4.3: the document's issuer MUST be the one we expect (mix-up defence).
            raise IdentityServerRejectedError(
                "issuer_mismatch", f"the discovery document names issuer {published!r}, not {issuer!r}"
            )

        def endpoint(name: str, *, required: bool) -> str | None:
            value = document.get(name)
            if isinstance(value, str) and value.startswith(("https://", "http://")):
                return value
            if required or value is not None:
                raise IdentityServerRejectedError(
                    "discovery_invalid", f"the discovery document has no usable {name}"
                )
            return None

        authorization = endpoint("authorization_endpoint", required=True)
        token = endpoint("token_endpoint", required=True)
        jwks_uri = endpoint("jwks_uri", required=True)
        assert authorization and token and jwks_uri  # required=True raised otherwise
        return cls(
            issuer=issuer,
            authorization_endpoint=authorization,
            token_endpoint=token,
            jwks_uri=jwks_uri,
            userinfo_endpoint=endpoint("userinfo_endpoint", required=False),
            revocation_endpoint=endpoint("revocation_endpoint", required=False),
            token_auth_method=_auth_method(document, "token_endpoint_auth_methods_supported"),
            revocation_auth_method=_auth_method(document, "revocation_endpoint_auth_methods_supported"),
            iss_parameter_supported=document.get("authorization_response_iss_parameter_supported") is True,
            discovered=True,
        )


def _auth_method(document: Mapping[str, Any], name: str) -> str:
    supported = document.get(name, [CLIENT_AUTH_METHODS[0]])
    if not isinstance(supported, list):
        raise IdentityServerRejectedError("discovery_invalid", f"{name} is not a list")
    for method in CLIENT_AUTH_METHODS:
        if method in supported:
            return method
    raise IdentityServerRejectedError(
        "unsupported_client_auth", f"{name} offers none of {', '.join(CLIENT_AUTH_METHODS)}"
    )


# --- the client ---------------------------------------------------------------------------------

SecretSource = Callable[[bool], str]
"""Returns the client secret; called with True to bypass a cache (after `invalid_client`)."""


def secrets_manager_secret(secret_id: str, *, max_age_seconds: int) -> SecretSource:
    """The client secret from Secrets Manager, cached per process by powertools."""

    def fetch(force: bool) -> str:
        from aws_lambda_powertools.utilities import parameters  # noqa: PLC0415  # cold-start cost

        value = parameters.get_secret(secret_id, max_age=max_age_seconds, force_fetch=force)
        if not isinstance(value, str) or not value:
            raise IdentityServerRejectedError(
                "client_secret_unreadable", "the secret must be a non-empty string"
            )
        return value

    return fetch


class OAuthClient:
    """`IdentityServer` over HTTP with authlib's httpx client.

    The provider's metadata is read on first use and kept for the life of the process (a
    failure to read it is not kept: the next call tries again). One authlib client per process;
    a lock serialises its use because authlib keeps the last token on the client object.
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
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._issuer = (issuer or self._base_url).rstrip("/")
        self._client_id = client_id
        self._secret = client_secret
        self._redirect_uri = redirect_uri
        self._timeout = timeout_seconds
        self._clock = clock
        self._transport = transport  # unit tests only: a fake at the HTTP boundary
        self._lock = threading.Lock()
        self._metadata_lock = threading.Lock()
        self._metadata: ProviderMetadata | None = None
        self._session: OAuth2Client | None = None
        self._session_secret_digest: bytes | None = None

    # -- metadata -----------------------------------------------------------------------------------

    def metadata(self) -> ProviderMetadata:
        with self._metadata_lock:
            if self._metadata is None:
                self._metadata = self._discover()
            return self._metadata

    def _discover(self) -> ProviderMetadata:
        import httpx  # noqa: PLC0415

        url = self._base_url + DISCOVERY_PATH
        try:
            with httpx.Client(timeout=self._timeout, transport=self._transport) as http:
                response = http.get(url, headers={"Accept": "application/json"})
        except httpx.TransportError as error:
            raise IdentityServerUnavailableError(f"discovery: {type(error).__name__}") from None
        if response.status_code == 404:
            logger.warning("the identity server publishes no discovery document: using WG2's paths")
            return ProviderMetadata.wg2_fallback(self._base_url, issuer=self._issuer)
        if response.status_code >= 500 or response.status_code == 429:
            raise IdentityServerUnavailableError(f"discovery: HTTP {response.status_code}")
        if response.status_code != 200:
            raise IdentityServerRejectedError(
                f"http_{response.status_code}", f"discovery answered HTTP {response.status_code}"
            )
        try:
            document = response.json()
        except ValueError:
            document = None
        if not isinstance(document, dict):
            raise IdentityServerUnavailableError("discovery: the answer was not a JSON object")
        metadata = ProviderMetadata.from_document(document, issuer=self._issuer)
        logger.info(
            "identity server metadata read (client auth %s, iss in responses: %s)",
            metadata.token_auth_method,
            metadata.iss_parameter_supported,
        )
        return metadata

    def issuer_in_authorization_response(self) -> bool:
        return self.metadata().iss_parameter_supported

    # -- the browser leg: no secret needed ------------------------------------------------------

    def authorization_url(
        self, *, state: str, code_verifier: str, nonce: str, scopes: Sequence[str], login_hint: str | None
    ) -> str:
        from authlib.integrations.httpx_client import OAuth2Client  # noqa: PLC0415

        extra = {"nonce": nonce}
        if "offline_access" in scopes:
            # OIDC Core §11: without prompt=consent the provider MUST ignore offline_access.
            extra["prompt"] = "consent"
        if login_hint:
            extra["login_hint"] = login_hint
        with OAuth2Client(
            client_id=self._client_id,
            redirect_uri=self._redirect_uri,
            scope=" ".join(scopes),
            code_challenge_method="S256",
        ) as builder:
            url, _ = builder.create_authorization_url(
                self.metadata().authorization_endpoint, state=state, code_verifier=code_verifier, **extra
            )
        return str(url)

    # -- the token endpoint -----------------------------------------------------------------------

    def exchange_code(self, code: str, *, code_verifier: str) -> TokenResponse:
        endpoint = self.metadata().token_endpoint
        return self._token_call(
            lambda s: s.fetch_token(
                endpoint,
                grant_type="authorization_code",
                code=code,
                code_verifier=code_verifier,
                redirect_uri=self._redirect_uri,
            ),
            requested=(),
        )

    def refresh(self, refresh_token: str) -> TokenResponse:
        endpoint = self.metadata().token_endpoint
        return self._token_call(
            lambda s: s.refresh_token(endpoint, refresh_token=refresh_token), requested=()
        )

    def client_credentials(self, scopes: Sequence[str]) -> TokenResponse:
        endpoint = self.metadata().token_endpoint
        return self._token_call(
            lambda s: s.fetch_token(endpoint, grant_type="client_credentials", scope=" ".join(scopes)),
            requested=tuple(scopes),
        )

    def revoke(self, token: str, *, token_type_hint: str) -> None:
        endpoint = self.metadata().revocation_endpoint
        if endpoint is None:
            # Nothing to call: the provider offers no revocation (its tokens die with their lifetime).
            logger.warning("the identity server publishes no revocation_endpoint: not revoked there")
            return
        response = self._call(
            "revoke",
            lambda s: s.revoke_token(endpoint, token=token, token_type_hint=token_type_hint),
            client_auth=True,
        )
        self._raise_for_status(response)

    # -- public endpoints ---------------------------------------------------------------------------

    def userinfo(self, access_token: str) -> dict[str, Any]:
        endpoint = self.metadata().userinfo_endpoint
        if endpoint is None:
            return {}
        response = self._call(
            "userinfo",
            lambda s: s.request(
                "GET", endpoint, headers={"Authorization": f"Bearer {access_token}"}, withhold_token=True
            ),
        )
        return self._json_object(response)

    def jwks(self) -> dict[str, Any]:
        jwks_uri = self.metadata().jwks_uri
        answer = self._call("jwks", lambda s: s.request("GET", jwks_uri, withhold_token=True))
        return self._json_object(answer)

    # -- plumbing -----------------------------------------------------------------------------------

    def _session_for(self, force_secret: bool) -> OAuth2Client:
        from authlib.integrations.httpx_client import OAuth2Client  # noqa: PLC0415

        metadata = self.metadata()
        secret = self._secret(force_secret)
        digest = hashlib.sha256(secret.encode()).digest()
        if self._session is None or digest != self._session_secret_digest:
            if self._session is not None:
                self._session.close()
            self._session = OAuth2Client(
                client_id=self._client_id,
                client_secret=secret,
                token_endpoint_auth_method=metadata.token_auth_method,
                revocation_endpoint_auth_method=metadata.revocation_auth_method,
                redirect_uri=self._redirect_uri,
                timeout=self._timeout,
                transport=self._transport,
            )
            self._session_secret_digest = digest
        return self._session

    def _call(self, what: str, action: Callable[[OAuth2Client], Any], *, client_auth: bool = False) -> Any:
        """Runs `action`, mapping failures to our errors; retries once with a re-read secret when
        the server says `invalid_client` (the secret may have been rotated)."""
        import httpx  # noqa: PLC0415
        from authlib.integrations.base_client import OAuthError  # noqa: PLC0415

        for attempt in range(2):
            with self._lock:
                try:
                    session = self._session_for(force_secret=attempt > 0)
                    answer = action(session)
                    unauthorized = isinstance(answer, httpx.Response) and answer.status_code == 401
                    if client_auth and unauthorized and attempt == 0:
                        continue  # a plain 401 from an endpoint with client auth: bad secret
                    return answer
                except OAuthError as error:
                    if error.error == "invalid_client" and attempt == 0:
                        continue
                    if error.error == "invalid_grant":
                        raise GrantRejectedError(error.error, error.description) from None
                    raise IdentityServerRejectedError(str(error.error), error.description) from None
                except httpx.HTTPStatusError as error:
                    status = error.response.status_code
                    if status >= 500 or status == 429:
                        raise IdentityServerUnavailableError(f"{what}: HTTP {status}") from None
                    raise IdentityServerRejectedError(
                        f"http_{status}", f"{what} answered HTTP {status}"
                    ) from None
                except httpx.TransportError as error:
                    raise IdentityServerUnavailableError(f"{what}: {type(error).__name__}") from None
                except ValueError:
                    raise IdentityServerUnavailableError(
                        f"{what}: the answer was not a JSON object"
                    ) from None
        raise IdentityServerRejectedError("invalid_client", f"{what}: the client id or secret was refused")

    def _token_call(
        self, action: Callable[[OAuth2Client], Any], *, requested: tuple[str, ...]
    ) -> TokenResponse:
        token = self._call("token", action)
        access_token = token.get("access_token")
        if not isinstance(access_token, str) or not access_token:
            raise IdentityServerUnavailableError("token: the answer has no access_token")
        expires_in = token.get("expires_in")
        lifetime = (
            float(expires_in) if isinstance(expires_in, int | float | str) and expires_in != "" else 3600.0
        )
        scope = token.get("scope")
        return TokenResponse(
            access_token=access_token,
            expires_at=self._clock() + lifetime,
            scopes=tuple(scope.split()) if isinstance(scope, str) else requested,
            refresh_token=token.get("refresh_token") or None,
            id_token=token.get("id_token") or None,
        )

    def _raise_for_status(self, response: httpx.Response) -> None:
        if response.status_code < 400:
            return
        if response.status_code >= 500 or response.status_code == 429:
            raise IdentityServerUnavailableError(f"HTTP {response.status_code}")
        try:
            body = response.json()
            error = str(body.get("error", f"http_{response.status_code}"))
            description = body.get("error_description")
        except ValueError:
            error, description = f"http_{response.status_code}", None
        raise IdentityServerRejectedError(error, description)

    def _json_object(self, response: httpx.Response) -> dict[str, Any]:
        self._raise_for_status(response)
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise IdentityServerUnavailableError("the answer was not a JSON object")
        return body
