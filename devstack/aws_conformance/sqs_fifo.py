"""SQS FIFO as AWS keeps it: message groups under concurrent pollers that crash, receipt handles
and deduplication (the rules: the package's docstring)."""

from __future__ import annotations

import random
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field

from devstack.aws_conformance.clients import client, fifo_queue
from devstack.aws_conformance.rules import RulesReport


@dataclass
class _Receive:
    poller: int
    sent: float  # request sent (monotonic)
    answered: float  # response read
    messages: list[tuple[str, int]]  # (group, sequence) in the order returned
    released: float | None = None  # delete request sent; None: abandoned (the poller "crashed")


@dataclass
class FifoReport:
    groups: int
    messages: int
    receives: int = 0
    abandoned: int = 0  # receives whose poller "crashed" (no delete: visibility timeout)
    deleted: int = 0
    seconds: float = 0.0
    violations: list[str] = field(default_factory=list)


def fifo_groups(
    endpoint: str,
    *,
    groups: int = 8,
    per_group: int = 12,
    pollers: int = 5,
    crash_rate: float = 0.1,
    visibility_seconds: int = 2,
    time_limit: float = 60.0,
    seed: int = 7,
) -> FifoReport:
    """Several pollers drain a FIFO queue; some "crash" (leave their batch to the visibility timeout)."""
    sqs = client(endpoint, "sqs", pool=pollers + 2)
    url = fifo_queue(sqs, "conformance", VisibilityTimeout=str(visibility_seconds))
    run = _FifoRun(endpoint, url, [(f"g{g}", seq) for seq in range(per_group) for g in range(groups)])
    threads = [
        threading.Thread(target=run.poll, args=(random.Random(seed * 100 + n), n, crash_rate, time_limit))
        for n in range(pollers)
    ]
    for thread in threads:
        thread.start()
    time.sleep(0.2)  # the pollers are waiting
    run.produce()
    for thread in threads:
        thread.join(time_limit + 5)
    sqs.delete_queue(QueueUrl=url)
    return FifoReport(
        groups=groups,
        messages=len(run.sent),
        receives=len(run.receives),
        abandoned=sum(1 for r in run.receives if r.released is None),
        deleted=len(run.deletes),
        seconds=time.monotonic() - run.started,
        violations=sorted(
            {
                *run.lost(),
                *run.groups_in_flight_twice(visibility_seconds),
                *run.out_of_order(),
                *run.resurrected(),
            }
        ),
    )


