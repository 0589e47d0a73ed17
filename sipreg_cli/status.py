"""`sipreg status MSISDN`: what sipreg holds for a number, and what happened to its events.

    sipreg status +4799990000 --api https://.../          # signed with your AWS credentials
    sipreg status +4799990000 --json
    sipreg status +4799990000 --type registration.refresh --limit 10
    sipreg status +4799990000 --outcome dead_lettered --all

It asks the events API (`GET /v1/registrations/{msisdn}`), an operator route: the request is
signed with the caller's AWS credentials (SigV4, service execute-api; environment, profile, SSO
or role, as the AWS CLI finds them), and the principal needs `execute-api:Invoke` on it (the
stack's OperatorPolicy). A producer's webhook secret cannot read status. It shows exactly what
the API shows. Exit status: 0 found, 1 unknown number, 2 nothing could be asked (usage,
credentials, refused, no answer).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import IO, Any

from sipreg.client import ApiError, OperatorApi
from sipreg.models import check_msisdn
from sipreg_cli.send import CommandError


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("status", help="show a number's registrations and recent events")
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("msisdn", help="E.164 number, e.g. +4799990000")
    add_operator_options(parser)
    parser.add_argument("--json", action="store_true", help="print the API's JSON answer as it is")
    parser.add_argument("--type", help="only events of this type (registration.refresh: the keep-alive ones)")
    parser.add_argument("--outcome", help="only events with this outcome, e.g. dead_lettered")
    parser.add_argument("--limit", type=int, help="events per page (1 to 100; default: the API's, 50)")
    parser.add_argument("--all", action="store_true", help="every page of events, not only the newest")
    parser.set_defaults(func=run)


def add_operator_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--api", help="base URL of the events API (default: $SIPREG_API)")
    parser.add_argument(
        "--region", help="the API's AWS region, if its URL does not say (default: $AWS_REGION, profile)"
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds (default: 10)")


def api_of(args: argparse.Namespace) -> str:
    api = args.api or os.environ.get("SIPREG_API", "")
    if not api:
        raise CommandError("no API: pass --api URL or set SIPREG_API (`sipreg devstack up` prints it)")
    return str(api)


def checked_msisdn(msisdn: str) -> str:
    """`msisdn` if it is an E.164 number; else CommandError("msisdn must be ...")."""
    try:
        return check_msisdn(msisdn)
    except ValueError as error:
        raise CommandError(f"msisdn {error}") from None


def operator_api(args: argparse.Namespace) -> OperatorApi:
    """The operator client the flags describe (raises ApiError without credentials or region)."""
    return OperatorApi(api_of(args), region=args.region, timeout=args.timeout)


def print_status(status: dict[str, Any], out: IO[str]) -> None:
    out.write(f"{status.get('msisdn')}\n\nregistrations:\n")
    for reg in status.get("registrations", []):
        route = (reg.get("applied") or reg.get("desired") or {}).get("route_type", "-")
        line = f"  {reg['sip_uri']:<40} {reg['status']:<17} {route:<9} expires {reg.get('expires_at') or '-'}"
        out.write(line + "\n")
        if reg.get("last_error"):
            out.write(f"  {'':<40} last error: {reg['last_error']}\n")
    if not status.get("registrations"):
        out.write("  (none)\n")
    if status.get("deleted_not_shown"):
        out.write(f"  (and {status['deleted_not_shown']} deleted earlier: their events are in the log)\n")
    out.write("\nevents (newest first):\n")
    for event in status.get("events", []):
        reason = f"  {event['reason']}" if event.get("reason") else ""
        tries = f" (tries: {event['tries']})" if event.get("tries", 0) > 1 else ""
        out.write(
            f"  {event['occurred_at']}  {event['event_type']:<20} {event['outcome']:<16} "
            f"{event.get('sip_uri') or '':<30} {event['event_id']}{tries}{reason}\n"
        )
    if status.get("next_cursor"):
        out.write("  (more: --all, or --limit)\n")


def run(args: argparse.Namespace) -> int:
    query = {
        name: str(value)
        for name, value in (("type", args.type), ("outcome", args.outcome), ("limit", args.limit))
        if value is not None
    }
    try:
        msisdn = checked_msisdn(args.msisdn)
        with operator_api(args) as api:
            code, body = api.status(msisdn, query=query)
            while args.all and code == 200 and body.get("next_cursor"):
                code, more = api.status(msisdn, query={**query, "cursor": body["next_cursor"]})
                if code == 200:
                    body = {
                        **body,
                        "events": body["events"] + more["events"],
                        "next_cursor": more.get("next_cursor"),
                    }
    except (CommandError, ApiError) as error:
        sys.stderr.write(f"sipreg status: {error}\n")
        return 2
    if code == 404:
        sys.stderr.write(f"sipreg status: sipreg knows nothing of {args.msisdn}\n")
        return 1
    if code != 200:
        problems = "; ".join(f"{e.get('field')}: {e.get('message')}" for e in body.get("errors", []))
        sys.stderr.write(f"sipreg status: HTTP {code} {body.get('title', '')} {problems}".rstrip() + "\n")
        return 2
    if args.json:
        print(json.dumps(body, indent=2))
    else:
        print_status(body, sys.stdout)
    return 0
