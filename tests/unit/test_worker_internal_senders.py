"""Who may send what: AWS-native producers (ProducerPolicy: sqs:SendMessage on the events queue)
may send upserts and deletes; sipreg's internal event types are applied only from sipreg's own
function roles (SQS's SenderId), or as a redrive of an event sipreg itself queued and has not
finished. Anything else is recorded `rejected` under its message id and changes nothing."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from sipreg.config import ConfigError, WorkerSettings
from sipreg.core.port import Transient
from sipreg.events import AnyEvent, EventType
from sipreg.store.registrations import RegistrationStatus
from sipreg.worker.messages import queued_messages
from tests.support.lambda_context import LambdaContext, load_function
from tests.support.worker_events import (
    MSISDN,
    OPERATOR_SENDER,
    PRODUCER_SENDER,
    SIP_URI,
    SIPREG_ROLE,
    SIPREG_SENDER,
    T0,
    consented,
    control,
    delete,
    message,
    refresh,
    revoke,
    upsert,
)
from tests.support.worker_fakes import World, default_answer, world

LATER = T0 + timedelta(seconds=1)


def active_world(script: Any = None, **kwargs: Any) -> World:
    w = world(script, **kwargs)
    w.run(message(upsert(at=T0), sender=PRODUCER_SENDER))
    assert w.journal.record().status is RegistrationStatus.ACTIVE
    w.core.calls.clear()
    return w


def internal_events() -> list[AnyEvent]:
    controls = [
        control(kind, at=LATER) for kind in ("disable", "enable", "force_refresh", "suspend", "resume")
    ]
    return [refresh(at=LATER), consented(at=LATER), revoke(at=LATER), *controls]


def test_every_internal_type_is_covered() -> None:
    assert {e.type for e in internal_events()} == {t for t in EventType if not t.external}


@pytest.mark.parametrize("event", internal_events(), ids=lambda e: e.type.value)
def test_an_internal_event_from_a_producer_is_rejected_and_changes_nothing(event: AnyEvent) -> None:
    # Given an active registration, and one of sipreg's internal types sent by a producer's role
    w = active_world()
    record_before = w.journal.record()
    forged = message(event, sender=PRODUCER_SENDER)
    # When the worker gets it
    report = w.run(forged)
    # Then it is done with (not retried) and counted apart, nothing reached the core, no token
    # was touched
    assert report.failed == []
    assert report.outcomes == {"from_outside": 1}
    assert w.core.operations() == []
    assert w.tokens.revoked == []
    assert w.journal.record() == record_before
    # And it is recorded rejected under its message id, naming the type and who sent it
    [rejected] = [e for e in w.journal.entries if e.event_id == f"sqs:{forged.message_id}"]
    assert rejected.outcome == "rejected"
    assert event.type.value in (rejected.reason or "")
    assert PRODUCER_SENDER in (rejected.reason or "")
    assert rejected.raw_body == forged.body


def test_a_producers_revoke_neither_revokes_the_tokens_nor_deletes_the_registration() -> None:
    w = active_world()
    w.run(message(revoke(at=LATER), sender=PRODUCER_SENDER))
    assert w.tokens.revoked == []
    assert w.journal.record().status is RegistrationStatus.ACTIVE
    assert [e.outcome for e in w.journal.entries][-1] == "rejected"


def test_a_producers_suspend_leaves_the_registration_on_the_core() -> None:
    w = active_world()
    w.run(message(control("suspend", at=LATER), sender=PRODUCER_SENDER))
    assert w.journal.record().status is RegistrationStatus.ACTIVE
    assert w.core.operations() == []


def test_the_same_events_from_sipregs_own_functions_are_applied() -> None:
    w = active_world()
    w.run(message(control("suspend", at=LATER), sender=SIPREG_SENDER))
    assert w.journal.record().status is RegistrationStatus.SUSPENDED
    w.run(message(revoke(at=LATER + timedelta(seconds=1)), sender=SIPREG_SENDER))
    assert w.tokens.revoked == [MSISDN]


@pytest.mark.parametrize(
    "sender",
    [
        "",  # no SenderId at all
        f"{SIPREG_ROLE}X:session",  # a longer id that starts with it
        f"x{SIPREG_ROLE}:session",
        "123456789012",  # the account's root
        OPERATOR_SENDER,
    ],
)
def test_only_a_session_of_a_sipreg_role_counts_as_sipreg(sender: str) -> None:
    w = active_world()
    w.run(message(revoke(at=LATER), sender=sender))
    assert w.tokens.revoked == []
    assert w.journal.entries[-1].outcome == "rejected"


def test_a_forgery_of_a_real_events_id_leaves_that_events_log_item_as_it_was() -> None:
    # Given a revoke sipreg sent and applied
    w = active_world()
    genuine = revoke(at=LATER)
    w.run(message(genuine))
    items_before = dict(w.journal.items)
    # When a producer sends the very same event again
    report = w.run(message(genuine, sender=PRODUCER_SENDER))
    # Then the genuine item is untouched, and the forgery has an item of its own
    assert report.failed == []
    assert all(w.journal.items[key] == item for key, item in items_before.items())
    assert len(w.journal.items) == len(items_before) + 1


def test_upserts_and_deletes_are_applied_from_any_sender() -> None:
    w = world()
    w.run(message(upsert(at=T0), sender=PRODUCER_SENDER))
    assert w.journal.record().status is RegistrationStatus.ACTIVE
    w.run(message(delete(at=LATER), sender=""))
    assert w.journal.record().status is RegistrationStatus.DELETED


def test_an_operators_redrive_of_a_dead_lettered_internal_event_is_applied() -> None:
    # Given a refresh from sipreg's refresher that the worker dead-lettered after its tries
    w = active_world(max_tries=2)
    w.core.script = lambda call: Transient(code="UNAVAILABLE", detail="down")
    event = refresh(at=LATER)
    w.run(message(event))
    w.clock.advance(60)
    w.run(message(event, receive_count=2))
    assert w.dead_letters.sent and w.journal.entries[-1].outcome == "dead_lettered"
    # When the core is back and an operator redrives it: SQS names the operator as its sender
    w.core.script = default_answer
    w.clock.advance(60)
    report = w.run(message(event, sender=OPERATOR_SENDER))
    # Then it is applied: it is sipreg's own event, still waiting
    assert report.failed == []
    assert w.journal.entries[-1].outcome == "refreshed"
    assert [operation for operation, _, _ in w.core.operations()][-1] == "upsert"


def test_a_producers_own_waiting_upsert_does_not_let_its_copy_as_an_internal_type_through() -> None:
    # Given a producer's upsert the worker dead-lettered (the core was down): its log item waits
    w = world(max_tries=1)
    w.core.script = lambda call: Transient(code="UNAVAILABLE", detail="down")
    dead = upsert("crm-77", at=T0)
    w.run(message(dead, sender=PRODUCER_SENDER))
    assert w.journal.entries[-1].outcome == "dead_lettered"
    # When the producer sends a suspend with that upsert's id, time and registration: the same
    # log item key (it names the kind of event, not its type)
    w.core.script = default_answer
    suspend = control("suspend", "crm-77", at=T0)
    report = w.run(message(suspend, sender=PRODUCER_SENDER))
    # Then it is refused: the waiting item is of another type
    assert report.outcomes == {"from_outside": 1}
    assert w.journal.entries[-1].outcome == "rejected"


def test_a_replay_of_a_finished_internal_event_by_an_operator_is_rejected() -> None:
    w = active_world()
    genuine = refresh(at=LATER)
    w.run(message(genuine))
    assert w.journal.entries[-1].outcome == "refreshed"
    calls = len(w.core.operations())
    w.run(message(genuine, sender=OPERATOR_SENDER))
    assert len(w.core.operations()) == calls
    assert w.journal.entries[-1].outcome == "rejected"


def test_a_log_read_that_fails_brings_the_message_back() -> None:
    w = active_world()

    def broken(key: tuple[str, str]) -> None:
        raise RuntimeError("ProvisionedThroughputExceededException")

    w.journal.log_item = broken  # type: ignore[method-assign]
    report = w.run(message(revoke(at=LATER), sender=OPERATOR_SENDER))
    assert len(report.failed) == 1
    assert w.tokens.revoked == []


# --- the sender as Lambda hands it over, and the worker's setting ---------------------------------


def test_the_sender_is_read_from_the_records_attributes() -> None:
    record = {
        "messageId": "m-1",
        "receiptHandle": "rh-1",
        "body": "{}",
        "attributes": {"MessageGroupId": MSISDN, "SenderId": PRODUCER_SENDER},
    }
    [queued] = queued_messages({"Records": [record]})
    assert queued.sender == PRODUCER_SENDER


def test_a_forged_revoke_through_the_handler_is_rejected_and_counted(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "sipreg")
    app = load_function("registration_worker")
    w = active_world()
    forged = message(revoke(at=LATER))
    record = {
        "messageId": forged.message_id,
        "receiptHandle": forged.receipt_handle,
        "body": forged.body,
        "attributes": {"ApproximateReceiveCount": "1", "MessageGroupId": MSISDN, "SenderId": PRODUCER_SENDER},
    }
    capsys.readouterr()
    answer = app.lambda_handler({"Records": [record]}, LambdaContext(), worker=w.worker)
    assert answer == {"batchItemFailures": []}
    # The metric the ForgedInternalEventsAlarm watches
    (emf,) = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert emf["Events_from_outside"] == [1.0]
    assert w.tokens.revoked == []
    assert w.journal.record(MSISDN, SIP_URI).status is RegistrationStatus.ACTIVE


WORKER_ENV = {
    "REGISTRATIONS_TABLE": "sipreg-Registrations",
    "EVENT_LOG_TABLE": "sipreg-EventLog",
    "EVENTS_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/123456789012/sipreg-Events.fifo",
    "DEAD_LETTER_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/123456789012/sipreg-Dead.fifo",
}


def test_the_worker_needs_the_roles_it_takes_internal_events_from() -> None:
    with pytest.raises(ConfigError, match="SIPREG_ROLE_IDS"):
        WorkerSettings.from_env(WORKER_ENV)
    settings = WorkerSettings.from_env({**WORKER_ENV, "SIPREG_ROLE_IDS": "AROAONE12345, AROATWO12345"})
    assert settings.sipreg_role_ids == ("AROAONE12345", "AROATWO12345")


@pytest.mark.parametrize("value", ["", "AROAONE:session", "AIDAUSER123", "123456789012", "*"])
def test_a_role_id_setting_that_is_no_list_of_role_ids_fails_at_cold_start(value: str) -> None:
    with pytest.raises(ConfigError, match="SIPREG_ROLE_IDS"):
        WorkerSettings.from_env({**WORKER_ENV, "SIPREG_ROLE_IDS": value})
