"""`sipreg import FILE.csv`: bulk provisioning, one registration per row, all checked before any is sent.

    msisdn,route_type,sip_uri,mobile_originating_prefix,mobile_terminating_prefix
    +4799990000,fork,sips:pbx.example.com:5061,,
    +4799990001,FALLBACK,sips:voicemail.example.com,,00

The header names the columns (the prefixes may be left out). Every row is checked with the
events API's model first; bad rows are listed with their line numbers and nothing is sent,
unless `--skip-invalid`. Rows become `registration.upsert` events with ids derived from the
file's content and the line (`import-<hash>-<line>`), so importing the same file again is safe.
Then they are sent in batches with a progress line on stderr, and a summary at the end:
`sent N, rejected N, failed N`. Exit status 0 when everything was sent, 1 otherwise.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sipreg.client import ApiError, EventsApi, Outcome
from sipreg.events import EventType, InvalidEventsError, UpsertEvent, parse_event
from sipreg_cli.send import CommandError, add_target_options, send_all, target

REQUIRED = ("msisdn", "route_type", "sip_uri")
OPTIONAL = ("mobile_originating_prefix", "mobile_terminating_prefix")
REGISTRATION_COLUMNS = ("route_type", "sip_uri", *OPTIONAL)


@dataclass(frozen=True)
class BadRow:
    line: int
    reason: str


def read_rows(
    text: str, *, id_prefix: str, occurred_at: str, source: str
) -> tuple[list[dict[str, Any]], list[BadRow]]:
    """(events of the good rows, bad rows with their line numbers and why) of the CSV `text`."""
    reader = csv.DictReader(io.StringIO(text, newline=""), skipinitialspace=True)
    columns = [name.strip().lower() for name in reader.fieldnames or []]
    missing = [name for name in REQUIRED if name not in columns]
    unknown = [name for name in columns if name not in (*REQUIRED, *OPTIONAL)]
    if missing or unknown:
        raise CommandError(
            f"the header must name {', '.join(REQUIRED)} (and optionally {', '.join(OPTIONAL)});"
            + (f" missing: {', '.join(missing)}" if missing else "")
            + (f" unknown: {', '.join(unknown)}" if unknown else "")
        )
    reader.fieldnames = columns
    events: list[dict[str, Any]] = []
    bad: list[BadRow] = []
    first_line_of: dict[tuple[str, str], int] = {}
    for row in reader:
        line = reader.line_num
        if None in row:
            bad.append(BadRow(line, f"has {len(columns) + len(row[None])} fields, the header {len(columns)}"))
            continue
        values = {name: (value or "").strip() for name, value in row.items()}
        if not any(values.values()):
            continue
        event = {
            "id": f"{id_prefix}-{line}",
            "type": EventType.REGISTRATION_UPSERT.value,
            "msisdn": values["msisdn"],
            "registration": {name: values[name] for name in REGISTRATION_COLUMNS if values.get(name)},
            "occurred_at": occurred_at,
            "source": source,
        }
        try:
            parsed = parse_event(event)
        except InvalidEventsError as error:
            reasons = "; ".join(f"{e.field.removeprefix('registration.')}: {e.message}" for e in error.errors)
            bad.append(BadRow(line, reasons))
            continue
        assert isinstance(parsed, UpsertEvent)
        key = (parsed.msisdn, parsed.registration.sip_uri)
        if key in first_line_of:
            bad.append(BadRow(line, f"repeats the msisdn and sip_uri of line {first_line_of[key]}"))
            continue
        first_line_of[key] = line
        events.append(event)
    return events, bad


class Progress:
    """`sent 300/1000` on one stderr line, rewritten in place."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def __call__(self, done: int, total: int) -> None:
        self._stream.write(f"\rsent {done}/{total}")
        if done >= total:
            self._stream.write("\n")
        self._stream.flush()


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("import", help="bulk provisioning from a CSV file, checked before sending")
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("file", help="the CSV file")
    parser.add_argument("--skip-invalid", action="store_true", help="send the good rows even if some are bad")
    parser.add_argument("--dry-run", action="store_true", help="check every row, send nothing")
    parser.add_argument("--source", default="import", help="the events' source (default: import)")
    parser.add_argument(
        "--id-prefix", help="event id prefix (default: import-<12 hex of the file's SHA-256>)"
    )
    add_target_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        with open(args.file, "rb") as stream:
            content = stream.read()
        text = content.decode("utf-8-sig")
        prefix = args.id_prefix or f"import-{hashlib.sha256(content).hexdigest()[:12]}"
        occurred_at = datetime.now(UTC).isoformat(timespec="seconds")
        events, bad = read_rows(text, id_prefix=prefix, occurred_at=occurred_at, source=args.source)
        for row in bad:
            sys.stderr.write(f"line {row.line}: {row.reason}\n")
        if bad and not args.skip_invalid:
            sys.stderr.write(f"{len(bad)} bad rows, nothing sent (fix them, or pass --skip-invalid)\n")
            return 1
        if args.dry_run:
            sys.stdout.write(f"{len(events)} rows valid, {len(bad)} bad; nothing sent (dry run)\n")
            return 0 if not bad else 1
        api_url, secret = target(args)
        api = EventsApi(api_url, secret, timeout=args.timeout)
        try:
            outcome = send_all(api, events, batch_size=args.batch_size, progress=Progress(sys.stderr))
        finally:
            api.close()
    except OSError as error:
        sys.stderr.write(f"sipreg import: cannot read {args.file}: {error.strerror}\n")
        return 2
    except UnicodeDecodeError:
        sys.stderr.write(f"sipreg import: {args.file} is not UTF-8 text\n")
        return 2
    except (CommandError, ApiError) as error:
        sys.stderr.write(f"sipreg import: {error}\n")
        return 2
    _report(outcome, bad)
    return 0 if not bad and not outcome.rejected and not outcome.failed else 1


def _report(outcome: Outcome, bad: list[BadRow]) -> None:
    for event_id, reason in outcome.rejected.items():
        sys.stderr.write(f"rejected {event_id}: {reason}\n")
    for event_id, reason in outcome.failed.items():
        sys.stderr.write(f"failed {event_id}: {reason} (importing the file again is safe)\n")
    rejected = len(bad) + len(outcome.rejected)
    sys.stdout.write(f"sent {len(outcome.accepted)}, rejected {rejected}, failed {len(outcome.failed)}\n")
