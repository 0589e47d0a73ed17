"""Given an identity server (a fake at the HTTP boundary: `sipreg.http`) whose errors quote the
request back, or run to megabytes, the OAuth client's errors carry neither a secret the request
held nor more than a few lines: their messages go into logs, event log items and status events."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest

from sipreg.http import Answer
from sipreg.oauth_client import GrantRejectedError, IdentityServerRejectedError, OAuthClient
from sipreg.text import PEER_TEXT_LIMIT

BASE = "https://login.example.net"
SECRET = "client-s3cret-value"
REFRESH_TOKEN = "rt-0123456789abcdef"
CODE = "code-0123456789abcdef"
VERIFIER = "v" * 43 + "-verifier"
ACCESS_TOKEN = "at-0123456789abcdef"
DOC = {
    "issuer": BASE,
    "authorization_endpoint": f"{BASE}/authorize",
    "token_endpoint": f"{BASE}/token",
    "jwks_uri": f"{BASE}/keys",
    "userinfo_endpoint": f"{BASE}/me",
    "revocation_endpoint": f"{BASE}/revoke",
    "token_endpoint_auth_methods_supported": ["client_secret_post"],
    "revocation_endpoint_auth_methods_supported": ["client_secret_post"],
}


class EchoingProvider:
    """Answers every request but discovery with an OAuth error quoting the request whole (form,
    headers and all), `error` being `error`; `padding` characters follow the quote."""

    def __init__(self, error: str, status: int = 400, padding: int = 0) -> None:
        self.error, self.status, self.padding = error, status, padding

    def get(self, url: str, headers: Mapping[str, str]) -> Answer:
        if url.endswith("/.well-known/openid-configuration"):
            return Answer(200, json.dumps(DOC).encode())
        return self._echo(url, "", headers)

    def post(self, url: str, body: str | bytes, headers: Mapping[str, str]) -> Answer:
        return self._echo(url, body if isinstance(body, str) else body.decode(), headers)

    def _echo(self, url: str, body: str, headers: Mapping[str, str]) -> Answer:
        quote = f"bad request to {url}: {body} {dict(headers)}"
        description = quote + "!" * self.padding
        return Answer(
            self.status, json.dumps({"error": self.error, "error_description": description}).encode()
        )


def client(provider: EchoingProvider) -> OAuthClient:
    return OAuthClient(
        BASE,
        client_id="sipreg",
        client_secret=lambda force: SECRET,
        redirect_uri="https://api.example/oauth/callback",
        http=provider,
    )


CALLS: dict[str, Any] = {
    "refresh": lambda oauth: oauth.refresh(REFRESH_TOKEN),
    "code exchange": lambda oauth: oauth.exchange_code(CODE, code_verifier=VERIFIER),
    "client credentials": lambda oauth: oauth.client_credentials(["call.routing:write"]),
    "revocation": lambda oauth: oauth.revoke(REFRESH_TOKEN, token_type_hint="refresh_token"),
    "userinfo": lambda oauth: oauth.userinfo(ACCESS_TOKEN),
}


@pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())
def test_an_error_quoting_the_request_carries_none_of_its_secrets(call) -> None:
    with pytest.raises(IdentityServerRejectedError) as raised:
        call(client(EchoingProvider("invalid_request")))
    message = str(raised.value)
    assert "bad request to https://login.example.net/" in message  # the quote is there
    for secret in (SECRET, REFRESH_TOKEN, CODE, VERIFIER, ACCESS_TOKEN):
        assert secret not in message
    assert "[redacted]" in message


def test_an_error_code_quoting_a_secret_is_redacted_too() -> None:
    with pytest.raises(IdentityServerRejectedError) as raised:
        client(EchoingProvider(f"invalid_{REFRESH_TOKEN}")).refresh(REFRESH_TOKEN)
    assert raised.value.error == "invalid_[redacted]"
    assert REFRESH_TOKEN not in str(raised.value)


def test_invalid_grant_is_still_told_apart() -> None:
    with pytest.raises(GrantRejectedError):
        client(EchoingProvider("invalid_grant")).refresh(REFRESH_TOKEN)


@pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())
def test_a_megabyte_of_description_is_kept_to_a_few_lines(call) -> None:
    with pytest.raises(IdentityServerRejectedError) as raised:
        call(client(EchoingProvider("invalid_request", padding=900_000)))
    message = str(raised.value)
    assert len(message) == PEER_TEXT_LIMIT and message.endswith("!…")
