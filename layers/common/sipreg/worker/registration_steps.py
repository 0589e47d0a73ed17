"""What an event about one registration ends in, whichever its kind (upsert, delete, refresh,
or a control event): a core call, or nothing but a duplicate or a `superseded` line.

- `send` claims the registration, calls the core and records the verdict, or, with no try left,
  dead-letters the event without a call.
- A duplicate or superseded event that may have called the core before (an earlier attempt's
  save failed, or this is a redelivery) first sets the core to what the record says it holds:
  the convergence rule in `apply`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from sipreg.core.port import Applied, Deleted, Operation, Rejected
from sipreg.events import AnyEvent, ControlEvent
from sipreg.models import RouteSpec
from sipreg.store.event_log import Outcome
from sipreg.store.registrations import RegistrationRecord
from sipreg.store.registrations import RegistrationStatus as Status
from sipreg.worker.attempt import EventResult, Run
from sipreg.worker.claims import Claims
from sipreg.worker.core_call import CoreCaller, TokenRefused, known_spec, registration_at
from sipreg.worker.journal import Journal
from sipreg.worker.recording import Recorder, Touched


class RegistrationSteps:
    """The steps shared by every event about one registration. Thread-safe: no state between calls."""

    def __init__(
        self,
        *,
        caller: CoreCaller,
        recorder: Recorder,
        claims: Claims,
        max_tries: int,
        clock: Callable[[], datetime],
    ) -> None:
        self._caller = caller
        self._recorder = recorder
        self._claims = claims
        self._max_tries = max_tries
        self._clock = clock

    def send(  # noqa: PLR0917  # the one path every core-changing single event takes
        self,
        journal: Journal,
        event: AnyEvent,
        sip_uri: str,
        record: RegistrationRecord | None,
        desired: RouteSpec | None,
        operation: Operation,
        run: Run,
        *,
        moves_last_event: bool = False,
        hold: Status | None = None,
    ) -> EventResult:
        """Claims the registration, calls the core, records the verdict (as `hold`'s status, when
        the call took it off the core for a hold)."""
        before = record.status if record else None
        if run.delivery.tries_before >= self._max_tries:
            return self._claims.exhausted(journal, event, [(sip_uri, record, desired, before)], run)
        [claimed] = self._claims.claim(journal, event, [(sip_uri, record, desired, operation)], run)
        # A delete names the registration as the core knows it: by what it was sent.
        sent = desired if operation is Operation.UPSERT else known_spec(record)
        registration = registration_at(event.msisdn, sip_uri, sent)
        outcome = self._caller.call(event.msisdn, [(operation, registration)], run)[0]
        verdict = self._recorder.verdict(operation, outcome)
        if hold is not None and not verdict.retry:
            # Deleted, or left to expire (no token): off the core either way, and held.
            note = hold_reason(event, hold) + (f"; {verdict.reason}" if verdict.reason else "")
            verdict = replace(verdict, outcome=Outcome(hold.value), status=hold, reason=note)
        touched = Touched(sip_uri, claimed, desired, verdict, before)
        return self._recorder.record(journal, event, [touched], run, moves_last_event=moves_last_event)

    def duplicate(
        self, journal: Journal, event: AnyEvent, sip_uri: str, record: RegistrationRecord, run: Run
    ) -> EventResult:
        if run.must_converge(sip_uri):
            failed = self._converge(event.msisdn, sip_uri, record, run)
            if failed is not None:
                return failed
            journal.commit([(record.model_copy(update={"updated_at": self._clock()}), record.version)], [])
        return EventResult(Outcome.DUPLICATE)

    def superseded(
        self,
        journal: Journal,
        event: AnyEvent,
        sip_uri: str,
        record: RegistrationRecord | None,
        *,
        reason: str,
        run: Run,
    ) -> EventResult:
        """Changes nothing but remembering the id (a redelivery is then a duplicate) and the log item;
        first, if this event may have called the core before, the core is set to what the record says."""
        if run.must_converge(sip_uri):
            failed = self._converge(event.msisdn, sip_uri, record, run)
            if failed is not None:
                return failed
        entry = self._recorder.entry(event, sip_uri, Outcome.SUPERSEDED, reason)
        saves = [] if record is None else [(self._recorder.remember(record, event), record.version)]
        journal.commit(saves, [entry])
        return EventResult(Outcome.SUPERSEDED, reason)

    def _converge(
        self, msisdn: str, sip_uri: str, record: RegistrationRecord | None, run: Run
    ) -> EventResult | None:
        """Sets the core to what `record` says it holds (nothing, if no record); None when done."""
        spec = record.applied if record is not None else None
        operation = Operation.UPSERT if spec is not None else Operation.DELETE
        registration = registration_at(msisdn, sip_uri, spec or known_spec(record))
        outcome = self._caller.call(msisdn, [(operation, registration)], run)[0]
        if isinstance(outcome, Applied | Deleted | Rejected | TokenRefused):
            # Done, or not possible at all (no token, refused): nothing more this event can do.
            return None
        return EventResult(
            Outcome.RETRYING, f"setting the core to the recorded state failed: {outcome}", retry=True
        )


def hold_reason(event: AnyEvent, hold: Status) -> str:
    """The hold, with the control event's reason when it gave one."""
    why = event.reason if isinstance(event, ControlEvent) else None
    return f"{hold}: {why}" if why else str(hold)
