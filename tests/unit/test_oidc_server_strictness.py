"""Given the emulator's identity server (Flask test client, no sockets), it behaves like a strict
OAuth 2.0 / OpenID Connect server: bad requests are refused the way the RFCs say, codes and
refresh tokens work once, and its tokens are the emulator core's own. And it is as strict as a
certified provider where clients trip: `offline_access` only with `prompt=consent`, a browser
session reusing its grant, grant-wide revocation, `iss` in every authorization response.

The test client keeps cookies: one `Server` is one browser."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from typing import Any
from urllib.parse import parse_qs, quote_plus, urlencode, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from joserfc import jwt
from joserfc.jwk import KeySet

from devstack.wg2sim.oidc import provider
from devstack.wg2sim.oidc.config import OidcClient, OidcConfig
from devstack.wg2sim.oidc.provider import configure_oidc
from devstack.wg2sim.oidc.routes import oidc_blueprint
from devstack.wg2sim.state import Wg2Sim

CLIENT = OidcClient("app", "app-secret-123", ("https://app.example/oauth/callback",))
OTHER = OidcClient("other", "other-secret-123", ("https://other.example/cb",))
# Secrets that read differently once form-decoded, and one no form decoding can read
ODD = OidcClient("odd", "a+b%2Fc d", ("https://odd.example/cb",))
UNREADABLE = OidcClient("pct", "p%zz", ("https://pct.example/cb",))
MSISDN = "+4799990010"
SCOPES = "openid phone offline_access call.control:answer_and_initiate"


def basic(client: OidcClient = CLIENT, secret: str | None = None) -> dict[str, str]:
    raw = f"{client.client_id}:{secret or client.client_secret}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


class Server:
    def __init__(self, **config: Any) -> None:
        self.sim = Wg2Sim()
        configure_oidc(
            self.sim, OidcConfig(clients={c.client_id: c for c in (CLIENT, OTHER, ODD, UNREADABLE)}, **config)
        )
        app = Flask(__name__)
        app.register_blueprint(oidc_blueprint(self.sim))
        self.http: FlaskClient = app.test_client()
        self.verifier = secrets.token_urlsafe(48)

    def other_browser(self) -> Server:
        """The same identity server, seen from another browser (no cookies)."""
        other = Server.__new__(Server)
        other.sim, other.verifier = self.sim, self.verifier
        other.http = self.http.application.test_client()
        return other

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.http.get(path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.http.post(path, **kwargs)

    def auth_query(self, **overrides: Any) -> dict[str, Any]:
        query = {
            "response_type": "code",
            "client_id": CLIENT.client_id,
            "redirect_uri": CLIENT.redirect_uris[0],
            "scope": SCOPES,
            "state": "st-1",
            "nonce": "n-1",
            "code_challenge": s256(self.verifier),
            "code_challenge_method": "S256",
            "prompt": "consent",  # what a client wanting a refresh token must send (OIDC Core §11)
        }
        query.update(overrides)
        return {k: v for k, v in query.items() if v is not None}

    def authorize(
        self, decision: str = "allow", msisdn: str = MSISDN, withhold: tuple[str, ...] = (), **overrides: Any
    ) -> dict[str, list[str]]:
        """Walks number -> PIN -> consent (or just consent when signed in), leaving the scopes in
        `withhold` unticked; returns the redirect's query."""
        page = self.http.get("/oauth2/auth?" + urlencode(self.auth_query(**overrides)))
        assert page.status_code == 200, page.text
        req = re.search(r'name="req" value="([^"]+)"', page.text)[1]  # type: ignore[index]
        if 'data-testid="allow"' not in page.text:
            pin_page = self.http.post("/oauth2/auth/login", data={"req": req, "msisdn": msisdn})
            pin = re.search(r'data-testid="sent-pin">(\d{6})<', pin_page.text)[1]  # type: ignore[index]
            page = self.http.post("/oauth2/auth/pin", data={"req": req, "pin": pin})
        ticked = [
            s for s in re.findall(r'name="grant" value="([^"]+)" checked', page.text) if s not in withhold
        ]
        done = self.http.post(
            "/oauth2/auth/consent", data={"req": req, "decision": decision, "grant": ticked}
        )
        assert done.status_code == 302
        return parse_qs(urlsplit(done.headers["Location"]).query)

    def code(self) -> str:
        return self.authorize()["code"][0]

    def token(self, form: dict[str, str], headers: dict[str, str] | None = None) -> Any:
        return self.http.post("/oauth2/token", data=form, headers=basic() if headers is None else headers)

    def exchange(self, code: str, verifier: str | None = None) -> Any:
        return self.token(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": CLIENT.redirect_uris[0],
                "code_verifier": verifier or self.verifier,
            }
        )


