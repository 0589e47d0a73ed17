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

SQS records the operator running this as a moved message's sender, so the worker applies a moved
internal event (a refresh, a revoke, a control) only when its event-log item waits (`pending`,
`dead_lettered`, ...): that is how it knows sipreg queued it (`sipreg.worker.batch`). So an
internal event's item is marked `pending` before it is sent. One with no item (SQS's own redrive
policy moved it: an event held back behind a failing one, or in a batch the worker died in; or
its item is past retention) gets one made, if the DLQ names one of `sipreg_roles` as its sender
(SQS keeps the sender through its move; the worker's own moves name the worker). Any other
internal event is held: it stays in the DLQ with its number's later messages behind it (order is
kept), and the report says why, so nothing sipreg sent is lost and nothing forged gets through.

Messages of other numbers, received while looking, are made visible again when the run ends. Until
then they are kept hidden: each is hidden again for `LOOK_SECONDS` before half of its look has
passed. Otherwise a look ending during a long run (a DLQ of thousands after an outage) would hand
the same messages out again, round after round, and the run would never end; and a FIFO queue
deletes nothing with a receipt whose look has ended ("The receipt handle has expired"): a moved
message the DLQ refused to delete is deleted when the run receives it again, never moved twice;
one still there when the run ends is named in the report (`not_deleted`): a later run moves it
again, and the worker takes that copy for a duplicate.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sipreg.events import AnyEvent, InvalidEventsError, from_json
from sipreg.store.event_log import EventLogEntry, Outcome
from sipreg.worker.attempt import log_entry, sip_uri_of, tries_key

logger = logging.getLogger(__name__)

RECEIVE_LIMIT = 10
Moved = tuple[dict[str, Any], AnyEvent | None]  # a DLQ message, and its event if it is one
LOOK_SECONDS = 120  # how long a received DLQ message stays hidden while this run handles it


class RedriveError(RuntimeError):
    """The queues are not as expected (e.g. no dead-letter queue configured)."""


@dataclass(frozen=True)
class RedriveReport:
    moved: int
    left: int  # other numbers' messages seen in the DLQ and left there
    marked: int = 0  # moved events whose event-log item now says `pending`
    held: tuple[str, ...] = ()  # `<event id>: <why>` of internal events left in the DLQ
    not_deleted: tuple[str, ...] = ()  # ids of messages moved but still in the DLQ as well
    unreached: int = 0  # messages still visible in the DLQ when the run found nothing more


class PendingMarks(Protocol):
    def mark_pending(
        self, entry_key: dict[str, str], event_type: str, reason: str, now: datetime
    ) -> bool: ...

    def add_pending(self, entry: EventLogEntry) -> bool: ...


