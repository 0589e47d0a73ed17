"""The refresher's cost follows what is due, not what is stored; and how much one run can enqueue.

    .venv/bin/python bench/bench_refresher.py [--stored 100000] [--due 1000] [--rounds 3]

On the local AWS engine, two copies of template.yaml's tables and queue: one holds only the
`--due` active registrations expiring within the refresh margin (the baseline), the other the
same number due plus enough not due (expiring after the margin) to hold `--stored`. Seeded with
BatchWriteItem straight to the engine. Then the refresher's own `run` (margin 1200 s, page size
100, as deployed) on each, interleaved round by round. Counted on its DynamoDB client: the items
its queries read (`ScannedCount`, what DynamoDB bills a query for) per due registration.

Then the run's capacity, as deployed (template.yaml's `RefreshMaxPerRun`, its 240 s `Timeout`,
the settings' 16 threads): a third table holding `--backlog` due registrations, refreshed by that
refresher and by one with a single thread (the baseline, same run, same table). The queries go to
the local engine; SendMessageBatch to a stand-in answering in `--sqs-latency-ms` (AnsweringSqs:
the engine's own FIFO send slows as its queue fills). The rate (enqueued per second) times the
run's time is what one run can enqueue; with a schedule period P and margin M a registration
needs a refresh every ~3600 - M + P/2 seconds, so one run every P keeps that x (3600 - M + P/2) / P
registrations alive. AWS's FIFO queue (high-throughput mode, as the template sets) takes far more.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from boto3.dynamodb.types import TypeSerializer

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "layers/common")]

from bench.common import REGION, RequestCounter, goal_line, provision, write_json  # noqa: E402
from devstack.aws_engine import ROOT as ENGINE_ROOT  # noqa: E402
from devstack.aws_engine import LocalAws  # noqa: E402
from devstack.host.aws import Clients  # noqa: E402
from devstack.host.template import load_template  # noqa: E402
from sipreg.aws import dynamodb_table  # noqa: E402
from sipreg.config import RefresherSettings  # noqa: E402
from sipreg.models import RouteSpec, RouteType  # noqa: E402
from sipreg.queue import EventQueue  # noqa: E402
from sipreg.refresher import Refresher  # noqa: E402
from sipreg.store.registrations import (  # noqa: E402
    RegistrationRecord,
    RegistrationStatus,
    RegistrationStore,
    _to_item,
)

MARGIN = 1200.0
PERIOD = 300.0  # the template's RefreshSchedule, rate(5 minutes)
TEMPLATE = load_template(ROOT / "template.yaml")
MAX_ITEMS = int(TEMPLATE["Parameters"]["RefreshMaxPerRun"]["Default"])
RUN_SECONDS = float(TEMPLATE["Resources"]["RefresherFunction"]["Properties"]["Timeout"])
SETTINGS = RefresherSettings.model_validate(
    {"REGISTRATIONS_TABLE": "bench", "EVENTS_QUEUE_URL": "https://bench", "REFRESH_MAX_ITEMS": MAX_ITEMS}
)
MILLION = 1_000_000
READS_GOAL = 1.5
TTL = 3600.0


def item(n: int, expires_at: datetime) -> dict[str, Any]:
    spec = RouteSpec(route_type=RouteType.FORK)
    record = RegistrationRecord(
        msisdn=f"+47{n:08d}",
        sip_uri="sips:pbx.bench.example",
        status=RegistrationStatus.ACTIVE,
        desired=spec,
        applied=spec,
        expires_at=expires_at,
        updated_at=datetime.now(UTC),
        version=1,
    )
    serialize = TypeSerializer().serialize
    return {key: serialize(value) for key, value in _to_item(record).items()}


def seed(client: Any, table: str, first: int, count: int, expiry: Any) -> None:
    """`count` active registrations from MSISDN number `first`, 25 per BatchWriteItem, 4 at a time."""

    def write(start: int) -> None:
        requests = [
            {"PutRequest": {"Item": item(n, expiry(n))}} for n in range(start, min(start + 25, first + count))
        ]
        while requests:
            answer = client.batch_write_item(RequestItems={table: requests})
            requests = answer.get("UnprocessedItems", {}).get(table, [])

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(write, range(first, first + count, 25)))


class AnsweringSqs:
    """SQS's SendMessageBatch as a stand-in that takes every entry after `latency` seconds: the
    local engine's FIFO send slows as its queue fills (measured: 1,278 refreshes/s into 5,000
    queued, 258/s into 20,000, where 16 threads were no faster than one), which would make the
    capacity figure the engine's, not the refresher's."""

    def __init__(self, latency: float) -> None:
        self.latency = latency

    def send_message_batch(self, *, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803
        time.sleep(self.latency)
        return {"Successful": [{"Id": entry["Id"]} for entry in Entries], "Failed": []}


class Subject:
    """One table and queue, the refresher over them, and what its runs cost."""

    def __init__(
        self,
        endpoint: str,
        *,
        parallelism: int = SETTINGS.parallelism,
        table: str | None = None,
        sqs: Any = None,
    ) -> None:
        resources = provision(endpoint)  # a table and queue of its own; `table` reads another's
        self.table = table or str(resources["RegistrationsTable"]["Ref"])
        self.counter = RequestCounter()
        self.counter.watch(dynamodb_table(self.table).meta.client)
        sqs = sqs or Clients(endpoint, REGION).new_client("sqs")
        self.refresher = Refresher(
            RegistrationStore(self.table),
            EventQueue(str(resources["EventsQueue"]["Ref"]), client=sqs),
            margin_seconds=MARGIN,
            max_items=MAX_ITEMS,
            page_size=SETTINGS.page_size,
            parallelism=parallelism,
            time_reserve_seconds=SETTINGS.time_reserve_seconds,
        )

    def run(self) -> tuple[float, int, int, bool]:
        """(seconds, items read, enqueued, complete) of one run, given the deployed run's time."""
        self.counter.clear()
        started = time.perf_counter()
        remaining = lambda: RUN_SECONDS - (time.perf_counter() - started)  # noqa: E731
        report = self.refresher.run(remaining_seconds=remaining)
        return time.perf_counter() - started, self.counter.items_read, report.enqueued, report.complete


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stored", type=int, default=100_000)
    parser.add_argument("--due", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--sqs-latency-ms", type=float, default=20.0, help="the queue stand-in's answer time per batch"
    )
    parser.add_argument("--backlog", type=int, default=20_000, help="due registrations for the capacity run")
    args = parser.parse_args()
    os.environ.update(ENGINE_ROOT.as_environment())
    os.environ["AWS_DEFAULT_REGION"] = REGION
    with tempfile.TemporaryDirectory() as logs, LocalAws.start(log_file=Path(logs) / "aws.log") as aws:
        os.environ["AWS_ENDPOINT_URL"] = aws.endpoint
        return run(args, aws.endpoint)


