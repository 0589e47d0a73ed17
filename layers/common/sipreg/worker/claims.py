"""Claims and tries: what an event writes before a core call, and an event with no try left.

- Before a core call that changes what the core holds (upsert, delete, consent, revoke), the
  record is **claimed** in one write with the event's log item: status pending/deleting,
  `in_flight` naming the event, the item `applying` with one more try. A worker that dies after
  the call leaves that trace: the status API shows it, a later delete still goes to the core, and
  the event's tries count the attempt (so an event that kills its worker is dead-lettered too).
  Refreshes re-send what the record already says the core holds, so they claim nothing.
- An event whose tries were all used in earlier deliveries (their workers died, or the last
  failure was not recorded as final) makes no call: it is dead-lettered without another.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime

from sipreg.core.port import Operation
from sipreg.events import AnyEvent, ConsentedEvent, RevokeEvent
from sipreg.models import RouteSpec
from sipreg.store.event_log import Outcome
from sipreg.store.registrations import InFlight, RegistrationRecord
from sipreg.store.registrations import RegistrationStatus as Status
from sipreg.worker.attempt import EventResult, Run
from sipreg.worker.journal import Journal
from sipreg.worker.recording import Recorder, Touched, Verdict


class Claims:
    """Claims registrations for an event's core call, and records an event that has no try left.
    Thread-safe: no state between calls."""

    def __init__(self, *, recorder: Recorder, clock: Callable[[], datetime]) -> None:
        self._recorder = recorder
        self._clock = clock

    def claim(
        self,
        journal: Journal,
        event: AnyEvent,
        claims: Sequence[tuple[str, RegistrationRecord | None, RouteSpec | None, Operation]],
        run: Run,
    ) -> list[RegistrationRecord]:
        """Marks the registrations as in flight for this event, and its log items `applying` with
        one more try, in one conditional write; the claimed records (their new versions)."""
        now = self._clock()
        saves: list[tuple[RegistrationRecord, int | None]] = []
        for sip_uri, record, spec, operation in claims:
            base = record or RegistrationRecord(
                msisdn=event.msisdn, sip_uri=sip_uri, status=Status.PENDING, updated_at=now
            )
            status = Status.PENDING if operation is Operation.UPSERT else Status.DELETING
            claimed = base.model_copy(
                update={
                    "status": status,
                    "desired": spec,
                    "in_flight": InFlight(event_id=event.id, since=now),
                    "updated_at": now,
                }
            )
            saves.append((claimed, record.version if record else None))
        entries = [
            self._recorder.entry(event, sip_uri, Outcome.APPLYING, "the core is being called")
            for sip_uri, *_ in claims
        ]
        if len(claims) > 1 or isinstance(event, ConsentedEvent | RevokeEvent):
            entries.append(
                self._recorder.entry(event, None, Outcome.APPLYING, f"{len(claims)} registration(s)")
            )
        saved = journal.commit(saves, entries, count_try=True)
        run.tries = run.delivery.tries_before + 1
        return saved

    def exhausted(
        self,
        journal: Journal,
        event: AnyEvent,
        registrations: Sequence[tuple[str, RegistrationRecord | None, RouteSpec | None, Status | None]],
        run: Run,
    ) -> EventResult:
        """Every try was used in earlier deliveries (their workers died, or the last failure was not
        recorded as final): dead-lettered without another."""
        run.tries = run.delivery.tries_before
        verdict = Verdict(Outcome.RETRYING, Status.PENDING, "no try left", retry=True)
        touched = [
            Touched(
                sip_uri,
                record,
                spec,
                replace(verdict, status=record.status if record else Status.PENDING),
                before,
            )
            for sip_uri, record, spec, before in registrations
        ]
        return self._recorder.record(journal, event, touched, run)
