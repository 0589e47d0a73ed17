"""`sipreg revoke MSISDN`: delete all of a subscriber's registrations and tokens (operators only).

    sipreg revoke +4799990000 --api https://.../          # signed with your AWS credentials

It posts `POST /v1/subscribers/{msisdn}/revoke`, an operator route: signed with the caller's AWS
credentials (SigV4) like `sipreg status`, with a new `Sipreg-Request-Id` (a revoke cannot be
replayed). The revoke is queued: `sipreg status` shows its outcome. Exit status: 0 queued, 1 not
queued (send again), 2 nothing could be tried (usage, credentials, refused).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from sipreg.client import ApiError
from sipreg_cli.send import CommandError
from sipreg_cli.status import add_operator_options, checked_msisdn, operator_api


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("revoke", help="revoke a subscriber (registrations and tokens)")
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("msisdn", help="E.164 number, e.g. +4799990000")
    add_operator_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        msisdn = checked_msisdn(args.msisdn)
        with operator_api(args) as api:
            code, body = api.revoke(msisdn)
    except (CommandError, ApiError) as error:
        sys.stderr.write(f"sipreg revoke: {error}\n")
        return 2
    if code == 202:
        print(f"revoke of {args.msisdn} queued: {', '.join(body.get('accepted', []))}")
        return 0
    sys.stderr.write(
        f"sipreg revoke: HTTP {code} {body.get('title', '')} {body.get('detail', '')}".rstrip() + "\n"
    )
    return 1 if code >= 500 else 2