class Redriver:
    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        *,
        event_log: PendingMarks | None = None,
        sipreg_roles: Collection[str] = (),
        wait_seconds: int = 1,
    ) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._event_log = event_log
        self._sipreg_roles = frozenset(sipreg_roles)  # RoleIds of the functions that queue events
        self._wait = wait_seconds
        self._marked = 0
        self._held: dict[str, str] = {}  # message id -> `<event id>: <why>`
        self._not_deleted: list[str] = []
        self.dlq_url = self._dead_letter_queue_url()

    def redrive(self, msisdn: str | None = None) -> RedriveReport:
        """Moves every message in the DLQ (only `msisdn`'s, if given) back to the events queue."""
        moved = 0
        others: dict[str, float] = {}  # other numbers' receipt handles -> when their look ends
        seen_others: set[str] = set()
        held_back: dict[str, float] = {}  # held internal events and what is behind them, likewise
        try:
            while True:
                self._keep_hidden(others)
                self._keep_hidden(held_back)
                look_ends = time.monotonic() + LOOK_SECONDS  # counted from before SQS's receive
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
                messages, stuck = self._without_moved(messages)
                held_back |= {m["ReceiptHandle"]: look_ends for m in stuck}  # not handed out again
                chosen = [m for m in messages if msisdn is None or _msisdn_of(m) == msisdn]
                if len(chosen) < len(messages):
                    mine = {m["MessageId"] for m in chosen}
                    theirs = [m for m in messages if m["MessageId"] not in mine]
                    others |= {m["ReceiptHandle"]: look_ends for m in theirs}
                    seen_others |= {m["MessageId"] for m in theirs}  # one handed out again counts once
                movable, behind = self._not_held([(m, _event_of(m)) for m in chosen])
                held_back |= {m["ReceiptHandle"]: look_ends for m in behind}
                moved += self._move(movable)
            unreached = self._visible()  # before the release makes what this run holds visible
        finally:
            self._release([*others, *held_back])
        return RedriveReport(
            moved=moved,
            left=len(seen_others),
            marked=self._marked,
            held=tuple(self._held.values()),
            not_deleted=tuple(self._not_deleted),
            unreached=unreached,
        )

    def _visible(self) -> int:
        """What the DLQ still shows while this run holds all it was handed: an empty receive does
        not mean an empty queue. A FIFO queue hands out at most 120,000 messages at once and
        looks for groups among its first 120,000 only, past which a receive gets nothing and no
        error (a `--msisdn` run over a DLQ of more); and one may have come meanwhile. SQS's count
        is approximate: a run that finds none may still have missed some."""
        attributes = self._sqs.get_queue_attributes(
            QueueUrl=self.dlq_url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        return int(attributes.get("ApproximateNumberOfMessages", 0))

    def _without_moved(
        self, messages: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(the messages this run has not moved yet, the copies it still cannot delete): the DLQ's
        copies of those it moved but could not delete (a receipt expired) are deleted now, with
        their new receipt."""
        copies = [m for m in messages if m["MessageId"] in self._not_deleted]
        if not copies:
            return messages, []
        answer = self._sqs.delete_message_batch(
            QueueUrl=self.dlq_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(copies)],
        )
        deleted = {copies[int(entry["Id"])]["MessageId"] for entry in answer.get("Successful", [])}
        self._not_deleted = [message_id for message_id in self._not_deleted if message_id not in deleted]
        copied = {c["MessageId"] for c in copies}
        fresh = [m for m in messages if m["MessageId"] not in copied]
        return fresh, [c for c in copies if c["MessageId"] not in deleted]

    def _keep_hidden(self, looks: dict[str, float]) -> None:
        """Hides again, for another look, the kept messages past half of theirs. One SQS will not
        hide again (12 h in flight) shows when its look ends, and one whose look ended already
        stays visible (SQS answers OK): either way a later receive hands it out anew."""
        now = time.monotonic()
        due = [handle for handle, ends in looks.items() if ends - now < LOOK_SECONDS / 2]
        look_ends = now + LOOK_SECONDS
        hidden = self._set_visibility(due, LOOK_SECONDS)
        for handle in due:
            if handle in hidden:
                looks[handle] = look_ends
            else:
                del looks[handle]

    def _set_visibility(self, handles: list[str], seconds: int) -> set[str]:
        """ChangeMessageVisibilityBatch, ten at a time; the handles SQS took."""
        taken: set[str] = set()
        for start in range(0, len(handles), RECEIVE_LIMIT):
            chunk = handles[start : start + RECEIVE_LIMIT]
            answer = self._sqs.change_message_visibility_batch(
                QueueUrl=self.dlq_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": seconds}
                    for i, h in enumerate(chunk)
                ],
            )
            taken |= {chunk[int(entry["Id"])] for entry in answer.get("Successful", [])}
        return taken

    def _not_held(self, messages: list[Moved]) -> tuple[list[Moved], list[dict[str, Any]]]:
        """(messages to move, messages left in the DLQ): an internal event that cannot be marked
        waiting, and every later message of its group (its number's order holds)."""
        movable: list[Moved] = []
        behind: list[dict[str, Any]] = []
        stopped: set[str] = set()
        for message, event in messages:
            group = _group_of(message)
            if group not in stopped:
                why = self._why_held(message, event)
                if why is None:
                    movable.append((message, event))
                    continue
                self._held[message["MessageId"]] = why
                logger.warning("left in the dead-letter queue: %s", why)
                stopped.add(group)
            behind.append(message)
        return movable, behind

    def _why_held(self, message: dict[str, Any], event: AnyEvent | None) -> str | None:
        """None when the message may go back: not an event (the worker records it invalid, as it
        did the first time), a producer's event (marked after the move: it needs no mark to
        apply), or an internal event whose log item now waits for it; else why it stays."""
        if event is None or event.type.external:
            return None
        if self._event_log is None:
            return f"{event.id}: {event.type} needs its event-log item marked: pass the event-log table"
        now = datetime.now(UTC)
        if self._mark_pending(event, now):
            return None
        sender = message.get("Attributes", {}).get("SenderId", "")
        if sender.partition(":")[0] not in self._sipreg_roles:
            return (
                f"{event.id}: {event.type} without a waiting event-log item, sent by "
                f"{sender or 'a sender SQS did not name'}, not one of sipreg's roles (given: "
                f"{len(self._sipreg_roles)})"
            )
        if self._event_log.add_pending(
            log_entry(event, sip_uri_of(event), Outcome.PENDING, _redriven(now), now)
        ):
            self._marked += 1
            return None
        return f"{event.id}: {event.type} whose log key holds an item already (final, or another type's)"

    def _move(self, messages: list[Moved]) -> int:
        if not messages:
            return 0
        stamp = time.time_ns()
        entries = []
        for index, (message, _) in enumerate(messages):
            entry: dict[str, Any] = {
                "Id": str(index),
                "MessageBody": message["Body"],
                "MessageGroupId": _group_of(message),
                "MessageDeduplicationId": hashlib.sha256(
                    f"redrive:{message['MessageId']}:{stamp}".encode()
                ).hexdigest(),
            }
            if message.get("MessageAttributes"):
                entry["MessageAttributes"] = message["MessageAttributes"]
            entries.append(entry)
        answer = self._sqs.send_message_batch(QueueUrl=self._queue_url, Entries=entries)
        sent = {int(item["Id"]) for item in answer.get("Successful", [])}
        done = [{"Id": str(i), "ReceiptHandle": messages[i][0]["ReceiptHandle"]} for i in sorted(sent)]
        if done:
            deleted = self._sqs.delete_message_batch(QueueUrl=self.dlq_url, Entries=done)
            for failure in deleted.get("Failed", []):
                message_id = messages[int(failure["Id"])][0]["MessageId"]
                self._not_deleted.append(message_id)
                logger.warning(
                    "message %s is back in the events queue and still in the dead-letter queue (%s: "
                    "%s); deleted when it comes round again",
                    message_id,
                    failure.get("Code"),
                    failure.get("Message"),
                )
        for index in sorted(sent):
            # Internal events were marked before the move (the worker checks the mark).
            event = messages[index][1]
            if event is None or not event.type.external or self._event_log is None:
                continue
            if not self._mark_pending(event, datetime.now(UTC)):
                logger.info("no waiting event-log item for %s (past retention, or applied already)", event.id)
        if len(sent) < len(messages):
            failed = [f"{item.get('Code')}" for item in answer.get("Failed", [])]
            raise RedriveError(
                f"the queue refused {len(messages) - len(sent)} message(s): {', '.join(failed)}"
            )
        return len(sent)

    def _mark_pending(self, event: AnyEvent, now: datetime) -> bool:
        assert self._event_log is not None
        msisdn, sk = tries_key(event)
        marked = self._event_log.mark_pending(
            {"msisdn": msisdn, "sk": sk}, event.type.value, _redriven(now), now
        )
        self._marked += marked
        return marked

    def _release(self, handles: list[str]) -> None:
        self._set_visibility(handles, 0)

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


def _redriven(now: datetime) -> str:
    return f"redriven at {now.isoformat()}"


def _event_of(message: dict[str, Any]) -> AnyEvent | None:
    try:
        return from_json(message["Body"])
    except InvalidEventsError:
        return None


def _group_of(message: dict[str, Any]) -> str:
    return message.get("Attributes", {}).get("MessageGroupId") or _msisdn_of(message) or "unknown"


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
