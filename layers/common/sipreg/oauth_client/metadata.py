"""The provider's metadata: its endpoints and what it supports, from its discovery document
(`<IdentityServerUrl>/.well-known/openid-configuration`, OpenID Connect Discovery 1.0 / RFC 8414),
checked against the configured issuer. Only a provider that publishes no document at all (404)
gets WG2's paths, and that fallback is logged. Client authentication is the first of HTTP Basic
and form post that the provider supports."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sipreg.http import Http, HttpError
from sipreg.oauth_client.port import IdentityServerRejectedError, IdentityServerUnavailableError

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


def discover(http: Http, base_url: str, *, issuer: str) -> ProviderMetadata:
    """Reads and checks the provider's discovery document (WG2's paths on a 404)."""
    try:
        response = http.get(base_url + DISCOVERY_PATH, {"Accept": "application/json"})
    except HttpError as failure:
        raise IdentityServerUnavailableError(f"discovery: {failure}") from None
    if response.status == 404:
        logger.warning("the identity server publishes no discovery document: using WG2's paths")
        return ProviderMetadata.wg2_fallback(base_url, issuer=issuer)
    if response.status >= 500 or response.status == 429:
        raise IdentityServerUnavailableError(f"discovery: HTTP {response.status}")
    if response.status != 200:
        raise IdentityServerRejectedError(
            f"http_{response.status}", f"discovery answered HTTP {response.status}"
        )
    try:
        document = response.json()
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise IdentityServerUnavailableError("discovery: the answer was not a JSON object")
    metadata = ProviderMetadata.from_document(document, issuer=issuer)
    logger.info(
        "identity server metadata read (client auth %s, iss in responses: %s)",
        metadata.token_auth_method,
        metadata.iss_parameter_supported,
    )
    return metadata
