"""wg2sim: a local emulator of WG2's core (SipBreakoutService v0 + v1) with an admin HTTP API.

Binds 127.0.0.1 only. When ready it prints one JSON line to stdout and flushes it:

    {"grpc": 50123, "http": 8123, "ca_file": null, "sip": 8124, "sip_ca_file": "/tmp/.../wg2sim-sip.pem"}

(`ca_file` is the PEM of the self-signed certificate with --tls, valid for localhost and
127.0.0.1; trust it as the root. It is deleted when the emulator stops. `sip` is the core's SIP
port, TLS only, whose certificate is `sip_ca_file`: the same one as `ca_file` with --tls.) It
then serves until SIGTERM or SIGINT and exits 0.

gRPC (one port, both versions): every call needs `authorization: Bearer <token>` metadata.
Unknown/expired token -> UNAUTHENTICATED; token without the version's scope (v0
`call.control:answer_and_initiate`, v1 `call.routing:write`) -> PERMISSION_DENIED. A user token
carries its MSISDN; a client token needs `phone_number`. Bad sip_uri, route type or prefixes
are answered STATUS_CODE_NOT_ACCEPTABLE with `error_message`. Registrations live 3600 emulator
seconds from the last upsert; deleting one it does not hold is refused (NOT_ACCEPTABLE).

Admin HTTP (JSON; bad input -> 400 {"error", "field"}):
  POST   /_admin/tokens         {"msisdn": "+47...", "scopes": [...], "ttl": 3600}
                                -> {"access_token", "expires_in"}; no msisdn mints a client
                                token; scopes default to both service scopes
  GET    /_admin/registrations  {"registrations": [{"msisdn", "sip_uri", "route_type", ..., "expires_at"}]}
  GET    /_admin/stats          {"calls": {"/<service>/<method>": {"OK": n, "UNAUTHENTICATED": n, ...}},
                                 "faults_injected": {"latency": n, "unavailable": n, "stall": n}}
  GET    /_admin/faults         the fault set in force
  POST   /_admin/faults         {"unavailable_rate": 0.3, "unavailable_attempts": 2 (the first 2 attempts
                                 of every call fail UNAVAILABLE), "stall_rate": 0.05,
                                 "latency_ms": [20, 80] or 50,
                                 "msisdns": ["+47..."], "methods": ["UpsertRegistration"],
                                 "identity_down": true}: replaces the whole fault set (a missing key
                                 is off; no msisdns/methods: all); identity_down: every identity
                                 server endpoint answers 503
  DELETE /_admin/faults         no faults
  POST   /_admin/calls          {"from": "+47...", "to": "+47...", "callee": "answer" | "busy" | "no-answer"}
                                places a call on the core, routed by the registrations (real SIP
                                INVITEs over TLS to their sips: URIs, trusted with --sip-ca-file),
                                and answers when it is over: {"sip_status", "answered_by", "routing",
                                "legs": [{"leg": 2, "to": "sips:...", "method": "INVITE",
                                "sip_status": 200, ...}, ...]} (docs/call-routing.md)
  GET    /_admin/calls          the last 50 calls, Ingress calls placed by a TAS included

Identity server (OAuth 2.0 / OpenID Connect at WG2's paths: /oauth2/auth, /oauth2/token,
/userinfo, /oauth2/revoke, /.well-known/jwks.json, ...; see devstack/wg2sim/oidc/). Its tokens
are the core's own. Dev client: sipreg-local / sipreg-local-secret; add clients with --oidc-client
or POST /_admin/oidc/clients; rotate the ID-token signing key with POST /_admin/rotate-keys.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import ssl
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from devstack.wg2sim.faults import FaultConfig, parse_latency, parse_msisdns, parse_rate
from devstack.wg2sim.http_app import create_http_app
from devstack.wg2sim.oidc.config import add_oidc_arguments, oidc_config_from_args
from devstack.wg2sim.oidc.provider import configure_oidc
from devstack.wg2sim.oidc.routes import oidc_blueprint
from devstack.wg2sim.server import SipOptions, Wg2simServer
from devstack.wg2sim.state import DEFAULT_TOKEN_TTL_SECONDS, Wg2Sim
from devstack.wg2sim.tls import write_self_signed
from devstack.wg2sim.validation import FieldError

log = logging.getLogger("devstack.wg2sim")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=args.log_level, format="wg2sim %(levelname)s %(message)s")
    faults = FaultConfig(
        unavailable_rate=args.unavailable_rate,
        stall_rate=args.stall_rate,
        latency_ms=args.latency_ms,
        msisdns=parse_msisdns(args.fault_msisdn, "--fault-msisdn"),
    )
    sim = Wg2Sim(time_scale=args.time_scale, token_ttl_seconds=args.token_ttl, faults=faults)
    try:
        configure_oidc(sim, oidc_config_from_args(args))
    except ValueError as error:
        print(f"wg2sim: {error}", file=sys.stderr)
        return 2
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    with tempfile.TemporaryDirectory(prefix="wg2sim-") as workdir:
        tls = write_self_signed(Path(workdir)) if args.tls else None
        sip_tls = tls or write_self_signed(Path(workdir), file_name="wg2sim-sip.pem")
        sip_key = Path(workdir) / "wg2sim-sip-key.pem"
        sip_key.touch(mode=0o600)
        sip_key.write_bytes(sip_tls.key_pem)
        sip = SipOptions(str(sip_tls.cert_file), str(sip_key), tuple(args.sip_ca_file), args.sip_port)
        try:
            http_app = create_http_app(sim, [oidc_blueprint(sim)])  # + the identity server
            server = Wg2simServer(
                sim, grpc_port=args.grpc_port, http_port=args.http_port, tls=tls, http_app=http_app, sip=sip
            )
        except (OSError, ssl.SSLError) as error:
            print(f"wg2sim: cannot listen: {error}", file=sys.stderr)
            return 1
        server.start()
        ready = {
            "grpc": server.grpc_port,
            "http": server.http_port,
            "ca_file": tls and str(tls.cert_file),
            "sip": server.sip_port,
            "sip_ca_file": sip.cert_file,
        }
        print(json.dumps(ready), flush=True)
        log.info("serving %s (time scale %s)", ready, args.time_scale)
        while not stopping.wait(0.2):
            pass
        log.info("stopping")
        server.stop()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.wg2sim",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--grpc-port", type=_port, default=0, help="gRPC port on 127.0.0.1 (0 = any free port; default 0)"
    )
    parser.add_argument(
        "--http-port",
        type=_port,
        default=0,
        help="admin HTTP port on 127.0.0.1 (0 = any free port; default 0)",
    )
    parser.add_argument(
        "--time-scale",
        type=_positive_float,
        default=1.0,
        help="the emulator clock runs this many times faster than real time; every TTL (tokens, "
        "registrations) is in emulator seconds; what clients are told (time_to_live, expires_in, "
        "expires_at) is in real time, so a client's own clock stays right; injected latency and "
        "stalls stay real (default 1)",
    )
    parser.add_argument(
        "--tls",
        action="store_true",
        help="serve gRPC over TLS with a generated self-signed certificate (see ca_file); "
        "the HTTP side stays plain http on loopback",
    )
    parser.add_argument(
        "--sip-port",
        type=_port,
        default=0,
        help="the core's SIP port (TLS) on 127.0.0.1, where a TAS sends calls back (Loop leg 3) or "
        "places them (Ingress) (0 = any free port; default 0)",
    )
    parser.add_argument(
        "--sip-ca-file",
        action="append",
        default=[],
        metavar="PEM",
        help="a certificate (or CA) the core trusts, besides the system's roots, when it calls a "
        "TAS over TLS (leg 2 of POST /_admin/calls); repeatable",
    )
    parser.add_argument(
        "--token-ttl",
        type=_positive_int,
        default=DEFAULT_TOKEN_TTL_SECONDS,
        help="lifetime of minted tokens when none is asked for, in emulator seconds "
        f"(default {DEFAULT_TOKEN_TTL_SECONDS})",
    )
    faults = parser.add_argument_group("faults at start-up (change them at run time with /_admin/faults)")
    faults.add_argument(
        "--unavailable-rate",
        type=_cli(parse_rate),
        default=0.0,
        metavar="F",
        help="fraction of calls failing UNAVAILABLE (0-1; default 0)",
    )
    faults.add_argument(
        "--stall-rate",
        type=_cli(parse_rate),
        default=0.0,
        metavar="F",
        help="fraction of calls stalling until the caller's deadline passes (at most 30 s), then "
        "DEADLINE_EXCEEDED (0-1; default 0)",
    )
    faults.add_argument(
        "--latency-ms",
        type=_cli(parse_latency),
        default=(0, 0),
        metavar="MS",
        help="added latency per call: fixed '50' or uniform range '20-80' (default 0)",
    )
    faults.add_argument(
        "--fault-msisdn",
        action="append",
        default=[],
        metavar="E164",
        help="apply the faults only to calls for this MSISDN (the token's, or the request's "
        "phone_number); repeatable; default: every call",
    )
    parser.add_argument(
        "--log-level",
        default="WARNING",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="stderr log level (default WARNING)",
    )
    add_oidc_arguments(parser)
    return parser


def _cli(parse: Any) -> Any:
    def convert(text: str) -> Any:
        try:
            return parse(text, "value")
        except FieldError as error:
            raise argparse.ArgumentTypeError(error.message) from None

    return convert


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (0-65535)")
    return int(text)


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 1")
    return int(text)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number")
    return value


if __name__ == "__main__":
    sys.exit(main())
