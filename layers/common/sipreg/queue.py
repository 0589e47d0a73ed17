"""Producing events to the SQS FIFO events queue.

For every producer: the events API, the refresher, the consent callback, and AWS-native producers
(billing step functions, other Lambdas) that send straight to SQS:

    queue = EventQueue(queue_url)
    result = queue.send(parse_events(payload["events"]))   # same validation as the API
    if result.not_accepted: ...                            # safe to send those again

Each message: body = the event's JSON, `MessageGroupId` = MSISDN (order is kept per number),
`MessageDeduplicationId` = SHA-256 hex of a producer's event id (64 chars: fits SQS's 128-char
limit and charset whatever the id), so a resent event is absorbed by SQS within its 5-minute
window. sipreg's own events get a random one instead (the same through one `send`'s retries):
SQS drops any message whose deduplication id it saw in the last 5 minutes, whoever sent it, so a
producer allowed to send to the queue could otherwise take the slot of a resume or a refresh
whose id it can work out. A second copy of those is absorbed by the worker (the record remembers
the id), not by SQS.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from sipreg.events import AnyEvent, to_json

logger = logging.getLogger(__name__)

BATCH_SIZE = 10  # SendMessageBatch's limit


def deduplication_id(event_id: str) -> str:
    return hashlib.sha256(event_id.encode()).hexdigest()


def _deduplication_id_of(event: AnyEvent) -> str:
    return deduplication_id(event.id) if event.type.external else secrets.token_hex(32)


@dataclass(frozen=True)
class SendResult:
    """Which event ids SQS took, and which it did not (after retries) - safe to resend."""

    accepted: tuple[str, ...]
    not_accepted: tuple[str, ...]

    @property
    def complete(self) -> bool:
        return not self.not_accepted


class EventQueue:
    """Sends events in batches of ten, retrying the entries SQS fails.

    `client` is an SQS client (default: the process-wide one from `sipreg.aws`); `sleep` is injectable
    so tests need not wait for the backoff.
    """

    def __init__(
        self,
        queue_url: str,
        *,
        client: Any = None,
        attempts: int = 3,
        backoff_seconds: float = 0.1,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if client is None:
            from sipreg.aws import client as aws_client  # noqa: PLC0415  # boto3 only when used

            client = aws_client("sqs")
        self.queue_url = queue_url
        self._client = client
        self._attempts = attempts
        self._backoff = backoff_seconds
        self._sleep = sleep

    def send(self, events: Sequence[AnyEvent]) -> SendResult:
        accepted: list[str] = []
        not_accepted: list[str] = []
        for start in range(0, len(events), BATCH_SIZE):
            batch = events[start : start + BATCH_SIZE]
            failed = self._send_batch(batch)
            accepted.extend(event.id for event in batch if event.id not in failed)
            not_accepted.extend(event.id for event in batch if event.id in failed)
        return SendResult(accepted=tuple(accepted), not_accepted=tuple(not_accepted))

    def _send_batch(self, batch: Sequence[AnyEvent]) -> set[str]:
        """The ids still failing after every attempt."""
        # Batch entry ids must be unique per request and [A-Za-z0-9_-]: use the position.
        pending = {str(index): event for index, event in enumerate(batch)}
        dedup = {entry_id: _deduplication_id_of(event) for entry_id, event in pending.items()}
        given_up: set[str] = set()
        for attempt in range(self._attempts):
            if attempt:
                self._sleep(self._backoff * 2 ** (attempt - 1))
            pending, refused = self._attempt(pending, dedup)
            given_up.update(event.id for event in refused)
            if not pending:
                break
        return given_up | {event.id for event in pending.values()}

    def _attempt(
        self, pending: dict[str, AnyEvent], dedup: dict[str, str]
    ) -> tuple[dict[str, AnyEvent], list[AnyEvent]]:
        """(entries worth another try, entries SQS refused as our fault: no retry helps)."""
        entries = [
            {
                "Id": entry_id,
                "MessageBody": to_json(event),
                "MessageGroupId": event.msisdn,
                "MessageDeduplicationId": dedup[entry_id],
            }
            for entry_id, event in pending.items()
        ]
        try:
            answer = self._client.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
        except (ClientError, BotoCoreError) as error:
            # botocore already retried the call itself; all of this batch is still pending.
            logger.warning("SendMessageBatch failed: %s", type(error).__name__)
            return pending, []
        retry: dict[str, AnyEvent] = {}
        refused: list[AnyEvent] = []
        for failure in answer.get("Failed", []):
            logger.warning(
                "SQS failed an entry: %s (sender fault: %s)", failure.get("Code"), failure.get("SenderFault")
            )
            if failure.get("SenderFault"):
                refused.append(pending[failure["Id"]])
            else:
                retry[failure["Id"]] = pending[failure["Id"]]
        return retry, refused
