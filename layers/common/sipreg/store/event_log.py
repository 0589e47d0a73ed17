"""The EventLog table: one item per event and registration, saying what became of the event (30 days;
keep-alive refreshes 3).

Key: pk `msisdn`, sk `<kind>#<occurred_at UTC>#<event_id>#<sip_uri or *>`. `kind` is `e` for the
events that change what a number should have (upserts, deletes, consent, revoke, and messages
that were not events at all) and `r` for the refresher's keep-alive refreshes, so a number's
change history pages on its own and an hour of refreshes never hides it. A query returns a
kind's items in event-time order.

An item is written where the event's fate is decided and overwritten as it moves on: `applying`
(a core call is on its way: written before the call, so a worker that dies leaves a trace),
`retrying`, then one final outcome; `dead_lettered` after its last try; `pending` once `sipreg
redrive` brought it back. `tries` counts the attempts the worker started on it (never the
receives that only held it back behind an earlier event), `decisions` how many times a final
outcome was committed for it: 1 for every event that reached one, whatever the redeliveries.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Collection, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from boto3.dynamodb.conditions import Attr, Key
from pydantic import BaseModel, ConfigDict

from sipreg.aws import dynamodb_table
from sipreg.store.batch_read import UnreadKeysError, batch_get

RETENTION = timedelta(days=30)
# A keep-alive refresh leaves an item every ~40 minutes per registration: kept 30 days, those
# would be nearly all of the table (docs/cost.md); 3 days show the recent keep-alive.
REFRESH_RETENTION = timedelta(days=3)
REFRESH_TYPE = "registration.refresh"
NO_REGISTRATION = "*"  # sk part of an item about the event as a whole (not one registration)
PAGE_LIMIT = 100


class Outcome(StrEnum):
    """What became of an event (for one registration, or as a whole)."""

    APPLYING = "applying"  # a core call is on its way, or was when its worker died
    RETRYING = "retrying"  # failed for now; the queue brings it back
    PENDING = "pending"  # back from the dead-letter queue, not yet tried again
    ACTIVE = "active"
    REFRESHED = "refreshed"
    DELETED = "deleted"
    REJECTED = "rejected"
    SUPERSEDED = "superseded"
    DUPLICATE = "duplicate"  # never written: a duplicate changes nothing (reported to metrics)
    AWAITING_CONSENT = "awaiting_consent"
    CONSENT_REVOKED = "consent_revoked"
    CONSENT_APPLIED = "consent_applied"  # a consent event's own item: what it did to each registration
    NOTHING_WAITING = "nothing_waiting"
    FAILED = "failed"
    DISABLED = "disabled"  # kept off the core by an operator (the desired state is recorded)
    SUSPENDED = "suspended"  # kept off the core while its PBX endpoint is down
    INVALID = "invalid"
    DEAD_LETTERED = "dead_lettered"

    @property
    def final(self) -> bool:
        return self not in _NOT_FINAL


_NOT_FINAL = frozenset({Outcome.APPLYING, Outcome.RETRYING, Outcome.PENDING})
# What an event's item says while the event may still come (back) through the queue.
WAITING = frozenset({*_NOT_FINAL, Outcome.DEAD_LETTERED})


class EventKind(StrEnum):
    CHANGES = "e"
    REFRESHES = "r"


def kind_of(event_type: str) -> EventKind:
    return EventKind.REFRESHES if event_type == REFRESH_TYPE else EventKind.CHANGES


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def sort_key(event_type: str, occurred_at: datetime, event_id: str, sip_uri: str | None) -> str:
    return f"{kind_of(event_type)}#{_utc(occurred_at)}#{event_id}#{sip_uri or NO_REGISTRATION}"


class EventLogEntry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    msisdn: str
    event_id: str
    event_type: str
    outcome: Outcome
    reason: str | None = None
    sip_uri: str | None = None
    occurred_at: datetime  # the event's own time: the item's place in the log
    recorded_at: datetime  # when this outcome was written
    source: str | None = None
    tries: int = 0
    decisions: int = 0
    raw_body: str | None = None  # only for a message that could not be parsed (truncated)

    @property
    def key(self) -> dict[str, str]:
        return {
            "msisdn": self.msisdn,
            "sk": sort_key(self.event_type, self.occurred_at, self.event_id, self.sip_uri),
        }


_COUNTERS = ("tries", "decisions")


def update_action(table_name: str, entry: EventLogEntry, *, count_try: bool = False) -> dict[str, Any]:
    """An `Update` of the entry's item for TransactWriteItems (the resource client's plain values):
    sets every field, adds one to `tries` when this write starts an attempt and to `decisions`
    when it commits a final outcome; counters are never overwritten."""
    fields = entry.model_dump(mode="json", exclude_none=True, exclude={*_COUNTERS, "msisdn"})  # not the key
    kept = REFRESH_RETENTION if kind_of(entry.event_type) is EventKind.REFRESHES else RETENTION
    fields["expires"] = int((entry.recorded_at + kept).timestamp())
    names = {f"#{name}": name for name in fields}
    values: dict[str, Any] = {f":{name}": value for name, value in fields.items()}
    expression = "SET " + ", ".join(f"#{name} = :{name}" for name in fields)
    added = [name for name, on in (("tries", count_try), ("decisions", entry.outcome.final)) if on]
    if added:
        expression += " ADD " + ", ".join(f"#{name} :one" for name in added)
        names.update({f"#{name}": name for name in added})
        values[":one"] = 1
    removed = [name for name in ("reason", "sip_uri", "source", "raw_body") if getattr(entry, name) is None]
    if removed:
        expression += " REMOVE " + ", ".join(f"#{name}" for name in removed)
        names.update({f"#{name}": name for name in removed})
    return {
        "TableName": table_name,
        "Key": entry.key,
        "UpdateExpression": expression,
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }


def _from_item(item: dict[str, Any]) -> EventLogEntry:
    cleaned = {key: int(value) if isinstance(value, Decimal) else value for key, value in item.items()}
    return EventLogEntry.model_validate(cleaned)


class InvalidCursorError(ValueError):
    """A paging cursor that this log did not hand out for this number."""


class EventLog:
    def __init__(self, table_name: str, *, table: Any = None) -> None:
        """`table`: a boto3 Table of `table_name` (default: the process-wide one from `sipreg.aws`)."""
        self.table_name = table_name
        self._table = table if table is not None else dynamodb_table(table_name)

    def write(self, entry: EventLogEntry, *, count_try: bool = False) -> None:
        """One entry on its own (outside a registration's transaction)."""
        action = update_action(self.table_name, entry, count_try=count_try)
        del action["TableName"]
        self._table.update_item(**action)

    def tries_of(self, keys: Collection[tuple[str, str]]) -> dict[tuple[str, str], int]:
        """Attempts started so far, by (msisdn, sk); keys without an item are left out."""
        items = self._batch_get(keys, projection="msisdn, sk, tries")
        return {key: int(item.get("tries", 0)) for key, item in items.items()}

    def get_many(self, keys: Collection[tuple[str, str]]) -> dict[tuple[str, str], EventLogEntry]:
        """The items of these (msisdn, sk) keys; keys without an item are left out."""
        return {key: _from_item(item) for key, item in self._batch_get(keys).items()}

    def _batch_get(
        self, keys: Collection[tuple[str, str]], *, projection: str | None = None
    ) -> dict[tuple[str, str], dict[str, Any]]:
        """Raises UnreadKeysError if DynamoDB kept some unprocessed: an unread item is not a missing one."""
        wanted = [{"msisdn": msisdn, "sk": sk} for msisdn, sk in dict.fromkeys(keys)]
        read = batch_get(self._table, wanted, projection=projection)
        if read.unread:
            raise UnreadKeysError(self.table_name, len(read.unread))
        return {(item["msisdn"], item["sk"]): item for item in read.items}

    def get(self, msisdn: str, sk: str) -> EventLogEntry | None:
        item = self._table.get_item(Key={"msisdn": msisdn, "sk": sk}, ConsistentRead=True).get("Item")
        return _from_item(item) if item else None

    def page(
        self,
        msisdn: str,
        *,
        kind: EventKind = EventKind.CHANGES,
        limit: int = 50,
        cursor: str | None = None,
        event_type: str | None = None,
        outcome: Outcome | None = None,
    ) -> tuple[list[EventLogEntry], str | None]:
        """Newest first, `limit` entries (fewer only at the end), and the cursor of the next page.

        Filters apply within the kind; expired entries (TTL deletion lags) are skipped.
        """
        query: dict[str, Any] = {
            "KeyConditionExpression": Key("msisdn").eq(msisdn) & Key("sk").begins_with(f"{kind}#"),
            "ScanIndexForward": False,
        }
        filters = Attr("expires").gt(int(datetime.now(UTC).timestamp()))
        if event_type:
            filters &= Attr("event_type").eq(event_type)
        if outcome:
            filters &= Attr("outcome").eq(outcome.value)
        query["FilterExpression"] = filters
        if cursor:
            query["ExclusiveStartKey"] = decode_cursor(cursor, msisdn, kind)
        entries: list[EventLogEntry] = []
        while True:
            page = self._table.query(**query, Limit=max(limit - len(entries), 1) * 2)
            for item in page["Items"]:
                entries.append(_from_item(item))
                if len(entries) == limit:
                    return entries, encode_cursor(entries[-1])
            last = page.get("LastEvaluatedKey")
            if not last:
                return entries, None
            query["ExclusiveStartKey"] = last

    def mark_pending(self, entry_key: dict[str, str], event_type: str, reason: str, now: datetime) -> bool:
        """An event back from the dead-letter queue: `pending`, its tries counted from zero again.
        False when the log has no item of that type for it that still waits: none (e.g. past
        retention), a final outcome (the worker was quicker than this write, or a copy was moved
        twice), or another type's (the key names only the kind: a forged copy may share it)."""
        waiting = {f":w{n}": outcome.value for n, outcome in enumerate(sorted(WAITING))}
        try:
            self._table.update_item(
                Key=entry_key,
                UpdateExpression=(
                    "SET #outcome = :pending, #reason = :reason, #recorded_at = :now, #tries = :zero"
                ),
                ConditionExpression=(
                    f"attribute_exists(sk) AND #type = :type AND #outcome IN ({', '.join(waiting)})"
                ),
                ExpressionAttributeNames={
                    "#type": "event_type",
                    "#outcome": "outcome",
                    "#reason": "reason",
                    "#recorded_at": "recorded_at",
                    "#tries": "tries",
                },
                ExpressionAttributeValues={
                    ":type": event_type,
                    ":pending": Outcome.PENDING.value,
                    ":reason": reason,
                    ":now": now.isoformat(),
                    ":zero": 0,
                    **waiting,
                },
            )
        except self._table.meta.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def add_pending(self, entry: EventLogEntry) -> bool:
        """A `pending` item for an event back from the dead-letter queue that has none (never
        written: SQS's own redrive policy moved it; or past retention). False when it has one."""
        action = update_action(self.table_name, entry)
        del action["TableName"]
        try:
            self._table.update_item(**action, ConditionExpression="attribute_not_exists(sk)")
        except self._table.meta.client.exceptions.ConditionalCheckFailedException:
            return False
        return True


def encode_cursor(last: EventLogEntry) -> str:
    return base64.urlsafe_b64encode(json.dumps(last.key, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, msisdn: str, kind: EventKind) -> dict[str, str]:
    """The page's start key, only if it is one of this number's and this kind's."""
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error):
        raise InvalidCursorError("is not a cursor this API handed out") from None
    if (
        not isinstance(key, dict)
        or set(key) != {"msisdn", "sk"}
        or key["msisdn"] != msisdn
        or not isinstance(key["sk"], str)
        or not key["sk"].startswith(f"{kind}#")
    ):
        raise InvalidCursorError("is not a cursor of this number's events")
    return {"msisdn": msisdn, "sk": key["sk"]}


def entries_for(entries: Sequence[EventLogEntry], event_id: str) -> list[EventLogEntry]:
    return [entry for entry in entries if entry.event_id == event_id]
