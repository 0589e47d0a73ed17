"""Which local AWS engine keeps AWS's rules, and how fast: the measurement behind `devstack.aws_engine`.

    .venv/bin/python bench/aws_engines.py [--rounds 2]

Candidates, each in a process of its own on loopback:
- `moto`: moto 5.2 server as the local stack used it before (`ThreadedMotoServer`);
- `moto-serialised`: the same, with one request at a time (a lock around every request);
- `ministack`: ministack from PyPI in its own venv, with sipreg's KMS condition keys
  (`devstack/aws_engine_server.py`), IAM enforced.

Each runs the four checks of `devstack.aws_conformance` `--rounds` times (FIFO groups under
concurrent pollers with crashes, FIFO receipt handles and deduplication, concurrent transactions,
IAM policies of a role's session) and two throughput figures measured in the same run: FIFO
messages sent, received and deleted per second, and TransactWriteItems per second. Prints a table;
the README keeps the latest one.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path[:0] = [str(Path(__file__).resolve().parent.parent)]

from devstack.aws_conformance.clients import client, fifo_queue, pk_table  # noqa: E402
from devstack.aws_conformance.policies import iam_policies  # noqa: E402
from devstack.aws_conformance.rules import RulesReport  # noqa: E402
from devstack.aws_conformance.sqs_fifo import FifoReport, fifo_groups, fifo_rules  # noqa: E402
from devstack.aws_conformance.transactions import TransactionReport, transactions  # noqa: E402
from devstack.aws_engine import LocalAws  # noqa: E402
from devstack.child import stop_child, wait_for_ready_line  # noqa: E402


def serve_moto(serialised: bool) -> int:
    """The child: moto server on a free loopback port, until SIGTERM."""
    from moto.core.responses import BaseResponse  # noqa: PLC0415
    from moto.server import ThreadedMotoServer  # noqa: PLC0415

    if serialised:
        lock = threading.Lock()
        plain = BaseResponse.call_action

        def call_action(self: Any) -> Any:
            with lock:
                return plain(self)

        BaseResponse.call_action = call_action  # type: ignore[method-assign]
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    print(json.dumps({"port": server._server.server_address[1]}), flush=True)  # type: ignore[union-attr]
    stopping.wait()
    server.stop()
    return 0


@contextmanager
def moto(serialised: bool) -> Iterator[str]:
    flag = ["--serve-serialised"] if serialised else ["--serve"]
    process = subprocess.Popen(
        [sys.executable, __file__, *flag], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    try:
        yield f"http://127.0.0.1:{wait_for_ready_line(process, 20)['port']}"
    finally:
        stop_child(process, 5)


@contextmanager
def ministack() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as logs, LocalAws.start(log_file=Path(logs) / "aws.log") as aws:
        yield aws.endpoint


Check = Callable[[str], FifoReport | RulesReport | TransactionReport]
CHECKS: dict[str, Check] = {
    "fifo_groups": fifo_groups,
    "fifo_rules": fifo_rules,
    "transactions": transactions,
    "iam_policies": iam_policies,
}

ENGINES: dict[str, Callable[[], Any]] = {
    "moto": lambda: moto(serialised=False),
    "moto-serialised": lambda: moto(serialised=True),
    "ministack": ministack,
}


def fifo_throughput(endpoint: str, messages: int = 300) -> float:
    sqs = client(endpoint, "sqs")
    url = fifo_queue(sqs, "bench")
    started = time.perf_counter()
    for start in range(0, messages, 10):
        sqs.send_message_batch(
            QueueUrl=url,
            Entries=[
                {
                    "Id": str(n),
                    "MessageBody": "x",
                    "MessageGroupId": f"g{n % 20}",
                    "MessageDeduplicationId": f"{n}",
                }
                for n in range(start, start + 10)
            ],
        )
    done = 0
    while done < messages:
        received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
            "Messages", []
        )
        if received:
            sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(received)],
            )
            done += len(received)
        elif time.perf_counter() - started > 120:
            break
    return done / (time.perf_counter() - started)


def transaction_throughput(endpoint: str, transactions: int = 200) -> float:
    dynamodb = client(endpoint, "dynamodb")
    table = f"bench-{uuid.uuid4().hex[:10]}"
    pk_table(dynamodb, table)
    started = time.perf_counter()
    for n in range(transactions):
        dynamodb.transact_write_items(
            TransactItems=[
                {
                    "Put": {
                        "TableName": table,
                        "Item": {"pk": {"S": f"r{n}"}},
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
                {"Put": {"TableName": table, "Item": {"pk": {"S": f"l{n}"}}}},
            ]
        )
    return transactions / (time.perf_counter() - started)


def measure(name: str, rounds: int) -> dict[str, Any]:
    row: dict[str, Any] = {"engine": name}
    with ENGINES[name]() as endpoint:
        for check, run in CHECKS.items():
            found: list[str] = []
            for _ in range(rounds):
                found += run(endpoint).violations
            row[check] = len(found)
            row[f"{check}_example"] = found[0] if found else ""
        row["fifo_msgs_per_s"] = fifo_throughput(endpoint)
        row["transactions_per_s"] = transaction_throughput(endpoint)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=2, help="runs of each check per engine")
    parser.add_argument("--engines", nargs="*", default=list(ENGINES), choices=list(ENGINES))
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--serve-serialised", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve or args.serve_serialised:
        return serve_moto(serialised=args.serve_serialised)
    rows = [measure(name, args.rounds) for name in args.engines]
    print(f"local AWS engines: rule violations found in {args.rounds} runs of each check, and throughput")
    header = (
        f"{'engine':<16}" + "".join(f"{check:>14}" for check in CHECKS) + f"{'FIFO msg/s':>12}{'txn/s':>8}"
    )
    print(header)
    for row in rows:
        counts = "".join(f"{row[check]:>14}" for check in CHECKS)
        print(f"{row['engine']:<16}{counts}{row['fifo_msgs_per_s']:>12.0f}{row['transactions_per_s']:>8.0f}")
    print("first violation of each kind:")
    for row in rows:
        for check in CHECKS:
            if row[f"{check}_example"]:
                print(f"  {row['engine']:<16} {check:<13} {row[f'{check}_example']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
