"""Moving messages from the dead-letter queue back to the events queue (all, or one MSISDN's).

    report = Redriver(sqs_client, queue_url, event_log=EventLog(table)).redrive(msisdn="+4799990000")
    report.moved, report.left, report.marked

With an event log, each moved event's item goes from `dead_lettered` to `pending`, its tries
counted from zero again, so the status API shows it is back in the queue.

The DLQ is the one named in the events queue's RedrivePolicy. Messages keep their group (the
MSISDN) and go back in the order the DLQ hands them out, so each number's order holds. Each gets
a new deduplication id: SQS would otherwise drop a message whose first send is less than five
minutes old; a message moved twice (a run interrupted between send and delete) reaches the
worker twice and its record absorbs the second one. SQS's own message-move task cannot pick
messages by number, hence this.

SQS records the operator running this as a moved message's sender. The worker still applies a
moved internal event (a refresh, a revoke, a control): it is one whose event-log item waits
(`dead_lettered`, `pending`), which is how the worker knows sipreg queued it
(`sipreg.worker.batch`).

Messages of other numbers, received while looking, are made visible again when the run ends.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sipreg.events import InvalidEventsError, from_json
from sipreg.worker.attempt import tries_key

logger = logging.getLogger(__name__)

RECEIVE_LIMIT = 10
LOOK_SECONDS = 60  # how long a received DLQ message stays hidden while this run handles it


class RedriveError(RuntimeError):
    """The queues are not as expected (e.g. no dead-letter queue configured)."""


@dataclass(frozen=True)
class RedriveReport:
    moved: int
    left: int  # other numbers' messages seen in the DLQ and left there
    marked: int = 0  # moved events whose event-log item now says `pending`


class PendingMarks(Protocol):
    def mark_pending(self, entry_key: dict[str, str], reason: str, now: datetime) -> bool: ...


class Redriver:
    def __init__(
        self, sqs: Any, queue_url: str, *, event_log: PendingMarks | None = None, wait_seconds: int = 1
    ) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._event_log = event_log
        self._wait = wait_seconds
        self._marked = 0
        self.dlq_url = self._dead_letter_queue_url()

    def redrive(self, msisdn: str | None = None) -> RedriveReport:
        """Moves every message in the DLQ (only `msisdn`'s, if given) back to the events queue."""
        moved = 0
        kept: list[str] = []  # other numbers' receipt handles, released at the end
        try:
            while True:
                messages = self._sqs.receive_message(
                    QueueUrl=self.dlq_url,
                    MaxNumberOfMessages=RECEIVE_LIMIT,
                    WaitTimeSeconds=self._wait,
                    VisibilityTimeout=LOOK_SECONDS,
                    MessageSystemAttributeNames=["All"],
                    MessageAttributeNames=["All"],
                ).get("Messages", [])
                if not messages:
                    break
                chosen = [m for m in messages if msisdn is None or _msisdn_of(m) == msisdn]
                kept += [
                    m["ReceiptHandle"] for m in messages if msisdn is not None and _msisdn_of(m) != msisdn
                ]
                moved += self._move(chosen)
        finally:
            self._release(kept)
        return RedriveReport(moved=moved, left=len(kept), marked=self._marked)

    def _move(self, messages: list[dict[str, Any]]) -> int:
        if not messages:
            return 0
        stamp = time.time_ns()
        entries = []
        for index, message in enumerate(messages):
            attributes = message.get("Attributes", {})
            entry: dict[str, Any] = {
                "Id": str(index),
                "MessageBody": message["Body"],
                "MessageGroupId": attributes.get("MessageGroupId") or _msisdn_of(message) or "unknown",
                "MessageDeduplicationId": hashlib.sha256(
                    f"redrive:{message['MessageId']}:{stamp}".encode()
                ).hexdigest(),
            }
            if message.get("MessageAttributes"):
                entry["MessageAttributes"] = message["MessageAttributes"]
            entries.append(entry)
        answer = self._sqs.send_message_batch(QueueUrl=self._queue_url, Entries=entries)
        sent = {int(item["Id"]) for item in answer.get("Successful", [])}
        done = [{"Id": str(i), "ReceiptHandle": messages[i]["ReceiptHandle"]} for i in sorted(sent)]
        if done:
            self._sqs.delete_message_batch(QueueUrl=self.dlq_url, Entries=done)
        for index in sorted(sent):
            self._mark_pending(messages[index]["Body"])
        if len(sent) < len(messages):
            failed = [f"{item.get('Code')}" for item in answer.get("Failed", [])]
            raise RedriveError(
                f"the queue refused {len(messages) - len(sent)} message(s): {', '.join(failed)}"
            )
        return len(sent)

    def _mark_pending(self, body: str) -> None:
        if self._event_log is None:
            return
        try:
            event = from_json(body)
        except InvalidEventsError:
            return  # not an event: nothing in the log to mark
        msisdn, sk = tries_key(event)
        now = datetime.now(UTC)
        if self._event_log.mark_pending({"msisdn": msisdn, "sk": sk}, f"redriven at {now.isoformat()}", now):
            self._marked += 1
        else:
            logger.info("no event-log item for %s (past retention?)", event.id)

    def _release(self, handles: list[str]) -> None:
        for start in range(0, len(handles), RECEIVE_LIMIT):
            chunk = handles[start : start + RECEIVE_LIMIT]
            self._sqs.change_message_visibility_batch(
                QueueUrl=self.dlq_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": 0} for i, h in enumerate(chunk)
                ],
            )

    def _dead_letter_queue_url(self) -> str:
        attributes = self._sqs.get_queue_attributes(
            QueueUrl=self._queue_url, AttributeNames=["RedrivePolicy"]
        )
        policy = attributes.get("Attributes", {}).get("RedrivePolicy")
        if not policy:
            raise RedriveError(f"{self._queue_url} has no dead-letter queue (no RedrivePolicy)")
        arn = json.loads(policy)["deadLetterTargetArn"]
        _, _, _, _, account, name = arn.split(":", 5)
        return str(self._sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"])


def _msisdn_of(message: dict[str, Any]) -> str | None:
    group = message.get("Attributes", {}).get("MessageGroupId")
    if group:
        return str(group)
    try:
        body = json.loads(message["Body"])
    except ValueError:
        return None
    value = body.get("msisdn") if isinstance(body, dict) else None
    return value if isinstance(value, str) else None
