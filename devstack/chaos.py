"""`make chaos`: a storm on the local stack, then proof that nothing was lost and every number converged.

    .venv/bin/python -m devstack.chaos                              # 10,000 events over 1,000 numbers
    .venv/bin/python -m devstack.chaos --events 300 --numbers 30    # the small run `make test` does

The stack is the one `make demo` runs (the template's functions on the local host, wg2sim, the
local AWS with IAM enforced), in client-credentials mode so a thousand numbers need no consent
pages, with short retry delays, a 1 s core deadline and a 20 s product token. Several producers
send at once, half through the signed events API, half straight to the FIFO queue; each number
gets upserts, route changes and deletes of two registrations, some sent out of order, some twice
(a tenth: through the API with the same id, which SQS absorbs, or to the queue with a new
deduplication id, which only the worker can absorb). Meanwhile the core answers a fifth of the
calls UNAVAILABLE and lets 5 % stall past the deadline, the identity server is down for a while,
and worker sandboxes are killed in the middle of batches.

When the producers are done every fault stops, and the run waits for the system to settle. Then it
checks, for every number, that the core holds exactly the newest desired state of each of its
registrations and sipreg's record agrees; for every event sent, that its event-log item holds
exactly one final outcome. It prints the figures as a table, writes a PNG of convergence over
time (`--plot`, matplotlib from the bench extra), and exits 1 on any loss or divergence.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3

from devstack.aws_engine import ROOT
from devstack.stack import LocalStack, StackOptions
from sipreg.client import EventsApi
from sipreg.events import parse_event, to_json
from sipreg.queue import EventQueue, deduplication_id
from sipreg.store.event_log import EventLog, Outcome
from sipreg.worker.attempt import tries_key

PBX = "sips:pbx.chaos.example"
VOICEMAIL = "sips:voicemail.chaos.example"
WORKER = "RegistrationWorkerFunction"


@dataclass(frozen=True)
class ChaosConfig:
    events: int = 10_000
    numbers: int = 1_000
    producers: int = 4
    unavailable_rate: float = 0.2
    stall_rate: float = 0.05
    duplicate_rate: float = 0.1
    reorder_rate: float = 0.2
    storm_seconds: float = 120.0  # the producers spread their sends over this long
    identity_outage_seconds: float = 15.0
    kills: int = 6  # worker sandboxes killed mid-batch during the storm
    seed: int = 1
    settle_timeout: float = 900.0
    sample_every: float = 2.0
    log_dir: Path | None = None


@dataclass
class ChaosReport:
    numbers: int
    converged: int = 0
    events: int = 0
    sent_messages: int = 0
    one_final_outcome: int = 0
    lost: int = 0
    dead_lettered: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    core_calls: int = 0
    faults: Counter[str] = field(default_factory=Counter)  # injected by wg2sim, by kind
    killed: int = 0
    storm_seconds: float = 0.0
    settle_seconds: float = 0.0
    timeline: list[tuple[float, float]] = field(default_factory=list)  # (seconds, converged share)
    faults_stopped_at: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.converged == self.numbers and self.one_final_outcome == self.events and self.lost == 0

    def table(self) -> str:
        rows = [
            ("numbers converged", f"{self.converged:,} / {self.numbers:,}"),
            ("events with exactly one final outcome", f"{self.one_final_outcome:,} / {self.events:,}"),
            ("events lost (no outcome at all)", f"{self.lost:,}"),
            ("events dead-lettered", f"{self.dead_lettered:,}"),
            ("messages sent (duplicates included)", f"{self.sent_messages:,}"),
            ("core calls per event", f"{self.core_calls / max(self.events, 1):.2f}"),
            (
                "core calls failed UNAVAILABLE / stalled",
                f"{self.faults['unavailable']:,} / {self.faults['stall']:,}",
            ),
            ("identity server requests refused (outage)", f"{self.faults['identity_down']:,}"),
            ("worker sandboxes killed mid-batch", f"{self.killed}"),
            ("storm (sending, faults on)", f"{self.storm_seconds:.0f} s"),
            ("time to converge after faults stopped", f"{self.settle_seconds:.0f} s"),
        ]
        width = max(len(name) for name, _ in rows)
        lines = [f"  {name:<{width}}  {value}" for name, value in rows]
        lines.append("  final outcomes: " + ", ".join(f"{k} {v:,}" for k, v in sorted(self.outcomes.items())))
        return "\n".join(lines)


# --- the plan: what each number is sent, and what it must end with ------------------------------


@dataclass(frozen=True)
class Plan:
    events: dict[str, list[dict[str, Any]]]  # per number, in occurred order
    expected: dict[tuple[str, str], str | None]  # (msisdn, sip_uri) -> route type, None: nothing

    @property
    def all_events(self) -> list[dict[str, Any]]:
        return [event for events in self.events.values() for event in events]


def plan(config: ChaosConfig, rng: random.Random) -> Plan:
    per_number = max(1, config.events // config.numbers)
    start = datetime.now(UTC) - timedelta(seconds=per_number + 120)
    run = uuid.uuid4().hex[:6]
    events: dict[str, list[dict[str, Any]]] = {}
    expected: dict[tuple[str, str], str | None] = {}
    for n in range(config.numbers):
        msisdn = f"+4791{n:06d}"
        mine = []
        for i in range(per_number):
            sip_uri = PBX if rng.random() < 0.7 else VOICEMAIL
            occurred = (start + timedelta(seconds=i)).isoformat().replace("+00:00", "Z")
            event: dict[str, Any] = {
                "id": f"chaos-{run}-{n}-{i}",
                "msisdn": msisdn,
                "occurred_at": occurred,
                "source": "chaos",
            }
            if rng.random() < 0.7:
                route = rng.choice(["fork", "loop"]) if sip_uri == PBX else "fallback"
                event |= {
                    "type": "registration.upsert",
                    "registration": {"route_type": route, "sip_uri": sip_uri},
                }
                expected[(msisdn, sip_uri)] = route
            else:
                event |= {"type": "registration.delete", "registration": {"sip_uri": sip_uri}}
                expected[(msisdn, sip_uri)] = None
            mine.append(event)
        events[msisdn] = mine
    return Plan(events, expected)


# --- producers -------------------------------------------------------------------------------------


class Producer(threading.Thread):
    """Sends its numbers' events round by round (one event per number per round), some swapped
    with the next one, some again a round later."""

    def __init__(
        self,
        number: int,
        *,
        through_api: bool,
        numbers: Sequence[str],
        plan: Plan,
        info: dict[str, Any],
        config: ChaosConfig,
    ) -> None:
        super().__init__(name=f"producer-{number}", daemon=True)
        self.through_api = through_api
        self.numbers = list(numbers)
        self.plan = plan
        self.info = info
        self.config = config
        self.rng = random.Random(config.seed * 1000 + number)
        self.sent = 0
        self.refused: list[str] = []

    def run(self) -> None:
        api = EventsApi(self.info["api"], self.info["webhook_secret"], timeout=30, retries=5)
        queue = EventQueue(self.info["queues"]["EventsQueue"], client=_sqs(self.info))
        orders = {m: self._send_order(self.plan.events[m]) for m in self.numbers}
        rounds = max(len(order) for order in orders.values())
        again: list[dict[str, Any]] = []
        pause = self.config.storm_seconds / max(rounds, 1)
        try:
            for round_ in range(rounds):
                began = time.monotonic()
                batch = [orders[m][round_] for m in self.numbers if round_ < len(orders[m])]
                self._send(api, queue, batch + again)
                again = [e for e in batch if self.rng.random() < self.config.duplicate_rate]
                time.sleep(max(0.0, pause - (time.monotonic() - began)))
            self._send(api, queue, again)
        finally:
            api.close()

    def _send_order(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        order = list(events)
        for i in range(len(order) - 1):
            if self.rng.random() < self.config.reorder_rate:
                order[i], order[i + 1] = order[i + 1], order[i]
        return order

    def _send(self, api: EventsApi, queue: EventQueue, events: list[dict[str, Any]]) -> None:
        seen: set[str] = set()
        unique = [e for e in events if not (e["id"] in seen or seen.add(e["id"]))]  # type: ignore[func-returns-value]
        if self.through_api:
            for start in range(0, len(unique), 100):
                outcome = api.send(unique[start : start + 100])
                self.refused += list(outcome.rejected) + list(outcome.failed)
                self.sent += len(outcome.accepted)
            return
        parsed = [parse_event(e) for e in unique]
        result = queue.send(parsed)
        self.refused += list(result.not_accepted)
        self.sent += len(result.accepted)
        # A resend after SQS's 5-minute window: a new deduplication id, so the worker sees it again.
        resent = [p for p in parsed if self.rng.random() < self.config.duplicate_rate]
        if resent:
            _sqs(self.info).send_message_batch(
                QueueUrl=self.info["queues"]["EventsQueue"],
                Entries=[
                    {
                        "Id": str(i),
                        "MessageBody": to_json(p),
                        "MessageGroupId": p.msisdn,
                        "MessageDeduplicationId": hashlib.sha256(
                            f"{deduplication_id(p.id)}-{uuid.uuid4()}".encode()
                        ).hexdigest(),
                    }
                    for i, p in enumerate(resent[:10])
                ],
            )
            self.sent += min(len(resent), 10)


def _sqs(info: dict[str, Any]) -> Any:
    return boto3.client(
        "sqs", endpoint_url=info["aws_endpoint"], region_name=info["region"], **ROOT.as_client_kwargs()
    )


# --- looking at the result -------------------------------------------------------------------------


class Observer:
    """What the core holds, what sipreg's records say, and which numbers agree with the plan."""

    def __init__(self, stack: LocalStack, plan: Plan) -> None:
        self.stack = stack
        self.plan = plan
        info = stack.ready_info()
        self.table = info["resources"]["RegistrationsTable"]
        self.dynamodb = boto3.client(
            "dynamodb",
            endpoint_url=info["aws_endpoint"],
            region_name=info["region"],
            **ROOT.as_client_kwargs(),
        )

    def converged(self) -> tuple[int, list[str]]:
        core = {
            (r["msisdn"], r["sip_uri"]): r["route_type"].removeprefix("ROUTE_TYPE_").lower()
            for r in self.stack.sim.registrations()
        }
        records = self._records()
        problems: list[str] = []
        good = 0
        for msisdn in self.plan.events:
            number_ok = True
            for sip_uri in (PBX, VOICEMAIL):
                key = (msisdn, sip_uri)
                if key not in self.plan.expected:
                    continue
                want, held = self.plan.expected[key], core.get(key)
                record = records.get(key)
                says = record.get("applied") if record and record.get("status") == "active" else None
                if held != want or says != want:
                    number_ok = False
                    status = record.get("status") if record else "no record"
                    problems.append(
                        f"{msisdn} {sip_uri}: newest {want}, core {held}, record {says} ({status})"
                    )
            good += number_ok
        return good, problems

    def _records(self) -> dict[tuple[str, str], dict[str, Any]]:
        found: dict[tuple[str, str], dict[str, Any]] = {}
        scan: dict[str, Any] = {"TableName": self.table, "ConsistentRead": True}
        while True:
            page = self.dynamodb.scan(**scan)
            for item in page["Items"]:
                applied = item.get("applied", {}).get("M", {}).get("route_type", {}).get("S")
                found[(item["msisdn"]["S"], item["sip_uri"]["S"])] = {
                    "status": item["status"]["S"],
                    "applied": applied,
                }
            if "LastEvaluatedKey" not in page:
                return found
            scan["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def outcomes(stack: LocalStack, events: list[dict[str, Any]], report: ChaosReport) -> None:
    table = stack.ready_info()["resources"]["EventLogTable"]
    resource = boto3.resource(
        "dynamodb", endpoint_url=stack.aws_endpoint, region_name="eu-west-1", **ROOT.as_client_kwargs()
    )
    keys = {tries_key(event): event for event in (parse_event(e) for e in events)}
    found = EventLog(table, table=resource.Table(table)).get_many(keys)
    report.events = len(keys)
    for key, event in keys.items():
        item = found.get(key)
        if item is None:
            report.lost += 1
            report.problems.append(f"no outcome for {event.id}")
            continue
        report.outcomes[item.outcome.value] += 1
        report.dead_lettered += item.outcome is Outcome.DEAD_LETTERED
        if item.outcome.final and item.decisions == 1:
            report.one_final_outcome += 1
        else:
            report.problems.append(f"{event.id}: {item.outcome.value}, {item.decisions} final decisions")


# --- the run ---------------------------------------------------------------------------------------


def stack_options(config: ChaosConfig) -> StackOptions:
    return StackOptions(
        auth_mode="client",
        log_dir=config.log_dir,
        log_level="WARNING",
        token_ttl=130,  # with the worker's 120 s margin: a new product token every 10 s
        parameter_overrides={"RetryBaseSeconds": "1", "RetryMaxSeconds": "5", "CoreDeadlineSeconds": "1"},
        # A killed batch comes back after the visibility timeout: the shortest the worker's 30 s allows.
        property_overrides={"EventsQueue": {"VisibilityTimeout": 30}},
    )


def run(config: ChaosConfig, stack: LocalStack | None = None) -> ChaosReport:
    rng = random.Random(config.seed)
    the_plan = plan(config, rng)
    own = stack is None
    stack = stack or LocalStack(stack_options(config)).start()
    report = ChaosReport(numbers=len(the_plan.events))
    try:
        _storm(stack, the_plan, config, report)
        _settle(stack, the_plan, config, report)
        stats = stack.sim.stats()
        calls = stats["calls"]
        report.faults.update(stats.get("faults_injected", {}))
        report.core_calls = sum(
            sum(outcomes.values()) for path, outcomes in calls.items() if "SipBreakout" in path
        )
        outcomes(stack, the_plan.all_events, report)
    finally:
        if own:
            stack.stop()
    return report


def _faults(stack: LocalStack, config: ChaosConfig, *, identity_down: bool) -> None:
    stack.sim.set_faults(
        unavailable_rate=config.unavailable_rate, stall_rate=config.stall_rate, identity_down=identity_down
    )


def _storm(stack: LocalStack, the_plan: Plan, config: ChaosConfig, report: ChaosReport) -> None:
    info = stack.ready_info()
    numbers = list(the_plan.events)
    producers = [
        Producer(
            p,
            through_api=p % 2 == 0,
            numbers=numbers[p :: config.producers],
            plan=the_plan,
            info=info,
            config=config,
        )
        for p in range(config.producers)
    ]
    observer = Observer(stack, the_plan)
    started = time.monotonic()
    _faults(stack, config, identity_down=False)
    for producer in producers:
        producer.start()
    outage_at = None
    kills_left = config.kills
    next_kill = started + config.storm_seconds / (config.kills + 1)
    last_sample = 0.0
    while any(p.is_alive() for p in producers):
        now = time.monotonic()
        sent = sum(p.sent for p in producers)
        if outage_at is None and sent >= config.events // 3:
            outage_at = now
            _faults(stack, config, identity_down=True)
        elif outage_at is not None and now - outage_at > config.identity_outage_seconds:
            _faults(stack, config, identity_down=False)
        if kills_left and now >= next_kill and stack.host.runtimes[WORKER].kill_busy():
            report.killed += 1
            kills_left -= 1
            next_kill = now + config.storm_seconds / (config.kills + 1)
        if now - last_sample >= config.sample_every:
            report.timeline.append((now - started, observer.converged()[0] / len(numbers)))
            last_sample = now
        time.sleep(0.05)
    for producer in producers:
        producer.join()
        report.sent_messages += producer.sent
        report.problems += [f"{producer.name}: {reason}" for reason in producer.refused[:5]]
    stack.sim.clear_faults()
    report.faults_stopped_at = time.monotonic() - started
    report.storm_seconds = report.faults_stopped_at


def _settle(stack: LocalStack, the_plan: Plan, config: ChaosConfig, report: ChaosReport) -> None:
    observer = Observer(stack, the_plan)
    started = time.monotonic()
    while True:
        good, problems = observer.converged()
        elapsed = time.monotonic() - started
        report.timeline.append((report.faults_stopped_at + elapsed, good / len(the_plan.events)))
        if good == len(the_plan.events) and _queue_empty(stack):
            report.converged, report.settle_seconds = good, elapsed
            return
        if elapsed > config.settle_timeout:
            report.converged, report.settle_seconds = good, elapsed
            report.problems += problems
            return
        time.sleep(config.sample_every)


def _queue_empty(stack: LocalStack) -> bool:
    info = stack.ready_info()
    attributes = _sqs(info).get_queue_attributes(
        QueueUrl=info["queues"]["EventsQueue"],
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return (
        int(attributes["ApproximateNumberOfMessages"])
        + int(attributes["ApproximateNumberOfMessagesNotVisible"])
        == 0
    )


def plot(report: ChaosReport, path: Path) -> bool:
    try:
        import matplotlib  # noqa: PLC0415

        matplotlib.use("Agg")
        from matplotlib import pyplot  # noqa: PLC0415
    except ImportError:
        return False
    figure, axes = pyplot.subplots(figsize=(8, 4))
    axes.plot(
        [t for t, _ in report.timeline], [100 * share for _, share in report.timeline], color="tab:blue"
    )
    axes.axvline(report.faults_stopped_at, color="tab:red", linestyle="--", label="faults stop")
    axes.set_xlabel("seconds since the storm began")
    axes.set_ylabel("numbers converged (%)")
    axes.set_ylim(0, 105)
    axes.set_title(f"chaos: {report.events:,} events over {report.numbers:,} numbers")
    axes.legend(loc="lower right")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100, bbox_inches="tight")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=ChaosConfig.events)
    parser.add_argument("--numbers", type=int, default=ChaosConfig.numbers)
    parser.add_argument("--producers", type=int, default=ChaosConfig.producers)
    parser.add_argument("--kills", type=int, default=ChaosConfig.kills)
    parser.add_argument("--storm-seconds", type=float, default=ChaosConfig.storm_seconds)
    parser.add_argument("--identity-outage", type=float, default=ChaosConfig.identity_outage_seconds)
    parser.add_argument("--seed", type=int, default=ChaosConfig.seed)
    parser.add_argument("--plot", type=Path, default=Path("bench/out/chaos.png"))
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    config = ChaosConfig(
        events=args.events,
        numbers=args.numbers,
        producers=args.producers,
        kills=args.kills,
        storm_seconds=args.storm_seconds,
        identity_outage_seconds=args.identity_outage,
        seed=args.seed,
    )
    print(
        f"chaos: {config.events:,} events over {config.numbers:,} numbers from {config.producers} producers"
    )
    report = run(config)
    print(report.table())
    if plot(report, args.plot):
        print(f"  convergence over time: {args.plot}")
    else:
        print("  (no plot: matplotlib is not installed; `make chaos` installs it)")
    if args.json:
        args.json.write_text(
            json.dumps({k: v for k, v in report.__dict__.items() if k != "timeline"}, default=str, indent=2)
        )
    for problem in report.problems[:20]:
        print(f"  ! {problem}")
    print("OK: nothing lost, every number converged" if report.ok else "FAILED: loss or divergence")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
