"""The emulator's HTTP side: one Flask app; the admin API is a blueprint, the OIDC provider
plugs in as another one sharing the same `Wg2Sim` (and so the same token registry)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flask import Blueprint, Flask, jsonify, request
from flask.typing import ResponseReturnValue

from devstack.wg2sim.calls.model import CALLEE_BEHAVIOURS, CallRequest
from devstack.wg2sim.faults import FaultConfig
from devstack.wg2sim.state import Wg2Sim
from devstack.wg2sim.tokens import SIP_BREAKOUT_SCOPES
from devstack.wg2sim.validation import FieldError, e164_problem

TOKEN_KEYS = ("msisdn", "scopes", "ttl")
CALL_KEYS = ("from", "to", "callee")


def create_http_app(sim: Wg2Sim, extra_blueprints: Iterable[Blueprint] = ()) -> Flask:
    """The admin API plus any further blueprints; each reaches the state through the `sim` it
    was built with (or `current_app.extensions["wg2sim"]`)."""
    app = Flask(__name__)
    app.extensions["wg2sim"] = sim
    app.register_blueprint(admin_blueprint(sim))
    for blueprint in extra_blueprints:
        app.register_blueprint(blueprint)
    return app


def admin_blueprint(sim: Wg2Sim) -> Blueprint:
    admin = Blueprint("wg2sim_admin", __name__, url_prefix="/_admin")

    @admin.errorhandler(FieldError)
    def bad_input(error: FieldError) -> ResponseReturnValue:
        return jsonify(error=error.message, field=error.field), 400

    @admin.post("/tokens")
    def mint_token() -> ResponseReturnValue:
        """`{"msisdn": "+47...", "scopes": [...], "ttl": 3600}`; no msisdn mints a client token.

        `scopes` defaults to both SipBreakoutService scopes, `ttl` (emulator seconds) to
        `--token-ttl`.
        """
        body = _json_object()
        _reject_unknown_keys(body, TOKEN_KEYS)
        token = sim.tokens.mint(
            msisdn=_optional_msisdn(body.get("msisdn")),
            scopes=_scopes(body.get("scopes", list(SIP_BREAKOUT_SCOPES))),
            ttl_seconds=_ttl(body.get("ttl", sim.token_ttl_seconds)),
        )
        # In real seconds, like every duration a client is told (see EmulatorClock).
        expires_in = round(sim.clock.real_seconds(token.expires_in(sim.clock.now())))
        return jsonify(access_token=token.access_token, expires_in=expires_in)

    @admin.get("/registrations")
    def registrations() -> ResponseReturnValue:
        return jsonify(registrations=[r.to_json(sim.clock) for r in sim.registrations.list()])

    @admin.get("/stats")
    def stats() -> ResponseReturnValue:
        return jsonify(sim.stats.snapshot())

    @admin.get("/faults")
    def faults() -> ResponseReturnValue:
        return jsonify(faults=sim.faults.to_json())

    @admin.post("/faults")
    def set_faults() -> ResponseReturnValue:
        """Replaces the whole fault set: a key left out is switched off."""
        sim.set_faults(FaultConfig.from_json(_json_object()))
        return jsonify(faults=sim.faults.to_json())

    @admin.delete("/faults")
    def clear_faults() -> ResponseReturnValue:
        sim.clear_faults()
        return jsonify(faults=sim.faults.to_json())

    @admin.post("/calls")
    def place_call() -> ResponseReturnValue:
        """`{"from": "+47...", "to": "+47...", "callee": "answer" | "busy" | "no-answer"}`: the core
        routes the call by the registrations and answers once it is over (docs/call-routing.md)."""
        body = _json_object()
        _reject_unknown_keys(body, CALL_KEYS)
        caller = _required_msisdn(body.get("from"), "from")
        callee = _required_msisdn(body.get("to"), "to")
        behaviour = body.get("callee", "answer")
        if behaviour not in CALLEE_BEHAVIOURS:
            raise FieldError("callee", f"expected one of {', '.join(CALLEE_BEHAVIOURS)}")
        if caller == callee:
            raise FieldError("to", "a number cannot call itself")
        if sim.calls is None:
            return jsonify(error="this emulator runs without its SIP side"), 503
        return jsonify(sim.calls.place(CallRequest(caller, callee, behaviour)).to_json())

    @admin.get("/calls")
    def recent_calls() -> ResponseReturnValue:
        return jsonify(calls=sim.calls.recent() if sim.calls else [])

    return admin


def _json_object() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise FieldError("body", "expected a JSON object (Content-Type: application/json)")
    return body


def _reject_unknown_keys(body: dict[str, Any], known: tuple[str, ...]) -> None:
    for key in body:
        if key not in known:
            raise FieldError(key, f"unknown field; expected some of {', '.join(known)}")


def _optional_msisdn(value: Any) -> str | None:
    if value is None:
        return None
    problem = e164_problem(value, "msisdn") if isinstance(value, str) else "msisdn must be a string"
    if problem:
        raise FieldError("msisdn", problem)
    return str(value)


def _required_msisdn(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise FieldError(field, "expected an E.164 number as a string, e.g. '+4799990001'")
    problem = e164_problem(value, field)
    if problem:
        raise FieldError(field, problem)
    return value


def _scopes(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(s, str) and s.strip() for s in value):
        raise FieldError("scopes", "expected a list of scope names")
    return value


def _ttl(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise FieldError("ttl", "expected a whole number of seconds, at least 1")
    return value
