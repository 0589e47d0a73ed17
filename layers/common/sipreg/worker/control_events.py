"""Control events of one registration: disable/enable (operator), suspend/resume (endpoint
health), force_refresh (operator). They change whether the desired state is on the core, never
the desired state.

- A hold (disabled, suspended) keeps the desired state recorded and the registration off the
  core: deleted there if the core may hold it, its status the hold's. An upsert to a held
  registration is kept the same way.
- A release (or a forced refresh of what is not held) sends the desired state to the core, or
  deletes what the core may hold when there is none; a control that changes nothing is
  `superseded`, one naming no registration `rejected`.
"""

from __future__ import annotations

from sipreg.core.port import Operation
from sipreg.events import (
    AnyControlEvent,
    AnyEvent,
    ControlEvent,
    DisableEvent,
    EnableEvent,
    ForceRefreshEvent,
    ResumeEvent,
    SuspendEvent,
)
from sipreg.models import RouteSpec, mask_msisdn
from sipreg.store.event_log import Outcome
from sipreg.store.registrations import RegistrationRecord
from sipreg.store.registrations import RegistrationStatus as Status
from sipreg.worker.attempt import EventResult, Run
from sipreg.worker.core_call import may_be_on_core
from sipreg.worker.journal import Journal
from sipreg.worker.recording import Holds, Recorder, Touched, Verdict
from sipreg.worker.registration_steps import RegistrationSteps, hold_reason


class ControlEvents:
    """Applies control events, and keeps a held registration off the core. Thread-safe: no state
    between calls."""

    def __init__(self, *, steps: RegistrationSteps, recorder: Recorder) -> None:
        self._steps = steps
        self._recorder = recorder

    def control(self, journal: Journal, event: AnyControlEvent, run: Run) -> EventResult:  # noqa: PLR0911  # one per case
        """Disable/enable (operator), suspend/resume (endpoint health), force_refresh (operator):
        they change whether the desired state is on the core, never the desired state."""
        sip_uri = event.registration.sip_uri
        record = journal.get(event.msisdn, sip_uri)
        if record is not None and record.seen(event.id):
            return self._steps.duplicate(journal, event, sip_uri, record, run)
        if record is None:
            reason = f"{mask_msisdn(event.msisdn)} has no registration at {sip_uri}"
            journal.write(self._recorder.entry(event, sip_uri, Outcome.REJECTED, reason))
            return EventResult(Outcome.REJECTED, reason)
        held = record.model_copy(update=_FLAGS.get(type(event), {}))
        hold = held.hold()
        if hold is not None:  # disabled, suspended, or a refresh of what is held
            if isinstance(event, ForceRefreshEvent):
                return self._steps.superseded(
                    journal, event, sip_uri, record, reason=f"{hold}: not sent", run=run
                )
            return self.off_core(journal, event, held, run, desired=held.desired, hold=hold)
        if record.hold() is None and not isinstance(event, ForceRefreshEvent):
            # Nothing was held and nothing is: enable of what was not disabled, a suspended Fallback.
            reason = "not disabled" if isinstance(event, EnableEvent) else "nothing held"
            if isinstance(event, SuspendEvent):
                reason = f"a {held.desired.route_type if held.desired else 'deleted'} registration stays"
            return self._steps.superseded(journal, event, sip_uri, held, reason=reason, run=run)
        # Released (or forced): the desired state goes to the core, or what it may hold leaves it.
        if held.desired is None and not may_be_on_core(held):
            verdict = Verdict(Outcome.DELETED, Status.DELETED, None, holds=Holds.NOTHING)
            return self._recorder.record(
                journal, event, [Touched(sip_uri, held, None, verdict, record.status)], run
            )
        operation = Operation.UPSERT if held.desired is not None else Operation.DELETE
        return self._steps.send(journal, event, sip_uri, held, held.desired, operation, run)

    def off_core(
        self,
        journal: Journal,
        event: AnyEvent,
        record: RegistrationRecord,
        run: Run,
        *,
        desired: RouteSpec | None,
        hold: Status,
        moves_last_event: bool = False,
    ) -> EventResult:
        """Keeps `desired` recorded and the registration off the core (deleted there if the core
        may hold it); its status becomes the hold's."""
        if may_be_on_core(record):
            return self._steps.send(
                journal, event, record.sip_uri, record, desired, Operation.DELETE, run,
                moves_last_event=moves_last_event, hold=hold,
            )  # fmt: skip
        verdict = Verdict(Outcome(hold.value), hold, hold_reason(event, hold), holds=Holds.NOTHING)
        touched = Touched(record.sip_uri, record, desired, verdict, record.status)
        return self._recorder.record(journal, event, [touched], run, moves_last_event=moves_last_event)


# What each control event sets on the record (force_refresh sets nothing).
_FLAGS: dict[type[ControlEvent], dict[str, bool]] = {
    DisableEvent: {"disabled": True},
    EnableEvent: {"disabled": False},
    SuspendEvent: {"suspended": True},
    ResumeEvent: {"suspended": False},
}