def run(args: argparse.Namespace, endpoint: str) -> int:
    now = datetime.now(UTC)
    due = lambda n: now + timedelta(seconds=60 + n % 900)  # noqa: E731  # within the margin
    # Not due: well after the margin, so that the minutes seeding takes do not make them due.
    later = lambda n: now + timedelta(hours=3, seconds=n % 3600)  # noqa: E731
    dynamodb = Clients(endpoint, REGION).new_client("dynamodb")
    small, large = Subject(endpoint), Subject(endpoint)
    started = time.perf_counter()
    seed(dynamodb, small.table, 0, args.due, due)
    seed(dynamodb, large.table, 0, args.due, due)
    seed(dynamodb, large.table, args.due, args.stored - args.due, later)
    seeded_in = time.perf_counter() - started
    print(f"  (seeded {args.stored + args.due:,} items in {seeded_in:.0f} s)", flush=True)

    times: dict[str, list[float]] = {"small": [], "large": []}
    reads: dict[str, list[int]] = {"small": [], "large": []}
    for _ in range(args.rounds):
        for name, subject in (("small", small), ("large", large)):
            seconds, items_read, enqueued, complete = subject.run()
            if enqueued != args.due or not complete:
                print(f"{name}: enqueued {enqueued} of {args.due} due (complete={complete})", file=sys.stderr)
                return 1
            times[name].append(seconds)
            reads[name].append(items_read)

    stand_in = AnsweringSqs(args.sqs_latency_ms / 1000)
    capacity = Subject(endpoint, sqs=stand_in)
    serial = Subject(endpoint, parallelism=1, table=capacity.table, sqs=stand_in)
    seed(dynamodb, capacity.table, 0, args.backlog, due)
    rates = {}
    for name, subject in (("threads", capacity), ("one thread", serial)):
        seconds, _, enqueued, complete = subject.run()
        if enqueued != args.backlog or not complete:
            print(
                f"capacity, {name}: enqueued {enqueued} of {args.backlog} (complete={complete})",
                file=sys.stderr,
            )
            return 1
        rates[name] = enqueued / seconds
    interval = TTL - MARGIN + PERIOD / 2
    at_this_rate = rates["threads"] * (RUN_SECONDS - SETTINGS.time_reserve_seconds)
    per_run = min(MAX_ITEMS, at_this_rate)  # the run stops at its budget
    sustainable = per_run * interval / PERIOD
    needed_for_a_million = MILLION * PERIOD / interval
    per_due = statistics.median(reads["large"]) / args.due
    ratio = statistics.median(times["large"]) / statistics.median(times["small"])
    figures = {
        "stored": args.stored,
        "due": args.due,
        "rounds": args.rounds,
        "seeded_seconds": seeded_in,
        "items_read_per_due_at_stored": per_due,
        "items_read_per_due_at_due_only": statistics.median(reads["small"]) / args.due,
        "run_seconds_median": {name: statistics.median(t) for name, t in times.items()},
        "run_time_ratio_stored_vs_due_only": ratio,
        "capacity": {
            "backlog": args.backlog,
            "enqueued_per_second": rates["threads"],
            "enqueued_per_second_one_thread": rates["one thread"],
            "parallelism": SETTINGS.parallelism,
            "run_seconds": RUN_SECONDS,
            "max_per_run": MAX_ITEMS,
            "per_run_at_this_rate": at_this_rate,
            "per_run": per_run,
            "refresh_interval_seconds": interval,
            "schedule_period_seconds": PERIOD,
            "sustainable_registrations": sustainable,
            "needed_per_run_for_a_million": needed_for_a_million,
        },
    }
    write_json("refresher", figures)

    print(f"refresher: {args.stored:,} stored registrations, {args.due:,} due, median of {args.rounds} runs")
    print(
        goal_line(
            f"DynamoDB items read per due, {args.stored:,} stored",
            f"{per_due:.3f}",
            f"goal: close to 1, under {READS_GOAL}",
            per_due < READS_GOAL,
        )
    )
    print(
        goal_line(
            f"run time {args.stored:,} stored / {args.due:,} stored",
            f"{ratio:.2f}x",
            "ideal ~1x: work follows what is due",
            None,
        )
    )
    print(
        f"    ({statistics.median(times['large']):.2f} s vs {statistics.median(times['small']):.2f} s;"
        " the local engine sorts a shard's whole partition for every page, DynamoDB reads only the page)"
    )
    print(
        goal_line(
            f"capacity: enqueued per second, {SETTINGS.parallelism} threads",
            f"{rates['threads']:,.0f}/s",
            f"{rates['threads'] / rates['one thread']:.1f}x one thread's {rates['one thread']:,.0f}/s",
            None,
        )
    )
    print(
        goal_line(
            f"capacity: one {RUN_SECONDS:.0f} s run at that rate",
            f"{per_run:,.0f} refreshes"
            + (f" (rate: {at_this_rate:,.0f}, budget caps)" if at_this_rate > MAX_ITEMS else ""),
            f"a million need {needed_for_a_million:,.0f} per run",
            per_run >= needed_for_a_million,
        )
    )
    print(
        f"    (at most {MAX_ITEMS:,} per run every {PERIOD:.0f} s, a refresh every ~{interval:.0f} s per "
        f"registration: ~{sustainable:,.0f} registrations kept alive at this rate)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
