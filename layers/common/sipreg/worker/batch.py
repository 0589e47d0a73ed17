"""One SQS FIFO batch: records grouped by MSISDN, groups at once, order kept inside each group.

Why not powertools' `SqsFifoPartialProcessor`: it processes records one after another, so ten
events for ten MSISDNs would cost ten core round trips in a row. Here each group (MessageGroupId =
MSISDN) runs on a thread of a small pool built once per process, so they cost about one.

A record that fails fails itself and every later record of its group in this batch (they are
reported without being tried, so the group's order holds: producers' per-number order is part of
the contract, e.g. a revoke then a new registration, and the stale guard covers one
registration's events, not a subscriber-wide one's); other groups go on. Failed records are given
a visibility timeout that grows with their tries (base * 2^(n-1), capped), so a struggling core
is not hammered. An event's tries are its own (counted in its event-log item when an attempt
starts), not SQS's receive count, which also counts the receives that only held a record back:
after its last try the worker itself moves the message to the dead-letter queue, records it
`dead_lettered`, and the events behind it go on. The queue's own maxReceiveCount stays as a
backstop for a message that kills the worker before it can count. A record that cannot be parsed
is recorded in the event log (raw body kept, reason given) and counted as done: retrying would
not change it, and it must not block its group.

Only upserts and deletes may come from anyone the queue lets send (producers' roles may send
straight to it). The internal types (refresh, consent, revoke, the controls, suspend and resume)
are applied only when SQS's SenderId is a session of one of sipreg's own function roles, or when
sipreg's event log holds that very event still waiting (retrying, dead-lettered, or back from the
dead-letter queue): an operator's redrive sends as the operator. Anything else is recorded
`rejected` under the message's id (it never overwrites the item of an event it imitates) and
changes nothing.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple, Protocol

from sipreg.events import AnyEvent, InvalidEventsError, from_json
from sipreg.models import is_msisdn, mask_msisdn
from sipreg.notify import StatusChange, StatusPublisher
from sipreg.store.event_log import WAITING, EventKind, EventLogEntry, Outcome, kind_of
from sipreg.store.registrations import RecordKey, RegistrationRecord
from sipreg.telemetry import correlated, span
from sipreg.text import kept
from sipreg.worker.attempt import Delivery, EventResult, tries_key
from sipreg.worker.journal import Journal
from sipreg.worker.messages import QueuedMessage
from sipreg.worker.prefetch import PrefetchedJournal, record_key
from sipreg.worker.sqs import DeadLetters, Visibility

logger = logging.getLogger(__name__)

RAW_BODY_LIMIT = 4000  # characters of an unparseable body kept in the event log
_TYPE_FIELD = re.compile(r'"type"\s*:\s*"([A-Za-z0-9._-]{1,64})"')
_MSISDN_FIELD = re.compile(r'"msisdn"\s*:\s*"(\+[0-9]{8,15})"')
WRONG_GROUP = (
    "its MessageGroupId is not its msisdn: a number's events keep their order only in the "
    "number's own message group"
)


def _level_of(result: EventResult) -> int:
    """A retry is a warning; a successful keep-alive is routine (DEBUG: most of the traffic, and of
    the log bill); every other outcome is what an operator follows an event for."""
    if result.retry:
        return logging.WARNING
    if result.outcome in (Outcome.REFRESHED, Outcome.DUPLICATE):
        return logging.DEBUG
    return logging.INFO


class Applier(Protocol):
    def apply(
        self, event: AnyEvent, journal: Journal | None = None, delivery: Delivery = ...
    ) -> EventResult: ...


@dataclass
class BatchReport:
    """The batch's answer to Lambda, and what happened, for metrics and tests."""

    failed: list[str] = field(default_factory=list)  # message ids, in batch order
    outcomes: Counter[str] = field(default_factory=Counter)
    changes: list[StatusChange] = field(default_factory=list)

    def response(self) -> dict[str, list[dict[str, str]]]:
        return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in self.failed]}


class _Parsed(NamedTuple):
    message: QueuedMessage
    event: AnyEvent | str  # the event, or why the body is not one


def _parse(message: QueuedMessage) -> AnyEvent | str:
    try:
        event = from_json(message.body)
    except InvalidEventsError as error:
        return str(error)
    # A producer sending straight to the queue may group by something else (a job id): its events
    # for one number would then run side by side, here and in two Lambda invocations at once.
    return event if event.msisdn == message.group else WRONG_GROUP


def _key(parsed: _Parsed) -> RecordKey | None:
    return None if isinstance(parsed.event, str) else record_key(parsed.event)


NOT_STARTED = "not_started"  # a record held back behind its group's failure, or out of time
# An internal event type from a sender outside sipreg: `rejected` in the log, its own count in the
# metrics (Events_from_outside, alarmed on: a producer is sending what only sipreg may).
FROM_OUTSIDE = "from_outside"


@dataclass(frozen=True)
class _Handled:
    """What the batch answers for one record."""

    message: QueuedMessage
    outcome: str  # an Outcome, NOT_STARTED or FROM_OUTSIDE
    failed: bool
    delay: int | None = None  # seconds until a failed record comes back; None: leave as is
    changes: tuple[StatusChange, ...] = ()


