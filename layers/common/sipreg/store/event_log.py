"""The EventLog table: one line per event and MSISDN, what happened to it and why (30 days).

Key: pk `msisdn`, sk `<recorded_at ISO>#<event_id>[#<sip_uri>]`, so a query returns a number's history in
time order. `expires` is the table's TTL attribute.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from boto3.dynamodb.conditions import Key
from pydantic import BaseModel, ConfigDict

from sipreg.aws import dynamodb_table

RETENTION = timedelta(days=30)


class EventLogEntry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    msisdn: str
    event_id: str
    event_type: str
    outcome: str  # e.g. active, rejected, superseded, duplicate, awaiting_consent, retrying, invalid
    reason: str | None = None
    sip_uri: str | None = None
    recorded_at: datetime
    raw_body: str | None = None  # only for an event that could not be parsed (truncated)


def to_item(entry: EventLogEntry) -> dict[str, Any]:
    """The DynamoDB item of an entry (also used inside write transactions)."""
    item = entry.model_dump(mode="json", exclude_none=True)
    # One event may leave a line per registration it touched (consent, revoke): sip_uri keeps them apart.
    item["sk"] = f"{item['recorded_at']}#{entry.event_id}" + (f"#{entry.sip_uri}" if entry.sip_uri else "")
    item["expires"] = int((entry.recorded_at + RETENTION).timestamp())
    return item


class EventLog:
    def __init__(self, table_name: str) -> None:
        self.table_name = table_name
        self._table = dynamodb_table(table_name)

    def append(self, entry: EventLogEntry) -> None:
        self._table.put_item(Item=to_item(entry))

    def recent(self, msisdn: str, *, limit: int = 50) -> list[EventLogEntry]:
        """The newest `limit` entries, newest first; expired ones skipped (TTL deletion lags)."""
        page = self._table.query(
            KeyConditionExpression=Key("msisdn").eq(msisdn), ScanIndexForward=False, Limit=limit
        )
        cutoff = datetime.now().astimezone() - RETENTION
        entries = [EventLogEntry.model_validate(item) for item in page["Items"]]
        return [entry for entry in entries if entry.recorded_at >= cutoff]
