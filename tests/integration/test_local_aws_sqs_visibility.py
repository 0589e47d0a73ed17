"""The local AWS keeps a message in flight at most 12 hours from the receive that made it so, as
SQS does: a ChangeMessageVisibility past 43,200 s, or past what is left of 12 h since that
receive, is refused (one entry of a batch fails, the others apply); and the worker's longest
retry delay fits at the end of the longest invocation."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from devstack.aws_conformance.clients import client, fifo_queue
from sipreg.config import RETRY_DELAY_LIMIT_SECONDS, ConfigError, WorkerSettings
from sipreg.worker.sqs import SqsVisibility
from tests.support.settings import most_allowed

TWELVE_HOURS = 43_200


def received(endpoint: str, count: int = 1) -> tuple[Any, str, list[str]]:
    """(sqs, queue URL, receipt handles) of `count` messages just received, each in its own group."""
    sqs = client(endpoint, "sqs")
    url = fifo_queue(sqs, "visibility")
    for number in range(count):
        sqs.send_message(
            QueueUrl=url, MessageBody="x", MessageGroupId=f"g{number}", MessageDeduplicationId=f"d{number}"
        )
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert len(messages) == count
    return sqs, url, [m["ReceiptHandle"] for m in messages]


def test_a_visibility_past_twelve_hours_is_refused_even_at_once(aws_endpoint: str) -> None:
    sqs, url, [handle] = received(aws_endpoint)
    with pytest.raises(ClientError) as refused:
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=handle, VisibilityTimeout=TWELVE_HOURS + 1)
    assert refused.value.response["Error"]["Code"] == "InvalidParameterValue"
    assert "Must be between 0 and 43200" in refused.value.response["Error"]["Message"]


def test_what_is_left_of_twelve_hours_since_the_receive_is_the_limit(aws_endpoint: str) -> None:
    # Given a message received a moment ago
    sqs, url, [handle] = received(aws_endpoint)
    time.sleep(0.2)
    # When its visibility is set to 12 h from now, then SQS refuses: 12 h from the receive is all
    with pytest.raises(ClientError) as refused:
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=handle, VisibilityTimeout=TWELVE_HOURS)
    assert "Total VisibilityTimeout for the message is beyond the limit" in str(refused.value)
    # and what is left of them is taken
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=handle, VisibilityTimeout=TWELVE_HOURS - 10)


def test_in_a_batch_only_the_entry_past_the_limit_fails(aws_endpoint: str) -> None:
    sqs, url, handles = received(aws_endpoint, count=2)
    answer = sqs.change_message_visibility_batch(
        QueueUrl=url,
        Entries=[
            {"Id": "fits", "ReceiptHandle": handles[0], "VisibilityTimeout": 600},
            {"Id": "past", "ReceiptHandle": handles[1], "VisibilityTimeout": TWELVE_HOURS},
        ],
    )
    assert [entry["Id"] for entry in answer["Successful"]] == ["fits"]
    assert [(entry["Id"], entry["Code"]) for entry in answer["Failed"]] == [("past", "InvalidParameterValue")]


def test_the_workers_longest_retry_delay_fits_after_the_longest_invocation(
    aws_endpoint: str, caplog: pytest.LogCaptureFixture
) -> None:
    # The settings refuse a delay 12 h long (the bound was 43,200: SQS refused every such delay)
    assert RETRY_DELAY_LIMIT_SECONDS + 900 <= TWELVE_HOURS  # 900 s: Lambda's longest invocation
    assert most_allowed(WorkerSettings, "retry_max_seconds") == RETRY_DELAY_LIMIT_SECONDS
    # Given failed records received a moment ago, when the worker delays them by the longest
    # delay the settings allow, and by the 12 h the old bound allowed
    sqs, url, handles = received(aws_endpoint, count=2)
    visibility = SqsVisibility(url, client=sqs)
    with caplog.at_level(logging.WARNING, logger="sipreg.worker.sqs"):
        visibility.delay([(handles[0], RETRY_DELAY_LIMIT_SECONDS)])
        assert caplog.messages == []
        visibility.delay([(handles[1], TWELVE_HOURS)])
    # Then the first is taken, the second refused (the worker logs it; the message comes back
    # after the queue's own visibility timeout)
    assert caplog.messages == ["could not set the retry delay of 1 messages"]


def test_a_retry_delay_of_twelve_hours_is_a_configuration_error() -> None:
    environment = {
        "REGISTRATIONS_TABLE": "Registrations",
        "EVENT_LOG_TABLE": "EventLog",
        "EVENTS_QUEUE_URL": "https://sqs.example/q.fifo",
        "DEAD_LETTER_QUEUE_URL": "https://sqs.example/d.fifo",
        "SIPREG_ROLE_IDS": "AROAEXAMPLE",
        "RETRY_MAX_SECONDS": str(TWELVE_HOURS),
    }
    with pytest.raises(ConfigError, match="RETRY_MAX_SECONDS"):
        WorkerSettings.from_env(environment)
