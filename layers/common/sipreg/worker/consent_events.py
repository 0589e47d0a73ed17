"""Subscriber-wide events: consent given, consent revoked. Each touches every registration of
the MSISDN that it concerns, and leaves a log item of its own besides theirs.

- A consent sends, in one claim and one call, the desired state of every registration waiting
  for it (awaiting consent, consent revoked or failed; not held).
- A revoke deletes at the core every registration the core may hold, records them all
  `consent_revoked` (moving `last_event_*`), then revokes the subscriber's tokens; if that fails,
  the event is retried like any other.
"""

from __future__ import annotations

from dataclasses import replace

from sipreg.core.port import Deleted, Operation
from sipreg.events import ConsentedEvent, RevokeEvent
from sipreg.store.event_log import Outcome
from sipreg.store.registrations import RegistrationStatus as Status
from sipreg.tokens import TokenError, Tokens
from sipreg.worker.attempt import EventResult, Run
from sipreg.worker.claims import Claims
from sipreg.worker.core_call import CallOutcome, CoreCaller, known_spec, may_be_on_core, registration_at
from sipreg.worker.journal import Journal
from sipreg.worker.recording import Holds, Recorder, Touched, Verdict

_WAITING_FOR_CONSENT = frozenset({Status.AWAITING_CONSENT, Status.CONSENT_REVOKED, Status.FAILED})


class ConsentEvents:
    """Applies consent and revoke events. Thread-safe: no state between calls."""

    def __init__(
        self, *, tokens: Tokens, caller: CoreCaller, recorder: Recorder, claims: Claims, max_tries: int
    ) -> None:
        self._tokens = tokens
        self._caller = caller
        self._recorder = recorder
        self._claims = claims
        self._max_tries = max_tries

    def consented(self, journal: Journal, event: ConsentedEvent, run: Run) -> EventResult:
        waiting = [
            record
            for record in journal.list_for(event.msisdn)
            if record.desired is not None
            and record.status in _WAITING_FOR_CONSENT
            and record.hold() is None
            and not record.seen(event.id)
        ]
        if not waiting:
            reason = "no registration waits for consent"
            journal.write(self._recorder.entry(event, None, Outcome.NOTHING_WAITING, reason))
            return EventResult(Outcome.NOTHING_WAITING, reason)
        if run.delivery.tries_before >= self._max_tries:
            return self._claims.exhausted(
                journal, event, [(r.sip_uri, r, r.desired, r.status) for r in waiting], run
            )
        claimed = self._claims.claim(
            journal, event, [(r.sip_uri, r, r.desired, Operation.UPSERT) for r in waiting], run
        )
        calls = [(Operation.UPSERT, registration_at(event.msisdn, r.sip_uri, r.desired)) for r in claimed]
        outcomes = self._caller.call(event.msisdn, calls, run)
        touched = [
            Touched(c.sip_uri, c, c.desired, self._recorder.verdict(Operation.UPSERT, outcome), r.status)
            for r, c, outcome in zip(waiting, claimed, outcomes, strict=True)
        ]
        return self._recorder.record(journal, event, touched, run)

    def revoke(self, journal: Journal, event: RevokeEvent, run: Run) -> EventResult:
        records = [r for r in journal.list_for(event.msisdn) if not r.seen(event.id)]
        on_core = [r for r in records if may_be_on_core(r)]
        if on_core and run.delivery.tries_before >= self._max_tries:
            return self._claims.exhausted(
                journal, event, [(r.sip_uri, r, None, r.status) for r in on_core], run
            )
        claimed = {
            c.sip_uri: c
            for c in (
                self._claims.claim(
                    journal, event, [(r.sip_uri, r, None, Operation.DELETE) for r in on_core], run
                )
                if on_core
                else []
            )
        }
        calls = [
            (Operation.DELETE, registration_at(event.msisdn, r.sip_uri, known_spec(r)))
            for r in claimed.values()
        ]
        outcomes = self._caller.call(event.msisdn, calls, run)
        by_uri = dict(zip(claimed, outcomes, strict=True))
        touched = [
            Touched(
                r.sip_uri,
                claimed.get(r.sip_uri, r),
                None,
                self._revoked_verdict(by_uri.get(r.sip_uri)),
                r.status,
            )
            for r in records
        ]
        result = (
            self._recorder.record(journal, event, touched, run, moves_last_event=True) if touched else None
        )
        if result is not None and result.retry:
            return result  # the tokens are still needed to delete what is left
        try:
            self._tokens.revoke(event.msisdn)  # marks it revoked even with no consent on record
        except TokenError as error:
            # The attempt counts here unless its claim already counted it.
            counted_now = run.tries == 0
            tries = run.tries or run.delivery.tries_before + 1
            reason = f"revoking the tokens failed: {error}"
            if tries >= self._max_tries:
                reason = f"dead-lettered after {tries} tries: {reason}"
                journal.write(
                    self._recorder.entry(event, None, Outcome.DEAD_LETTERED, reason), count_try=counted_now
                )
                return EventResult(Outcome.DEAD_LETTERED, reason, dead_letter=True)
            journal.write(self._recorder.entry(event, None, Outcome.RETRYING, reason), count_try=counted_now)
            return EventResult(Outcome.RETRYING, reason, retry=True)
        deleted = sum(1 for outcome in outcomes if isinstance(outcome, Deleted))
        reason = f"tokens revoked; {deleted} registration(s) deleted at the core"
        journal.write(self._recorder.entry(event, None, Outcome.CONSENT_REVOKED, reason))
        return EventResult(Outcome.CONSENT_REVOKED, reason, changes=result.changes if result else ())

    def _revoked_verdict(self, outcome: CallOutcome | None) -> Verdict:
        revoked = Verdict(Outcome.CONSENT_REVOKED, Status.CONSENT_REVOKED, None, holds=Holds.NOTHING)
        if outcome is None or isinstance(outcome, Deleted):
            return revoked
        verdict = self._recorder.verdict(Operation.DELETE, outcome)
        if verdict.retry:
            return verdict
        # No token, or the core refused: it drops the registration itself when its TTL ends.
        return replace(revoked, reason=verdict.reason, holds=Holds.UNCHANGED)
