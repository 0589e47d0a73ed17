"""The worker's SQS adapters: a failed record's retry delay (its visibility), and the move of a
message to the dead-letter queue; each behind the protocol the batch uses (tests use fakes)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from sipreg.worker.messages import QueuedMessage

logger = logging.getLogger(__name__)

CHANGE_VISIBILITY_LIMIT = 10  # entries per ChangeMessageVisibilityBatch


class DeadLetters(Protocol):
    def send(self, message: QueuedMessage) -> bool:
        """Puts the message on the dead-letter queue as it is; False when that failed."""
        ...


class Visibility(Protocol):
    def delay(self, receipts: Sequence[tuple[str, int]]) -> None:
        """Makes each message (receipt handle) visible again after the given seconds."""
        ...


class SqsVisibility:
    """ChangeMessageVisibilityBatch on the consumed queue; one request per 10 messages."""

    def __init__(self, queue_url: str, *, client: Any = None) -> None:
        if client is None:
            from sipreg.aws import client as aws_client  # noqa: PLC0415  # boto3 only when used

            client = aws_client("sqs")
        self._queue_url = queue_url
        self._client = client

    def delay(self, receipts: Sequence[tuple[str, int]]) -> None:
        for start in range(0, len(receipts), CHANGE_VISIBILITY_LIMIT):
            chunk = receipts[start : start + CHANGE_VISIBILITY_LIMIT]
            entries = [
                {"Id": str(index), "ReceiptHandle": handle, "VisibilityTimeout": seconds}
                for index, (handle, seconds) in enumerate(chunk)
            ]
            try:
                answer = self._client.change_message_visibility_batch(
                    QueueUrl=self._queue_url, Entries=entries
                )
            except (BotoCoreError, ClientError) as error:
                # The messages still come back, after the queue's own visibility timeout.
                logger.warning("could not set the retry delay of %d messages: %s", len(chunk), error)
                continue
            if answer.get("Failed"):
                logger.warning("could not set the retry delay of %d messages", len(answer["Failed"]))


class SqsDeadLetters:
    """The events queue's dead-letter queue: the message as it came, in its group, deduplicated on
    its message id (a second move of the same message within 5 minutes is dropped)."""

    def __init__(self, queue_url: str, *, client: Any = None) -> None:
        if client is None:
            from sipreg.aws import client as aws_client  # noqa: PLC0415  # boto3 only when used

            client = aws_client("sqs")
        self._queue_url = queue_url
        self._client = client

    def send(self, message: QueuedMessage) -> bool:
        try:
            self._client.send_message(
                QueueUrl=self._queue_url,
                MessageBody=message.body,
                MessageGroupId=message.group,
                MessageDeduplicationId=f"dead-{message.message_id}",
            )
        except (BotoCoreError, ClientError) as error:
            logger.warning(
                "could not move message %s to the DLQ: %s", message.message_id, type(error).__name__
            )
            return False
        return True
