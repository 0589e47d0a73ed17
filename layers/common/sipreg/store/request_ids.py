"""The RequestIds table: every signed state-changing request's id, remembered for its window.

A Lambda has no memory across execution environments, so the ids live in DynamoDB: one
conditional PutItem per request, which fails when the id is already there and still in its
window (the request is a replay). Key: `request_id` = `<scheme>:<who signed>:<id>`; `expires`
(epoch seconds) is the table's TTL attribute. TTL deletion lags, so a remembered id whose
window is over is taken again by the same conditional write.
"""

from __future__ import annotations

from typing import Protocol

from botocore.exceptions import ClientError

from sipreg.aws import dynamodb_table


class RequestIds(Protocol):
    def first_use(self, key: str, *, now: float, until: float) -> bool:
        """Remembers `key` until `until`; False when it was already remembered for a later time."""
        ...


class RequestIdStore:
    def __init__(self, table_name: str) -> None:
        self._table = dynamodb_table(table_name)

    def first_use(self, key: str, *, now: float, until: float) -> bool:
        try:
            self._table.put_item(
                Item={"request_id": key, "expires": int(until) + 1},
                ConditionExpression="attribute_not_exists(request_id) OR expires < :now",
                ExpressionAttributeValues={":now": int(now)},
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True
