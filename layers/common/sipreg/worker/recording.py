"""Recording what an attempt came to: the verdict of each registration's outcome, and the
registration records and event-log items it becomes.

- Outcomes: applied -> active (expires_at from the TTL the core gave); deleted -> deleted;
  NOT_ACCEPTABLE -> rejected (the core's reason); no consent -> awaiting_consent; consent revoked
  or `invalid_grant` -> consent_revoked; PERMISSION_DENIED -> failed, naming the scope; anything
  transient -> the record keeps the intent and the error, and the event is retried, until its
  `max_tries`-th attempt: then it is `dead_lettered` (the worker moves the message to the DLQ
  itself, so an event is dead-lettered only after tries of its own, never for waiting behind
  another).
- Every event leaves one event-log item per registration it touched, written in the same DynamoDB
  transaction as the record (a consent or revoke event also leaves one for itself).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from sipreg.core.port import (
    Applied,
    Deleted,
    Operation,
    PermissionDenied,
    Rejected,
    Transient,
    Unauthenticated,
)
from sipreg.events import AnyEvent, ConsentedEvent, RefreshEvent, RevokeEvent
from sipreg.models import RouteSpec
from sipreg.notify import StatusChange
from sipreg.store.event_log import EventLogEntry, Outcome
from sipreg.store.registrations import RECENT_EVENT_IDS, RegistrationRecord
from sipreg.store.registrations import RegistrationStatus as Status
from sipreg.worker.attempt import EventResult, Run, log_entry
from sipreg.worker.core_call import CallOutcome, Retry, TokenRefused
from sipreg.worker.journal import Journal

DEFAULT_TTL_SECONDS = 3600.0  # the core's documented TTL, when an answer does not say


class Holds(StrEnum):
    """What the core holds of the registration after an attempt, as far as we know."""

    SENT = "sent"  # what was just sent (applied := desired), until expires_at
    NOTHING = "nothing"
    UNCHANGED = "unchanged"  # whatever it held before


@dataclass(frozen=True)
class Verdict:
    """How one registration's record changes after an attempt."""

    outcome: Outcome
    status: Status
    reason: str | None
    retry: bool = False
    holds: Holds = Holds.UNCHANGED
    expires_at: datetime | None = None  # with Holds.SENT


@dataclass(frozen=True)
class Touched:
    """One registration an event touched: its record as read (and as claimed), what it should be
    now, the verdict."""

    sip_uri: str
    record: RegistrationRecord | None  # as the save must find it (the claimed one after a claim)
    desired: RouteSpec | None
    verdict: Verdict
    before: Status | None  # its status before this event (for the status bus)


