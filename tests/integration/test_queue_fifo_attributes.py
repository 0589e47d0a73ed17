"""What `sipreg.queue` puts on the FIFO queue, read back from moto server, and the queue's own settings."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict

from sipreg.events import from_json, parse_event
from sipreg.queue import EventQueue, deduplication_id
from tests.support.events_api import aws_client, drain, events_host, events_queue_like, upsert


def test_each_message_carries_the_msisdn_as_group_and_a_hash_of_the_id_as_dedup_id(aws: str) -> None:
    queue_url = events_queue_like(aws)
    msisdns = ["+4799990000", "+4799990001", "+4799990002"]
    events = [parse_event(upsert(f"crm:{n:03}", msisdn=msisdns[n % 3])) for n in range(25)]

    result = EventQueue(queue_url, client=aws_client(aws, "sqs")).send(events)
    messages = drain(aws, queue_url)

    assert result.complete and len(result.accepted) == 25
    assert len(messages) == 25
    for message in messages:
        event = from_json(message["Body"])
        assert message["Attributes"]["MessageGroupId"] == event.msisdn
        assert (
            message["Attributes"]["MessageDeduplicationId"] == hashlib.sha256(event.id.encode()).hexdigest()
        )
    assert {from_json(m["Body"]) for m in messages} == set(events)


def test_order_is_kept_within_each_msisdn(aws: str) -> None:
    queue_url = events_queue_like(aws)
    events = [parse_event(upsert(f"e{n:02}", msisdn=f"+47999900{n % 2:02}")) for n in range(20)]

    EventQueue(queue_url, client=aws_client(aws, "sqs")).send(events)
    per_group: dict[str, list[str]] = defaultdict(list)
    for message in drain(aws, queue_url):
        per_group[message["Attributes"]["MessageGroupId"]].append(json.loads(message["Body"])["id"])

    assert per_group["+4799990000"] == [f"e{n:02}" for n in range(0, 20, 2)]
    assert per_group["+4799990001"] == [f"e{n:02}" for n in range(1, 20, 2)]


def test_a_resent_event_is_delivered_once(aws: str) -> None:
    queue_url = events_queue_like(aws)
    queue = EventQueue(queue_url, client=aws_client(aws, "sqs"))
    event = parse_event(upsert("resent-1"))

    assert queue.send([event]).complete
    assert queue.send([event]).complete  # the client retried: SQS says yes, and drops it

    assert [json.loads(m["Body"])["id"] for m in drain(aws, queue_url)] == ["resent-1"]


def test_a_producer_cannot_take_the_dedup_slot_of_sipregs_own_event(aws: str) -> None:
    # Given a producer that may send to the queue and has worked out a coming resume's id
    queue_url = events_queue_like(aws)
    sqs = aws_client(aws, "sqs")
    resume = parse_event(
        {
            "id": "sipreg:resume:0123456789abcdef0123456789abcdef01234567",
            "type": "registration.resume",
            "msisdn": "+4799990000",
            "occurred_at": "2026-01-01T00:05:00Z",
            "registration": {"sip_uri": "sips:pbx.example.com:5061"},
        },
        allow_internal=True,
    )
    sqs.send_message(
        QueueUrl=queue_url,
        MessageBody="{}",
        MessageGroupId="+4799990000",
        MessageDeduplicationId=deduplication_id(resume.id),  # as a producer's event with that id gets
    )
    # When the health check sends the resume within SQS's 5-minute window
    assert EventQueue(queue_url, client=sqs).send([resume]).complete
    # Then SQS delivers it
    assert [from_json(m["Body"]) for m in drain(aws, queue_url) if m["Body"] != "{}"] == [resume]


def test_the_template_queue_is_fifo_encrypted_with_a_fifo_dlq_as_a_backstop(aws: str) -> None:
    with events_host(aws) as host:
        sqs = aws_client(aws, "sqs")
        queue = sqs.get_queue_attributes(
            QueueUrl=host.resources["EventsQueue"]["QueueUrl"], AttributeNames=["All"]
        )
        dlq = sqs.get_queue_attributes(
            QueueUrl=host.resources["EventsDeadLetterQueue"]["QueueUrl"], AttributeNames=["All"]
        )

    attributes = queue["Attributes"]
    assert attributes["FifoQueue"] == "true"
    assert attributes["ContentBasedDeduplication"] == "false"
    assert int(attributes["VisibilityTimeout"]) >= 6 * 30  # the worker's timeout is 30 s
    assert attributes["KmsMasterKeyId"] == host.resources["DataKey"]["Ref"]
    redrive = json.loads(attributes["RedrivePolicy"])
    # The worker dead-letters after an event's own tries; SQS's count is only the backstop
    assert redrive["deadLetterTargetArn"] == dlq["Attributes"]["QueueArn"]
    assert int(redrive["maxReceiveCount"]) == 100
    assert dlq["Attributes"]["FifoQueue"] == "true"
    assert dlq["Attributes"]["KmsMasterKeyId"] == host.resources["DataKey"]["Ref"]
