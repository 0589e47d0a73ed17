"""Applying one event: read the registration, ask for a token, call the core, record the outcome.

The rules, per registration (MSISDN, sip_uri):

- A duplicate (the record remembers the event id) changes nothing and writes nothing.
- A stale upsert or delete (`occurred_at` before the record's `last_event_at`) changes nothing and
  is logged `superseded`. Refreshes and consent events never move `last_event_*`: they stay the
  newest desired-state event (id, type, time), so a CRM event the producer sent late is judged
  against other CRM events only. A revoke moves it, so an older upsert cannot bring a revoked
  registration back.
- Outcomes: applied -> active (expires_at from the TTL the core gave); deleted -> deleted;
  NOT_ACCEPTABLE -> rejected (the core's reason); no consent -> awaiting_consent; consent revoked
  or `invalid_grant` -> consent_revoked; UNAUTHENTICATED -> the token is refreshed once and the
  call repeated at once; PERMISSION_DENIED -> failed, naming the scope; anything transient ->
  the record keeps the intent and the error, and the event is retried (`EventResult.retry`).
- Every event leaves one event-log line per registration it touched, written in the same
  DynamoDB transaction as the record (a consent or revoke event touches several).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Protocol

from sipreg.config import AuthMode
from sipreg.core import (
    Applied,
    CoreCall,
    CoreClient,
    CoreOutcome,
    Deleted,
    Operation,
    PermissionDenied,
    Rejected,
    Transient,
    Unauthenticated,
)
from sipreg.events import (
    AnyEvent,
    ConsentedEvent,
    DeleteEvent,
    RefreshEvent,
    RevokeEvent,
    UpsertEvent,
)
from sipreg.models import ApiVersion, Registration, mask_msisdn
from sipreg.notify import StatusChange
from sipreg.store import ConcurrentUpdateError
from sipreg.store.event_log import EventLogEntry
from sipreg.store.registrations import (
    RECENT_EVENT_IDS,
    RecordKey,
    RegistrationRecord,
    RegistrationStatus,
    RouteSpec,
)
from sipreg.tokens import SERVICE_SCOPES, ConsentMissing, ConsentRevoked, TokenError, Tokens

logger = logging.getLogger(__name__)

Status = RegistrationStatus
DEFAULT_TTL_SECONDS = 3600.0  # the core's documented TTL, when an answer does not say
SAVE_ATTEMPTS = 3  # re-read and decide again when a record changed under us


class Journal(Protocol):
    """The registrations and their event log, as the worker needs them."""

    def get(self, msisdn: str, sip_uri: str) -> RegistrationRecord | None: ...

    def get_many(self, keys: Collection[RecordKey]) -> dict[RecordKey, RegistrationRecord | None]:
        """The records of these keys in one read, None where there is none; a key it could not
        read (e.g. throttled) is left out."""
        ...

    def list_for(self, msisdn: str) -> list[RegistrationRecord]: ...

    def commit(
        self, saves: Sequence[tuple[RegistrationRecord, int | None]], entries: Sequence[EventLogEntry]
    ) -> list[RegistrationRecord]:
        """Saves the records (each expecting the version it was read at) and appends the lines,
        all or nothing; raises ConcurrentUpdateError when a record changed meanwhile. Returns
        the records as saved (with their new versions)."""
        ...

    def append(self, entry: EventLogEntry) -> None: ...


@dataclass(frozen=True)
class EventResult:
    """What became of one event: its event-log outcome, and whether the message must come back."""

    outcome: str
    reason: str | None = None
    retry: bool = False
    changes: tuple[StatusChange, ...] = ()


# --- what a call (or the token before it) came to -------------------------------------------------


@dataclass(frozen=True)
class _TokenRefused:
    """No token: the subscriber's consent is missing or revoked (permanent for this event)."""

    status: Status
    reason: str


@dataclass(frozen=True)
class _Retry:
    """No definite answer before the core could be asked (e.g. the identity server is down)."""

    reason: str


