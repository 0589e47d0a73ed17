"""Given an event that keeps failing, the worker moves it to the DLQ after its own last try, records
it `dead_lettered` (status API and event log) while the event behind it goes on; `sipreg redrive`
brings it (only its number's) back as `pending`, and it applies. Real SQS, DynamoDB and core."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator

import boto3
import pytest

from devstack.scenario import wait_for
from devstack.wg2sim.process import Wg2simProcess
from sipreg.queue import EventQueue
from sipreg.store.registrations import RegistrationStatus
from sipreg.store.subscribers import ConsentStatus
from sipreg_cli import main
from tests.support.worker import Rig, build_rig
from tests.support.worker_events import T0, delete, revoke, upsert

PBX = "sips:pbx.acme.example"
OTHER_PBX = "sips:other.acme.example"
MAX_TRIES = 3


@pytest.fixture
def rig(aws: str, wg2sim_faults: Wg2simProcess) -> Iterator[Rig]:
    yield build_rig(aws, wg2sim_faults, core_deadline_seconds=0.5, max_tries=MAX_TRIES)


def dead_letters(rig: Rig) -> list[str]:
    """Event ids in the DLQ (looked at, not taken: visible again at once)."""
    sqs = rig.aws("sqs")
    found = sqs.receive_message(
        QueueUrl=rig.dlq_url, MaxNumberOfMessages=10, VisibilityTimeout=0, MessageSystemAttributeNames=["All"]
    ).get("Messages", [])
    return sorted(json.loads(m["Body"])["id"] for m in found)


def redrive(rig: Rig, *args: str) -> int:
    table = rig.ref("EventLogTable")
    return main(
        [
            "redrive",
            "--queue-url",
            rig.queue_url,
            "--endpoint-url",
            rig.endpoint,
            "--event-log-table",
            table,
            *args,
        ]
    )


def test_an_event_is_dead_lettered_after_its_own_tries_and_redrive_brings_it_back_pending(
    rig: Rig, new_msisdn: Callable[[], str], capsys: pytest.CaptureFixture[str]
) -> None:
    stuck, other = new_msisdn(), new_msisdn()
    for msisdn in (stuck, other):
        rig.consent(msisdn)
    # Given the core fails every upsert of two numbers, and a delete waits behind one of them
    rig.sim.set_faults(unavailable_rate=1.0, msisdns=[stuck, other], methods=["UpsertRegistration"])
    rig.send(
        upsert("stuck-1", msisdn=stuck, sip_uri=PBX, at=T0),
        delete("stuck-2", msisdn=stuck, sip_uri=OTHER_PBX, at=T0),
        upsert("other-1", msisdn=other, sip_uri=PBX, at=T0),
    )
    # When the worker keeps receiving them (retry delay 0 here)
    rig.run_until(lambda: rig.queue_depth() == 0, timeout=30)
    # Then both upserts are in the DLQ after their own three tries, each recorded so, and the
    # delete behind one of them was tried once, after it, and applied: never dead-lettered untried
    assert dead_letters(rig) == ["other-1", "stuck-1"]
    items = {e.event_id: e for e in rig.log(stuck)}
    assert (items["stuck-1"].outcome, items["stuck-1"].tries) == ("dead_lettered", MAX_TRIES)
    assert (items["stuck-2"].outcome, items["stuck-2"].tries) == ("deleted", 1)
    record = rig.record(stuck, PBX)
    assert record is not None and record.status is RegistrationStatus.FAILED
    assert (record.last_error or "").startswith("dead-lettered after 3 tries: ")
    # When the core is back and the operator redrives one number's messages
    rig.sim.clear_faults()
    assert redrive(rig, "--msisdn", stuck) == 0
    # Then only that number's message moved, its outcome now pending, and it applies
    out = capsys.readouterr().out
    assert "moved 1 message(s)" in out and "1 message(s) of other numbers stay" in out
    assert "1 of them now pending" in out
    [back] = [e for e in rig.log(stuck) if e.event_id == "stuck-1"]
    assert (back.outcome, back.tries) == ("pending", 0)
    wait_for("the other number's dead letter alone", lambda: dead_letters(rig) == ["other-1"], timeout=5)
    rig.drain()
    record = rig.record(stuck, PBX)
    assert record is not None and record.status is RegistrationStatus.ACTIVE and record.last_error is None
    assert [r["msisdn"] for r in rig.on_core(stuck)] == [stuck]
    # And redriving everything brings the rest
    assert redrive(rig) == 0
    assert "moved 1 message(s)" in capsys.readouterr().out
    rig.drain()
    assert [r["msisdn"] for r in rig.on_core(other)] == [other]


def test_redrive_of_an_empty_dlq_moves_nothing(rig: Rig, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["redrive", "--queue-url", rig.queue_url, "--endpoint-url", rig.endpoint]) == 0
    assert "moved 0 message(s)" in capsys.readouterr().out


def test_redrive_refuses_a_queue_without_a_dlq(rig: Rig, capsys: pytest.CaptureFixture[str]) -> None:
    plain = rig.aws("sqs").create_queue(QueueName="no-dlq")["QueueUrl"]
    assert main(["redrive", "--queue-url", plain, "--endpoint-url", rig.endpoint]) == 2
    assert "no dead-letter queue" in capsys.readouterr().err


# --- sipreg's own events that SQS's redrive policy (the backstop) moved -------------------------


def local_user(rig: Rig, policy: str) -> dict[str, str]:
    """Credentials of a new IAM user of the local AWS holding one of the template's managed policies."""
    iam = rig.aws("iam")
    name = f"{policy.lower()}-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=name)
    iam.attach_user_policy(UserName=name, PolicyArn=rig.ref(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}


def backstop_dead_letter(rig: Rig, count: int) -> None:
    """Receives the events queue's messages without deleting them until SQS's redrive policy has
    moved `count` of them to the DLQ, as when each delivery ends in a batch the worker dies in (or
    behind a failing event): the worker writes nothing for them."""
    sqs = rig.aws("sqs")
    deadline = time.monotonic() + 30
    while rig.queue_depth(rig.dlq_url) < count:
        assert time.monotonic() < deadline, "SQS's redrive policy did not move them"
        sqs.receive_message(QueueUrl=rig.queue_url, MaxNumberOfMessages=10, VisibilityTimeout=0)


def redrive_as_operator(
    rig: Rig, monkeypatch: pytest.MonkeyPatch, operator: dict[str, str], *args: str
) -> int:
    with monkeypatch.context() as patched:
        for name, value in operator.items():
            patched.setenv(name, value)
        patched.delenv("AWS_SESSION_TOKEN", raising=False)
        return redrive(rig, *args)


def test_a_revoke_sqs_dead_lettered_itself_is_applied_when_redriven_naming_sipregs_roles(
    rig: Rig,
    new_msisdn: Callable[[], str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a subscriber's revoke, queued by sipreg (here: the account's root), that SQS's own
    # redrive policy moved to the DLQ: it has no event-log item
    msisdn = new_msisdn()
    rig.consent(msisdn)
    genuine = revoke(msisdn, at=T0)
    rig.send(genuine)
    backstop_dead_letter(rig, 1)
    assert rig.log(msisdn) == []
    operator = local_user(rig, "OperatorPolicy")
    sipreg_role = rig.aws("sts").get_caller_identity()["UserId"]
    # When the operator redrives it without naming sipreg's roles
    assert redrive_as_operator(rig, monkeypatch, operator, "--msisdn", msisdn) == 1
    # Then it stays in the DLQ, listed with why: the worker would refuse it from the operator
    out = capsys.readouterr().out
    assert "moved 0 message(s)" in out and f"{genuine.id}: subscriber.revoke without a waiting" in out
    assert dead_letters(rig) == [genuine.id]
    # When the operator names them (the stack's SipregRoleIds output)
    assert redrive_as_operator(rig, monkeypatch, operator, "--sipreg-role-ids", sipreg_role) == 0
    # Then it is back, pending, and the worker applies it although SQS names the operator
    assert "moved 1 message(s)" in capsys.readouterr().out
    [item] = rig.log(msisdn)
    assert (item.event_id, item.outcome) == (genuine.id, "pending")
    rig.drain()
    subscriber = rig.subscriber(msisdn)
    assert subscriber is not None and subscriber.status is ConsentStatus.REVOKED
    assert [e.outcome for e in rig.log(msisdn)] == ["consent_revoked"]


def test_a_forged_internal_event_sqs_dead_lettered_stays_held_with_its_numbers_later_messages(
    rig: Rig,
    new_msisdn: Callable[[], str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a producer's forged revoke and its upsert behind it, both moved by SQS's redrive policy
    msisdn = new_msisdn()
    rig.consent(msisdn)
    producer = local_user(rig, "ProducerPolicy")
    forged, behind = revoke(msisdn, at=T0), upsert("crm-behind", msisdn=msisdn, sip_uri=PBX, at=T0)
    as_producer = boto3.client(
        "sqs",
        endpoint_url=rig.endpoint,
        region_name=rig.aws("sqs").meta.region_name,
        aws_access_key_id=producer["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=producer["AWS_SECRET_ACCESS_KEY"],
    )
    EventQueue(rig.queue_url, client=as_producer).send([forged, behind])
    backstop_dead_letter(rig, 2)
    # When the operator redrives, naming sipreg's roles
    sipreg_role = rig.aws("sts").get_caller_identity()["UserId"]
    operator = local_user(rig, "OperatorPolicy")
    assert redrive_as_operator(rig, monkeypatch, operator, "--sipreg-role-ids", sipreg_role) == 1
    # Then neither moved: the forgery is named with its sender, the upsert waits behind it
    out = capsys.readouterr().out
    assert "moved 0 message(s)" in out and f"{forged.id}: subscriber.revoke" in out and "AIDA" in out
    assert dead_letters(rig) == sorted([forged.id, behind.id])
    subscriber = rig.subscriber(msisdn)
    assert subscriber is not None and subscriber.status is ConsentStatus.CONSENTED
    assert rig.log(msisdn) == []


@pytest.mark.parametrize("roles", ["AROA1234567890ABC,SHORT", "aroa1234567890abc", "AROA12345678901;rm"])
def test_redrive_refuses_role_ids_that_are_not_role_ids_before_touching_a_queue(
    roles: str, capsys: pytest.CaptureFixture[str]
) -> None:
    nowhere = "http://127.0.0.1:9"  # nothing listens: a queue call would fail differently
    args = [
        "redrive",
        "--queue-url",
        f"{nowhere}/q.fifo",
        "--endpoint-url",
        nowhere,
        "--sipreg-role-ids",
        roles,
    ]
    assert main(args) == 2
    assert "--sipreg-role-ids must be RoleIds" in capsys.readouterr().err
