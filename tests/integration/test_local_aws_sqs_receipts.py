"""The local AWS refuses to delete a FIFO message with a receipt handle whose visibility timeout has
passed ("The receipt handle has expired"), as SQS does; ministack deleted it as long as nobody had
received the message again. A standard queue still takes it, as SQS's does. A visibility change
with such a receipt is answered OK and changes nothing, as SQS's (ministack hid the message again)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError

from devstack.aws_conformance.clients import client, fifo_queue


def received(sqs: Any, url: str, count: int, *, visibility: int) -> list[str]:
    """Receipt handles of `count` messages just sent and received, each in its own group."""
    fifo = url.endswith(".fifo")
    for number in range(count):
        ids = {"MessageGroupId": f"g{number}", "MessageDeduplicationId": f"d{number}"} if fifo else {}
        sqs.send_message(QueueUrl=url, MessageBody="x", **ids)
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=visibility)
    assert len(messages["Messages"]) == count
    return [m["ReceiptHandle"] for m in messages["Messages"]]


def test_an_expired_fifo_receipt_deletes_nothing(aws_endpoint: str) -> None:
    sqs = client(aws_endpoint, "sqs")
    url = fifo_queue(sqs, "receipts")
    [handle] = received(sqs, url, 1, visibility=1)
    time.sleep(1.2)
    with pytest.raises(ClientError) as refused:
        sqs.delete_message(QueueUrl=url, ReceiptHandle=handle)
    assert refused.value.response["Error"]["Code"] == "InvalidParameterValue"
    assert "The receipt handle has expired" in refused.value.response["Error"]["Message"]
    # The message is still there, visible again
    again = sqs.receive_message(QueueUrl=url, VisibilityTimeout=30)["Messages"]
    assert len(again) == 1
    sqs.delete_message(QueueUrl=url, ReceiptHandle=again[0]["ReceiptHandle"])  # a fresh one deletes


def test_in_a_batch_only_the_expired_entry_fails(aws_endpoint: str) -> None:
    sqs = client(aws_endpoint, "sqs")
    url = fifo_queue(sqs, "receipts")
    expiring, kept = received(sqs, url, 2, visibility=1)
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=kept, VisibilityTimeout=30)
    time.sleep(1.2)
    answer = sqs.delete_message_batch(
        QueueUrl=url, Entries=[{"Id": "old", "ReceiptHandle": expiring}, {"Id": "new", "ReceiptHandle": kept}]
    )
    assert [entry["Id"] for entry in answer["Successful"]] == ["new"]
    assert [(f["Id"], f["Code"], f["Message"], f["SenderFault"]) for f in answer["Failed"]] == [
        ("old", "ReceiptHandleIsInvalid", "The receipt handle has expired", True)
    ]


def test_a_standard_queue_still_takes_an_expired_receipt(aws_endpoint: str) -> None:
    sqs = client(aws_endpoint, "sqs")
    url = sqs.create_queue(QueueName=f"receipts-{uuid.uuid4().hex[:12]}")["QueueUrl"]
    [handle] = received(sqs, url, 1, visibility=1)
    time.sleep(1.2)
    sqs.delete_message(QueueUrl=url, ReceiptHandle=handle)
    assert "Messages" not in sqs.receive_message(QueueUrl=url)


def test_a_change_of_a_lapsed_receipt_is_answered_ok_and_leaves_the_message_visible(
    aws_endpoint: str,
) -> None:
    sqs = client(aws_endpoint, "sqs")
    url = fifo_queue(sqs, "receipts")
    first, second = received(sqs, url, 2, visibility=1)
    time.sleep(1.2)
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=first, VisibilityTimeout=30)
    answer = sqs.change_message_visibility_batch(
        QueueUrl=url, Entries=[{"Id": "lapsed", "ReceiptHandle": second, "VisibilityTimeout": 30}]
    )
    assert [entry["Id"] for entry in answer["Successful"]] == ["lapsed"] and not answer.get("Failed")
    # Neither was hidden again: both are handed out at once
    again = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=30)["Messages"]
    assert len(again) == 2