class Recorder:
    """Judges what each call came to, and commits the records and log items an attempt leaves.
    Thread-safe: no state between calls."""

    def __init__(self, *, clock: Callable[[], datetime], max_tries: int, scope: str) -> None:
        self._clock = clock
        self._max_tries = max_tries
        self._scope = scope  # the service scope a token needs (named when the core says it lacks it)

    def verdict(self, operation: Operation, outcome: CallOutcome) -> Verdict:  # noqa: PLR0911  # one per kind
        pending = Status.PENDING if operation is Operation.UPSERT else Status.DELETING
        match outcome:
            case Applied(ttl_seconds=ttl):
                lives = timedelta(seconds=ttl or DEFAULT_TTL_SECONDS)
                return Verdict(
                    Outcome.ACTIVE, Status.ACTIVE, None, holds=Holds.SENT, expires_at=self._clock() + lives
                )
            case Deleted(note=note):
                return Verdict(Outcome.DELETED, Status.DELETED, note, holds=Holds.NOTHING)
            case Rejected(message=message):
                return Verdict(Outcome.REJECTED, Status.REJECTED, message)
            case PermissionDenied(detail=detail):
                reason = f"the token lacks the scope {self._scope} (PERMISSION_DENIED: {detail})"
                return Verdict(Outcome.FAILED, Status.FAILED, reason)
            case Unauthenticated(detail=detail):
                reason = f"UNAUTHENTICATED after a token refresh: {detail}"
                return Verdict(Outcome.RETRYING, pending, reason, retry=True)
            case Transient(code=code, detail=detail):
                return Verdict(Outcome.RETRYING, pending, f"{code}: {detail}", retry=True)
            case TokenRefused(status=status, reason=reason) if operation is Operation.DELETE:
                # Without a token nothing can be deleted; the core drops it when its TTL ends.
                gone = Status.DELETED if status is Status.AWAITING_CONSENT else status
                return Verdict(Outcome(gone.value), gone, f"{reason}; {_LEFT_TO_EXPIRE}")
            case TokenRefused(status=status, reason=reason):
                return Verdict(Outcome(status.value), status, reason)
            case Retry(reason=reason):
                return Verdict(Outcome.RETRYING, pending, reason, retry=True)

    # --- recording -----------------------------------------------------------------------------

    def record(
        self,
        journal: Journal,
        event: AnyEvent,
        touched: Sequence[Touched],
        run: Run,
        *,
        moves_last_event: bool = False,
    ) -> EventResult:
        now = self._clock()
        retrying = any(each.verdict.retry for each in touched)
        refresh_try = retrying and isinstance(event, RefreshEvent)
        if refresh_try:  # a refresh claims nothing: its failed attempt is counted here
            run.tries = run.delivery.tries_before + 1
        dead = retrying and run.tries >= self._max_tries
        if dead:
            touched = [
                replace(each, verdict=self._dead_lettered(each.verdict, run.tries, refresh=refresh_try))
                for each in touched
            ]
        saves: list[tuple[RegistrationRecord, int | None]] = []
        entries: list[EventLogEntry] = []
        changes: list[StatusChange] = []
        for each in touched:
            updated = self._updated(event, each, now, moves_last_event=moves_last_event)
            saves.append((updated, each.record.version if each.record else None))
            entries.append(self.entry(event, each.sip_uri, each.verdict.outcome, each.verdict.reason))
            if each.before is not updated.status:
                changes.append(
                    StatusChange(
                        msisdn=event.msisdn,
                        sip_uri=each.sip_uri,
                        old_status=each.before.value if each.before else None,
                        new_status=updated.status.value,
                        reason=each.verdict.reason,
                        event_id=event.id,
                        event_type=event.type.value,
                        changed_at=now,
                    )
                )
        first = touched[0].verdict
        wide = isinstance(event, ConsentedEvent | RevokeEvent)
        if dead:
            outcome, reason = Outcome.DEAD_LETTERED, first.reason
        elif retrying:
            outcome, reason = Outcome.RETRYING, next(e.verdict.reason for e in touched if e.verdict.retry)
        elif wide:
            outcome, reason = Outcome.CONSENT_APPLIED, _summary(touched)
        else:
            outcome, reason = first.outcome, first.reason
        # A subscriber-wide event's own item; a revoke writes its final one after revoking the tokens.
        if wide and (retrying or isinstance(event, ConsentedEvent)):
            entries.append(self.entry(event, None, outcome, reason))
        journal.commit(saves, entries, count_try=refresh_try)
        return EventResult(
            outcome, reason, retry=retrying and not dead, dead_letter=dead, changes=tuple(changes)
        )

    def _dead_lettered(self, verdict: Verdict, tries: int, *, refresh: bool) -> Verdict:
        if not verdict.retry:
            return verdict
        reason = f"dead-lettered after {tries} tries: {verdict.reason}"
        # A refresh leaves the registration active: the refresher tries it again when it is due.
        status = verdict.status if refresh else Status.FAILED
        return replace(verdict, outcome=Outcome.DEAD_LETTERED, status=status, reason=reason, retry=False)

    def _updated(
        self, event: AnyEvent, touched: Touched, now: datetime, *, moves_last_event: bool
    ) -> RegistrationRecord:
        verdict = touched.verdict
        base = touched.record or RegistrationRecord(
            msisdn=event.msisdn, sip_uri=touched.sip_uri, status=Status.PENDING, updated_at=now
        )
        fields: dict[str, object] = {
            "status": verdict.status,
            "desired": touched.desired,
            "last_error": verdict.reason,
            "updated_at": now,
        }
        if verdict.holds is Holds.SENT:
            fields.update(applied=touched.desired, expires_at=verdict.expires_at)
        elif verdict.holds is Holds.NOTHING:
            fields.update(applied=None, expires_at=None)
        if verdict.retry or verdict.outcome is Outcome.DEAD_LETTERED:
            # Not remembered: a retry (or a redriven message) must not look like a duplicate. The
            # claim stays: the core may have taken a call whose answer never came.
            return base.model_copy(update=fields)
        fields["in_flight"] = None
        if moves_last_event:  # the newest desired-state event: the stale guard's reference
            last = base.last_event_at
            fields["last_event_at"] = event.occurred_at if last is None else max(last, event.occurred_at)
            fields.update(last_event_id=event.id, last_event_type=event.type.value)
        return self.remember(base.model_copy(update=fields), event)

    def remember(self, record: RegistrationRecord, event: AnyEvent) -> RegistrationRecord:
        if isinstance(event, RefreshEvent):
            return record.model_copy(update={"last_refresh_id": event.id, "updated_at": self._clock()})
        recent = (*record.recent_event_ids, event.id)[-RECENT_EVENT_IDS:]
        return record.model_copy(update={"recent_event_ids": recent, "updated_at": self._clock()})

    def entry(
        self, event: AnyEvent, sip_uri: str | None, outcome: Outcome, reason: str | None
    ) -> EventLogEntry:
        return log_entry(event, sip_uri, outcome, reason, self._clock())


_LEFT_TO_EXPIRE = "not deleted at the core, which drops it when its TTL ends"


def _summary(touched: Sequence[Touched]) -> str:
    counts: dict[str, int] = {}
    for each in touched:
        counts[each.verdict.outcome] = counts.get(each.verdict.outcome, 0) + 1
    return ", ".join(f"{count} {outcome}" for outcome, count in sorted(counts.items()))