@pytest.fixture
def server() -> Server:
    return Server()


# --- /oauth2/auth -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [{"client_id": "nobody"}, {"client_id": None}, {"redirect_uri": "https://app.example/oauth/callback/x"}],
)
def test_untrusted_client_or_redirect_gets_an_error_page_not_a_redirect(server: Server, overrides) -> None:
    answer = server.get("/oauth2/auth?" + urlencode(server.auth_query(**overrides)))
    assert answer.status_code == 400
    assert "Location" not in answer.headers
    assert 'data-testid="error"' in answer.text


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"code_challenge": None}, "invalid_request"),
        ({"code_challenge_method": None}, "invalid_request"),  # would mean "plain"
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge": "short"}, "invalid_request"),
        ({"state": None}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"scope": "openid email"}, "invalid_scope"),
        ({"scope": None}, "invalid_scope"),
    ],
)
def test_bad_authorization_request_is_redirected_back_with_the_error(
    server: Server, overrides, error
) -> None:
    answer = server.get("/oauth2/auth?" + urlencode(server.auth_query(**overrides)))
    assert answer.status_code == 302
    location = urlsplit(answer.headers["Location"])
    query = parse_qs(location.query)
    assert location.netloc == "app.example"
    assert query["error"] == [error]
    assert "code" not in query
    if overrides.get("state", "st-1"):
        assert query["state"] == ["st-1"]


def test_wrong_pin_three_times_ends_in_access_denied(server: Server) -> None:
    page = server.get("/oauth2/auth?" + urlencode(server.auth_query()))
    req = re.search(r'name="req" value="([^"]+)"', page.text)[1]  # type: ignore[index]
    server.post("/oauth2/auth/login", data={"req": req, "msisdn": MSISDN})
    answers = [server.post("/oauth2/auth/pin", data={"req": req, "pin": "xxxxxx"}) for _ in range(3)]
    assert [a.status_code for a in answers] == [400, 400, 302]
    assert parse_qs(urlsplit(answers[-1].headers["Location"]).query)["error"] == ["access_denied"]


def test_consent_cannot_be_given_without_the_pin(server: Server) -> None:
    page = server.get("/oauth2/auth?" + urlencode(server.auth_query()))
    req = re.search(r'name="req" value="([^"]+)"', page.text)[1]  # type: ignore[index]
    server.post("/oauth2/auth/login", data={"req": req, "msisdn": MSISDN})
    answer = server.post("/oauth2/auth/consent", data={"req": req, "decision": "allow"})
    assert answer.status_code == 400
    assert "Location" not in answer.headers


def test_the_subscriber_may_grant_less_than_was_asked(server: Server) -> None:
    # RFC 6749 §3.3: the server may issue fewer scopes than asked, and then says which
    query = server.authorize(withhold=("call.control:answer_and_initiate",))
    assert query["scope"] == ["openid phone offline_access"]
    body = server.exchange(query["code"][0]).json
    assert body["scope"] == "openid phone offline_access"
    token = server.sim.tokens.lookup(body["access_token"])
    assert token is not None and "call.control:answer_and_initiate" not in token.scopes


def test_granting_nothing_is_declining(server: Server) -> None:
    query = server.authorize(withhold=tuple(SCOPES.split()))
    assert query["error"] == ["access_denied"]


def test_deny_redirects_with_access_denied_and_the_state(server: Server) -> None:
    query = server.authorize(decision="deny")
    assert query["error"] == ["access_denied"]
    assert query["state"] == ["st-1"]
    assert "code" not in query


# --- /oauth2/token: authorization_code ----------------------------------------------------------


def test_code_exchange_gives_core_tokens_for_the_proven_msisdn(server: Server) -> None:
    answer = server.exchange(server.code())
    assert answer.status_code == 200
    body = answer.json
    assert answer.headers["Cache-Control"] == "no-store"
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3600
    assert set(body["scope"].split()) == set(SCOPES.split())
    token = server.sim.tokens.lookup(body["access_token"])
    assert token is not None
    assert token.msisdn == MSISDN
    assert "call.control:answer_and_initiate" in token.scopes
    assert body["refresh_token"]


def test_id_token_is_rs256_with_the_claims_a_client_checks(server: Server) -> None:
    body = server.exchange(server.code()).json
    keys = KeySet.import_key_set(server.get("/.well-known/jwks.json").json)
    decoded = jwt.decode(body["id_token"], keys, algorithms=["RS256"])
    claims = decoded.claims
    assert decoded.header["alg"] == "RS256"
    assert claims["iss"] == "http://localhost"
    assert claims["aud"] == CLIENT.client_id
    assert claims["nonce"] == "n-1"
    assert claims["phone_number"] == MSISDN
    assert claims["exp"] > claims["iat"]


