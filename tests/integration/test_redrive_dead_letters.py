"""Given an event that keeps failing, it reaches the DLQ after the queue's max receive count with its
last error on the registration; `sipreg redrive` brings it (only its number's) back, and it applies."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest

from devstack.wg2sim.process import Wg2simProcess
from sipreg.store.registrations import RegistrationStatus
from sipreg_cli import main
from tests.unit.worker_fakes import upsert
from tests.worker_support import Rig, build_rig, wait_for

PBX = "sips:pbx.acme.example"


@pytest.fixture
def rig(aws: str, wg2sim_faults: Wg2simProcess) -> Iterator[Rig]:
    yield build_rig(aws, wg2sim_faults, core_deadline_seconds=0.5)


def dead_letters(rig: Rig) -> list[str]:
    """Event ids in the DLQ (looked at, not taken: visible again at once)."""
    sqs = rig.aws("sqs")
    found = sqs.receive_message(
        QueueUrl=rig.dlq_url, MaxNumberOfMessages=10, VisibilityTimeout=0, MessageSystemAttributeNames=["All"]
    ).get("Messages", [])
    return sorted(json.loads(m["Body"])["id"] for m in found)


def test_a_message_that_keeps_failing_reaches_the_dlq_and_redrive_brings_it_back(
    rig: Rig, new_msisdn: Callable[[], str], capsys: pytest.CaptureFixture[str]
) -> None:
    stuck, other = new_msisdn(), new_msisdn()
    for msisdn in (stuck, other):
        rig.consent(msisdn)
    # Given the core fails every call for two numbers
    rig.sim.set_faults(unavailable_rate=1.0, msisdns=[stuck, other])
    rig.send(upsert("stuck-1", msisdn=stuck, sip_uri=PBX), upsert("other-1", msisdn=other, sip_uri=PBX))
    # When the worker keeps receiving them (retry delay 0 here) past maxReceiveCount (5)
    rig.run_until(lambda: rig.queue_depth() == 0, timeout=30)
    # Then both are in the DLQ, and each registration says why
    assert dead_letters(rig) == ["other-1", "stuck-1"]
    record = rig.record(stuck, PBX)
    assert record is not None and record.status is RegistrationStatus.PENDING
    assert (record.last_error or "").startswith("UNAVAILABLE")
    assert [e.outcome for e in rig.log(stuck)] == ["retrying"] * 5
    # When the core is back and the operator redrives one number's messages
    rig.sim.clear_faults()
    status = main(
        ["redrive", "--queue-url", rig.queue_url, "--msisdn", stuck, "--endpoint-url", rig.endpoint]
    )
    # Then only that number's message moved, and it applies
    out = capsys.readouterr().out
    assert status == 0
    assert "moved 1 message(s)" in out and "1 message(s) of other numbers stay" in out
    wait_for(lambda: dead_letters(rig) == ["other-1"], timeout=5)
    rig.drain()
    record = rig.record(stuck, PBX)
    assert record is not None and record.status is RegistrationStatus.ACTIVE and record.last_error is None
    assert [r["msisdn"] for r in rig.on_core(stuck)] == [stuck]
    # And redriving everything brings the rest
    assert main(["redrive", "--queue-url", rig.queue_url, "--endpoint-url", rig.endpoint]) == 0
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
