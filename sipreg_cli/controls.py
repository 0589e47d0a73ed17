"""`sipreg disable | enable | refresh MSISDN --sip-uri URI`: an operator's control of one registration.

    sipreg disable +4799990000 --sip-uri sips:pbx.acme.example --reason "customer asked for a pause"
    sipreg enable  +4799990000 --sip-uri sips:pbx.acme.example
    sipreg refresh +4799990000 --sip-uri sips:pbx.acme.example     # re-send it to the core now

`disable` deletes the registration at the core and keeps its desired state (later CRM changes
are recorded, refreshes skip it) until `enable` applies it again; `refresh` re-sends the desired
state now, whatever its status. Each posts `POST /v1/registrations/{msisdn}/<action>`, an
operator route signed with your AWS credentials (SigV4) like `sipreg status`, with a new
`Sipreg-Request-Id`. The control is queued in the number's order: `sipreg status` shows its
outcome. Exit status: 0 queued, 1 not queued (send again), 2 nothing could be tried (usage,
credentials, refused, no such registration).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from sipreg.client import ApiError
from sipreg_cli.send import CommandError
from sipreg_cli.status import add_operator_options, checked_msisdn, operator_api

ACTIONS = {
    "disable": "take a registration off the core, keeping its desired state",
    "enable": "apply a disabled registration's desired state again",
    "refresh": "re-send a registration's desired state to the core now",
}


def register(subparsers: Any) -> None:
    for action, summary in ACTIONS.items():
        parser = subparsers.add_parser(action, help=summary)
        parser.description = __doc__
        parser.formatter_class = argparse.RawDescriptionHelpFormatter
        parser.add_argument("msisdn", help="E.164 number, e.g. +4799990000")
        parser.add_argument(
            "--sip-uri", required=True, help="the registration's sips: URI (see sipreg status)"
        )
        parser.add_argument("--reason", help="why, for the event log and status (at most 200 characters)")
        add_operator_options(parser)
        parser.set_defaults(func=run, action=action)


def run(args: argparse.Namespace) -> int:
    try:
        msisdn = checked_msisdn(args.msisdn)
        with operator_api(args) as api:
            code, answer = api.control(args.action, msisdn, args.sip_uri, reason=args.reason)
    except (CommandError, ApiError) as error:
        sys.stderr.write(f"sipreg {args.action}: {error}\n")
        return 2
    if code == 202:
        print(
            f"{args.action} of {args.msisdn} {args.sip_uri} queued: {', '.join(answer.get('accepted', []))}"
        )
        return 0
    problems = "; ".join(f"{e.get('field')}: {e.get('message')}" for e in answer.get("errors", []))
    detail = problems or answer.get("detail", "")
    sys.stderr.write(f"sipreg {args.action}: HTTP {code} {answer.get('title', '')} {detail}".rstrip() + "\n")
    return 1 if code >= 500 else 2
