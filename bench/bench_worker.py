"""What one applied event costs the registration worker, and how long a batch of ten takes.

    .venv/bin/python bench/bench_worker.py [--latency-ms 50] [--rounds 5]

Starts the local AWS engine (a process of its own, loopback) with template.yaml's tables, queues,
key and bus, and a wg2sim process that answers every call after `--latency-ms`. Ten subscribers
consent (tokens stored KMS-encrypted). Then, warm (tokens cached, clients built), for each round a
batch of ten upserts for ten MSISDNs goes through `Worker.process`, once with the MSISDN groups at
once (the deployed setting) and once one after another (a pool of one thread: the baseline), in
the same run. AWS requests are counted with botocore `before-call` hooks on every client the worker uses.

The core alone is measured too (one call, and ten at once from one thread, no worker): the
floor of a batch, the emulator's own cost of ten calls at once included.

Prints: AWS requests per applied event by service and operation (warm path: one BatchGetItem per
batch for every record it names, then one TransactWriteItems per event), and the median batch
time of both, in milliseconds and in core round trips.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "layers/common")]

from bench.common import (  # noqa: E402
    REGION,
    RequestCounter,
    goal_line,
    item_kilobytes,
    provision,
    pyplot,
    save_chart,
    write_json,
)
from devstack.aws_engine import ROOT as ENGINE_ROOT  # noqa: E402
from devstack.aws_engine import LocalAws  # noqa: E402
from devstack.host.aws import Clients  # noqa: E402
from devstack.host.template import load_template  # noqa: E402
from devstack.wg2sim.process import Wg2simProcess  # noqa: E402
from sipreg.config import AuthMode, CoreSettings  # noqa: E402
from sipreg.core.client import GrpcCoreClient  # noqa: E402
from sipreg.core.port import CoreCall, Operation  # noqa: E402
from sipreg.events import EventType, RegistrationSpec, UpsertEvent, to_json  # noqa: E402
from sipreg.models import ApiVersion, Registration, RouteType  # noqa: E402
from sipreg.notify import EventBridgePublisher  # noqa: E402
from sipreg.refresher import refresh_event  # noqa: E402
from sipreg.store.registrations import RegistrationStore  # noqa: E402
from sipreg.store.subscribers import SubscriberStore  # noqa: E402
from sipreg.tokens import SERVICE_SCOPES, KmsCipher, OAuthClient, TokenResponse, TokenService  # noqa: E402
from sipreg.worker import DynamoJournal, EventApplier, QueuedMessage, Worker  # noqa: E402
from sipreg.worker.sqs import SqsDeadLetters, SqsVisibility  # noqa: E402
from tests.support.worker_fakes import FakeJournal  # noqa: E402

BATCH = 10
BENCH_ROLE = "AROABENCHREFRESHER01"  # the refreshes' sender stands for the refresher's role
BATCH_GOAL_ROUND_TRIPS = 1.2  # issue 13: the batch of ten, DynamoDB removed


def batch(numbers: list[str], round_number: int) -> list[QueuedMessage]:
    """Ten upserts, one per number; the route type alternates so every round is a real change."""
    route = RouteType.FORK if round_number % 2 else RouteType.LOOP
    messages = []
    for msisdn in numbers:
        event = UpsertEvent(
            id=f"bench-{round_number}-{msisdn[1:]}",
            type=EventType.REGISTRATION_UPSERT,
            msisdn=msisdn,
            occurred_at=datetime.now(UTC),
            registration=RegistrationSpec(route_type=route, sip_uri="sips:pbx.bench.example"),
        )
        messages.append(QueuedMessage(f"m-{event.id}", f"rh-{event.id}", to_json(event), msisdn, 1))
    return messages


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    os.environ.update(ENGINE_ROOT.as_environment())
    os.environ["AWS_DEFAULT_REGION"] = REGION

    # The local AWS in a process of its own, so its request handling does not share the worker's GIL.
    with tempfile.TemporaryDirectory() as logs, LocalAws.start(log_file=Path(logs) / "aws.log") as aws:
        os.environ["AWS_ENDPOINT_URL"] = aws.endpoint
        with Wg2simProcess.start(token_ttl=10**6) as sim:
            return run(args, aws.endpoint, sim)


def run(args: argparse.Namespace, endpoint: str, sim: Wg2simProcess) -> int:  # noqa: PLR0915  # a script
    resources = provision(endpoint)

    def ref(logical_id: str, attribute: str = "Ref") -> str:
        return str(resources[logical_id][attribute])

    counter = RequestCounter()
    clients = Clients(endpoint, REGION)
    kms, sqs, events = clients.new_client("kms"), clients.new_client("sqs"), clients.new_client("events")
    tokens = TokenService(
        store=SubscriberStore(ref("SubscribersTable")),
        cipher=KmsCipher(ref("DataKey", "Arn"), client=kms),
        identity=OAuthClient(sim.http_url, client_id="sipreg-local", client_secret=lambda _: "unused"),
        service_scope=SERVICE_SCOPES[ApiVersion.V0],
    )
    numbers = [f"+4796{n:06d}" for n in range(BATCH)]
    for msisdn in numbers:
        answer = TokenResponse(sim.mint_token(msisdn, ttl=10**6), time.time() + 10**5, ("openid",))
        tokens.record_consent(msisdn, answer, subject=None)
    core = GrpcCoreClient.from_settings(
        CoreSettings.from_env({"CORE_ENDPOINT": sim.grpc_target, "CORE_PLAINTEXT": "true"})
    )
    journal = DynamoJournal(ref("RegistrationsTable"), ref("EventLogTable"))
    applier = EventApplier(
        journal=journal, core=core, tokens=tokens, auth_mode=AuthMode.USER, api_version=ApiVersion.V0
    )

    def worker(concurrency: int, applier: EventApplier = applier, journal: Any = journal) -> Worker:
        return Worker(
            applier,
            journal,
            SqsVisibility(ref("EventsQueue"), client=sqs),
            EventBridgePublisher(ref("StatusBus"), client=events),
            SqsDeadLetters(ref("EventsDeadLetterQueue"), client=sqs),
            sipreg_roles={BENCH_ROLE},
            concurrency=concurrency,
        )

    def worker_with(tokens: TokenService) -> Worker:
        fresh = EventApplier(
            journal=journal, core=core, tokens=tokens, auth_mode=AuthMode.USER, api_version=ApiVersion.V0
        )
        return worker(BATCH, fresh)

    together, one_by_one = worker(BATCH), worker(1)
    # DynamoDB's share removed: records in memory; the core, tokens, SQS and EventBridge as above.
    in_memory = FakeJournal()
    without_dynamodb = worker(
        BATCH,
        EventApplier(
            journal=in_memory, core=core, tokens=tokens, auth_mode=AuthMode.USER, api_version=ApiVersion.V0
        ),
        in_memory,
    )
    # Watch every client the worker uses: the stores' DynamoDB clients, KMS, SQS, EventBridge.
    from sipreg.aws import dynamodb_table  # noqa: PLC0415

    for table in (ref("RegistrationsTable"), ref("EventLogTable"), ref("SubscribersTable")):
        counter.watch(dynamodb_table(table).meta.client)
    for client in (kms, sqs, events):
        counter.watch(client)

    forever = lambda: 600.0  # noqa: E731  # remaining invocation time: plenty
    together.process(batch(numbers, 0), forever)  # cold: tokens decrypted, channel connected
    without_dynamodb.process(batch(numbers, 0), forever)
    # The batch's own cost without core latency: DynamoDB (the local engine) and the worker's threads.
    no_latency = []
    for round_number in range(1, args.rounds + 1):
        started = time.perf_counter()
        together.process(batch(numbers, 1000 + round_number), forever)
        no_latency.append(time.perf_counter() - started)
    sim.set_faults(latency_ms=args.latency_ms)
    counter.calls.clear()
    # The core's own share, without the worker: one call alone, and ten at once from one thread.
    # The second is the floor of a batch: what the core (here the emulator) takes for ten at once.
    tokens_by_number = {msisdn: tokens.access_token_for(msisdn) for msisdn in numbers}
    core_alone, core_ten = core_round_trips(core, numbers, tokens_by_number, args.rounds)
    fast, slow, in_memory_times = [], [], []
    applied = 0
    for round_number in range(1, args.rounds + 1):
        started = time.perf_counter()
        report = together.process(batch(numbers, 2 * round_number), forever)
        fast.append(time.perf_counter() - started)
        applied += report.outcomes["active"]
        started = time.perf_counter()
        memory_report = without_dynamodb.process(batch(numbers, 2 * round_number), forever)
        in_memory_times.append(time.perf_counter() - started)
        if memory_report.outcomes["active"] != BATCH:
            print(f"records in memory: {dict(memory_report.outcomes)}", file=sys.stderr)
            return 1
        started = time.perf_counter()
        report = one_by_one.process(batch(numbers, 2 * round_number + 1), forever)
        slow.append(time.perf_counter() - started)
        applied += report.outcomes["active"]
    if applied != 2 * BATCH * args.rounds:
        print(f"only {applied} of {2 * BATCH * args.rounds} events were applied", file=sys.stderr)
        return 1

    latency = args.latency_ms / 1000
    print(f"registration worker, warm path, {2 * args.rounds} batches of {BATCH} upserts for {BATCH} MSISDNs")
    print(f"AWS requests per applied event ({applied} events):")
    # The worker's reads and writes, shown even when zero: one BatchGetItem per batch, no GetItem.
    shown = ["dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:TransactWriteItems"]
    for name in [*shown, *sorted(set(counter.calls) - set(shown))]:
        print(f"  {name:<38} {counter.calls[name] / applied:6.2f}")
    dynamodb = sum(c for n, c in counter.calls.items() if n.startswith("dynamodb:"))
    kms_calls = sum(c for n, c in counter.calls.items() if n.startswith("kms:"))
    print(f"  {'DynamoDB total':<38} {dynamodb / applied:6.2f}   (budget: at most 3)")
    print(f"  {'KMS total':<38} {kms_calls / applied:6.2f}   (budget: 0)")
    fast_ms, slow_ms = statistics.median(fast) * 1000, statistics.median(slow) * 1000
    print(
        f"batch of {BATCH} with the core answering in {args.latency_ms} ms, median of {args.rounds} rounds:"
    )
    print(f"  MSISDN groups at once : {fast_ms:8.1f} ms = {fast_ms / 1000 / latency:5.2f} core round trips")
    print(f"  one by one (baseline) : {slow_ms:8.1f} ms = {slow_ms / 1000 / latency:5.2f} core round trips")
    print(f"  speed-up              : {slow_ms / fast_ms:8.1f}x")
    bare_ms = statistics.median(no_latency) * 1000
    print(
        f"  the same batch, core answering at once: {bare_ms:8.1f} ms (local DynamoDB and the worker itself)"
    )
    print(f"  groups at once less that : {(fast_ms - bare_ms) / 1000 / latency:8.2f} core round trips")
    memory_ms = statistics.median(in_memory_times) * 1000
    print(
        f"  the core alone, no worker: one call {core_alone * 1000:.1f} ms = {core_alone / latency:.2f}, "
        f"ten at once {core_ten * 1000:.1f} ms = {core_ten / latency:.2f} core round trips"
    )
    print(
        goal_line(
            "batch of 10, DynamoDB removed (records in memory)",
            f"{memory_ms / 1000 / latency:.2f} round trips",
            f"goal: at most {BATCH_GOAL_ROUND_TRIPS}",
            memory_ms / 1000 / latency <= BATCH_GOAL_ROUND_TRIPS,
        )
    )
    print(
        goal_line(
            "batch of 10 on the local DynamoDB", f"{fast_ms / 1000 / latency:.2f} round trips", "figure", None
        )
    )
    per_change = {name: calls / applied for name, calls in counter.calls.items()}
    sizes = batch_sizes(together, numbers, args.rounds, forever)
    throughput = BATCH / statistics.median(fast)
    limit = BATCH / latency
    print(f"throughput per unit of Lambda concurrency (one sandbox, batches of {BATCH}):")
    print(
        goal_line(
            "events per second",
            f"{throughput:.0f} ev/s",
            f"limit: {limit:.0f} ev/s, 10 numbers per round trip",
            None,
        )
    )
    print(
        goal_line(
            "share of the limit", f"{throughput / limit:.2f}", "1.0: the batch in one core round trip", None
        )
    )
    instances = int(load_template(ROOT / "template.yaml")["Parameters"]["WorkerMaxConcurrency"]["Default"])
    print(f"  x WorkerMaxConcurrency {instances} (template) = {instances * throughput:.0f} ev/s in all")
    print("batch time by numbers per batch (core round trips, median):")
    print("  " + "  ".join(f"{n}: {t / latency:.2f}" for n, t in sizes.items()))

    cold = worker_with(
        TokenService(  # an empty token cache, as in a new sandbox
            store=SubscriberStore(ref("SubscribersTable")),
            cipher=KmsCipher(ref("DataKey", "Arn"), client=kms),
            identity=OAuthClient(sim.http_url, client_id="sipreg-local", client_secret=lambda _: "unused"),
            service_scope=SERVICE_SCOPES[ApiVersion.V0],
        )
    )
    refresh_calls, cold_calls = refresh_costs(
        together, cold, numbers, ref=ref, counter=counter, forever=forever
    )
    print(f"AWS requests per refresh (warm tokens): {_per_event(refresh_calls)}")
    print(f"AWS requests per event with a cold token cache: {_per_event(cold_calls)}")
    dynamodb_client = Clients(endpoint, REGION).new_client("dynamodb")
    kilobytes = {
        "registration_kb": _largest(dynamodb_client, ref("RegistrationsTable")),
        "event_log_kb": _largest(dynamodb_client, ref("EventLogTable")),
        "subscriber_kb": _largest(dynamodb_client, ref("SubscribersTable")),
    }
    print("item sizes (largest, DynamoDB's rule): " + ", ".join(f"{k} {v:.2f}" for k, v in kilobytes.items()))
    write_json(
        "worker",
        {
            "latency_ms": args.latency_ms,
            "batch": BATCH,
            "requests_per_change": per_change,
            "requests_per_refresh": refresh_calls,
            "requests_per_event_cold_tokens": cold_calls,
            "batch_ms": {
                "together": fast_ms,
                "one_by_one": slow_ms,
                "no_core_latency": bare_ms,
                "without_dynamodb": memory_ms,
                "core_one_call": core_alone * 1000,
                "core_ten_at_once": core_ten * 1000,
            },
            "batch_ms_by_size": {n: t * 1000 for n, t in sizes.items()},
            "throughput_per_concurrency": throughput,
            "throughput_limit": limit,
            **kilobytes,
        },
    )
    chart_batch_sizes(sizes, latency)
    core.close()
    return 0


def core_round_trips(
    core: GrpcCoreClient, numbers: list[str], tokens: dict[str, str], rounds: int
) -> tuple[float, float]:
    """Median seconds of one upsert alone, and of ten (one per number) started at once."""

    def calls(round_number: int) -> list[CoreCall]:
        route = RouteType.FORK if round_number % 2 else RouteType.LOOP
        return [
            CoreCall(
                Operation.UPSERT,
                Registration(msisdn=msisdn, route_type=route, sip_uri="sips:pbx.bench.example"),
                tokens[msisdn],
            )
            for msisdn in numbers
        ]

    alone, together = [], []
    for round_number in range(rounds):
        first = calls(round_number)[0]
        started = time.perf_counter()
        core.upsert(first.registration, first.token)
        alone.append(time.perf_counter() - started)
        started = time.perf_counter()
        core.apply_many(calls(round_number + 1))
        together.append(time.perf_counter() - started)
    return statistics.median(alone), statistics.median(together)


def batch_sizes(worker: Worker, numbers: list[str], rounds: int, forever: Any) -> dict[int, float]:
    """Median batch time (s) for batches of 1..10 numbers, the core at the configured latency."""
    times: dict[int, list[float]] = {n: [] for n in range(1, BATCH + 1)}
    for round_number in range(rounds):
        for n, taken in times.items():
            started = time.perf_counter()
            worker.process(batch(numbers[:n], 5000 + 100 * round_number + n), forever)
            taken.append(time.perf_counter() - started)
    return {n: statistics.median(t) for n, t in times.items()}


def refresh_costs(
    worker: Worker,
    cold: Worker,
    numbers: list[str],
    *,
    ref: Any,
    counter: RequestCounter,
    forever: Any,
) -> tuple[dict[str, float], dict[str, float]]:
    """Requests per refresh event, warm; then per event of a worker whose token cache is empty."""
    store = RegistrationStore(ref("RegistrationsTable"))

    def refreshes() -> list[QueuedMessage]:
        now = datetime.now(UTC)
        events = [refresh_event(r, now) for m in numbers for r in store.list_for(m) if r.expires_at]
        return [
            QueuedMessage(
                f"m-{e.id}", f"rh-{e.id}", to_json(e), e.msisdn, 1, sender=f"{BENCH_ROLE}:refresher"
            )
            for e in events
        ]

    messages = refreshes()
    counter.clear()
    report = worker.process(messages, forever)
    warm = {n: c / len(messages) for n, c in counter.calls.items()}
    if report.outcomes["refreshed"] != len(messages):
        raise SystemExit(f"refreshes not applied: {dict(report.outcomes)}")
    counter.clear()
    messages = batch(numbers, 9000)
    cold.process(messages, forever)
    return warm, {n: c / len(messages) for n, c in counter.calls.items()}


def _per_event(calls: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.2f}" for name, value in sorted(calls.items()))


def _largest(client: Any, table: str) -> float:
    items = client.scan(TableName=table)["Items"]
    return max((item_kilobytes(i) for i in items), default=0.0)


def chart_batch_sizes(sizes: dict[int, float], latency: float) -> None:
    plt = pyplot()
    if plt is None:
        print("  (no chart: matplotlib is not installed; `make bench` installs it)")
        return
    figure, axes = plt.subplots(figsize=(6, 3.5))
    axes.plot(list(sizes), [t / latency for t in sizes.values()], marker="o", label="measured")
    axes.axhline(1.0, color="grey", linestyle="--", label="one core round trip (ideal)")
    axes.set_xlabel("numbers (MSISDN groups) per batch")
    axes.set_ylabel("batch time, core round trips")
    axes.set_ylim(bottom=0)
    axes.set_title(f"Worker batch time at {latency * 1000:.0f} ms core latency")
    axes.legend()
    print(f"  chart: {save_chart(figure, 'worker_batch_time')}")


if __name__ == "__main__":
    sys.exit(main())