Attempt = CoreOutcome | _TokenRefused | _Retry


class Holds(StrEnum):
    """What the core holds of the registration after an attempt, as far as we know."""

    SENT = "sent"  # what was just sent (applied := desired), until expires_at
    NOTHING = "nothing"
    UNCHANGED = "unchanged"  # whatever it held before


@dataclass(frozen=True)
class _Verdict:
    """How one registration's record changes after an attempt."""

    outcome: str  # the event-log outcome
    status: Status
    reason: str | None
    retry: bool = False
    holds: Holds = Holds.UNCHANGED
    expires_at: datetime | None = None  # with Holds.SENT


@dataclass(frozen=True)
class _Touched:
    """One registration an event touched: its record as read, what it should be now, the verdict."""

    sip_uri: str
    record: RegistrationRecord | None
    desired: RouteSpec | None
    verdict: _Verdict


class EventApplier:
    """Applies events to the core and records them. Thread-safe: no state between calls."""

    def __init__(
        self,
        *,
        journal: Journal,
        core: CoreClient,
        tokens: Tokens,
        auth_mode: AuthMode,
        api_version: ApiVersion,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._journal = journal
        self._core = core
        self._tokens = tokens
        self._auth_mode = auth_mode
        self._scope = SERVICE_SCOPES[api_version]
        self._clock = clock

    def apply(self, event: AnyEvent, journal: Journal | None = None) -> EventResult:
        """Applies one event, reading and writing through `journal` (default: the applier's own);
        the worker passes each group a `PrefetchedJournal` holding the records this batch knows."""
        journal = journal or self._journal
        for _ in range(SAVE_ATTEMPTS):
            try:
                return self._apply_once(journal, event)
            except ConcurrentUpdateError:
                logger.info(
                    "a registration of %s changed meanwhile; deciding again", mask_msisdn(event.msisdn)
                )
        return EventResult("retrying", "the registration kept changing meanwhile", retry=True)

    def _apply_once(self, journal: Journal, event: AnyEvent) -> EventResult:
        match event:
            case UpsertEvent():
                spec = RouteSpec.model_validate(event.registration.model_dump(exclude={"sip_uri"}))
                return self._one(journal, event, event.registration.sip_uri, Operation.UPSERT, spec)
            case DeleteEvent():
                return self._one(journal, event, event.registration.sip_uri, Operation.DELETE, None)
            case RefreshEvent():
                return self._refresh(journal, event)
            case ConsentedEvent():
                return self._consented(journal, event)
            case RevokeEvent():
                return self._revoke(journal, event)

    # --- one registration: upsert, delete, refresh ---------------------------------------------

    def _one(
        self,
        journal: Journal,
        event: UpsertEvent | DeleteEvent,
        sip_uri: str,
        operation: Operation,
        spec: RouteSpec | None,
    ) -> EventResult:
        record = journal.get(event.msisdn, sip_uri)
        if record is not None and record.seen(event.id):
            return EventResult("duplicate")
        if (
            record is not None
            and record.last_event_at is not None
            and event.occurred_at < record.last_event_at
        ):
            reason = (
                f"occurred at {event.occurred_at.isoformat()}, "
                f"before the last event ({record.last_event_at.isoformat()})"
            )
            return self._superseded(journal, event, sip_uri, record, reason)
        if operation is Operation.DELETE and not _may_be_on_core(record):
            verdict = _Verdict("deleted", Status.DELETED, None, holds=Holds.NOTHING)
        else:
            registration = _registration(event.msisdn, sip_uri, spec or _known_spec(record))
            verdict = self._verdict(operation, self._call(event.msisdn, [(operation, registration)])[0])
        return self._record(journal, event, [_Touched(sip_uri, record, spec, verdict)], moves_last_event=True)

    def _refresh(self, journal: Journal, event: RefreshEvent) -> EventResult:
        sip_uri = event.registration.sip_uri
        record = journal.get(event.msisdn, sip_uri)
        if record is not None and record.seen(event.id):
            return EventResult("duplicate")
        if record is None or record.status is not Status.ACTIVE or record.applied is None:
            return self._superseded(journal, event, sip_uri, record, "the registration is no longer active")
        if record.desired != record.applied:
            return self._superseded(journal, event, sip_uri, record, "a newer desired state is pending")
        registration = _registration(event.msisdn, sip_uri, record.applied)
        outcome = self._call(event.msisdn, [(Operation.UPSERT, registration)])[0]
        verdict = self._verdict(Operation.UPSERT, outcome)
        if verdict.retry:  # a failed refresh does not make the registration any less wanted
            verdict = replace(verdict, status=Status.ACTIVE)
        elif verdict.status is Status.ACTIVE:
            verdict = replace(verdict, outcome="refreshed")
        touched = _Touched(sip_uri, record, record.desired, verdict)
        return self._record(journal, event, [touched], moves_last_event=False)

    def _superseded(
        self, journal: Journal, event: AnyEvent, sip_uri: str, record: RegistrationRecord | None, reason: str
    ) -> EventResult:
        """Changes nothing but remembering the id (a redelivery is then a duplicate) and the log line."""
        entry = self._entry(event, sip_uri, "superseded", reason)
        saves = [] if record is None else [(_remember(record, event.id, self._clock()), record.version)]
        journal.commit(saves, [entry])
        return EventResult("superseded", reason)

    # --- every registration of a subscriber: consent given, consent revoked ----------------------

    def _consented(self, journal: Journal, event: ConsentedEvent) -> EventResult:
        waiting = [
            (record, record.desired)
            for record in journal.list_for(event.msisdn)
            if record.desired is not None
            and record.status in _WAITING_FOR_CONSENT
            and not record.seen(event.id)
        ]
        if not waiting:
            reason = "no registration waits for consent"
            journal.append(self._entry(event, None, "nothing_waiting", reason))
            return EventResult("nothing_waiting", reason)
        calls = [(Operation.UPSERT, _registration(event.msisdn, r.sip_uri, spec)) for r, spec in waiting]
        outcomes = self._call(event.msisdn, calls)
        touched = [
            _Touched(record.sip_uri, record, spec, self._verdict(Operation.UPSERT, outcome))
            for (record, spec), outcome in zip(waiting, outcomes, strict=True)
        ]
        return self._record(journal, event, touched, moves_last_event=False)

    def _revoke(self, journal: Journal, event: RevokeEvent) -> EventResult:
        records = [r for r in journal.list_for(event.msisdn) if not r.seen(event.id)]
        on_core = [r for r in records if _may_be_on_core(r)]
        calls = [(Operation.DELETE, _registration(event.msisdn, r.sip_uri, _known_spec(r))) for r in on_core]
        outcomes = self._call(event.msisdn, calls)
        by_uri = {r.sip_uri: outcome for r, outcome in zip(on_core, outcomes, strict=True)}
        touched = [
            _Touched(r.sip_uri, r, None, self._revoked_verdict(by_uri.get(r.sip_uri))) for r in records
        ]
        result = self._record(journal, event, touched, moves_last_event=True) if touched else None
        if result is not None and result.retry:
            return result  # the tokens are still needed to delete what is left
        try:
            self._tokens.revoke(event.msisdn)
        except ConsentMissing:
            pass  # nothing to revoke (client mode, or never consented)
        except TokenError as error:
            return EventResult("retrying", f"revoking the tokens failed: {error}", retry=True)
        deleted = sum(1 for outcome in outcomes if isinstance(outcome, Deleted))
        reason = f"tokens revoked; {deleted} registration(s) deleted at the core"
        journal.append(self._entry(event, None, "consent_revoked", reason))
        return EventResult("consent_revoked", reason, changes=result.changes if result else ())

    def _revoked_verdict(self, outcome: Attempt | None) -> _Verdict:
        revoked = _Verdict("consent_revoked", Status.CONSENT_REVOKED, None, holds=Holds.NOTHING)
        if outcome is None or isinstance(outcome, Deleted):
            return revoked
        verdict = self._verdict(Operation.DELETE, outcome)
        if verdict.retry:
            return verdict
        # No token, or the core refused: it drops the registration itself when its TTL ends.
        return replace(revoked, reason=verdict.reason, holds=Holds.UNCHANGED)

    # --- calls ---------------------------------------------------------------------------------

    def _call(self, msisdn: str, calls: Sequence[tuple[Operation, Registration]]) -> list[Attempt]:
        """The outcome of each call; a refused token is refreshed once and those calls repeated."""
        if not calls:
            return []
        token = self._token(msisdn, force=False)
        if not isinstance(token, str):
            return [token] * len(calls)
        results: list[Attempt] = list(self._core.apply_many([CoreCall(op, reg, token) for op, reg in calls]))
        refused = [index for index, outcome in enumerate(results) if isinstance(outcome, Unauthenticated)]
        if refused:
            fresh = self._token(msisdn, force=True)
            if not isinstance(fresh, str):
                for index in refused:
                    results[index] = fresh
                return results
            again = self._core.apply_many([CoreCall(calls[i][0], calls[i][1], fresh) for i in refused])
            for index, outcome in zip(refused, again, strict=True):
                results[index] = outcome
        return results

    def _token(self, msisdn: str, *, force: bool) -> str | _TokenRefused | _Retry:
        try:
            if self._auth_mode is AuthMode.CLIENT:
                return self._tokens.product_token(force_refresh=force)
            return self._tokens.access_token_for(msisdn, force_refresh=force)
        except ConsentMissing as error:
            return _TokenRefused(Status.AWAITING_CONSENT, f"waiting for consent: {error}")
        except ConsentRevoked as error:
            return _TokenRefused(Status.CONSENT_REVOKED, str(error))
        except TokenError as error:  # identity server unreachable or refusing this client: retry
            return _Retry(f"no token: {type(error).__name__}: {error}")

    def _verdict(self, operation: Operation, outcome: Attempt) -> _Verdict:  # noqa: PLR0911  # one per kind
        pending = Status.PENDING if operation is Operation.UPSERT else Status.DELETING
        match outcome:
            case Applied(ttl_seconds=ttl):
                lives = timedelta(seconds=ttl or DEFAULT_TTL_SECONDS)
                return _Verdict(
                    "active", Status.ACTIVE, None, holds=Holds.SENT, expires_at=self._clock() + lives
                )
            case Deleted():
                return _Verdict("deleted", Status.DELETED, None, holds=Holds.NOTHING)
            case Rejected(message=message):
                return _Verdict("rejected", Status.REJECTED, message)
            case PermissionDenied(detail=detail):
                reason = f"the token lacks the scope {self._scope} (PERMISSION_DENIED: {detail})"
                return _Verdict("failed", Status.FAILED, reason)
            case Unauthenticated(detail=detail):
                reason = f"UNAUTHENTICATED after a token refresh: {detail}"
                return _Verdict("retrying", pending, reason, retry=True)
            case Transient(code=code, detail=detail):
                return _Verdict("retrying", pending, f"{code}: {detail}", retry=True)
            case _TokenRefused(status=status, reason=reason) if operation is Operation.DELETE:
                # Without a token nothing can be deleted; the core drops it when its TTL ends.
                gone = Status.DELETED if status is Status.AWAITING_CONSENT else status
                return _Verdict(gone.value, gone, f"{reason}; {_LEFT_TO_EXPIRE}")
            case _TokenRefused(status=status, reason=reason):
                return _Verdict(status.value, status, reason)
            case _Retry(reason=reason):
                return _Verdict("retrying", pending, reason, retry=True)

    # --- recording -----------------------------------------------------------------------------

    def _record(
        self,
        journal: Journal,
        event: AnyEvent,
        touched: Sequence[_Touched],
        *,
        moves_last_event: bool,
    ) -> EventResult:
        now = self._clock()
        saves: list[tuple[RegistrationRecord, int | None]] = []
        entries: list[EventLogEntry] = []
        changes: list[StatusChange] = []
        for each in touched:
            record, verdict = each.record, each.verdict
            updated = self._updated(event, each, now, moves_last_event=moves_last_event)
            saves.append((updated, record.version if record else None))
            entries.append(self._entry(event, each.sip_uri, verdict.outcome, verdict.reason))
            old = record.status if record else None
            if old is not updated.status:
                changes.append(
                    StatusChange(
                        msisdn=event.msisdn,
                        sip_uri=each.sip_uri,
                        old_status=old.value if old else None,
                        new_status=updated.status.value,
                        reason=verdict.reason,
                        event_id=event.id,
                        event_type=event.type.value,
                        changed_at=now,
                    )
                )
        journal.commit(saves, entries)
        retry = [each.verdict for each in touched if each.verdict.retry]
        if retry:
            return EventResult("retrying", retry[0].reason, retry=True, changes=tuple(changes))
        if len(touched) == 1:
            only = touched[0].verdict
            return EventResult(only.outcome, only.reason, changes=tuple(changes))
        return EventResult(_summary(touched), changes=tuple(changes))

    def _updated(
        self, event: AnyEvent, touched: _Touched, now: datetime, *, moves_last_event: bool
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
        if verdict.retry:
            return base.model_copy(update=fields)  # not remembered: the retry must not look like a duplicate
        if moves_last_event:  # the newest desired-state event: the stale guard's reference
            last = base.last_event_at
            fields["last_event_at"] = event.occurred_at if last is None else max(last, event.occurred_at)
            fields.update(last_event_id=event.id, last_event_type=event.type.value)
        return _remember(base.model_copy(update=fields), event.id, now)

    def _entry(self, event: AnyEvent, sip_uri: str | None, outcome: str, reason: str | None) -> EventLogEntry:
        return EventLogEntry(
            msisdn=event.msisdn,
            event_id=event.id,
            event_type=event.type.value,
            outcome=outcome,
            reason=reason,
            sip_uri=sip_uri,
            recorded_at=self._clock(),
        )


_LEFT_TO_EXPIRE = "not deleted at the core, which drops it when its TTL ends"
_WAITING_FOR_CONSENT = frozenset({Status.AWAITING_CONSENT, Status.CONSENT_REVOKED, Status.FAILED})


def _may_be_on_core(record: RegistrationRecord | None) -> bool:
    """Whether the core may hold it: applied, or an attempt of unknown outcome, or no history here."""
    return record is None or record.applied is not None or record.status in (Status.PENDING, Status.DELETING)


def _known_spec(record: RegistrationRecord | None) -> RouteSpec:
    """The parameters a delete names the registration with (the core keys it by MSISDN + sip_uri)."""
    if record is not None and (record.applied or record.desired):
        return record.applied or record.desired  # type: ignore[return-value]  # one is set
    return _ANY_ROUTE


_ANY_ROUTE = RouteSpec(route_type="fork")  # type: ignore[arg-type]  # the core ignores it on delete


def _registration(msisdn: str, sip_uri: str, spec: RouteSpec | None) -> Registration:
    spec = spec or _ANY_ROUTE
    return Registration(msisdn=msisdn, sip_uri=sip_uri, **spec.model_dump())


def _remember(record: RegistrationRecord, event_id: str, now: datetime) -> RegistrationRecord:
    recent = (*record.recent_event_ids, event_id)[-RECENT_EVENT_IDS:]
    return record.model_copy(update={"recent_event_ids": recent, "updated_at": now})


def _summary(touched: Sequence[_Touched]) -> str:
    counts: dict[str, int] = {}
    for each in touched:
        counts[each.verdict.outcome] = counts.get(each.verdict.outcome, 0) + 1
    return ", ".join(f"{count} {outcome}" for outcome, count in sorted(counts.items()))