class Worker:
    """Applies a batch; build once per process (it owns the thread pool) and reuse it."""

    def __init__(
        self,
        applier: Applier,
        journal: Journal,
        visibility: Visibility,
        publisher: StatusPublisher,
        dead_letters: DeadLetters,
        *,
        sipreg_roles: Collection[str],
        concurrency: int = 10,
        retry_base_seconds: int = 30,
        retry_max_seconds: int = 900,
        time_reserve_seconds: float = 8.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._applier = applier
        self._journal = journal
        self._visibility = visibility
        self._publisher = publisher
        self._dead_letters = dead_letters
        self._sipreg_roles = frozenset(sipreg_roles)  # RoleIds of the functions that send internal events
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="msisdn-group")
        self._retry_base = retry_base_seconds
        self._retry_max = retry_max_seconds
        self._reserve = time_reserve_seconds
        self._clock = clock

    def process(
        self, messages: Sequence[QueuedMessage], remaining_seconds: Callable[[], float]
    ) -> BatchReport:
        groups: dict[str, list[_Parsed]] = {}
        for message in messages:
            groups.setdefault(message.group, []).append(_Parsed(message, _parse(message)))
        known = self._prefetch(groups.values())
        tries = self._tries(groups.values())
        runs = [(group, self._group_journal(group, known, tries)) for group in groups.values()]
        if len(runs) == 1:
            finished = [self._run_group(*runs[0], remaining_seconds)]
        else:
            futures = [self._pool.submit(self._run_group, *run, remaining_seconds) for run in runs]
            finished = [future.result() for future in futures]
        done = {each.message.message_id: each for group in finished for each in group}
        report = BatchReport()
        for message in messages:  # batch order, for a stable answer
            each = done[message.message_id]
            report.outcomes[each.outcome] += 1
            report.changes.extend(each.changes)
            if each.failed:
                report.failed.append(message.message_id)
        delays = [
            (each.message.receipt_handle, each.delay) for each in done.values() if each.delay is not None
        ]
        if delays:
            self._visibility.delay(delays)
        if report.changes:
            try:
                self._publisher.publish(report.changes)
            except Exception:  # the change happened and is recorded; a lost notification must not undo it
                logger.exception("publishing %d status changes failed", len(report.changes))
        return report

    def _prefetch(self, groups: Iterable[Sequence[_Parsed]]) -> dict[RecordKey, RegistrationRecord | None]:
        """Every record the batch's upserts, deletes and refreshes name, in one read (BatchGetItem)."""
        keys = {key for group in groups for each in group if (key := _key(each)) is not None}
        if not keys:
            return {}
        try:
            return self._journal.get_many(keys)
        except Exception:  # each event then reads its own record, as without the prefetch
            logger.exception("reading the batch's %d registrations at once failed", len(keys))
            return {}

    def _tries(self, groups: Iterable[Sequence[_Parsed]]) -> dict[tuple[str, str], int]:
        """Attempts earlier deliveries started, for the records SQS has handed out before (a first
        delivery has none): one read for the batch, none at all on the happy path."""
        keys = {
            tries_key(each.event)
            for group in groups
            for each in group
            if each.message.receive_count > 1 and not isinstance(each.event, str)
        }
        if not keys:
            return {}
        try:
            return self._journal.tries_of(keys)
        except Exception:  # unknown: counted from zero, SQS's maxReceiveCount stays the backstop
            logger.exception("reading the tries of %d redelivered events failed", len(keys))
            return {}

    def _group_journal(
        self,
        group: Sequence[_Parsed],
        known: Mapping[RecordKey, RegistrationRecord | None],
        tries: Mapping[tuple[str, str], int],
    ) -> PrefetchedJournal:
        keys = {key for each in group if (key := _key(each)) is not None}
        return PrefetchedJournal(self._journal, {key: known[key] for key in keys if key in known}, tries)

    def retry_delay(self, tries: int) -> int:
        """Seconds before a failed record comes back: base * 2^(tries - 1), at most the cap."""
        exponent = min(max(tries, 1) - 1, 20)
        return int(min(self._retry_base * 2**exponent, self._retry_max))

    def _run_group(
        self, group: Sequence[_Parsed], journal: PrefetchedJournal, remaining_seconds: Callable[[], float]
    ) -> list[_Handled]:
        done: list[_Handled] = []
        for index, (message, event) in enumerate(group):
            if remaining_seconds() < self._reserve:
                # Not tried: back at once (delay 0), in order, on the next invocation.
                done += [_Handled(m, NOT_STARTED, failed=True, delay=0) for m, _ in group[index:]]
                break
            if isinstance(event, str):
                result = self._invalid(message, event)
                tries = 0
            elif (refused := self._not_from_sipreg(message, event, journal)) is not None:
                if not refused.retry:
                    done.append(_Handled(message, FROM_OUTSIDE, failed=False))
                    continue
                result, tries = refused, 0
            else:
                tries = journal.tries_before(event)
                result = self._one(message, event, journal, Delivery(tries, message.receive_count > 1))
            if result.dead_letter and not self._dead_letters.send(message):
                # Recorded as dead-lettered but still here: it comes back, and goes again.
                result = EventResult(
                    Outcome.RETRYING, "moving it to the dead-letter queue failed", retry=True
                )
            if not result.retry:
                done.append(_Handled(message, result.outcome, failed=False, changes=result.changes))
                continue
            delay = self.retry_delay(tries + 1)
            done.append(_Handled(message, result.outcome, failed=True, delay=delay, changes=result.changes))
            done += [_Handled(m, NOT_STARTED, failed=True, delay=delay) for m, _ in group[index + 1 :]]
            break
        return done

    def _one(
        self, message: QueuedMessage, event: AnyEvent, journal: Journal, delivery: Delivery
    ) -> EventResult:
        # Every line logged while this event is worked on carries its id; one span per event.
        with (
            correlated(event.id),
            span(
                "event", event_id=event.id, event_type=event.type.value, msisdn=mask_msisdn(event.msisdn)
            ) as annotate,
        ):
            result = self._apply(message, event, journal, delivery)
            annotate("outcome", result.outcome.value)
        return result

    def _apply(
        self, message: QueuedMessage, event: AnyEvent, journal: Journal, delivery: Delivery
    ) -> EventResult:
        try:
            result = self._applier.apply(event, journal, delivery)
        except Exception as error:  # a bug or an AWS failure past botocore's retries: try again later
            logger.exception("applying %s %s for %s failed", event.type, event.id, mask_msisdn(event.msisdn))
            result = EventResult(Outcome.RETRYING, f"internal error: {type(error).__name__}", retry=True)
        reason = result.reason.replace(event.msisdn, mask_msisdn(event.msisdn)) if result.reason else None
        logger.log(
            _level_of(result),
            "%s %s for %s: %s",
            event.type,
            event.id,
            mask_msisdn(event.msisdn),
            result.outcome,
            extra={
                "event_id": event.id,
                "event_type": str(event.type),
                "msisdn": mask_msisdn(event.msisdn),
                "outcome": result.outcome,
                "reason": reason,
                "receive_count": message.receive_count,
                "tries_before": delivery.tries_before,
            },
        )
        return result

    def _not_from_sipreg(
        self, message: QueuedMessage, event: AnyEvent, journal: Journal
    ) -> EventResult | None:
        """None when the event may be applied; else what became of it (refused, or read again later)."""
        if event.type.external or message.sender.partition(":")[0] in self._sipreg_roles:
            return None
        try:
            item = journal.log_item(tries_key(event))
        except Exception:  # unknown for now: the message comes back
            logger.exception("reading the log item of %s %s failed", event.type, event.id)
            return EventResult(Outcome.RETRYING, "could not read the event's log item", retry=True)
        # The key names the event's kind, not its type: a producer's own upsert of the same id,
        # time and registration has an item there too.
        if item is not None and item.event_type == event.type.value and item.outcome in WAITING:
            return None  # a redrive (or a replay) of an event sipreg queued and has not finished
        sender = message.sender or "a sender SQS did not name"
        reason = f"{event.type} is sipreg's own event type; this one was sent by {sender}"
        return self._record_dropped(message, Outcome.REJECTED, reason, event_type=event.type.value)

    def _invalid(self, message: QueuedMessage, reason: str) -> EventResult:
        # Clipped: one error per unknown field of a padded body would outgrow DynamoDB's 400 KB
        # item, and the item could never be written.
        reason = kept(reason)
        named = _TYPE_FIELD.search(message.body)
        return self._record_dropped(
            message, Outcome.INVALID, reason, event_type=named.group(1) if named else "unknown"
        )

    def _record_dropped(
        self, message: QueuedMessage, outcome: Outcome, reason: str, *, event_type: str
    ) -> EventResult:
        """Records a message that is not applied, under its own message id, and drops it."""
        named_number = _MSISDN_FIELD.search(message.body)
        number = named_number.group(1) if named_number and is_msisdn(named_number.group(1)) else None
        now = self._clock()
        entry = EventLogEntry(
            msisdn=number or (message.group if is_msisdn(message.group) else "unknown"),
            event_id=f"sqs:{message.message_id}",
            # Filed with the number's changes whatever type it names (not with the keep-alives).
            event_type=event_type if kind_of(event_type) is EventKind.CHANGES else "unknown",
            outcome=outcome,
            reason=reason,
            occurred_at=now,  # when it came: its own date is not to be trusted
            recorded_at=now,
            raw_body=message.body[:RAW_BODY_LIMIT],
        )
        try:
            with correlated(entry.event_id):
                self._journal.write(entry)
        except Exception:  # not recorded yet: keep the message and record it next time
            logger.exception("recording the dropped message %s failed", message.message_id)
            return EventResult(Outcome.RETRYING, f"could not record the {outcome} event", retry=True)
        logger.warning(
            "message %s is not applied, recorded and dropped: %s",
            message.message_id,
            reason,
            extra={"message_id": message.message_id, "outcome": outcome.value, "sender": message.sender},
        )
        return EventResult(outcome, reason)
