"""A moved message whose DLQ copy cannot be deleted (its receipt expired, then failed again) is
kept hidden for the rest of the run, never moved twice, named in the report, and released at the
end. SQS is faked at the redriver's boundary: it answers every delete of that copy with a failure."""

from __future__ import annotations

import json
from typing import Any

from sipreg.redrive import Redriver

DLQ = "https://sqs.eu-west-1.amazonaws.com/123456789012/events-dlq.fifo"
BODY = json.dumps({"id": "crm-1", "type": "registration.upsert", "msisdn": "+4799990000"})


class UndeletingSqs:
    """Hands out one message, then its copy under a new receipt, then nothing; deletes nothing."""

    def __init__(self) -> None:
        self.receipts = ["receipt-1", "receipt-2"]
        self.sent: list[str] = []
        self.visibility: list[tuple[str, int]] = []

    def get_queue_attributes(self, **_: Any) -> dict[str, Any]:
        policy = {"deadLetterTargetArn": "arn:aws:sqs:eu-west-1:123456789012:events-dlq.fifo"}
        return {"Attributes": {"RedrivePolicy": json.dumps(policy)}}

    def get_queue_url(self, **_: Any) -> dict[str, str]:
        return {"QueueUrl": DLQ}

    def receive_message(self, **_: Any) -> dict[str, Any]:
        if not self.receipts:
            return {"Messages": []}
        receipt = self.receipts.pop(0)
        attributes = {"MessageGroupId": "+4799990000"}
        return {
            "Messages": [
                {"MessageId": "m-1", "ReceiptHandle": receipt, "Body": BODY, "Attributes": attributes}
            ]
        }

    def send_message_batch(self, Entries: list[dict[str, Any]], **_: Any) -> dict[str, Any]:  # noqa: N803
        self.sent += [entry["MessageBody"] for entry in Entries]
        return {"Successful": [{"Id": entry["Id"]} for entry in Entries], "Failed": []}

    def delete_message_batch(self, Entries: list[dict[str, Any]], **_: Any) -> dict[str, Any]:  # noqa: N803
        failed = {
            "Code": "ReceiptHandleIsInvalid",
            "Message": "The receipt handle has expired",
            "SenderFault": True,
        }
        return {"Successful": [], "Failed": [{"Id": entry["Id"], **failed} for entry in Entries]}

    def change_message_visibility_batch(self, Entries: list[dict[str, Any]], **_: Any) -> dict[str, Any]:  # noqa: N803
        self.visibility += [(entry["ReceiptHandle"], entry["VisibilityTimeout"]) for entry in Entries]
        return {"Successful": [{"Id": entry["Id"]} for entry in Entries], "Failed": []}


def test_a_copy_that_cannot_be_deleted_is_reported_not_moved_twice() -> None:
    sqs = UndeletingSqs()
    report = Redriver(sqs, "https://sqs.eu-west-1.amazonaws.com/123456789012/events.fifo").redrive()
    assert (report.moved, report.not_deleted) == (1, ("m-1",))
    assert len(sqs.sent) == 1  # the copy handed out again was not sent again
    assert sqs.visibility == [("receipt-2", 0)]  # held to the end, then visible again
