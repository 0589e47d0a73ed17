"""What several functions are built from: the token service (worker, consent) and the core client."""

from __future__ import annotations

from functools import cache

from sipreg.cipher import KmsCipher
from sipreg.config import CoreSettings, TokenSettings
from sipreg.core.client import GrpcCoreClient
from sipreg.oauth_client import IdentityServer, OAuthClient, secrets_manager_secret
from sipreg.store.subscribers import SubscriberStore
from sipreg.tokens import SERVICE_SCOPES, TokenService


def identity_server(settings: TokenSettings, *, redirect_uri: str | None = None) -> OAuthClient:
    return OAuthClient(
        settings.identity_server_url,
        issuer=settings.oidc_issuer,
        client_id=settings.client_id,
        client_secret=secrets_manager_secret(
            settings.client_secret_arn, max_age_seconds=settings.secret_max_age_seconds
        ),
        redirect_uri=redirect_uri,
        timeout_seconds=settings.http_timeout_seconds,
    )


def token_service(settings: TokenSettings, *, identity: IdentityServer | None = None) -> TokenService:
    return TokenService(
        store=SubscriberStore(settings.subscribers_table),
        cipher=KmsCipher(settings.data_key_id),
        identity=identity or identity_server(settings),
        service_scope=SERVICE_SCOPES[settings.api_version],
        refresh_margin_seconds=settings.refresh_margin_seconds,
        lease_seconds=max(30.0, 3 * settings.http_timeout_seconds),
    )


@cache
def core_client(settings: CoreSettings) -> GrpcCoreClient:
    """One client (one channel) per settings in a process: built once, then reused."""
    return GrpcCoreClient.from_settings(settings)
