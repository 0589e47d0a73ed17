"""Given a provider's discovery document (a fake at the HTTP boundary: `sipreg.http`), the
OAuth client reads its endpoints, checks its issuer, picks a client authentication it supports,
asks for a refresh token the way OIDC Core §11 requires, and falls back to WG2's paths only for
a provider that publishes no document."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from sipreg.config import TokenSettings
from sipreg.http import Answer
from sipreg.oauth_client import (
    IdentityServerRejectedError,
    IdentityServerUnavailableError,
    OAuthClient,
)
from sipreg.oauth_client.client import MAX_SCOPE_CHARS, MAX_TOKEN_BYTES, MAX_TOKEN_LIFETIME_SECONDS

BASE = "https://login.example.net/tenant"
DOC = {
    "issuer": BASE,
    "authorization_endpoint": "https://login.example.net/tenant/authorize",
    "token_endpoint": "https://tokens.example.net/t/token",
    "jwks_uri": "https://login.example.net/tenant/keys",
    "userinfo_endpoint": "https://login.example.net/tenant/me",
    "revocation_endpoint": "https://tokens.example.net/t/revoke",
    "token_endpoint_auth_methods_supported": ["private_key_jwt", "client_secret_post"],
    "authorization_response_iss_parameter_supported": True,
}


@dataclass(frozen=True)
class Request:
    method: str
    url: str
    body: str
    headers: Mapping[str, str]

    @property
    def path(self) -> str:
        return urlsplit(self.url).path


def answer(status: int, body: Any) -> Answer:
    return Answer(status, body if isinstance(body, bytes) else json.dumps(body).encode())


class FakeHttp:
    """`sipreg.http.Http` answered by `handle`, recording every request."""

    def __init__(self, handle: Callable[[Request], Answer]) -> None:
        self.handle = handle
        self.requests: list[Request] = []

    def get(self, url: str, headers: Mapping[str, str]) -> Answer:
        return self._send(Request("GET", url, "", dict(headers)))

    def post(self, url: str, body: str | bytes, headers: Mapping[str, str]) -> Answer:
        return self._send(
            Request("POST", url, body if isinstance(body, str) else body.decode(), dict(headers))
        )

    def _send(self, request: Request) -> Answer:
        self.requests.append(request)
        return self.handle(request)


class Provider(FakeHttp):
    """Answers discovery with `doc` (or `status`), and records every request."""

    def __init__(self, doc: dict[str, Any] | None = None, status: int = 200) -> None:
        super().__init__(self.answer)
        self.doc = DOC if doc is None else doc
        self.status = status

    def answer(self, request: Request) -> Answer:
        if request.path.endswith("/.well-known/openid-configuration"):
            return answer(self.status, self.doc)
        if request.path.endswith("/token"):
            return answer(200, {"access_token": "at-1", "expires_in": 60, "token_type": "bearer"})
        return answer(200, {"keys": []})

    def paths(self) -> list[str]:
        return [f"{urlsplit(r.url).hostname}{r.path}" for r in self.requests]


def client(provider: Provider, *, issuer: str | None = None) -> OAuthClient:
    return OAuthClient(
        BASE,
        issuer=issuer,
        client_id="sipreg",
        client_secret=lambda force: "s3cret",
        redirect_uri="https://api.example/oauth/callback",
        http=provider,
    )


def authorization_query(oauth: OAuthClient, scopes: tuple[str, ...]) -> tuple[str, dict[str, list[str]]]:
    url = oauth.authorization_url(
        state="s" * 43, code_verifier="v" * 64, nonce="n" * 43, scopes=scopes, login_hint=None
    )
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}", parse_qs(parts.query)


def test_endpoints_come_from_the_discovery_document_read_once() -> None:
    provider = Provider()
    oauth = client(provider)
    endpoint, _ = authorization_query(oauth, ("openid",))
    oauth.client_credentials(["call.routing:write"])
    oauth.jwks()
    assert endpoint == DOC["authorization_endpoint"]
    assert provider.paths() == [
        "login.example.net/tenant/.well-known/openid-configuration",
        "tokens.example.net/t/token",
        "login.example.net/tenant/keys",
    ]
    assert oauth.issuer_in_authorization_response() is True


def test_offline_access_is_asked_with_prompt_consent() -> None:
    _, query = authorization_query(client(Provider()), ("openid", "offline_access", "call.routing:write"))
    assert query["prompt"] == ["consent"]
    assert query["scope"] == ["openid offline_access call.routing:write"]
    assert query["code_challenge_method"] == ["S256"]
    _, without = authorization_query(client(Provider()), ("openid", "call.routing:write"))
    assert "prompt" not in without


def test_client_authentication_is_one_the_provider_supports() -> None:
    provider = Provider()
    client(provider).client_credentials(["call.routing:write"])
    token_request = provider.requests[-1]
    body = parse_qs(token_request.body)
    assert body["client_secret"] == ["s3cret"]  # client_secret_post: HTTP Basic is not offered
    assert "authorization" not in {name.lower() for name in token_request.headers}


def test_http_basic_when_the_provider_names_no_methods() -> None:
    provider = Provider({k: v for k, v in DOC.items() if k != "token_endpoint_auth_methods_supported"})
    client(provider).client_credentials(["call.routing:write"])
    token_request = provider.requests[-1]
    assert token_request.headers["Authorization"] == "Basic " + base64.b64encode(b"sipreg:s3cret").decode()
    assert "client_secret" not in token_request.body


def test_a_document_naming_another_issuer_is_refused() -> None:
    with pytest.raises(IdentityServerRejectedError) as caught:
        client(Provider({**DOC, "issuer": "https://evil.example"})).metadata()
    assert caught.value.error == "issuer_mismatch"


def test_the_configured_issuer_is_what_the_document_must_name() -> None:
    oauth = client(Provider({**DOC, "issuer": "https://issuer.example"}), issuer="https://issuer.example")
    assert oauth.metadata().issuer == "https://issuer.example"


def test_a_configured_issuer_is_compared_exactly_as_given_trailing_slash_and_all() -> None:
    # OIDC Discovery §4.3, RFC 8414 §3.3: the issuer the document names is compared exactly
    issuer = "https://tenant.idp.example/"
    assert client(Provider({**DOC, "issuer": issuer}), issuer=issuer).metadata().issuer == issuer
    with pytest.raises(IdentityServerRejectedError) as caught:
        client(Provider({**DOC, "issuer": issuer.rstrip("/")}), issuer=issuer).metadata()
    assert caught.value.error == "issuer_mismatch"
    assert client(Provider(status=404), issuer=issuer).metadata().issuer == issuer


def test_without_a_configured_issuer_it_is_the_base_url() -> None:
    oauth = OAuthClient(BASE + "/", client_id="c", client_secret=lambda f: "s", http=Provider())
    assert oauth.metadata().issuer == BASE


def test_the_settings_give_every_issuer_check_the_configured_issuer_as_given() -> None:
    env = {
        "IDENTITY_SERVER_URL": "https://tenant.idp.example/",
        "CLIENT_ID": "sipreg",
        "CLIENT_SECRET_ARN": "arn:aws:secretsmanager:eu-west-1:1:secret:s",
        "SUBSCRIBERS_TABLE": "subscribers",
        "DATA_KEY_ID": "alias/k",
    }
    assert TokenSettings.from_env(env).oidc_issuer == "https://tenant.idp.example"
    given = TokenSettings.from_env({**env, "OIDC_ISSUER": "https://tenant.idp.example/"})
    assert given.oidc_issuer == "https://tenant.idp.example/"


@pytest.mark.parametrize("missing", ["authorization_endpoint", "token_endpoint", "jwks_uri"])
def test_a_document_without_a_required_endpoint_is_refused_naming_it(missing: str) -> None:
    with pytest.raises(IdentityServerRejectedError, match=missing):
        client(Provider({k: v for k, v in DOC.items() if k != missing})).metadata()


def test_no_supported_client_authentication_is_refused() -> None:
    doc = {**DOC, "token_endpoint_auth_methods_supported": ["private_key_jwt"]}
    with pytest.raises(IdentityServerRejectedError) as caught:
        client(Provider(doc)).metadata()
    assert caught.value.error == "unsupported_client_auth"


def test_a_provider_without_a_document_gets_wg2s_paths_explicitly() -> None:
    provider = Provider(status=404)
    oauth = client(provider)
    endpoint, _ = authorization_query(oauth, ("openid",))
    assert endpoint == f"{BASE}/oauth2/auth"
    assert oauth.metadata().discovered is False
    assert oauth.issuer_in_authorization_response() is False
    oauth.jwks()
    assert provider.paths()[-1] == "login.example.net/tenant/.well-known/jwks.json"


def test_an_unreachable_provider_is_transient_and_not_remembered() -> None:
    provider = Provider(status=503)
    oauth = client(provider)
    with pytest.raises(IdentityServerUnavailableError):
        oauth.metadata()
    provider.status = 200
    assert oauth.metadata().token_endpoint == DOC["token_endpoint"]


def test_a_garbled_document_is_transient() -> None:
    def garbled(request: Request) -> Answer:
        return answer(200, b"<html>maintenance</html>")

    oauth = OAuthClient(BASE, client_id="c", client_secret=lambda f: "s", http=FakeHttp(garbled))
    with pytest.raises(IdentityServerUnavailableError):
        oauth.metadata()


@pytest.mark.parametrize("expires_in", ["soon", "inf", "NaN", -5, True, [60], {"s": 60}])
def test_a_token_answer_whose_lifetime_is_not_a_number_of_seconds_is_refused(expires_in: Any) -> None:
    provider = Provider()

    def token(request: Request) -> Answer:
        if request.path.endswith("/token"):
            return answer(200, {"access_token": "at-1", "expires_in": expires_in})
        return provider.answer(request)

    oauth = OAuthClient(BASE, client_id="sipreg", client_secret=lambda force: "s3cret", http=FakeHttp(token))
    with pytest.raises(IdentityServerUnavailableError, match="expires_in"):
        oauth.client_credentials(["x"])


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("access_token", "a" * (MAX_TOKEN_BYTES + 1)),
        ("refresh_token", "r" * (MAX_TOKEN_BYTES + 1)),
        ("refresh_token", "é"),  # a token is visible ASCII (RFC 6749 Appendix A)
        ("refresh_token", "\ud800"),  # JSON's lone surrogate: no UTF-8 at all
        ("access_token", "at\n1"),
        ("refresh_token", 12345),
        ("refresh_token", {"token": "rt"}),
        ("id_token", ["a", "b"]),
        ("scope", "s" * (MAX_SCOPE_CHARS + 1)),
        ("scope", "openid  phone"),  # RFC 6749 §3.3: one space between scope tokens
        ("scope", 'openid "phone"'),  # a scope token has no double quote
        ("scope", "openid\nphone"),
        ("scope", ["openid", "phone"]),
    ],
)
def test_a_token_answer_with_a_token_sipreg_cannot_keep_is_refused_naming_it(field: str, value: Any) -> None:
    provider = Provider()

    def token(request: Request) -> Answer:
        if request.path.endswith("/token"):
            return answer(200, {"access_token": "at-1", "expires_in": 60, field: value})
        return provider.answer(request)

    oauth = OAuthClient(BASE, client_id="sipreg", client_secret=lambda force: "s3cret", http=FakeHttp(token))
    with pytest.raises(IdentityServerRejectedError, match=field) as refused:
        oauth.client_credentials(["x"])
    assert refused.value.error == "invalid_token_response"


@pytest.mark.parametrize(
    ("scope", "kept"),
    [
        ("openid phone offline_access", ("openid", "phone", "offline_access")),
        ("s" * MAX_SCOPE_CHARS, ("s" * MAX_SCOPE_CHARS,)),
        (None, ("x",)),  # RFC 6749 §5.1: none given, the scope asked for
        ("", ()),
    ],
)
def test_the_granted_scope_is_kept_as_answered(scope: Any, kept: tuple[str, ...]) -> None:
    provider = Provider()

    def token(request: Request) -> Answer:
        if request.path.endswith("/token"):
            return answer(200, {"access_token": "at-1", "expires_in": 60, "scope": scope})
        return provider.answer(request)

    oauth = OAuthClient(BASE, client_id="sipreg", client_secret=lambda force: "s3cret", http=FakeHttp(token))
    assert oauth.client_credentials(["x"]).scopes == kept


def test_tokens_of_16_kb_are_kept() -> None:
    provider = Provider()
    longest = {"access_token": "a" * MAX_TOKEN_BYTES, "refresh_token": "r" * MAX_TOKEN_BYTES}

    def token(request: Request) -> Answer:
        if request.path.endswith("/token"):
            return answer(200, {**longest, "expires_in": 60})
        return provider.answer(request)

    oauth = OAuthClient(BASE, client_id="sipreg", client_secret=lambda force: "s3cret", http=FakeHttp(token))
    answered = oauth.client_credentials(["x"])
    assert (answered.access_token, answered.refresh_token) == (
        longest["access_token"],
        longest["refresh_token"],
    )


@pytest.mark.parametrize(
    ("expires_in", "lifetime"),
    [
        (60, 60.0),
        ("120", 120.0),
        (None, 3600.0),
        (9_223_372_036_854_775_807, MAX_TOKEN_LIFETIME_SECONDS),  # "never", as some servers say it
        (1e300, MAX_TOKEN_LIFETIME_SECONDS),
    ],
)
def test_a_token_lives_as_long_as_its_answer_says_or_an_hour(expires_in: Any, lifetime: float) -> None:
    provider = Provider()

    def token(request: Request) -> Answer:
        if request.path.endswith("/token"):
            body = {"access_token": "at-1"} | ({} if expires_in is None else {"expires_in": expires_in})
            return answer(200, body)
        return provider.answer(request)

    oauth = OAuthClient(
        BASE,
        client_id="sipreg",
        client_secret=lambda force: "s3cret",
        http=FakeHttp(token),
        clock=lambda: 1000.0,
    )
    assert oauth.client_credentials(["x"]).expires_at == 1000.0 + lifetime


@pytest.mark.parametrize("body", [[{"error": "invalid_token"}], "invalid_token", 7, b"<html>no</html>"])
def test_a_refusal_whose_body_is_not_a_json_object_is_named_by_its_status(body: Any) -> None:
    provider = Provider()

    def refuse(request: Request) -> Answer:
        if request.path.endswith("/me"):
            return answer(400, body)
        return provider.answer(request)

    oauth = OAuthClient(BASE, client_id="sipreg", client_secret=lambda force: "s3cret", http=FakeHttp(refuse))
    with pytest.raises(IdentityServerRejectedError) as caught:
        oauth.userinfo("at-1")
    assert caught.value.error == "http_400"
