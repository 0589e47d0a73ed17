"""The chaos run's producers: threads sending the plan's events, half through the signed events
API, half straight to the FIFO queue, some swapped, some twice."""

from __future__ import annotations

import hashlib
import random
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

from devstack.aws_engine import root_client
from devstack.chaos.plan import ChaosConfig, Plan
from sipreg.client import EventsApi
from sipreg.events import parse_event, to_json
from sipreg.queue import EventQueue, deduplication_id


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
        queue = EventQueue(self.info["queues"]["EventsQueue"], client=sqs_client(self.info))
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
            sqs_client(self.info).send_message_batch(
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


def sqs_client(info: dict[str, Any]) -> Any:
    return root_client("sqs", info["aws_endpoint"])
