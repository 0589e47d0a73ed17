"""The OAuth 2.0 / OpenID Connect client: what sipreg asks of the operator's identity server.

    client = sipreg.wiring.parts.identity_server(settings, redirect_uri=...)   # one per process
    client.authorization_url(state=..., code_verifier=..., nonce=..., scopes=..., login_hint=...)
    client.exchange_code(code, code_verifier=...)           # -> TokenResponse
    client.refresh(refresh_token) / client.client_credentials(scopes) / client.revoke(token, ...)

One module per concern: `port` (the `IdentityServer` protocol, `TokenResponse`, the errors, whose
messages never carry a token or secret), `metadata` (the provider's endpoints from its discovery
document, read once per process), `secret` (the client secret from Secrets Manager) and `client`
(`OAuthClient`: the requests, built by authlib's OAuth 2.0 pieces and sent over `sipreg.http`).
"""

from sipreg.oauth_client.client import OAuthClient
from sipreg.oauth_client.metadata import CLIENT_AUTH_METHODS, DISCOVERY_PATH, WG2_PATHS, ProviderMetadata
from sipreg.oauth_client.port import (
    GrantRejectedError,
    IdentityServer,
    IdentityServerRejectedError,
    IdentityServerUnavailableError,
    TokenError,
    TokenResponse,
)
from sipreg.oauth_client.secret import SecretSource, secrets_manager_secret

__all__ = [
    "CLIENT_AUTH_METHODS",
    "DISCOVERY_PATH",
    "WG2_PATHS",
    "GrantRejectedError",
    "IdentityServer",
    "IdentityServerRejectedError",
    "IdentityServerUnavailableError",
    "OAuthClient",
    "ProviderMetadata",
    "SecretSource",
    "TokenError",
    "TokenResponse",
    "secrets_manager_secret",
]
