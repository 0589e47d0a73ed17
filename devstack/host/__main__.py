"""`python -m devstack.host --template template.yaml --aws-endpoint URL [--param K=V] ...`

Prints one JSON line `{"api", "apis", "resources", "outputs"}` on stdout when ready, logs
to stderr, and stops cleanly on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from types import FrameType
from typing import Any

import yaml

from devstack.host.local_host import LocalHost
from devstack.host.resources import ProvisioningError
from devstack.host.template import TemplateError


def _pairs(values: list[str], option: str) -> dict[str, str]:
    pairs = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key:
            raise SystemExit(f"{option} needs KEY=VALUE, got {value!r}")
        pairs[key] = rest
    return pairs


def _property_overrides(pairs: dict[str, str]) -> dict[str, dict[str, Any]]:
    overrides: dict[str, dict[str, Any]] = {}
    for key, value in pairs.items():
        logical_id, dot, name = key.partition(".")
        if not dot or not name:
            raise SystemExit(f"--override needs LogicalId.Property=VALUE, got {key!r}")
        overrides.setdefault(logical_id, {})[name] = yaml.safe_load(value)
    return overrides


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.host", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--template", default="template.yaml", help="the SAM template (default: template.yaml)"
    )
    parser.add_argument("--aws-endpoint", default=os.environ.get("AWS_ENDPOINT_URL"), help="moto server URL")
    parser.add_argument("--param", action="append", default=[], metavar="K=V", help="parameter override")
    parser.add_argument(
        "--override", action="append", default=[], metavar="ID.Property=VALUE",
        help="local property value, e.g. EventsQueue.VisibilityTimeout=5 (VALUE is YAML)",
    )  # fmt: skip
    parser.add_argument("--env", action="append", default=[], metavar="K=V", help="extra function variable")
    parser.add_argument(
        "--secret", action="append", default=[], metavar="ID=VALUE", help="secret's local value"
    )
    parser.add_argument("--time-factor", type=float, default=1.0, help="schedules run this much faster")
    parser.add_argument("--port", type=int, default=0, help="port of the HTTP API (default: a free one)")
    parser.add_argument("--stack-name", default="sipreg-local")
    parser.add_argument("--region", default=None)
    parser.add_argument("--log-dir", default=None, help="write each function's output to <dir>/<Id>.log")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    if not args.aws_endpoint:
        parser.error("--aws-endpoint (or AWS_ENDPOINT_URL) is required")
    logging.basicConfig(
        stream=sys.stderr,
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    logging.getLogger("botocore").setLevel(logging.WARNING)
    stopping = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    host = LocalHost(
        args.template,
        args.aws_endpoint,
        parameter_overrides=_pairs(args.param, "--param"),
        property_overrides=_property_overrides(_pairs(args.override, "--override")),
        env_overrides=_pairs(args.env, "--env"),
        secret_values=_pairs(args.secret, "--secret"),
        time_factor=args.time_factor,
        http_port=args.port,
        stack_name=args.stack_name,
        region=args.region,
        log_dir=args.log_dir,
    )
    try:
        host.start()
    except (TemplateError, ProvisioningError, OSError) as exc:
        print(f"devstack.host: {exc}", file=sys.stderr)
        return 2
    try:
        ready = {
            "api": host.api_url,
            "apis": host.api_urls,
            "resources": host.resources,
            "outputs": host.outputs,
        }
        print(json.dumps(ready), flush=True)
        stopping.wait()
    finally:
        host.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
