"""Applying one event: read the registration, claim it, ask for a token, call the core, record the outcome.

`EventApplier.apply` is the entry point. This module decides an upsert, a delete or a refresh
of one registration (the rules below), and hands the rest to modules of their own, each with its
rules:

    registration_steps  what an event about one registration ends in: a call, a duplicate,
                        or superseded
    claims              the claim before a core call, and an event with no try left
    core_call           the token, the core call, and what each call came to
    recording           the verdict of an outcome, the records and event-log items it becomes
    control_events      disable/enable, suspend/resume, force_refresh of one registration
    consent_events      consent given, consent revoked: every registration of a subscriber
    attempt             what a delivery brings, what one attempt keeps track of, what comes back

The rules, per registration (MSISDN, sip_uri):

- A duplicate (the record remembers the event id) changes nothing.
- An upsert or delete dated more than the allowed skew in the future is `rejected` (it would
  freeze its registration: every later event would look stale). A stale one (`occurred_at` before
  the record's `last_event_at`) changes nothing and is logged `superseded`. Refreshes and consent
  events never move `last_event_*`; a revoke does, so an older upsert cannot bring a revoked
  registration back.
- An upsert that would give its number more than `MAX_REGISTRATIONS_PER_NUMBER` registrations
  not deleted is `rejected` and changes nothing: a producer's fault (a sip_uri made per call)
  would otherwise put thousands on the core, each refreshed every hour.
- **Convergence.** Every save is conditional on the version read. If a save fails after a core
  call (another invocation got to the record: SQS redelivered the group while this one ran), the
  record is read again and the event decided again; when the new decision makes no call of its
  own (superseded, duplicate), the core is first set to what the winning record says it holds,
  and that, too, is confirmed by a conditional save. So after the last event of a number, the
  core holds what its record says. An event that comes back (a redelivery) and makes no call of
  its own does the same, since an earlier delivery may have called the core and died.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sipreg.config import AuthMode
from sipreg.core.port import CoreClient, Operation
from sipreg.events import (
    AnyEvent,
    ConsentedEvent,
    ControlEvent,
    DeleteEvent,
    RefreshEvent,
    RevokeEvent,
    UpsertEvent,
)
from sipreg.models import ApiVersion, RouteSpec, mask_msisdn
from sipreg.store import ConcurrentUpdateError
from sipreg.store.event_log import Outcome
from sipreg.store.registrations import MAX_REGISTRATIONS_PER_NUMBER
from sipreg.store.registrations import RegistrationStatus as Status
from sipreg.tokens import SERVICE_SCOPES, Tokens
from sipreg.worker.attempt import Delivery, EventResult, Run
from sipreg.worker.claims import Claims
from sipreg.worker.consent_events import ConsentEvents
from sipreg.worker.control_events import ControlEvents
from sipreg.worker.core_call import CoreCaller, may_be_on_core, registration_at
from sipreg.worker.journal import Journal
from sipreg.worker.recording import Holds, Recorder, Touched, Verdict
from sipreg.worker.registration_steps import RegistrationSteps

logger = logging.getLogger(__name__)

SAVE_ATTEMPTS = 5  # re-read and decide again when a record changed under us
DEFAULT_MAX_TRIES = 8
DEFAULT_MAX_FUTURE_SKEW = timedelta(minutes=5)
_FIRST_DELIVERY = Delivery()  # no tries before it, not redelivered


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
        max_tries: int = DEFAULT_MAX_TRIES,
        max_future_skew: timedelta = DEFAULT_MAX_FUTURE_SKEW,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._journal = journal
        self._caller = CoreCaller(core=core, tokens=tokens, auth_mode=auth_mode)
        self._recorder = Recorder(clock=clock, max_tries=max_tries, scope=SERVICE_SCOPES[api_version])
        self._claims = Claims(recorder=self._recorder, clock=clock)
        self._consent = ConsentEvents(
            tokens=tokens,
            caller=self._caller,
            recorder=self._recorder,
            claims=self._claims,
            max_tries=max_tries,
        )
        self._steps = RegistrationSteps(
            caller=self._caller,
            recorder=self._recorder,
            claims=self._claims,
            max_tries=max_tries,
            clock=clock,
        )
        self._controls = ControlEvents(steps=self._steps, recorder=self._recorder)
        self._max_tries = max_tries
        self._max_future_skew = max_future_skew
        self._clock = clock

    def apply(
        self, event: AnyEvent, journal: Journal | None = None, delivery: Delivery = _FIRST_DELIVERY
    ) -> EventResult:
        """Applies one event, reading and writing through `journal` (default: the applier's own);
        the worker passes each group a `PrefetchedJournal` holding the records this batch knows."""
        journal = journal or self._journal
        if not isinstance(event, UpsertEvent | DeleteEvent) and self._from_ahead(event):
            # (Upserts and deletes check it past their duplicate check.) A revoke moves its number's
            # clock too: one dated ahead would supersede every later change of the number.
            registration = getattr(event, "registration", None)
            return self._from_the_future(journal, event, registration.sip_uri if registration else None)
        unconfirmed: set[str] = set()
        for _ in range(SAVE_ATTEMPTS):
            run = Run(delivery, frozenset(unconfirmed))
            try:
                return self._apply_once(journal, event, run)
            except ConcurrentUpdateError:
                unconfirmed |= run.called
                logger.info(
                    "a registration of %s changed meanwhile; deciding again%s",
                    mask_msisdn(event.msisdn),
                    " (the core is set to what wins)" if unconfirmed else "",
                    extra={"event_id": event.id},
                )
        if unconfirmed:
            logger.error(
                "%s %s: could not confirm what the core holds after %d attempts; it comes back",
                event.type,
                event.id,
                SAVE_ATTEMPTS,
                extra={"event_id": event.id, "msisdn": mask_msisdn(event.msisdn)},
            )
        return EventResult(Outcome.RETRYING, "the registration kept changing meanwhile", retry=True)

    def _apply_once(self, journal: Journal, event: AnyEvent, run: Run) -> EventResult:
        match event:
            case UpsertEvent():
                spec = event.registration.route()
                return self._one(
                    journal, event, event.registration.sip_uri, Operation.UPSERT, spec=spec, run=run
                )
            case DeleteEvent():
                return self._one(
                    journal, event, event.registration.sip_uri, Operation.DELETE, spec=None, run=run
                )
            case RefreshEvent():
                return self._refresh(journal, event, run)
            case ConsentedEvent():
                return self._consent.consented(journal, event, run)
            case RevokeEvent():
                return self._consent.revoke(journal, event, run)
            case ControlEvent():
                return self._controls.control(journal, event, run)

    # --- one registration: upsert, delete, refresh -----------------------------------------------

    def _one(  # noqa: PLR0911  # one return per rule of the module's docstring
        self,
        journal: Journal,
        event: UpsertEvent | DeleteEvent,
        sip_uri: str,
        operation: Operation,
        *,
        spec: RouteSpec | None,
        run: Run,
    ) -> EventResult:
        record = journal.get(event.msisdn, sip_uri)
        if record is not None and record.seen(event.id):
            return self._steps.duplicate(journal, event, sip_uri, record, run)
        if self._from_ahead(event):
            return self._from_the_future(journal, event, sip_uri)
        if (
            record is not None
            and record.last_event_at is not None
            and event.occurred_at < record.last_event_at
        ):
            reason = (
                f"occurred at {event.occurred_at.isoformat()}, "
                f"before the last event ({record.last_event_at.isoformat()})"
            )
            return self._steps.superseded(journal, event, sip_uri, record, reason=reason, run=run)
        before = record.status if record else None
        if operation is Operation.UPSERT and (record is None or record.status is Status.DELETED):
            held = [r for r in journal.list_for(event.msisdn) if r.status is not Status.DELETED]
            if len(held) >= MAX_REGISTRATIONS_PER_NUMBER:
                return self._over_the_limit(journal, event, sip_uri, len(held))
        if operation is Operation.DELETE and not may_be_on_core(record):
            verdict = Verdict(Outcome.DELETED, Status.DELETED, None, holds=Holds.NOTHING)
            touched = Touched(sip_uri, record, spec, verdict, before)
            return self._recorder.record(journal, event, [touched], run, moves_last_event=True)
        if record is not None and spec is not None and (hold := record.hold(spec)) is not None:
            # The new desired state is recorded, and kept off the core.
            return self._controls.off_core(
                journal, event, record, run, desired=spec, hold=hold, moves_last_event=True
            )
        return self._steps.send(journal, event, sip_uri, record, spec, operation, run, moves_last_event=True)

    def _refresh(self, journal: Journal, event: RefreshEvent, run: Run) -> EventResult:
        sip_uri = event.registration.sip_uri
        record = journal.get(event.msisdn, sip_uri)
        if record is not None and record.seen(event.id):
            return self._steps.duplicate(journal, event, sip_uri, record, run)
        if record is None or record.status is not Status.ACTIVE or record.applied is None:
            reason = "the registration is no longer active"
            return self._steps.superseded(journal, event, sip_uri, record, reason=reason, run=run)
        if record.desired != record.applied:
            reason = "a newer desired state is pending"
            return self._steps.superseded(journal, event, sip_uri, record, reason=reason, run=run)
        if run.delivery.tries_before >= self._max_tries:
            return self._claims.exhausted(
                journal, event, [(sip_uri, record, record.desired, record.status)], run
            )
        registration = registration_at(event.msisdn, sip_uri, record.applied)
        outcome = self._caller.call(event.msisdn, [(Operation.UPSERT, registration)], run, refresh=True)[0]
        verdict = self._recorder.verdict(Operation.UPSERT, outcome)
        if verdict.retry:  # a failed refresh does not make the registration any less wanted
            verdict = replace(verdict, status=Status.ACTIVE)
        elif verdict.status is Status.ACTIVE:
            verdict = replace(verdict, outcome=Outcome.REFRESHED)
        touched = Touched(sip_uri, record, record.desired, verdict, record.status)
        return self._recorder.record(journal, event, [touched], run)

    def _over_the_limit(self, journal: Journal, event: AnyEvent, sip_uri: str, held: int) -> EventResult:
        reason = (
            f"registration.sip_uri: the number has {held} registrations already, the most it may "
            f"have ({MAX_REGISTRATIONS_PER_NUMBER}); delete one first"
        )
        return self._rejected(journal, event, sip_uri, reason)

    def _from_ahead(self, event: AnyEvent) -> bool:
        return event.occurred_at > self._clock() + self._max_future_skew

    def _from_the_future(self, journal: Journal, event: AnyEvent, sip_uri: str | None) -> EventResult:
        reason = (
            f"occurred_at {event.occurred_at.isoformat()} is more than "
            f"{int(self._max_future_skew.total_seconds())} s in the future"
        )
        return self._rejected(journal, event, sip_uri, reason)

    def _rejected(self, journal: Journal, event: AnyEvent, sip_uri: str | None, reason: str) -> EventResult:
        """Refused as it is: only its log item says why; no record changes."""
        journal.write(self._recorder.entry(event, sip_uri, Outcome.REJECTED, reason))
        return EventResult(Outcome.REJECTED, reason)
