"""EventQueue's batching and retries, against a scripted SQS client (the port's boundary).

What SQS really stores (groups, dedup ids) is checked against moto server in
tests/integration/test_queue_fifo_attributes.py.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from sipreg.events import AnyEvent, parse_event
from sipreg.health import control_event_id
from sipreg.queue import EventQueue, deduplication_id
from tests.support.events_api import upsert

Reply = Callable[[list[dict[str, Any]]], dict[str, Any]]


class ScriptedSqs:
    """Answers each SendMessageBatch with the next reply in the script (then: all successful)."""

    def __init__(self, *replies: Reply | Exception) -> None:
        self.replies = list(replies)
        self.calls: list[list[dict[str, Any]]] = []

    def send_message_batch(self, *, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803
        self.calls.append(Entries)
        reply = self.replies.pop(0) if self.replies else ok
        if isinstance(reply, Exception):
            raise reply
        return reply(Entries)


def ok(entries: list[dict[str, Any]]) -> dict[str, Any]:
    return {"Successful": [{"Id": e["Id"], "MessageId": "m"} for e in entries], "Failed": []}


def failing(*event_ids: str, sender_fault: bool = False) -> Reply:
    def reply(entries: list[dict[str, Any]]) -> dict[str, Any]:
        failed = [e for e in entries if json.loads(e["MessageBody"])["id"] in event_ids]
        return {
            "Successful": [{"Id": e["Id"], "MessageId": "m"} for e in entries if e not in failed],
            "Failed": [
                {"Id": e["Id"], "Code": "InternalError", "SenderFault": sender_fault, "Message": "x"}
                for e in failed
            ],
        }

    return reply


def events(count: int) -> list[AnyEvent]:
    return [parse_event(upsert(f"evt-{n}", msisdn=f"+47999900{n:02}")) for n in range(count)]


def queue_with(sqs: ScriptedSqs, **options: Any) -> EventQueue:
    return EventQueue("https://sqs.example/q.fifo", client=sqs, sleep=lambda _: None, **options)


def test_events_go_in_batches_of_ten_with_group_and_dedup_ids() -> None:
    sqs = ScriptedSqs()

    result = queue_with(sqs).send(events(23))

    assert [len(call) for call in sqs.calls] == [10, 10, 3]
    first = sqs.calls[0][0]
    assert first["MessageGroupId"] == "+4799990000"
    assert first["MessageDeduplicationId"] == hashlib.sha256(b"evt-0").hexdigest()
    assert json.loads(first["MessageBody"])["id"] == "evt-0"
    assert result.accepted == tuple(f"evt-{n}" for n in range(23))
    assert result.complete


def test_a_failed_entry_is_retried_alone_and_then_accepted() -> None:
    sqs = ScriptedSqs(failing("evt-4"))

    result = queue_with(sqs).send(events(10))

    assert [len(call) for call in sqs.calls] == [10, 1]
    assert json.loads(sqs.calls[1][0]["MessageBody"])["id"] == "evt-4"
    assert result.complete
    assert sorted(result.accepted) == sorted(f"evt-{n}" for n in range(10))


def test_sipregs_own_events_get_a_dedup_id_no_one_can_work_out_kept_through_retries() -> None:
    resume = parse_event(
        {
            "id": control_event_id(
                "resume", "sips:pbx.example.com:5061", datetime(2026, 1, 1, tzinfo=UTC), "+4799990000"
            ),
            "type": "registration.resume",
            "msisdn": "+4799990000",
            "occurred_at": "2026-01-01T00:05:00Z",
            "registration": {"sip_uri": "sips:pbx.example.com:5061"},
        },
        allow_internal=True,
    )
    sqs = ScriptedSqs(failing(resume.id))

    queue_with(sqs).send([resume])
    queue_with(sqs).send([resume])

    first, retried, again = (call[0]["MessageDeduplicationId"] for call in sqs.calls)
    assert first == retried  # a retry of one send is the same message to SQS
    assert first != deduplication_id(resume.id)  # not the slot a producer could take first
    assert again != first  # a second send is absorbed by the worker's record, not by SQS
    assert len(first) == 64 and first.isalnum()


def test_entries_failing_every_attempt_are_named_not_accepted() -> None:
    sqs = ScriptedSqs(failing("evt-2", "evt-7"), failing("evt-2", "evt-7"), failing("evt-7"))

    result = queue_with(sqs, attempts=3).send(events(10))

    assert len(sqs.calls) == 3
    assert result.not_accepted == ("evt-7",)
    assert "evt-2" in result.accepted and "evt-7" not in result.accepted


def test_a_sender_fault_is_not_retried() -> None:
    sqs = ScriptedSqs(failing("evt-1", sender_fault=True))

    result = queue_with(sqs).send(events(3))

    assert len(sqs.calls) == 1
    assert result.not_accepted == ("evt-1",)


@pytest.mark.parametrize(
    "error",
    [
        EndpointConnectionError(endpoint_url="https://sqs.example"),
        ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "x"}}, "SendMessageBatch"),
    ],
)
def test_a_failed_call_retries_the_whole_batch(error: Exception) -> None:
    sqs = ScriptedSqs(error)

    result = queue_with(sqs).send(events(4))

    assert [len(call) for call in sqs.calls] == [4, 4]
    assert result.complete


def test_a_batch_that_never_gets_through_is_wholly_not_accepted_and_others_are_unaffected() -> None:
    down = EndpointConnectionError(endpoint_url="https://sqs.example")
    sqs = ScriptedSqs(ok, down, down, down)

    result = queue_with(sqs, attempts=3).send(events(20))

    assert result.accepted == tuple(f"evt-{n}" for n in range(10))
    assert result.not_accepted == tuple(f"evt-{n}" for n in range(10, 20))


def test_the_backoff_grows_between_attempts() -> None:
    waits: list[float] = []
    sqs = ScriptedSqs(failing("evt-0"), failing("evt-0"), failing("evt-0"))

    EventQueue("q", client=sqs, sleep=waits.append, attempts=3, backoff_seconds=0.1).send(events(1))

    assert waits == [0.1, 0.2]


@pytest.mark.parametrize("event_id", ["a", "x" * 128, "crm:2025.06-01_x"])
def test_the_dedup_id_fits_sqs_whatever_the_event_id(event_id: str) -> None:
    dedup = deduplication_id(event_id)

    assert len(dedup) == 64
    assert dedup.isalnum()
    assert dedup != deduplication_id(event_id + "x")
