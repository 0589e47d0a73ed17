"""The queued messages: what the worker needs of each record of Lambda's SQS event."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class QueuedMessage:
    """What the worker needs of one SQS record."""

    message_id: str
    receipt_handle: str
    body: str
    group: str  # MessageGroupId: the MSISDN
    receive_count: int
    # SenderId, as SQS records it: `<RoleId>:<session>` for a role (a Lambda function's session is
    # the function's name), a user's id, or the account's id for its root. Empty when absent.
    sender: str = ""


def queued_messages(event: Mapping[str, Any]) -> list[QueuedMessage]:
    """The records of Lambda's SQS event, as the worker needs them.

    Read by hand rather than with powertools' SqsModel: a dozen fields of a fixed shape Lambda
    writes itself, and the parser's models cost the worker's cold start about a third of its
    import time. A record without the fields Lambda always sends is a bug upstream: KeyError.
    """
    messages = []
    for record in event["Records"]:
        attributes = record.get("attributes") or {}
        messages.append(
            QueuedMessage(
                message_id=record["messageId"],
                receipt_handle=record["receiptHandle"],
                body=str(record["body"]),
                group=attributes.get("MessageGroupId") or record["messageId"],
                receive_count=int(attributes.get("ApproximateReceiveCount") or 1),
                sender=str(attributes.get("SenderId") or ""),
            )
        )
    return messages
