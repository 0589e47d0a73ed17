"""Where the OAuth client's secret comes from: Secrets Manager, never the environment."""

from __future__ import annotations

from collections.abc import Callable

from sipreg.oauth_client.port import IdentityServerRejectedError

SecretSource = Callable[[bool], str]
"""Returns the client secret; called with True to bypass a cache (after `invalid_client`)."""


def secrets_manager_secret(secret_id: str, *, max_age_seconds: int) -> SecretSource:
    """The client secret from Secrets Manager, cached per process by powertools."""

    def fetch(force: bool) -> str:
        from sipreg.aws import secrets  # noqa: PLC0415  # cold-start cost: powertools' parameters

        value = secrets().get(secret_id, max_age=max_age_seconds, force_fetch=force)
        if not isinstance(value, str) or not value:
            raise IdentityServerRejectedError(
                "client_secret_unreadable", "the secret must be a non-empty string"
            )
        return value

    return fetch
