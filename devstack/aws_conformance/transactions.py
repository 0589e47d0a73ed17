"""DynamoDB transactions as AWS keeps them: all or nothing and isolated under concurrency, never
an HTTP 500 (the rules: the package's docstring)."""

from __future__ import annotations

import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from devstack.aws_conformance.clients import client, pk_table


@dataclass
class TransactionReport:
    committed: int = 0
    cancelled: int = 0
    server_errors: int = 0  # HTTP 5xx answers to a transaction
    seconds: float = 0.0
    violations: list[str] = field(default_factory=list)


def transactions(
    endpoint: str,
    *,
    workers: int = 6,
    rounds: int = 25,
    counters: int = 3,
    filler: int = 2000,
    seed: int = 11,
) -> TransactionReport:
    """Workers race to bump shared counters, each bump a transaction with a log line of its own;
    meanwhile they write items of their own outside transactions. Then every write is accounted for."""
    dynamodb = client(endpoint, "dynamodb", pool=workers + 2)
    table = f"conformance-{uuid.uuid4().hex[:12]}"
    pk_table(dynamodb, table)
    names = [f"counter-{n}" for n in range(counters)] + [f"filler-{n}" for n in range(filler)]
    # The counters at version 0, and a table of some size: an engine that copies tables around
    # transactions shows it here.
    for start in range(0, len(names), 25):
        requests = [
            {"PutRequest": {"Item": {"pk": {"S": name}, "version": {"N": "0"}}}}
            for name in names[start : start + 25]
        ]
        dynamodb.batch_write_item(RequestItems={table: requests})
    race = _TransactionRace(endpoint, table, counters)
    started = time.monotonic()
    threads = [
        threading.Thread(target=race.work, args=(random.Random(seed * 100 + n), n, rounds), daemon=True)
        for n in range(workers)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    report = race.account(_scan(dynamodb, table))
    report.seconds = time.monotonic() - started
    dynamodb.delete_table(TableName=table)
    return report


class _TransactionRace:
    def __init__(self, endpoint: str, table: str, counters: int) -> None:
        self.endpoint, self.table, self.counters = endpoint, table, counters
        self.outcomes: list[tuple[str, bool]] = []  # (log line key, committed?)
        self.own_items: list[str] = []
        self.server_errors = 0
        self._lock = threading.Lock()

    def work(self, rng: random.Random, number: int, rounds: int) -> None:
        dynamodb = client(self.endpoint, "dynamodb")
        for round_ in range(rounds):
            counter = f"counter-{rng.randrange(self.counters)}"
            read = dynamodb.get_item(TableName=self.table, Key={"pk": {"S": counter}}, ConsistentRead=True)
            version = int(read["Item"]["version"]["N"])
            line = f"line-{number}-{round_}"
            committed = self._bump(dynamodb, counter, version, line)
            own = f"own-{number}-{round_}"
            dynamodb.put_item(TableName=self.table, Item={"pk": {"S": own}})
            with self._lock:
                self.outcomes.append((line, committed))
                self.own_items.append(own)

    def _bump(self, dynamodb: Any, counter: str, version: int, line: str) -> bool:
        try:
            dynamodb.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self.table,
                            "Item": {"pk": {"S": counter}, "version": {"N": str(version + 1)}},
                            "ConditionExpression": "version = :read",
                            "ExpressionAttributeValues": {":read": {"N": str(version)}},
                        }
                    },
                    {
                        "Put": {
                            "TableName": self.table,
                            "Item": {"pk": {"S": line}, "counter": {"S": counter}},
                        }
                    },
                ]
            )
            return True
        except ClientError as error:
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if status >= 500:
                with self._lock:
                    self.server_errors += 1
            elif error.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            return False

    def account(self, items: dict[str, dict[str, str]]) -> TransactionReport:
        committed = sum(1 for _, ok in self.outcomes if ok)
        found = [
            f"committed transaction's {line} is missing"
            if ok
            else f"cancelled transaction's {line} was written"
            for line, ok in self.outcomes
            if ok != (line in items)
        ]
        lost = [own for own in self.own_items if own not in items]
        if lost:
            found.append(f"{len(lost)} plain writes vanished (first: {lost[0]})")
        for number in range(self.counters):
            counter = f"counter-{number}"
            bumps = sum(
                1 for line, ok in self.outcomes if ok and items.get(line, {}).get("counter") == counter
            )
            version = int(items.get(counter, {}).get("version", -1))
            if version != bumps:
                found.append(f"{counter} is at version {version} after {bumps} committed bumps")
        if self.server_errors:
            found.append(f"{self.server_errors} transactions answered HTTP 5xx")
        return TransactionReport(
            committed=committed,
            cancelled=len(self.outcomes) - committed,
            server_errors=self.server_errors,
            violations=sorted(set(found)),
        )


def _scan(dynamodb: Any, table: str) -> dict[str, dict[str, str]]:
    items: dict[str, dict[str, str]] = {}
    scan: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    while True:
        page = dynamodb.scan(**scan)
        for item in page["Items"]:
            items[item["pk"]["S"]] = {k: next(iter(v.values())) for k, v in item.items()}
        if "LastEvaluatedKey" not in page:
            return items
        scan["ExclusiveStartKey"] = page["LastEvaluatedKey"]
