"""The identity server's HTTP side: a Flask blueprint of WG2's paths (browser pages, the token,
userinfo, revocation and discovery endpoints, the admin calls) over one `OidcProvider`."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from dataclasses import replace

from flask import Blueprint, Response, jsonify, redirect, request
from flask.typing import ResponseReturnValue

from devstack.wg2sim.oidc import pages
from devstack.wg2sim.oidc.config import client_from_json
from devstack.wg2sim.oidc.model import (
    PIN_ATTEMPTS,
    PROMPT_VALUES,
    SCOPE_TEXT,
    SESSION_COOKIE,
    SESSION_TTL_SECONDS,
    USER_SCOPES,
    AuthPageError,
    OAuthError,
    RedirectError,
    SignIn,
    redirect_with,
)
from devstack.wg2sim.oidc.provider import OidcProvider, provider_for
from devstack.wg2sim.state import Wg2Sim
from devstack.wg2sim.validation import e164_problem

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def oidc_blueprint(sim: Wg2Sim) -> Blueprint:
    bp = Blueprint("wg2sim_oidc", __name__)

    def provider() -> OidcProvider:
        return provider_for(sim)

    def issuer() -> str:
        return provider().config.issuer or request.url_root.rstrip("/")

    @bp.before_request
    def outage() -> ResponseReturnValue | None:
        """An injected identity-server outage (`identity_down` fault): every endpoint answers 503."""
        if not sim.faults.identity_down:
            return None
        sim.stats.record_fault("identity_down")
        response = jsonify(
            error="temporarily_unavailable", error_description="injected fault: identity server down"
        )
        response.status_code = 503
        response.headers.update(_NO_STORE)
        return response

    @bp.errorhandler(OAuthError)
    def oauth_error(error: OAuthError) -> ResponseReturnValue:
        response = jsonify(error=error.error, error_description=error.description)
        response.status_code = error.status
        response.headers.update(_NO_STORE)
        if error.status == 401 and error.error == "invalid_client":
            response.headers["WWW-Authenticate"] = 'Basic realm="wg2sim"'
        elif error.status in (401, 403):
            response.headers["WWW-Authenticate"] = f'Bearer error="{error.error}"'
        return response

    @bp.errorhandler(AuthPageError)
    def auth_page_error(error: AuthPageError) -> ResponseReturnValue:
        return _html(pages.error_page(error.heading, error.message), 400)

    @bp.errorhandler(RedirectError)
    def redirect_error(error: RedirectError) -> ResponseReturnValue:
        return redirect(error.location(issuer()), 302)

    _browser_routes(bp, provider, issuer)
    _machine_routes(bp, provider, issuer)
    _admin_routes(bp, provider)
    return bp


def _browser_routes(  # noqa: PLR0915  # one small function per route, kept together
    bp: Blueprint, provider: Callable[[], OidcProvider], issuer: Callable[[], str]
) -> None:
    def answer(sign_in: SignIn, **params: str) -> ResponseReturnValue:
        """The authorization response back to the client, with `iss` (RFC 9207)."""
        location = redirect_with(sign_in.redirect_uri, **params, state=sign_in.state, iss=issuer())
        return redirect(location, 302)

    def consent_page(sign_in_id: str, sign_in: SignIn) -> Response:
        assert sign_in.msisdn is not None
        scopes = [(scope, SCOPE_TEXT[scope]) for scope in sign_in.scopes]
        page = pages.consent_page(
            client_name=sign_in.client.name,
            msisdn=sign_in.msisdn,
            scopes=scopes,
            req=sign_in_id,
            action="/oauth2/auth/consent",
        )
        return _html(page)

    @bp.get("/oauth2/auth")
    def authorize() -> ResponseReturnValue:
        sign_in_id, sign_in = provider().begin(request.args.to_dict(flat=False))
        session = provider().session(request.cookies.get(SESSION_COOKIE))
        if provider().resume(sign_in, session):
            if provider().already_granted(sign_in, session):
                provider().end_sign_in(sign_in_id)
                code = provider().issue_code(sign_in, session)
                return answer(sign_in, code=code, scope=" ".join(sign_in.scopes))
            if "none" in sign_in.prompt:
                provider().end_sign_in(sign_in_id)
                return answer(sign_in, error="consent_required", error_description="consent is needed")
            return consent_page(sign_in_id, sign_in)
        if "none" in sign_in.prompt:
            provider().end_sign_in(sign_in_id)
            return answer(sign_in, error="login_required", error_description="the subscriber must sign in")
        hint = sign_in.login_hint if sign_in.login_hint and not e164_problem(sign_in.login_hint, "x") else ""
        return _html(
            pages.phone_page(
                client_name=sign_in.client.name, req=sign_in_id, action="/oauth2/auth/login", msisdn=hint
            )
        )

    @bp.post("/oauth2/auth/login")
    def login() -> ResponseReturnValue:
        sign_in_id = request.form.get("req", "")
        sign_in = provider().sign_in(sign_in_id)
        msisdn = request.form.get("msisdn", "").strip().replace(" ", "")
        problem = e164_problem(msisdn, "Mobile number")
        if problem:
            page = pages.phone_page(
                client_name=sign_in.client.name,
                req=sign_in_id,
                action="/oauth2/auth/login",
                msisdn=msisdn,
                error="Enter your number in international format, e.g. +4799990000.",
            )
            return _html(page, 400)
        sign_in.msisdn = msisdn
        sign_in.pin = f"{secrets.randbelow(10**6):06d}"
        sign_in.pin_attempts_left = PIN_ATTEMPTS
        sign_in.authenticated = False
        return _html(
            pages.pin_page(msisdn=msisdn, pin=sign_in.pin, req=sign_in_id, action="/oauth2/auth/pin")
        )

    @bp.post("/oauth2/auth/pin")
    def pin() -> ResponseReturnValue:
        sign_in_id = request.form.get("req", "")
        sign_in = provider().sign_in(sign_in_id)
        if sign_in.msisdn is None or sign_in.pin is None:
            raise AuthPageError("Sign-in out of order", "Enter your mobile number first.")
        if not hmac.compare_digest(request.form.get("pin", "").strip().encode(), sign_in.pin.encode()):
            sign_in.pin_attempts_left -= 1
            if sign_in.pin_attempts_left <= 0:
                provider().end_sign_in(sign_in_id)
                return answer(sign_in, error="access_denied", error_description="too many wrong PINs")
            page = pages.pin_page(
                msisdn=sign_in.msisdn,
                pin=sign_in.pin,
                req=sign_in_id,
                action="/oauth2/auth/pin",
                error=f"Wrong PIN. {sign_in.pin_attempts_left} attempt(s) left.",
            )
            return _html(page, 400)
        sign_in.authenticated = True
        response = consent_page(sign_in_id, sign_in)
        # The browser stays signed in: its next authorization skips number and PIN.
        response.set_cookie(
            SESSION_COOKIE,
            provider().open_session(sign_in.msisdn),
            max_age=int(SESSION_TTL_SECONDS),
            path="/",
            httponly=True,
            samesite="Lax",
            secure=request.is_secure,
        )
        return response

    @bp.post("/oauth2/auth/consent")
    def consent() -> ResponseReturnValue:
        sign_in_id = request.form.get("req", "")
        sign_in = provider().sign_in(sign_in_id)
        if not sign_in.authenticated:
            raise AuthPageError("Sign-in out of order", "Confirm your PIN first.")
        provider().end_sign_in(sign_in_id)
        # The subscriber may untick what they do not grant (RFC 6749 §3.3: the server may issue
        # less than was asked, and says what in `scope`); the code carries only what is ticked.
        ticked = set(request.form.getlist("grant"))
        granted = tuple(scope for scope in sign_in.scopes if scope in ticked)
        if request.form.get("decision") != "allow" or not granted:
            return answer(sign_in, error="access_denied", error_description="the subscriber declined")
        session = provider().session(request.cookies.get(SESSION_COOKIE))
        if session is not None and session.msisdn != sign_in.msisdn:
            session = None  # another number signed in meanwhile: its grants are not this one's
        code = provider().issue_code(replace(sign_in, scopes=granted), session)
        return answer(sign_in, code=code, scope=" ".join(granted))

    @bp.get("/oauth2/sessions/logout")
    def logout() -> ResponseReturnValue:
        return _html(pages.signed_out_page())


def _machine_routes(bp: Blueprint, provider: Callable[[], OidcProvider], issuer: Callable[[], str]) -> None:
    @bp.post("/oauth2/token")
    def token() -> ResponseReturnValue:
        form = _form()
        client = provider().authenticate(request.headers.get("Authorization"), form)
        response = jsonify(provider().token(client, form, issuer()))
        response.headers.update(_NO_STORE)
        return response

    @bp.route("/userinfo", methods=["GET", "POST"])
    def userinfo() -> ResponseReturnValue:
        authorization = request.headers.get("Authorization", "")
        if not authorization.startswith("Bearer ") or not authorization[7:].strip():
            raise OAuthError("invalid_token", "a bearer access token is required", 401)
        return jsonify(provider().userinfo(authorization[7:].strip()))

    @bp.post("/oauth2/revoke")
    def revoke() -> ResponseReturnValue:
        form = _form()
        client = provider().authenticate(request.headers.get("Authorization"), form)
        value = form.get("token")
        if not value:
            raise OAuthError("invalid_request", "token is required")
        provider().revoke(client, value)
        return Response(status=200, headers=_NO_STORE)

    @bp.get("/.well-known/openid-configuration")
    def discovery() -> ResponseReturnValue:
        base = request.url_root.rstrip("/")
        return jsonify(
            issuer=issuer(),
            authorization_endpoint=f"{base}/oauth2/auth",
            token_endpoint=f"{base}/oauth2/token",
            userinfo_endpoint=f"{base}/userinfo",
            revocation_endpoint=f"{base}/oauth2/revoke",
            end_session_endpoint=f"{base}/oauth2/sessions/logout",
            jwks_uri=f"{base}/.well-known/jwks.json",
            response_types_supported=["code"],
            grant_types_supported=["authorization_code", "refresh_token", "client_credentials"],
            subject_types_supported=["pairwise"],
            id_token_signing_alg_values_supported=["RS256"],
            token_endpoint_auth_methods_supported=["client_secret_basic"],
            revocation_endpoint_auth_methods_supported=["client_secret_basic"],
            code_challenge_methods_supported=["S256"],
            authorization_response_iss_parameter_supported=True,
            prompt_values_supported=sorted(PROMPT_VALUES),
            scopes_supported=sorted(USER_SCOPES),
            claims_supported=[
                "sub",
                "iss",
                "aud",
                "exp",
                "iat",
                "auth_time",
                "nonce",
                "sid",
                "phone_number",
                "phone_number_verified",
            ],
        )

    @bp.get("/.well-known/jwks.json")
    def jwks() -> ResponseReturnValue:
        return jsonify(provider().jwks())


def _admin_routes(bp: Blueprint, provider: Callable[[], OidcProvider]) -> None:
    @bp.post("/_admin/rotate-keys")
    def rotate_keys() -> ResponseReturnValue:
        body = request.get_json(silent=True) or {}
        keep = body.get("keep_previous", True) if isinstance(body, dict) else True
        if not isinstance(keep, bool):
            return jsonify(error="expected true or false", field="keep_previous"), 400
        kids = provider().rotate_keys(keep_previous=keep)
        return jsonify(signing_kid=kids[0], published_kids=kids)

    @bp.post("/_admin/oidc/unverified-numbers")
    def add_unverified_number() -> ResponseReturnValue:
        body = request.get_json(silent=True)
        msisdn = body.get("msisdn") if isinstance(body, dict) else None
        problem = e164_problem(msisdn, "msisdn") if isinstance(msisdn, str) else "expected an E.164 number"
        if problem:
            return jsonify(error=problem, field="msisdn"), 400
        provider().mark_unverified(str(msisdn))
        return jsonify(msisdn=msisdn, phone_number_verified=False), 201

    @bp.post("/_admin/oidc/clients")
    def add_client() -> ResponseReturnValue:
        try:
            client = client_from_json(request.get_json(silent=True))
        except ValueError as error:
            field_name = str(error).split(":", 1)[0].removeprefix("body.")
            return jsonify(error=str(error), field=field_name), 400
        provider().add_client(client)
        return jsonify(client_id=client.client_id, redirect_uris=list(client.redirect_uris)), 201


def _form() -> dict[str, str]:
    if request.mimetype != "application/x-www-form-urlencoded":
        raise OAuthError("invalid_request", "the body must be application/x-www-form-urlencoded")
    repeated = [name for name, values in request.form.lists() if len(values) > 1]
    if repeated:
        raise OAuthError("invalid_request", f"parameter {repeated[0]} is repeated")
    return request.form.to_dict()


def _html(body: str, status: int = 200) -> Response:
    return Response(
        body,
        status=status,
        mimetype="text/html",
        headers={
            **_NO_STORE,
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action *; "
            "frame-ancestors 'none'",
            "Referrer-Policy": "no-referrer",
            "X-Frame-Options": "DENY",
        },
    )
