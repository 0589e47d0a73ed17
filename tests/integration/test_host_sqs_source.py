"""The local host runs SQS event sources as the Lambda service does: batches, partial batch
failures, redelivery after the visibility timeout and redrive to the dead-letter queue."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from typing import Any
from uuid import uuid4

import pytest

from devstack.host import LocalHost
from tests.support.host import batches, client, items, start_host, wait_until


@pytest.fixture(scope="module")
def host(aws_endpoint: str) -> Iterator[LocalHost]:
    # Warm sandboxes: a cold start longer than the fixture's 1 s visibility timeout would
    # (rightly) cause a redelivery, which these tests do not expect.
    host = start_host(aws_endpoint, prewarm=True)
    yield host
    host.stop()


def bodies_of(batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [json.loads(record["body"]) for record in batch]


def batches_of_run(endpoint: str, host: LocalHost, queue: str, run: str) -> list[list[dict[str, Any]]]:
    return [b for b in batches(endpoint, host, queue) if any(body.get("run") == run for body in bodies_of(b))]


def dlq_bodies(endpoint: str, host: LocalHost, dlq: str) -> list[dict[str, Any]]:
    received = client(endpoint, "sqs").receive_message(
        QueueUrl=host.resources[dlq]["QueueUrl"], MaxNumberOfMessages=10, WaitTimeSeconds=0
    )
    return [json.loads(m["Body"]) for m in received.get("Messages", [])]


def test_batches_are_never_larger_than_batch_size(host: LocalHost, aws_endpoint: str) -> None:
    # Given PlainQueue's source with BatchSize 3
    run = uuid4().hex
    entries = [{"Id": str(i), "MessageBody": json.dumps({"run": run, "n": i})} for i in range(7)]
    # When 7 messages arrive at once
    client(aws_endpoint, "sqs").send_message_batch(
        QueueUrl=host.resources["PlainQueue"]["QueueUrl"], Entries=entries
    )

    # Then the function gets them all, in batches of at most 3, at least one of them full
    def all_seven() -> list[list[dict[str, Any]]] | None:
        found = batches_of_run(aws_endpoint, host, "PlainQueue", run)
        return found if sum(map(len, found)) >= 7 else None

    seen = wait_until(all_seven)
    assert max(len(b) for b in seen) == 3
    # (as a set: on a loaded machine a 1 s visibility timeout may rightly redeliver one)
    assert {body["n"] for b in seen for body in bodies_of(b)} == set(range(7))


def test_partial_batch_failure_deletes_only_the_successes(host: LocalHost, aws_endpoint: str) -> None:
    # Given a batch where the function reports one record as failed
    run = uuid4().hex
    entries = [
        {"Id": "ok1", "MessageBody": json.dumps({"run": run, "name": "ok1"})},
        {"Id": "bad", "MessageBody": json.dumps({"run": run, "name": "bad", "fail": True})},
        {"Id": "ok2", "MessageBody": json.dumps({"run": run, "name": "ok2"})},
    ]
    client(aws_endpoint, "sqs").send_message_batch(
        QueueUrl=host.resources["PlainQueue"]["QueueUrl"], Entries=entries
    )
    # When the failed record has been redriven to the dead-letter queue (maxReceiveCount 2)
    dead = wait_until(lambda: [b for b in dlq_bodies(aws_endpoint, host, "PlainDlq") if b.get("run") == run])
    # Then only the failed record was delivered again; the successes were deleted after one delivery
    delivered = [
        body["name"] for b in batches_of_run(aws_endpoint, host, "PlainQueue", run) for body in bodies_of(b)
    ]
    assert sorted(delivered) == ["bad", "bad", "ok1", "ok2"]
    assert [b["name"] for b in dead] == ["bad"]


def test_fifo_record_has_the_shape_lambda_builds(host: LocalHost, aws_endpoint: str) -> None:
    # Given a message with a group, a dedup id and attributes on the FIFO WorkQueue
    run = uuid4().hex
    body = json.dumps({"run": run})
    sent = client(aws_endpoint, "sqs").send_message(
        QueueUrl=host.resources["WorkQueue"]["QueueUrl"],
        MessageBody=body,
        MessageGroupId="+4799990000",
        MessageDeduplicationId=f"dedup-{run}",
        MessageAttributes={
            "kind": {"DataType": "String", "StringValue": "upsert"},
            "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
        },
    )
    # When the function receives it
    (batch,) = wait_until(lambda: batches_of_run(aws_endpoint, host, "WorkQueue", run))
    (record,) = batch
    # Then the record carries what Lambda puts in an SQS event
    assert record["messageId"] == sent["MessageId"]
    assert record["receiptHandle"]
    assert record["body"] == body
    assert record["md5OfBody"] == hashlib.md5(body.encode()).hexdigest()  # noqa: S324  # SQS's checksum
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == host.resources["WorkQueue"]["Arn"]
    assert record["awsRegion"] == "eu-west-1"
    attributes = record["attributes"]
    assert attributes["ApproximateReceiveCount"] == "1"
    assert attributes["MessageGroupId"] == "+4799990000"
    assert attributes["MessageDeduplicationId"] == f"dedup-{run}"
    assert attributes["SequenceNumber"]
    assert abs(int(attributes["SentTimestamp"]) - time.time() * 1000) < 60_000
    assert record["messageAttributes"]["kind"] == {
        "stringValue": "upsert",
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": "String",
    }
    assert record["messageAttributes"]["blob"]["binaryValue"] == "AAE="


def test_record_that_keeps_failing_lands_in_the_dlq_after_max_receive_count(
    host: LocalHost, aws_endpoint: str
) -> None:
    # Given a FIFO message the function fails every time
    run = uuid4().hex
    client(aws_endpoint, "sqs").send_message(
        QueueUrl=host.resources["WorkQueue"]["QueueUrl"],
        MessageBody=json.dumps({"run": run, "fail": True}),
        MessageGroupId="g-dlq",
    )
    # When the host's event source keeps delivering it, Then the queue's redrive moves it to the DLQ
    dead = wait_until(lambda: [b for b in dlq_bodies(aws_endpoint, host, "WorkDlq") if b.get("run") == run])
    assert dead == [{"run": run, "fail": True}]
    # after exactly maxReceiveCount (2) deliveries
    deliveries = batches_of_run(aws_endpoint, host, "WorkQueue", run)
    counts = sorted(r["attributes"]["ApproximateReceiveCount"] for b in deliveries for r in b)
    assert counts == ["1", "2"]


def test_the_source_polls_with_the_functions_role(
    host: LocalHost, aws_endpoint: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Given SealedQueue, encrypted with a key SealedConsumerFunction's role may not decrypt with
    # through SQS, and a message on it
    queue_url = host.resources["SealedQueue"]["QueueUrl"]
    client(aws_endpoint, "sqs").send_message(QueueUrl=queue_url, MessageBody=json.dumps({"sealed": True}))
    # When its source polls, Then it is refused, as Lambda's poller would be (its mapping stalls):
    # the function never gets the message, which stays on the queue
    wait_until(lambda: "polling refused" in caplog.text and "SealedConsumerFunction.Sealed" in caplog.text)
    name = host.resources["SealedConsumerFunction"]["Ref"]
    assert items(aws_endpoint, host.resources["RecordTable"]["Ref"], name) == []
    attributes = client(aws_endpoint, "sqs").get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    assert (
        int(attributes["ApproximateNumberOfMessages"])
        + int(attributes["ApproximateNumberOfMessagesNotVisible"])
        == 1
    )
