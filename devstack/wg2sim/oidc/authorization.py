"""The authorization request, checked: OAuth 2.0 (RFC 6749 §4.1.1), PKCE S256 only (RFC 7636),
OpenID Connect's `prompt`, and `offline_access` only with `prompt=consent` (OIDC Core §11)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping

from devstack.wg2sim.oidc.config import OidcClient
from devstack.wg2sim.oidc.model import (
    OFFLINE,
    PROMPT_VALUES,
    USER_SCOPES,
    AuthPageError,
    RedirectError,
    SignIn,
)

_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")


def check_request(
    args: Mapping[str, list[str]], client_of: Callable[[str | None], OidcClient | None]
) -> SignIn:
    """The sign-in a valid request starts. Raises AuthPageError (no redirect: client or redirect
    URI untrusted) or RedirectError (tell the client)."""
    single = _single_values(args)
    client = client_of(single.get("client_id"))
    if client is None:
        raise AuthPageError("Unknown application", "client_id is missing or not registered here.")
    redirect_uri = single.get("redirect_uri")
    if redirect_uri not in client.redirect_uris:
        raise AuthPageError("Wrong return address", "redirect_uri does not exactly match a registered one.")
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
        raise refuse("invalid_request", f"unknown prompt value: {' '.join(sorted(prompt - PROMPT_VALUES))}")
    if "none" in prompt and len(prompt) > 1:
        raise refuse("invalid_request", "prompt=none cannot be combined with other values")
    if OFFLINE in scopes and "consent" not in prompt:
        # OIDC Core §11: without prompt=consent the OP MUST ignore offline_access.
        scopes = tuple(scope for scope in scopes if scope != OFFLINE)
    return SignIn(
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


def _single_values(args: Mapping[str, list[str]]) -> dict[str, str]:
    repeated = [name for name, values in args.items() if len(values) > 1]
    if repeated:
        raise AuthPageError("Malformed request", f"parameter {repeated[0]} is repeated")
    return {name: values[0] for name, values in args.items() if values}