def test_code_works_once_and_a_second_use_revokes_what_it_gave(server: Server) -> None:
    code = server.code()
    first = server.exchange(code).json
    second = server.exchange(code)
    assert second.status_code == 400
    assert second.json["error"] == "invalid_grant"
    assert server.sim.tokens.lookup(first["access_token"]) is None


@pytest.mark.parametrize("verifier", ["wrong-" + "x" * 50, None])
def test_wrong_or_missing_pkce_verifier_is_refused(server: Server, verifier: str | None) -> None:
    form = {
        "grant_type": "authorization_code",
        "code": server.code(),
        "redirect_uri": CLIENT.redirect_uris[0],
    }
    if verifier:
        form["code_verifier"] = verifier
    answer = server.token(form)
    assert answer.status_code == 400
    assert answer.json["error"] in ("invalid_grant", "invalid_request")
    assert "access_token" not in answer.json


def test_code_of_another_redirect_uri_or_client_is_refused(server: Server) -> None:
    form = {
        "grant_type": "authorization_code",
        "code": server.code(),
        "redirect_uri": "https://app.example/elsewhere",
        "code_verifier": server.verifier,
    }
    assert server.token(form).json["error"] == "invalid_grant"
    form = {**form, "code": server.code(), "redirect_uri": CLIENT.redirect_uris[0]}
    assert server.token(form, headers=basic(OTHER)).json["error"] == "invalid_grant"


def test_expired_code_is_refused(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    code = server.code()
    monkeypatch.setattr(provider, "CODE_TTL_SECONDS", -1.0)
    assert server.exchange(code).json["error"] == "invalid_grant"


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer x"}, basic(secret="wrong-secret"), {"Authorization": "Basic !!!"}],
)
def test_token_endpoint_needs_http_basic_client_auth(server: Server, headers) -> None:
    answer = server.token({"grant_type": "client_credentials"}, headers=headers)
    assert answer.status_code == 401
    assert answer.json["error"] == "invalid_client"
    assert answer.headers["WWW-Authenticate"].startswith("Basic")


def test_basic_credentials_are_form_decoded(server: Server) -> None:
    # RFC 6749 §2.3.1: id and secret form-urlencoded before base64, as a certified provider reads them
    encoded = basic(ODD, secret=quote_plus(ODD.client_secret, safe=""))
    assert server.token({"grant_type": "client_credentials"}, headers=encoded).status_code == 200
    # sent raw, its '+' reads as a space and %2F as '/': another secret
    raw = server.token({"grant_type": "client_credentials"}, headers=basic(ODD))
    assert (raw.status_code, raw.json["error"]) == (401, "invalid_client")


def test_basic_credentials_with_a_bad_escape_are_refused(server: Server) -> None:
    answer = server.token({"grant_type": "client_credentials"}, headers=basic(UNREADABLE))
    assert (answer.status_code, answer.json["error"]) == (401, "invalid_client")
    assert "escape" in answer.json["error_description"]


def test_secret_in_the_body_is_refused(server: Server) -> None:
    answer = server.token({"grant_type": "client_credentials", "client_secret": CLIENT.client_secret})
    assert answer.json["error"] == "invalid_request"


def test_unknown_grant_type_is_refused(server: Server) -> None:
    assert server.token({"grant_type": "password"}).json["error"] == "unsupported_grant_type"


# --- refresh rotation ---------------------------------------------------------------------------


