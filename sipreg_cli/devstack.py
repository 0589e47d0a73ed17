"""`sipreg devstack up`: the whole of sipreg on this machine, until Ctrl-C or SIGTERM.

    sipreg devstack up [--api-version v0|v1] [--auth-mode user|client] [--time-factor F]
                       [--port PORT] [--log-dir DIR]

Starts the local AWS engine (ministack, IAM enforced), wg2sim (the operator's core and identity
server) and the local function host running template.yaml against them, all on free loopback
ports. When ready, the first line on stdout is one JSON object: `api` (base URL of the HTTP API),
`aws_endpoint`, `core_grpc` (host:port, TLS; `core_ca_file` is its CA), `wg2sim_http` (identity
server and admin API), `webhook_secret` (the local dev signing secret), `log_dir`, `resources`,
`queues`, `pbx_uri` and `voicemail_uri` (the local PBX: Kamailio, SIP over TLS on loopback, whose
certificate is `pbx_ca_file`; register numbers to them and place calls with wg2sim's
`POST /_admin/calls`), and more; a readable summary follows. Logs go to DIR (default
devstack-logs/<timestamp>). Exit status: 0 after a clean stop, 2 when the stack could not start
(the reason on stderr).

It runs the repository's template.yaml, so it needs a checkout and the `devstack` extra:
`pip install -e '.[devstack]'` (or `make venv`); without them it says so instead of starting.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any

EXTRA_HINT = "pip install 'sipreg[devstack]'"
# Our own packages: a missing one of these is a bug to show as it is, not a missing extra.
_OURS = ("sipreg", "sipreg_cli")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "devstack", help="run sipreg locally (local AWS, wg2sim, the function host)"
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    up = actions.add_parser("up", help="start the local stack and keep it up until Ctrl-C or SIGTERM")
    up.description = __doc__
    up.formatter_class = argparse.RawDescriptionHelpFormatter
    up.add_argument("--api-version", choices=["v0", "v1"], default="v0", help="SipBreakoutService version")
    up.add_argument(
        "--auth-mode",
        choices=["user", "client"],
        default="user",
        help="user: per-subscriber consent tokens; client: one client-credentials token",
    )
    up.add_argument(
        "--time-factor",
        type=_time_factor,
        default=1.0,
        metavar="F",
        help="run the emulator clock, schedules and refresh margins F times faster (1-3600; default 1)",
    )
    up.add_argument(
        "--endpoint-down-action",
        choices=["alarm", "suspend"],
        default="alarm",
        help="what a PBX endpoint that stops answering OPTIONS does to its registrations",
    )
    up.add_argument("--port", type=int, default=0, help="port of the HTTP API (default: a free one)")
    up.add_argument("--log-dir", type=Path, help="where logs go (default: devstack-logs/<timestamp>)")
    up.add_argument(
        "--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], default="INFO", help="functions' level"
    )
    up.add_argument(
        "--no-prewarm", action="store_true", help="start each function on its first invocation instead"
    )
    up.set_defaults(func=run_up)


def _time_factor(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 1 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"expected 1 to 3600, got {text}")
    return value


def missing_extra(error: ModuleNotFoundError) -> str | None:
    """What to tell the user when `error` means the devstack extra is not installed, else None."""
    name = error.name or ""
    if name.split(".")[0] in _OURS or name.startswith("devstack."):
        return None
    return f"the local stack needs packages that are not installed (no module {name!r}): {EXTRA_HINT}"


def run_up(args: argparse.Namespace) -> int:
    try:
        from devstack import TEMPLATE  # noqa: PLC0415  # only `up` needs devstack
        from devstack.aws_engine import AwsEngineStartError  # noqa: PLC0415
        from devstack.host import ProvisioningError, TemplateError  # noqa: PLC0415
        from devstack.pbx import PbxStartError  # noqa: PLC0415
        from devstack.stack import LocalStack, StackError  # noqa: PLC0415
        from devstack.stack_options import StackOptions  # noqa: PLC0415
        from devstack.wg2sim.process import Wg2simStartError  # noqa: PLC0415
    except ModuleNotFoundError as error:
        hint = missing_extra(error)
        if hint is None:
            raise
        sys.stderr.write(f"sipreg devstack up: {hint}\n")
        return 2
    if not TEMPLATE.is_file():
        sys.stderr.write(
            f"sipreg devstack up: no template at {TEMPLATE}: the local stack runs a checkout of the "
            "repository (in a clone: pip install -e '.[devstack]', or make venv)\n"
        )
        return 2
    stopping = threading.Event()
    # Signals only set the event: the stack is stopped in order on this thread, never mid-start.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    options = StackOptions(
        api_version=args.api_version,
        auth_mode=args.auth_mode,
        time_factor=args.time_factor,
        api_port=args.port,
        log_dir=args.log_dir,
        log_level=args.log_level,
        prewarm=not args.no_prewarm,
        endpoint_down_action=args.endpoint_down_action,
    )
    stack = LocalStack(options)
    try:
        stack.start()
    except (
        StackError,
        AwsEngineStartError,
        Wg2simStartError,
        PbxStartError,
        TemplateError,
        ProvisioningError,
        OSError,
    ) as error:
        sys.stderr.write(f"sipreg devstack up: {error}\n(logs in {stack.log_dir})\n")
        return 2
    try:
        if stopping.is_set():
            return 0
        sys.stdout.write(json.dumps(stack.ready_info()) + "\n")
        sys.stdout.write(stack.summary() + "\n")
        sys.stdout.flush()
        stopping.wait()
        sys.stderr.write("sipreg devstack: stopping\n")
    finally:
        stack.stop()
    return 0
