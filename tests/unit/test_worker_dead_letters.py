"""An event is dead-lettered only after tries of its own; the worker moves it to the DLQ itself,
records `dead_lettered`, and the events behind it go on. Waiting behind another is no try."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from sipreg.core.port import CoreCall, CoreOutcome, Transient
from sipreg.store.registrations import RegistrationStatus
from sipreg.tokens import IdentityServerUnavailableError
from sipreg.worker import QueuedMessage
from tests.support.worker_events import SIP_URI, T0, message, refresh, revoke, upsert
from tests.support.worker_fakes import World, default_answer, world

OTHER = "sips:other.example.com"


def down_for(sip_uri: str) -> object:
    def script(call: CoreCall) -> CoreOutcome:
        if call.registration.sip_uri == sip_uri:
            return Transient(code="UNAVAILABLE", detail="down")
        return default_answer(call)

    return script


def deliver_until_done(w: World, messages: list[QueuedMessage], rounds: int) -> list[list[str]]:
    """Delivers the still-pending messages, as SQS would (receive count growing), `rounds` times."""
    failed_per_round: list[list[str]] = []
    pending = messages
    for _ in range(rounds):
        if not pending:
            break
        report = w.run(*pending)
        failed_per_round.append(report.failed)
        pending = [
            dataclasses.replace(m, receive_count=m.receive_count + 1)
            for m in pending
            if m.message_id in report.failed
        ]
    return failed_per_round


def test_the_event_behind_a_failing_one_waits_untried_and_goes_on_after_it_is_dead_lettered() -> None:
    # Given max 3 tries, a core that always fails one registration, and an event behind it
    w = world(down_for(SIP_URI), max_tries=3)  # type: ignore[arg-type]
    head = message(upsert("head", at=T0))
    behind = message(upsert("behind", sip_uri=OTHER, at=T0 + timedelta(seconds=1)))
    rounds = deliver_until_done(w, [head, behind], rounds=10)
    # Then the head was tried three times, the one behind it held back, never tried, in between
    assert rounds[:2] == [[head.message_id, behind.message_id]] * 2
    assert [c.registration.sip_uri for c in w.core.calls] == [SIP_URI, SIP_URI, SIP_URI, OTHER]
    # And only the head went to the DLQ, after its own third try; the one behind it applied
    assert [m.message_id for m in w.dead_letters.sent] == [head.message_id]
    items = {e.event_id: e for e in w.journal.entries}
    assert (items["head"].outcome, items["head"].tries) == ("dead_lettered", 3)
    assert "dead-lettered after 3 tries: UNAVAILABLE" in (items["head"].reason or "")
    assert (items["behind"].outcome, items["behind"].tries) == ("active", 1)
    assert w.journal.record().status is RegistrationStatus.FAILED
    assert w.journal.record(sip_uri=OTHER).status is RegistrationStatus.ACTIVE


def test_retry_delays_grow_with_the_events_tries() -> None:
    w = world(down_for(SIP_URI), max_tries=4)  # type: ignore[arg-type]
    deliver_until_done(w, [message(upsert("head", at=T0))], rounds=4)
    assert [seconds for _, seconds in w.visibility.delays] == [30, 60, 120]


class WorkerDied(BaseException):
    """The sandbox is gone mid-call: nothing after this line of the invocation runs."""


def test_an_event_whose_workers_died_on_every_try_is_dead_lettered_without_another() -> None:
    # Given an event whose worker dies during the core call, three times
    def die(call: CoreCall) -> CoreOutcome:
        raise WorkerDied()

    w = world(die, max_tries=3)
    event = upsert("killer", at=T0)
    for receive in (1, 2, 3):
        with pytest.raises(WorkerDied):
            w.run(message(event, receive_count=receive))
    # Then each claim left its trace: the item `applying` with the tries used, the record in flight
    [item] = w.journal.entries
    assert (item.outcome, item.tries) == ("applying", 3)
    assert (
        w.journal.record().in_flight is not None and w.journal.record().status is RegistrationStatus.PENDING
    )
    # When it comes once more, Then it is not tried again: straight to the DLQ, recorded so
    w.core.script = default_answer
    report = w.run(message(event, receive_count=4))
    assert report.failed == [] and len(w.core.calls) == 3
    assert len(w.dead_letters.sent) == 1
    [item] = w.journal.entries
    assert item.outcome == "dead_lettered"
    # And the registration still says the core may hold the event's call
    assert w.journal.record().in_flight is not None


def test_a_refresh_dead_lettered_leaves_the_registration_active_for_the_refresher() -> None:
    w = world(max_tries=2)
    w.run(message(upsert(at=T0)))
    w.core.script = lambda call: Transient(code="UNAVAILABLE", detail="down")
    w.clock.advance(40 * 60)
    deliver_until_done(w, [message(refresh("refresh-1", at=T0 + timedelta(minutes=40)))], rounds=3)
    assert len(w.dead_letters.sent) == 1
    assert w.journal.record().status is RegistrationStatus.ACTIVE
    item = next(e for e in w.journal.entries if e.event_id == "refresh-1")
    assert (item.outcome, item.tries) == ("dead_lettered", 2)


def test_an_event_that_cannot_reach_the_dlq_comes_back_and_goes_again() -> None:
    w = world(down_for(SIP_URI), max_tries=1)  # type: ignore[arg-type]
    w.dead_letters.fail = True
    event = message(upsert("head", at=T0))
    report = w.run(event)
    assert report.failed == [event.message_id]
    w.dead_letters.fail = False
    report = w.run(message(upsert("head", at=T0), receive_count=2))
    assert report.failed == [] and len(w.dead_letters.sent) == 1
    assert len(w.core.calls) == 1  # no second try for it


def test_a_revoke_whose_token_revocation_keeps_failing_is_dead_lettered_after_its_tries() -> None:
    # Given a subscriber with nothing on the core, whose tokens cannot be revoked
    w = world(max_tries=2)
    w.tokens.revoke_error = IdentityServerUnavailableError("revoke: ConnectError")
    rounds = deliver_until_done(w, [message(revoke())], rounds=4)
    # Then it was tried twice, then moved to the DLQ and recorded so
    assert len(rounds) == 2 and len(w.dead_letters.sent) == 1
    [item] = w.journal.entries
    assert (item.outcome, item.tries) == ("dead_lettered", 2)