def test_refresh_rotates_and_reusing_an_old_one_revokes_the_family(server: Server) -> None:
    first = server.exchange(server.code()).json
    second = server.token({"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}).json
    assert second["refresh_token"] != first["refresh_token"]
    assert server.sim.tokens.lookup(second["access_token"]).msisdn == MSISDN  # type: ignore[union-attr]
    # reuse of the rotated-out refresh token: refused, and everything of the family dies
    reuse = server.token({"grant_type": "refresh_token", "refresh_token": first["refresh_token"]})
    assert reuse.json["error"] == "invalid_grant"
    assert server.sim.tokens.lookup(second["access_token"]) is None
    latest = server.token({"grant_type": "refresh_token", "refresh_token": second["refresh_token"]})
    assert latest.json["error"] == "invalid_grant"


def test_refresh_token_of_another_client_is_refused(server: Server) -> None:
    first = server.exchange(server.code()).json
    answer = server.token(
        {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}, basic(OTHER)
    )
    assert answer.json["error"] == "invalid_grant"


# --- client credentials, userinfo, revoke, keys -------------------------------------------------


def test_client_credentials_gives_a_client_token_without_msisdn(server: Server) -> None:
    body = server.token({"grant_type": "client_credentials", "scope": "call.routing:write"}).json
    token = server.sim.tokens.lookup(body["access_token"])
    assert token is not None
    assert token.msisdn is None
    assert token.scopes == {"call.routing:write"}
    assert "refresh_token" not in body
    refused = server.token({"grant_type": "client_credentials", "scope": "openid"})
    assert refused.json["error"] == "invalid_scope"


def test_userinfo_tells_the_phone_number_of_a_user_token(server: Server) -> None:
    body = server.exchange(server.code()).json
    info = server.get("/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert info.json["phone_number"] == MSISDN
    assert info.json["phone_number_verified"] is True
    assert server.get("/userinfo", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_a_number_marked_unverified_is_said_so_in_the_id_token_and_userinfo(server: Server) -> None:
    refused = server.post("/_admin/oidc/unverified-numbers", json={"msisdn": "4799"})
    assert (refused.status_code, refused.json["field"]) == (400, "msisdn")
    assert server.post("/_admin/oidc/unverified-numbers", json={"msisdn": MSISDN}).status_code == 201
    body = server.exchange(server.code()).json
    claims = jwt.decode(
        body["id_token"], KeySet.import_key_set(server.get("/.well-known/jwks.json").json)
    ).claims
    info = server.get("/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert claims["phone_number_verified"] is False
    assert (info.json["phone_number"], info.json["phone_number_verified"]) == (MSISDN, False)


def test_revoking_the_refresh_token_kills_the_whole_grant(server: Server) -> None:
    body = server.exchange(server.code()).json
    answer = server.post("/oauth2/revoke", data={"token": body["refresh_token"]}, headers=basic())
    assert answer.status_code == 200
    assert server.sim.tokens.lookup(body["access_token"]) is None
    again = server.token({"grant_type": "refresh_token", "refresh_token": body["refresh_token"]})
    assert again.json["error"] == "invalid_grant"


def test_revoke_is_refused_for_another_clients_token_and_fine_for_unknown_ones(server: Server) -> None:
    body = server.exchange(server.code()).json
    other = server.post("/oauth2/revoke", data={"token": body["access_token"]}, headers=basic(OTHER))
    assert other.status_code == 400
    assert server.sim.tokens.lookup(body["access_token"]) is not None
    unknown = server.post("/oauth2/revoke", data={"token": "never-issued"}, headers=basic())
    assert unknown.status_code == 200


def test_key_rotation_signs_with_a_new_published_key(server: Server) -> None:
    before = server.get("/.well-known/jwks.json").json["keys"]
    rotated = server.post("/_admin/rotate-keys", json={}).json
    after = {key["kid"] for key in server.get("/.well-known/jwks.json").json["keys"]}
    assert rotated["signing_kid"] in after
    assert before[0]["kid"] in after  # the previous key stays published once
    token = server.exchange(server.code()).json["id_token"]
    assert (
        jwt.decode(token, KeySet.import_key_set(server.get("/.well-known/jwks.json").json)).header["kid"]
        == rotated["signing_kid"]
    )
    assert all("d" not in key for key in server.get("/.well-known/jwks.json").json["keys"])


def test_discovery_names_wg2_paths_and_strict_capabilities(server: Server) -> None:
    doc = server.get("/.well-known/openid-configuration").json
    assert doc["token_endpoint"].endswith("/oauth2/token")
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert doc["token_endpoint_auth_methods_supported"] == ["client_secret_basic"]


# --- as strict as a certified provider ----------------------------------------------------------


def refresh(server: Server, refresh_token: str) -> Any:
    return server.token({"grant_type": "refresh_token", "refresh_token": refresh_token})


def test_offline_access_without_prompt_consent_is_ignored(server: Server) -> None:
    # OIDC Core §11: the OP MUST ignore offline_access unless prompt=consent is sent
    query = server.authorize(prompt=None)
    body = server.exchange(query["code"][0]).json
    assert "refresh_token" not in body
    assert "offline_access" not in body["scope"].split()
    assert query["scope"] == ["openid phone call.control:answer_and_initiate"]


def test_offline_access_with_prompt_consent_gives_a_refresh_token(server: Server) -> None:
    body = server.exchange(server.authorize(prompt="consent")["code"][0]).json
    assert body["refresh_token"]
    assert "offline_access" in body["scope"].split()


def test_a_signed_in_browser_goes_straight_to_consent(server: Server) -> None:
    server.authorize()
    # When the same browser starts another authorization
    page = server.get("/oauth2/auth?" + urlencode(server.auth_query(state="st-2")))
    # Then it is signed in already: no number, no PIN, the consent page at once
    assert page.status_code == 200
    assert 'data-testid="allow"' in page.text
    assert 'data-testid="msisdn"' not in page.text
    assert MSISDN in page.text


def test_an_authorization_already_granted_comes_back_at_once_without_prompt_consent(server: Server) -> None:
    server.authorize(prompt=None)
    answer = server.get("/oauth2/auth?" + urlencode(server.auth_query(prompt=None, state="st-2")))
    assert answer.status_code == 302
    query = parse_qs(urlsplit(answer.headers["Location"]).query)
    assert query["state"] == ["st-2"]
    assert server.exchange(query["code"][0]).status_code == 200


def test_a_renewed_consent_in_the_same_session_shares_the_grant_so_revoking_the_old_kills_the_new(
    server: Server,
) -> None:
    first = server.exchange(server.authorize()["code"][0]).json
    second = server.exchange(server.authorize(state="st-2")["code"][0]).json
    assert second["refresh_token"] != first["refresh_token"]
    # Both ID tokens name the same grant (sid)
    keys = KeySet.import_key_set(server.get("/.well-known/jwks.json").json)
    sids = {jwt.decode(body["id_token"], keys).claims["sid"] for body in (first, second)}
    assert len(sids) == 1
    # When the client revokes the refresh token the renewed consent replaced
    assert (
        server.post("/oauth2/revoke", data={"token": first["refresh_token"]}, headers=basic()).status_code
        == 200
    )
    # Then the renewed consent's tokens die with it (RFC 7009 §2.1: the whole grant)
    assert server.sim.tokens.lookup(second["access_token"]) is None
    assert refresh(server, second["refresh_token"]).json["error"] == "invalid_grant"


def test_another_browser_gets_a_grant_of_its_own(server: Server) -> None:
    first = server.exchange(server.authorize()["code"][0]).json
    second = server.exchange(server.other_browser().authorize(state="st-2")["code"][0]).json
    server.post("/oauth2/revoke", data={"token": first["refresh_token"]}, headers=basic())
    assert server.sim.tokens.lookup(second["access_token"]) is not None
    assert "access_token" in refresh(server, second["refresh_token"]).json


def test_a_login_hint_naming_another_number_signs_in_afresh(server: Server) -> None:
    server.authorize()
    page = server.get("/oauth2/auth?" + urlencode(server.auth_query(login_hint="+4799990011")))
    assert 'data-testid="msisdn"' in page.text
    assert 'data-testid="allow"' not in page.text


def test_prompt_login_signs_in_afresh_and_prompt_none_without_session_is_login_required(
    server: Server,
) -> None:
    none = server.get("/oauth2/auth?" + urlencode(server.auth_query(prompt="none")))
    assert parse_qs(urlsplit(none.headers["Location"]).query)["error"] == ["login_required"]
    server.authorize()
    page = server.get("/oauth2/auth?" + urlencode(server.auth_query(prompt="login consent")))
    assert 'data-testid="msisdn"' in page.text


@pytest.mark.parametrize("decision", ["allow", "deny"])
def test_every_authorization_response_carries_iss(server: Server, decision: str) -> None:
    query = server.authorize(decision=decision)
    assert query["iss"] == ["http://localhost"]
    refused = server.get("/oauth2/auth?" + urlencode(server.auth_query(response_type="token")))
    assert parse_qs(urlsplit(refused.headers["Location"]).query)["iss"] == ["http://localhost"]


def test_discovery_names_the_issuer_and_announces_iss_in_responses(server: Server) -> None:
    doc = server.get("/.well-known/openid-configuration").json
    assert doc["issuer"] == "http://localhost"
    assert doc["authorization_response_iss_parameter_supported"] is True
    assert doc["revocation_endpoint"].endswith("/oauth2/revoke")
    assert doc["jwks_uri"].endswith("/.well-known/jwks.json")
    assert "consent" in doc["prompt_values_supported"]


def test_phone_number_can_be_left_to_userinfo() -> None:
    server = Server(phone_number_in_id_token=False)
    body = server.exchange(server.code()).json
    keys = KeySet.import_key_set(server.get("/.well-known/jwks.json").json)
    claims = jwt.decode(body["id_token"], keys).claims
    assert "phone_number" not in claims
    info = server.get("/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert info.json["phone_number"] == MSISDN
