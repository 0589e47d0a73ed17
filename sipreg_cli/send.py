"""`sipreg send`: sign provisioning events and post them to the events API, one line per id.

    sipreg send events.json --api https://.../ --secret-env SIPREG_WEBHOOK_SECRET
    cat events.jsonl | sipreg send -

The input is one event object, `{"events": [...]}`, a JSON array, or JSON Lines. Every event is
checked first with the API's own model: if any is invalid nothing is sent. Then they go in
batches of up to 100; ids the queue did not take are sent again (resending is safe: the queue
deduplicates on the event id). Output: `accepted|rejected|failed <TAB> id [<TAB> reason]`.
Exit status: 0 all accepted, 1 some not, 2 nothing could be tried (usage, input, signature).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import IO, Any

from sipreg.client import ApiError, EventsApi, Outcome
from sipreg.client.producers import MAX_BATCH
from sipreg.events import InvalidEventsError, parse_events

DEFAULT_SECRET_ENV = "SIPREG_WEBHOOK_SECRET"  # noqa: S105  # the variable's name, not a secret


class CommandError(Exception):
    """Stops the command before anything is sent; the message says what to fix."""


def read_events(stream: IO[str]) -> list[Any]:
    """Events from one JSON document (object, {"events": [...]}, array) or JSON Lines."""
    text = stream.read()
    try:
        data = json.loads(text)
    except ValueError:
        try:
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        except ValueError as error:
            raise CommandError(f"input is neither JSON nor JSON Lines: {error}") from None
    if isinstance(data, dict) and "events" in data:
        data = data["events"]
    return data if isinstance(data, list) else [data]


def check_events(items: Sequence[Any]) -> list[dict[str, Any]]:
    """The events as sent (unchanged), once all of them pass the API's model."""
    try:
        parse_events(items)
    except InvalidEventsError as error:
        lines = [f"  {e.field}: {e.message}" for e in error.errors]
        raise CommandError("invalid events, nothing sent:\n" + "\n".join(lines)) from None
    return [dict(item) for item in items]


def send_all(
    api: EventsApi,
    events: Sequence[dict[str, Any]],
    *,
    batch_size: int = MAX_BATCH,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> Outcome:
    outcome = Outcome()
    for start in range(0, len(events), batch_size):
        outcome.merge(api.send(events[start : start + batch_size]))
        progress(min(start + batch_size, len(events)), len(events))
    return outcome


def target(args: argparse.Namespace) -> tuple[str, str]:
    """(API base URL, signing secret) from flags and environment; never prints the secret."""
    api = args.api or os.environ.get("SIPREG_API", "")
    if not api:
        raise CommandError("no API: pass --api URL or set SIPREG_API (`sipreg devstack up` prints it)")
    secret = os.environ.get(args.secret_env, "")
    if not secret:
        raise CommandError(f"no signing secret: set the environment variable {args.secret_env}")
    return api, secret


def add_target_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--api", help="base URL of the events API (default: $SIPREG_API)")
    parser.add_argument(
        "--secret-env",
        default=DEFAULT_SECRET_ENV,
        metavar="NAME",
        help=f"environment variable holding the signing secret (default: {DEFAULT_SECRET_ENV})",
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per request (default: 10)")
    parser.add_argument(
        "--batch-size", type=int, default=MAX_BATCH, choices=range(1, MAX_BATCH + 1), metavar="1-100"
    )


def print_outcome(outcome: Outcome, out: IO[str]) -> None:
    for event_id in outcome.accepted:
        out.write(f"accepted\t{event_id}\n")
    for event_id, reason in outcome.rejected.items():
        out.write(f"rejected\t{event_id}\t{reason}\n")
    for event_id, reason in outcome.failed.items():
        out.write(f"failed\t{event_id}\t{reason}\n")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("send", help="sign and post provisioning events to the events API")
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("file", nargs="?", default="-", help="JSON or JSON Lines file, or - for stdin")
    add_target_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        api_url, secret = target(args)
        if args.file == "-":
            items = read_events(sys.stdin)
        else:
            with open(args.file, encoding="utf-8") as stream:
                items = read_events(stream)
        events = check_events(items)
        api = EventsApi(api_url, secret, timeout=args.timeout)
        try:
            outcome = send_all(api, events, batch_size=args.batch_size)
        finally:
            api.close()
    except OSError as error:
        sys.stderr.write(f"sipreg send: cannot read {args.file}: {error.strerror}\n")
        return 2
    except (CommandError, ApiError) as error:
        sys.stderr.write(f"sipreg send: {error}\n")
        return 2
    print_outcome(outcome, sys.stdout)
    sys.stderr.write(
        f"{len(outcome.accepted)} accepted, {len(outcome.rejected)} rejected, {len(outcome.failed)} failed\n"
    )
    return 0 if not outcome.rejected and not outcome.failed else 1
