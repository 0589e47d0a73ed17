"""OAuthStartFunction and OAuthCallbackFunction: the consent flow, its OAuth states table, the
token service over the identity server, the ID-token verifier and (callback only) the events
queue that announces a consent."""

from __future__ import annotations

from functools import cache

from sipreg.config import ConfigError, ConsentSettings
from sipreg.consent.announcements import ConsentEvents, NoAnnouncements, QueueConsentEvents
from sipreg.consent.flow import ConsentFlow
from sipreg.consent.id_tokens import IdTokenVerifier
from sipreg.oauth_client import IdentityServer
from sipreg.store.oauth_states import OAuthStateStore
from sipreg.tokens import default_user_scopes
from sipreg.wiring import parts


def build(
    settings: ConsentSettings,
    *,
    identity: IdentityServer | None = None,
    events: ConsentEvents | None = None,
    announce: bool = True,
) -> ConsentFlow:
    """`announce=False` for a flow that only starts (no queue needed); else EVENTS_QUEUE_URL is."""
    client = identity or parts.identity_server(settings, redirect_uri=settings.callback_url)
    if events is None:
        if settings.events_queue_url is not None:
            events = QueueConsentEvents(settings.events_queue_url)
        elif announce:
            raise ConfigError("bad configuration: EVENTS_QUEUE_URL: required to announce consents")
        else:
            events = NoAnnouncements()
    return ConsentFlow(
        states=OAuthStateStore(settings.oauth_states_table),
        tokens=parts.token_service(settings, identity=client),
        identity=client,
        id_tokens=IdTokenVerifier(client.jwks, issuer=settings.oidc_issuer, audience=settings.client_id),
        events=events,
        scopes=settings.scopes or default_user_scopes(settings.api_version),
        return_to_allowlist=settings.return_to_allowlist,
        issuer=settings.oidc_issuer,
        # Secure cookies are not sent over plain http: only a local stack's callback is http.
        secure_cookies=settings.callback_url.startswith("https://"),
    )


@cache
def from_env(*, announce: bool = True) -> ConsentFlow:
    return build(ConsentSettings.from_env(), announce=announce)
