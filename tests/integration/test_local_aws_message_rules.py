"""The local AWS refuses what SQS and EventBridge refuse of a message: a FIFO group or deduplication
id that is not 1 to 128 alphanumeric or punctuation characters, a PutEvents request whose entries
add up to more than 256 KB, and an entry whose Detail is not a JSON object (that entry alone).
sipreg's own ids and details are within these rules (the last test)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError

from devstack.aws_conformance.clients import client, fifo_queue
from sipreg.notify import PUT_EVENTS_LIMIT, EventBridgePublisher, StatusChange
from sipreg.queue import deduplication_id
from sipreg.text import PEER_TEXT_LIMIT

LIMIT_BYTES = 262_144  # EventBridge: the entries of one PutEvents request
SOURCE, DETAIL_TYPE = "sipreg", "RegistrationStatusChanged"


@pytest.fixture
def sqs_queue(aws_endpoint: str) -> tuple[Any, str]:
    sqs = client(aws_endpoint, "sqs")
    return sqs, fifo_queue(sqs, "ids")


@pytest.fixture
def bus(aws_endpoint: str) -> tuple[Any, str]:
    events = client(aws_endpoint, "events")
    name = f"rules-{uuid.uuid4().hex[:10]}"
    events.create_event_bus(Name=name)
    return events, name


@pytest.mark.parametrize(
    ("parameter", "value"),
    [
        ("MessageGroupId", "g" * 129),
        ("MessageGroupId", "tab\tinside"),
        ("MessageGroupId", "ÆØÅ"),
        ("MessageDeduplicationId", "d" * 129),
        ("MessageDeduplicationId", "space inside"),
    ],
)
def test_a_group_or_deduplication_id_outside_the_rule_is_refused(
    sqs_queue: tuple[Any, str], parameter: str, value: str
) -> None:
    sqs, url = sqs_queue
    ids = {"MessageGroupId": "g", "MessageDeduplicationId": "d", parameter: value}
    with pytest.raises(ClientError) as refused:
        sqs.send_message(QueueUrl=url, MessageBody="x", **ids)
    assert refused.value.response["Error"]["Code"] == "InvalidParameterValue"
    assert f"parameter {parameter} is invalid" in refused.value.response["Error"]["Message"]
    assert "Messages" not in sqs.receive_message(QueueUrl=url)


def test_ids_of_128_punctuation_and_alphanumeric_characters_are_taken(sqs_queue: tuple[Any, str]) -> None:
    sqs, url = sqs_queue
    group = ("+4799990000!#$%&'()*,-./:;<=>?@[]^_`{|}~" * 4)[:128]
    sqs.send_message(QueueUrl=url, MessageBody="x", MessageGroupId=group, MessageDeduplicationId="D" * 128)
    [message] = sqs.receive_message(QueueUrl=url, AttributeNames=["MessageGroupId"])["Messages"]
    assert message["Attributes"]["MessageGroupId"] == group


def test_in_a_batch_only_the_entry_with_a_bad_id_fails(sqs_queue: tuple[Any, str]) -> None:
    sqs, url = sqs_queue
    answer = sqs.send_message_batch(
        QueueUrl=url,
        Entries=[
            {"Id": "good", "MessageBody": "x", "MessageGroupId": "g", "MessageDeduplicationId": "1"},
            {"Id": "bad", "MessageBody": "x", "MessageGroupId": "g" * 129, "MessageDeduplicationId": "2"},
        ],
    )
    assert [entry["Id"] for entry in answer["Successful"]] == ["good"]
    assert [(entry["Id"], entry["Code"]) for entry in answer["Failed"]] == [("bad", "InvalidParameterValue")]


def entry(bus_name: str, detail: str) -> dict[str, Any]:
    return {"EventBusName": bus_name, "Source": SOURCE, "DetailType": DETAIL_TYPE, "Detail": detail}


def padded_detail(size: int) -> str:
    """A JSON object that makes an entry of `size` bytes as EventBridge counts them."""
    overhead = len(SOURCE) + len(DETAIL_TYPE) + len(json.dumps({"x": ""}))
    return json.dumps({"x": "y" * (size - overhead)})


def test_entries_over_256_kb_together_are_refused_whole_and_at_the_limit_taken(bus: tuple[Any, str]) -> None:
    events, name = bus
    half = LIMIT_BYTES // 2
    with pytest.raises(ClientError) as refused:
        events.put_events(Entries=[entry(name, padded_detail(half)), entry(name, padded_detail(half + 1))])
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    answer = events.put_events(Entries=[entry(name, padded_detail(half)), entry(name, padded_detail(half))])
    assert answer["FailedEntryCount"] == 0


def test_an_entry_whose_detail_is_not_a_json_object_fails_alone(bus: tuple[Any, str]) -> None:
    events, name = bus
    answer = events.put_events(
        Entries=[entry(name, "{}"), entry(name, "not json"), entry(name, "[1, 2]"), entry(name, '{"a": 1}')]
    )
    assert answer["FailedEntryCount"] == 2
    codes = [result.get("ErrorCode") for result in answer["Entries"]]
    assert codes == [None, "MalformedDetail", "MalformedDetail", None]
    assert all("EventId" in answer["Entries"][i] for i in (0, 3))


def test_more_than_ten_entries_are_refused_whole_even_with_a_malformed_one(bus: tuple[Any, str]) -> None:
    events, name = bus
    with pytest.raises(ClientError) as refused:
        events.put_events(Entries=[entry(name, "{}")] * 10 + [entry(name, "not json")])
    assert refused.value.response["Error"]["Code"] == "ValidationException"


class RecordingEvents:
    """The events client, keeping each PutEvents answer."""

    def __init__(self, events: Any) -> None:
        self.events = events
        self.answers: list[Any] = []

    def put_events(self, **request: Any) -> Any:
        answer = self.events.put_events(**request)
        self.answers.append(answer)
        return answer


def test_sipregs_ids_and_its_largest_status_changes_keep_the_rules(
    sqs_queue: tuple[Any, str], bus: tuple[Any, str]
) -> None:
    # Given the longest MSISDN (its group) and a deduplication id as sipreg.queue makes them
    sqs, url = sqs_queue
    longest_msisdn = "+" + "9" * 15
    sqs.send_message(
        QueueUrl=url,
        MessageBody="x",
        MessageGroupId=longest_msisdn,
        MessageDeduplicationId=deduplication_id("e" * 128),
    )
    # And ten status changes with the longest parts sipreg keeps, published as one request
    events, name = bus
    change = StatusChange(
        msisdn=longest_msisdn,
        sip_uri="sips:" + ".".join(["p" * 63] * 3 + ["p" * 61]) + ":65535",  # a 253-character host
        old_status="awaiting_consent",
        new_status="consent_revoked",
        reason="r" * PEER_TEXT_LIMIT,
        event_id="e" * 128,
        event_type="registration.upsert",
        changed_at=datetime(2026, 12, 3, tzinfo=UTC),
    )
    recording = RecordingEvents(events)
    EventBridgePublisher(name, client=recording).publish([change] * PUT_EVENTS_LIMIT)
    # Then both are taken: the message, and every entry in one request
    assert len(sqs.receive_message(QueueUrl=url)["Messages"]) == 1
    [answer] = recording.answers
    assert answer["FailedEntryCount"] == 0 and len(answer["Entries"]) == PUT_EVENTS_LIMIT
