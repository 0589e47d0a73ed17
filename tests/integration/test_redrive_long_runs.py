"""A redrive that runs longer than its look at the DLQ (thousands of dead letters after an outage,
here a look of 2 s and a slow SQS): the messages it keeps are hidden again before their look ends,
so none is handed out twice and the run ends; a moved message the FIFO DLQ refuses to delete (its
receipt expired) is reported, not counted as simply moved. Real SQS (the local engine refuses an
expired FIFO receipt, as SQS does)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack.aws_engine import ROOT, limit_in_flight
from devstack.wg2sim.process import Wg2simProcess
from sipreg import redrive
from sipreg.events import to_json
from sipreg.redrive import Redriver
from tests.support.worker import REGION, Rig, build_rig
from tests.support.worker_events import T0, upsert

LOOK = 2


@pytest.fixture
def rig(aws: str, wg2sim: Wg2simProcess, monkeypatch: pytest.MonkeyPatch) -> Iterator[Rig]:
    monkeypatch.setattr(redrive, "LOOK_SECONDS", LOOK)
    yield build_rig(aws, wg2sim)


class SlowSqs:
    """The SQS client, each receive (or send) taking `pause` seconds; it counts what it hands out."""

    def __init__(
        self, sqs: Any, *, receive_pause: float = 0.0, send_pause: float = 0.0, receives_at_most: int = 30
    ) -> None:
        self._sqs = sqs
        self._receives_at_most = receives_at_most
        self._receive_pause, self._send_pause = receive_pause, send_pause
        self.handed_out: list[str] = []  # message ids, in the order receives returned them
        self.receives = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sqs, name)

    def receive_message(self, **request: Any) -> Any:
        self.receives += 1
        assert self.receives <= self._receives_at_most, f"still receiving after {self.receives - 1} receives"
        time.sleep(self._receive_pause)
        answer = self._sqs.receive_message(**request)
        self.handed_out += [m["MessageId"] for m in answer.get("Messages", [])]
        return answer

    def send_message_batch(self, **request: Any) -> Any:
        time.sleep(self._send_pause)
        return self._sqs.send_message_batch(**request)


def dead_letter(rig: Rig, msisdn: str, event_id: str) -> None:
    rig.aws("sqs").send_message(
        QueueUrl=rig.dlq_url,
        MessageBody=to_json(upsert(event_id, msisdn=msisdn, sip_uri="sips:pbx.example", at=T0)),
        MessageGroupId=msisdn,
        MessageDeduplicationId=event_id,
    )


def in_dlq(rig: Rig) -> int:
    attributes = rig.aws("sqs").get_queue_attributes(
        QueueUrl=rig.dlq_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def test_the_messages_a_long_run_keeps_stay_hidden_until_it_ends(
    rig: Rig, new_msisdn: Callable[[], str]
) -> None:
    # Given 30 dead letters of other numbers ahead of the one number's
    for index in range(30):
        dead_letter(rig, new_msisdn(), f"other-{index}")
    wanted = new_msisdn()
    dead_letter(rig, wanted, "wanted-1")
    # When its redrive takes longer than the look at each message (a receive takes 0.6 s, a look 2 s)
    sqs = SlowSqs(rig.aws("sqs"), receive_pause=0.6)
    report = Redriver(sqs, rig.queue_url, wait_seconds=0).redrive(msisdn=wanted)
    # Then every message was handed out once (none came back while the run still held it), the
    # number's event moved, and the other numbers' are all in the DLQ, visible again
    assert len(sqs.handed_out) == len(set(sqs.handed_out)) == 31
    assert (report.moved, report.left, report.not_deleted, report.unreached) == (1, 30, (), 0)
    assert rig.queue_depth() == 1
    assert in_dlq(rig) == 30
    visible = rig.aws("sqs").get_queue_attributes(
        QueueUrl=rig.dlq_url, AttributeNames=["ApproximateNumberOfMessages"]
    )
    assert int(visible["Attributes"]["ApproximateNumberOfMessages"]) == 30


def test_a_moved_message_the_dlq_did_not_delete_is_deleted_when_it_comes_round_not_moved_again(
    rig: Rig, new_msisdn: Callable[[], str]
) -> None:
    # Given a dead letter, and an events queue that takes longer to answer than the DLQ's look
    msisdn = new_msisdn()
    dead_letter(rig, msisdn, "late-1")
    sqs = SlowSqs(rig.aws("sqs"), send_pause=LOOK + 0.5, receives_at_most=4)
    # When it is redriven
    report = Redriver(sqs, rig.queue_url, wait_seconds=0).redrive()
    # Then it went back once; the DLQ, refusing the expired receipt, handed it out again, and that
    # copy was deleted, not sent a second time
    [message_id] = set(sqs.handed_out)
    assert sqs.handed_out == [message_id, message_id]
    assert (report.moved, report.not_deleted) == (1, ())
    assert rig.queue_depth() == 1 and in_dlq(rig) == 0


def test_a_run_that_sqs_hands_no_more_says_what_it_could_not_reach(
    rig: Rig, new_msisdn: Callable[[], str]
) -> None:
    # Given a FIFO DLQ that hands out at most 5 messages at once (SQS: 120,000, and then a receive
    # gets nothing, no error), 8 dead letters of other numbers, and one number's behind them
    limit_in_flight(rig.endpoint, rig.dlq_url.rsplit("/", 1)[-1], 5)
    for index in range(8):
        dead_letter(rig, new_msisdn(), f"ahead-{index}")
    wanted = new_msisdn()
    dead_letter(rig, wanted, "behind-1")
    # When that number's messages are redriven
    report = Redriver(rig.aws("sqs"), rig.queue_url, wait_seconds=0).redrive(msisdn=wanted)
    # Then the run, handed nothing more while it holds 5, does not end as if the DLQ were done: it
    # says how many it could not reach (4), and nothing was lost
    assert (report.moved, report.left, report.unreached) == (0, 5, 4)
    assert rig.queue_depth() == 0 and in_dlq(rig) == 9
    # And `sipreg redrive` says so, and fails (exit status 1: run it again)
    sipreg = str(Path(sys.executable).with_name("sipreg"))
    command = subprocess.run(
        [sipreg, "redrive", "--queue-url", rig.queue_url, "--endpoint-url", rig.endpoint, "--msisdn", wanted],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **ROOT.as_environment(), "AWS_REGION": REGION},
    )
    assert command.returncode == 1, command.stderr
    assert "4 message(s) in the dead-letter queue were out of this run's reach" in command.stdout