class _FifoRun:
    """One queue drained by several pollers, and what the client side can prove from their timings."""

    def __init__(self, endpoint: str, url: str, sent: list[tuple[str, int]]) -> None:
        self.endpoint, self.url, self.sent = endpoint, url, sent
        self.receives: list[_Receive] = []
        self.deletes: dict[tuple[str, int], tuple[float, float]] = {}  # message -> (delete sent, answered)
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._done = threading.Event()

    def produce(self) -> None:
        """In bursts while the pollers wait: every waiting receive wakes up at once, as in Lambda."""
        sqs = client(self.endpoint, "sqs")
        for start in range(0, len(self.sent), 10):
            entries = [
                {
                    "Id": str(i),
                    "MessageBody": f"{group}:{seq}",
                    "MessageGroupId": group,
                    "MessageDeduplicationId": f"{group}-{seq}",
                }
                for i, (group, seq) in enumerate(self.sent[start : start + 10])
            ]
            sqs.send_message_batch(QueueUrl=self.url, Entries=entries)
            time.sleep(0.02)

    def poll(self, rng: random.Random, number: int, crash_rate: float, time_limit: float) -> None:
        sqs = client(self.endpoint, "sqs")
        while not self._done.is_set() and time.monotonic() - self.started < time_limit:
            sent = time.monotonic()
            messages = sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
                "Messages", []
            )
            if not messages:
                with self._lock:
                    if len(self.deletes) >= len(self.sent):
                        self._done.set()
                continue
            parsed = [(m["Body"].split(":")[0], int(m["Body"].split(":")[1])) for m in messages]
            receive = _Receive(number, sent, time.monotonic(), parsed)
            with self._lock:
                self.receives.append(receive)
            time.sleep(rng.uniform(0, 0.03))  # "processing"
            if rng.random() < crash_rate:
                continue  # crashed: the batch comes back after the visibility timeout
            receive.released = time.monotonic()
            result = sqs.delete_message_batch(
                QueueUrl=self.url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
            )
            finished = time.monotonic()
            with self._lock:
                for item in result.get("Successful", []):
                    self.deletes.setdefault(parsed[int(item["Id"])], (receive.released, finished))

    def lost(self) -> list[str]:
        missing = [m for m in self.sent if m not in self.deletes]
        return (
            [f"{len(missing)} messages were never delivered and deleted (first: {missing[0]})"]
            if missing
            else []
        )

    def groups_in_flight_twice(self, visibility: float) -> list[str]:
        by_group: dict[str, list[_Receive]] = defaultdict(list)
        for receive in self.receives:
            for group in dict.fromkeys(g for g, _ in receive.messages):
                by_group[group].append(receive)
        found = []
        for group, held in by_group.items():
            for first in held:
                # Until when `first` certainly still held the group: its delete was not yet sent and
                # its visibility timeout (counted from when it asked: a lower bound) had not run out.
                expires = first.sent + visibility - 0.05
                holds_until = expires if first.released is None else min(first.released, expires)
                found += [
                    f"group {group} was in flight in two receives at once "
                    f"(pollers {first.poller} and {second.poller})"
                    for second in held
                    if second is not first and second.sent > first.answered and second.answered < holds_until
                ]
        return found

    def out_of_order(self) -> list[str]:
        found = []
        for receive in self.receives:
            returned = set(receive.messages)
            for group in dict.fromkeys(g for g, _ in receive.messages):
                seqs = [s for g, s in receive.messages if g == group]
                if seqs != sorted(seqs):
                    found.append(f"group {group} came out of order within one receive: {seqs}")
                # An earlier message of the group still in the queue (deleted only later) and not
                # in this receive: delivered out of order, or the group was in flight twice.
                earlier = [
                    n
                    for n in range(max(seqs))
                    if (group, n) not in returned
                    and ((done := self.deletes.get((group, n))) is None or done[0] > receive.answered)
                ]
                if earlier:
                    found.append(
                        f"group {group}: {group}:{max(seqs)} was delivered before {group}:{earlier[0]}"
                    )
        return found

    def resurrected(self) -> list[str]:
        return [
            f"{group}:{seq} came back after it was deleted"
            for receive in self.receives
            for group, seq in receive.messages
            if (done := self.deletes.get((group, seq))) is not None and done[1] < receive.sent
        ]


def fifo_rules(endpoint: str) -> RulesReport:
    """Receipt handles and deduplication as AWS FIFO keeps them.

    - a receipt handle whose visibility timeout ran out can no longer delete the message;
    - with `DeduplicationScope: messageGroup`, the same deduplication id in two groups is two
      messages; in one group within 5 minutes it is one, even after the first was deleted, and
      the duplicate send answers with the first one's MessageId.
    """
    started = time.monotonic()
    sqs = client(endpoint, "sqs")
    report = RulesReport()
    url = fifo_queue(sqs, "conformance", VisibilityTimeout="1")
    rule = report.rule
    first = sqs.send_message(QueueUrl=url, MessageBody="a", MessageGroupId="g1", MessageDeduplicationId="d")
    other = sqs.send_message(QueueUrl=url, MessageBody="b", MessageGroupId="g2", MessageDeduplicationId="d")
    received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
        "Messages", []
    )
    rule(
        sorted(m["Body"] for m in received) == ["a", "b"],
        "one deduplication id in two groups (scope messageGroup) did not give two messages",
    )
    time.sleep(1.5)  # every visibility timeout has run out
    stale = {m["Body"]: m["ReceiptHandle"] for m in received}
    again = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
    answer = sqs.delete_message_batch(
        QueueUrl=url, Entries=[{"Id": body, "ReceiptHandle": handle} for body, handle in stale.items()]
    )
    rule(
        not answer.get("Successful"),
        "a receipt handle from an earlier receive still deleted the message",
    )
    fresh = sqs.delete_message_batch(
        QueueUrl=url,
        Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(again)],
    )
    rule(len(fresh.get("Successful", [])) == 2, "the newest receipt handles did not delete the messages")
    duplicate = sqs.send_message(
        QueueUrl=url, MessageBody="a2", MessageGroupId="g1", MessageDeduplicationId="d"
    )
    rule(
        duplicate["MessageId"] == first["MessageId"],
        "a duplicate send did not answer with the original MessageId",
    )
    late = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
    rule(not late, "a duplicate sent after the first was deleted (within 5 minutes) was delivered")
    del other
    sqs.delete_queue(QueueUrl=url)
    report.seconds = time.monotonic() - started
    return report
