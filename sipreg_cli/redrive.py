"""`sipreg redrive`: move messages from the dead-letter queue back to the events queue.

    sipreg redrive --queue-url https://sqs.../sipreg-EventsQueue-....fifo --event-log-table sipreg-EventLog...
    sipreg redrive --msisdn +4799990000            # only that number's messages

The dead-letter queue is the one in the events queue's RedrivePolicy. With the event-log table
(the stack's `EventLogTableName` output), each moved event's outcome goes from `dead_lettered`
back to `pending`. sipreg's own events (a revoke, a refresh, a resume, ...) need it: the worker
applies one it did not get from sipreg's roles only while its item waits. One without an item
(SQS's own redrive policy moved it, or its item is past retention) is given one when the DLQ
names one of `--sipreg-role-ids` (the stack's `SipregRoleIds` output) as its sender; any other
stays in the DLQ, with its number's later messages behind it, and is listed.
AWS credentials, region and endpoint come from the usual places (profile,
AWS_REGION, AWS_ENDPOINT_URL for a local stack). Prints how many messages moved (and, with
--msisdn, how many others stay in the DLQ).
Exit status: 0 done (even when nothing was there to move), 1 done but events stay held, 2 nothing
could be tried.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from typing import Any

QUEUE_ENV = "SIPREG_EVENTS_QUEUE_URL"
EVENT_LOG_ENV = "SIPREG_EVENT_LOG_TABLE"
ROLES_ENV = "SIPREG_REDRIVE_ROLE_IDS"
_ROLE_ID = re.compile(r"[A-Z0-9]{12,128}")  # AROA... (or, on a local stack, the account's id)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("redrive", help="move dead-lettered events back to the events queue")
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--queue-url", help=f"URL of the events queue (default: ${QUEUE_ENV})")
    parser.add_argument("--msisdn", help="move only this number's messages (E.164, e.g. +4799990000)")
    parser.add_argument(
        "--event-log-table",
        help=f"the stack's EventLog table, to mark moved events pending (default: ${EVENT_LOG_ENV})",
    )
    parser.add_argument(
        "--sipreg-role-ids",
        help=f"the stack's SipregRoleIds output, comma-separated (default: ${ROLES_ENV})",
    )
    parser.add_argument(
        "--endpoint-url", help="AWS endpoint, e.g. a local stack's (default: $AWS_ENDPOINT_URL)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import boto3  # noqa: PLC0415  # only this command needs it
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    from sipreg.models import check_msisdn  # noqa: PLC0415
    from sipreg.redrive import RedriveError, Redriver  # noqa: PLC0415
    from sipreg.store.event_log import EventLog  # noqa: PLC0415

    queue_url = args.queue_url or os.environ.get(QUEUE_ENV, "")
    if not queue_url:
        sys.stderr.write(f"sipreg redrive: no queue: pass --queue-url URL or set {QUEUE_ENV}\n")
        return 2
    if args.msisdn is not None:
        try:
            check_msisdn(args.msisdn)
        except ValueError as error:
            sys.stderr.write(f"sipreg redrive: --msisdn {error}\n")
            return 2
    roles = [
        r.strip() for r in (args.sipreg_role_ids or os.environ.get(ROLES_ENV, "")).split(",") if r.strip()
    ]
    if not all(_ROLE_ID.fullmatch(role) for role in roles):
        sys.stderr.write("sipreg redrive: --sipreg-role-ids must be RoleIds (A-Z, 0-9), comma-separated\n")
        return 2
    try:
        sqs = boto3.client("sqs", endpoint_url=args.endpoint_url)
        table = args.event_log_table or os.environ.get(EVENT_LOG_ENV)
        dynamodb = boto3.resource("dynamodb", endpoint_url=args.endpoint_url)
        event_log = EventLog(table, table=dynamodb.Table(table)) if table else None
        redriver = Redriver(sqs, queue_url, event_log=event_log, sipreg_roles=roles)
        report = redriver.redrive(args.msisdn)
    except (RedriveError, BotoCoreError, ClientError) as error:
        sys.stderr.write(f"sipreg redrive: {error}\n")
        return 2
    whose = f" of {args.msisdn}" if args.msisdn else ""
    print(f"moved {report.moved} message(s){whose} from the dead-letter queue to {queue_url}")
    if table:
        print(f"{report.marked} of them now pending in the event log")
    else:
        print(
            f"their event-log items still say dead_lettered (pass --event-log-table or set {EVENT_LOG_ENV})"
        )
    if args.msisdn:
        print(f"{report.left} message(s) of other numbers stay in the dead-letter queue")
    if report.not_deleted:
        print(
            f"{len(report.not_deleted)} moved message(s) are still in the dead-letter queue as well (it "
            "refused to delete them): a later run moves them again, the worker takes those for duplicates"
        )
    if report.held:
        print(
            f"{len(report.held)} of sipreg's own event(s) stay held, each with its number's later messages:"
        )
        for why in report.held:
            print(f"  {why}")
    if report.unreached:
        print(
            f"{report.unreached} message(s) in the dead-letter queue were out of this run's reach (SQS hands "
            "out at most 120,000 of a FIFO queue at once) or came meanwhile: run it again"
        )
    return 1 if report.held or report.not_deleted or report.unreached else 0
