"""What one applied event costs the registration worker, and how long a batch of ten takes.

    .venv/bin/python bench/bench_worker.py [--latency-ms 50] [--rounds 5]

Starts the local AWS engine (a process of its own, loopback) with template.yaml's tables, queues,
key and bus, and a wg2sim process that answers every call after `--latency-ms`. Ten subscribers
consent (tokens stored KMS-encrypted). Then, warm (tokens cached, clients built), for each round a
batch of ten upserts for ten MSISDNs goes through `Worker.process`, once with the MSISDN groups at
once (the deployed setting) and once one after another (a pool of one thread: the baseline), in
the same run. AWS requests are counted with botocore `before-call` hooks on every client the worker uses.

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
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "layers/common")]

from devstack.aws_engine import ROOT as ENGINE_ROOT  # noqa: E402
from devstack.aws_engine import LocalAws  # noqa: E402
from devstack.host.aws import Clients  # noqa: E402
from devstack.host.resources import Stack  # noqa: E402
from devstack.host.template import Pseudo, Template, load_template  # noqa: E402
from devstack.wg2sim.process import Wg2simProcess  # noqa: E402
from sipreg.config import AuthMode, CoreSettings  # noqa: E402
from sipreg.core import GrpcCoreClient  # noqa: E402
from sipreg.events import EventType, RegistrationSpec, UpsertEvent, to_json  # noqa: E402
from sipreg.models import ApiVersion, RouteType  # noqa: E402
from sipreg.notify import EventBridgePublisher  # noqa: E402
from sipreg.store.subscribers import SubscriberStore  # noqa: E402
from sipreg.tokens import SERVICE_SCOPES, KmsCipher, OAuthClient, TokenResponse, TokenService  # noqa: E402
from sipreg.worker import DynamoJournal, EventApplier, QueuedMessage, Worker  # noqa: E402
from sipreg.worker.batch import SqsDeadLetters, SqsVisibility  # noqa: E402

REGION = "eu-west-1"
BATCH = 10


class RequestCounter:
    """Counts AWS API calls (one per call, whatever botocore's retries) on the clients given."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def watch(self, client: Any) -> None:
        client.meta.events.register("before-call", self._count)

    def _count(self, event_name: str, **_: Any) -> None:
        service, operation = event_name.split(".", 2)[1:]
        self.calls[f"{service}:{operation}"] += 1


def provision(endpoint: str) -> dict[str, dict[str, Any]]:
    template_path = ROOT / "template.yaml"
    pseudo = Pseudo(region=REGION, account_id="123456789012", stack_name=f"bench{uuid.uuid4().hex[:6]}")
    template = Template(load_template(template_path), template_path.parent, pseudo, {})
    stack = Stack(template, Clients(endpoint, REGION), {}, {"OAuthClientSecret": "unused-in-bench"})
    stack.provision()
    return {logical_id: physical.describe() for logical_id, physical in stack.physical.items()}


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

    def worker(concurrency: int) -> Worker:
        return Worker(
            applier,
            journal,
            SqsVisibility(ref("EventsQueue"), client=sqs),
            EventBridgePublisher(ref("StatusBus"), client=events),
            SqsDeadLetters(ref("EventsDeadLetterQueue"), client=sqs),
            concurrency=concurrency,
        )

    together, one_by_one = worker(BATCH), worker(1)
    # Watch every client the worker uses: the stores' DynamoDB clients, KMS, SQS, EventBridge.
    from sipreg.aws import dynamodb_table  # noqa: PLC0415

    for table in (ref("RegistrationsTable"), ref("EventLogTable"), ref("SubscribersTable")):
        counter.watch(dynamodb_table(table).meta.client)
    for client in (kms, sqs, events):
        counter.watch(client)

    forever = lambda: 600.0  # noqa: E731  # remaining invocation time: plenty
    together.process(batch(numbers, 0), forever)  # cold: tokens decrypted, channel connected
    # The batch's own cost without core latency: DynamoDB (the local engine) and the worker's threads.
    no_latency = []
    for round_number in range(1, args.rounds + 1):
        started = time.perf_counter()
        together.process(batch(numbers, 1000 + round_number), forever)
        no_latency.append(time.perf_counter() - started)
    sim.set_faults(latency_ms=args.latency_ms)
    counter.calls.clear()
    fast, slow = [], []
    applied = 0
    for round_number in range(1, args.rounds + 1):
        started = time.perf_counter()
        report = together.process(batch(numbers, 2 * round_number), forever)
        fast.append(time.perf_counter() - started)
        applied += report.outcomes["active"]
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
    core.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
