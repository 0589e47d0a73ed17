"""The Registrations table: what each (MSISDN, sip_uri) should be, what the core holds, and why.

Key: pk `msisdn`, sk `sip_uri`. Active registrations also carry `refresh_shard` and
`expires_at`, which put them in the sparse `RefreshDue` index: the refresher finds what is about
to expire with one query per shard, never a scan, and the shards keep a million registrations off
one hot partition.

Registrations that are wanted (a desired state) or suspended also carry `endpoint_shard` and
`endpoint_key` ("<sip_uri> <msisdn>"), the sparse `ByEndpoint` index: the endpoint health check
lists the distinct endpoints in use by skipping from one sip_uri to the next (one query of one
item per endpoint and shard, whatever the number of registrations), and the registrations of
one endpoint with a `begins_with` query. Its keys change only when a registration comes or goes
(and `suspended`, projected, when it is suspended or resumed): refreshes never write to it.

Suspended registrations also carry `suspended_shard`, the sparse `Suspended` index (keys only):
the health check lists what is suspended in one query per shard, whatever the number of
registrations, and resumes what an endpoint that answers still has suspended.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Collection, Iterator, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict

from sipreg.aws import dynamodb_table
from sipreg.models import Msisdn, RouteSpec, RouteType, SipUri
from sipreg.store import ConcurrentUpdateError
from sipreg.store.batch_read import batch_get
from sipreg.store.event_log import EventLogEntry, update_action

logger = logging.getLogger(__name__)

REFRESH_INDEX = "RefreshDue"
ENDPOINT_INDEX = "ByEndpoint"
SUSPENDED_INDEX = "Suspended"
TRANSACTION_LIMIT = 100  # items per TransactWriteItems
REFRESH_SHARDS = 16
# Registrations (not deleted) one number may have: a PBX, its voicemail, a recorder, ... with room
# to spare. The worker refuses an upsert past it; a number's status stays well inside Lambda's 6 MB.
MAX_REGISTRATIONS_PER_NUMBER = 20
# How many event ids a record remembers to absorb redelivered or resent duplicates.
RECENT_EVENT_IDS = 20


RecordKey = tuple[str, str]  # (msisdn, sip_uri)


class RegistrationStatus(StrEnum):
    PENDING = "pending"
    AWAITING_CONSENT = "awaiting_consent"
    ACTIVE = "active"
    REJECTED = "rejected"
    DELETING = "deleting"
    DELETED = "deleted"
    CONSENT_REVOKED = "consent_revoked"
    FAILED = "failed"
    DISABLED = "disabled"  # an operator took it off the core; the desired state is kept
    SUSPENDED = "suspended"  # off the core while its PBX endpoint is down (LOOP and FORK only)


class InFlight(BaseModel):
    """A core call claimed for an event before it was made: until the event's outcome is saved, the
    core may or may not have taken it (the worker may have died in between)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: str
    since: datetime


class RegistrationRecord(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    msisdn: Msisdn
    sip_uri: SipUri
    status: RegistrationStatus
    desired: RouteSpec | None = None  # None: the registration should not exist
    applied: RouteSpec | None = None  # what the core holds as far as we know; None: nothing
    expires_at: datetime | None = None  # when the core drops it unless refreshed
    last_error: str | None = None
    last_event_id: str | None = None
    last_event_type: str | None = None
    last_event_at: datetime | None = None  # occurred_at of the newest event applied (stale guard)
    recent_event_ids: tuple[str, ...] = ()  # of the events that change it (refreshes: last_refresh_id)
    last_refresh_id: str | None = None
    in_flight: InFlight | None = None
    # Holds: while one applies, the desired state is kept but not on the core.
    disabled: bool = False  # by an operator, until enabled
    suspended: bool = False  # by the endpoint health check, until its endpoint answers again
    updated_at: datetime
    version: int = 0  # optimistic lock: each save expects the version it read

    def seen(self, event_id: str) -> bool:
        return event_id in self.recent_event_ids or event_id == self.last_refresh_id

    def hold(self, desired: RouteSpec | None = None) -> RegistrationStatus | None:
        """What keeps `desired` (default: the record's) off the core: disabled, suspended, or None."""
        desired = desired or self.desired
        if self.disabled:
            return RegistrationStatus.DISABLED
        if self.suspended and desired is not None and desired.route_type in SUSPENDABLE:
            return RegistrationStatus.SUSPENDED
        return None


# The route types that put the PBX in the path of every call: these leave the core while their
# endpoint is down, so calls go the normal way. A Fallback or Ingress registration stays.
SUSPENDABLE = frozenset({RouteType.LOOP, RouteType.FORK, RouteType.LOOP_MO, RouteType.LOOP_MT})


def refresh_shard(msisdn: str) -> str:
    digest = hashlib.blake2b(msisdn.encode(), digest_size=2).digest()
    return str(int.from_bytes(digest) % REFRESH_SHARDS)


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def _to_item(record: RegistrationRecord) -> dict[str, Any]:
    item = record.model_dump(mode="json", exclude_none=True)
    item["recent_event_ids"] = list(record.recent_event_ids)
    for flag in ("disabled", "suspended"):  # most records have neither: no bytes for them
        if not item[flag]:
            del item[flag]
    if record.desired is not None or record.suspended:
        item["endpoint_shard"] = refresh_shard(record.msisdn)
        item["endpoint_key"] = f"{record.sip_uri} {record.msisdn}"
    if record.suspended:
        item["suspended_shard"] = refresh_shard(record.msisdn)
    if record.status is RegistrationStatus.ACTIVE and record.expires_at is not None:
        # Only active records enter the sparse refresh index, keyed by expiry in epoch seconds.
        item["refresh_shard"] = refresh_shard(record.msisdn)
        item["refresh_due"] = _epoch(record.expires_at)
    return item


def _from_item(item: dict[str, Any]) -> RegistrationRecord:
    cleaned = {key: int(value) if isinstance(value, Decimal) else value for key, value in item.items()}
    return RegistrationRecord.model_validate(cleaned)


class RegistrationStore:
    def __init__(self, table_name: str) -> None:
        self._table = dynamodb_table(table_name)

    def get(self, msisdn: str, sip_uri: str) -> RegistrationRecord | None:
        found = self._table.get_item(Key={"msisdn": msisdn, "sip_uri": sip_uri}, ConsistentRead=True)
        item = found.get("Item")
        return _from_item(item) if item else None

    def get_many(self, keys: Collection[RecordKey]) -> dict[RecordKey, RegistrationRecord | None]:
        """The records of these keys, consistently read with BatchGetItem (one request per 100 keys).

        A key without a record maps to None. Keys DynamoDB still leaves unprocessed (throttling)
        after a few rounds are left out of the answer: the caller must read those itself.
        """
        unique = list(dict.fromkeys(keys))
        read = batch_get(self._table, [{"msisdn": msisdn, "sip_uri": sip_uri} for msisdn, sip_uri in unique])
        found: dict[RecordKey, RegistrationRecord | None] = {}
        for item in read.items:
            record = _from_item(item)
            found[(record.msisdn, record.sip_uri)] = record
        unread = {(key["msisdn"], key["sip_uri"]) for key in read.unread}
        if unread:
            logger.warning("%d registration(s) stayed unprocessed after BatchGetItem's rounds", len(unread))
        found.update({key: None for key in unique if key not in unread and key not in found})
        return found

    def list_for(self, msisdn: str) -> list[RegistrationRecord]:
        items = self._query_all(KeyConditionExpression=Key("msisdn").eq(msisdn), ConsistentRead=True)
        return [_from_item(item) for item in items]

    def _query_all(self, **query: Any) -> Iterator[dict[str, Any]]:
        """Every item the query finds, page after page."""
        while True:
            page = self._table.query(**query)
            yield from page["Items"]
            if "LastEvaluatedKey" not in page:
                return
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def save(self, record: RegistrationRecord, *, read_version: int | None) -> RegistrationRecord:
        """Writes `record` as version read_version + 1; `read_version=None` means it must be new."""
        [saved] = self.save_with_log([(record, read_version)], [], event_log_table="")
        return saved

    def save_with_log(
        self,
        saves: Sequence[tuple[RegistrationRecord, int | None]],
        entries: Sequence[EventLogEntry],
        *,
        event_log_table: str,
        count_try: bool = False,
    ) -> list[RegistrationRecord]:
        """Each record as `save` would write it, and the event-log items, in ONE TransactWriteItems.

        All or nothing: if any record changed since its read version, nothing is written and
        ConcurrentUpdateError is raised. `count_try`: this write starts an attempt at the events
        (their items' `tries` go up by one). One request whatever the count (up to 100 items; a
        larger set, which one subscriber never has, is written in several transactions).
        """
        saved = [record.model_copy(update={"version": (read or 0) + 1}) for record, read in saves]
        writes = [
            self._versioned_put(record, read) for record, (_, read) in zip(saved, saves, strict=True)
        ] + [{"Update": update_action(event_log_table, entry, count_try=count_try)} for entry in entries]
        for start in range(0, len(writes), TRANSACTION_LIMIT):
            self._transact(writes[start : start + TRANSACTION_LIMIT])
        return saved

    def _versioned_put(self, record: RegistrationRecord, read_version: int | None) -> dict[str, Any]:
        # The resource's client serialises plain values itself (boto3's transformation injector).
        put: dict[str, Any] = {"TableName": self._table.name, "Item": _to_item(record)}
        if read_version is None:
            put["ConditionExpression"] = "attribute_not_exists(msisdn)"
        else:
            put["ConditionExpression"] = "#version = :read"
            put["ExpressionAttributeNames"] = {"#version": "version"}
            put["ExpressionAttributeValues"] = {":read": read_version}
        return {"Put": put}

    def _transact(self, items: list[dict[str, Any]]) -> None:
        try:
            self._table.meta.client.transact_write_items(TransactItems=items)
        except ClientError as error:
            reasons = error.response.get("CancellationReasons") or []
            if any(reason.get("Code") == "ConditionalCheckFailed" for reason in reasons):
                raise ConcurrentUpdateError("a registration changed since it was read") from None
            raise

    def due_for_refresh(
        self, shard: str, before: datetime, *, limit: int, start_key: dict[str, Any] | None = None
    ) -> tuple[list[RegistrationRecord], dict[str, Any] | None]:
        """Active records of one shard expiring before `before`, soonest first, one page.

        Thread-safe (the refresher reads shards in parallel): it goes through the resource's
        client, which is, not the Table resource, which boto3 says is not."""
        query: dict[str, Any] = {
            "TableName": self._table.name,
            "IndexName": REFRESH_INDEX,
            "KeyConditionExpression": Key("refresh_shard").eq(shard) & Key("refresh_due").lt(_epoch(before)),
            "Limit": limit,
        }
        if start_key:
            query["ExclusiveStartKey"] = start_key
        page = self._table.meta.client.query(**query)
        return [_from_item(item) for item in page["Items"]], page.get("LastEvaluatedKey")

    def all_shards(self) -> Iterator[str]:
        return (str(shard) for shard in range(REFRESH_SHARDS))

    def endpoints_in_use(self) -> list[str]:
        """The distinct sip_uris that wanted or suspended registrations name, sorted."""
        found: set[str] = set()
        for shard in self.all_shards():
            condition = Key("endpoint_shard").eq(shard)
            while True:
                page = self._table.query(IndexName=ENDPOINT_INDEX, KeyConditionExpression=condition, Limit=1)
                if not page["Items"]:
                    break
                sip_uri = str(page["Items"][0]["endpoint_key"]).split(" ", 1)[0]
                found.add(sip_uri)
                # "!" sorts after the space that ends every key of this sip_uri, and before any
                # character a longer sip_uri could continue with.
                condition = Key("endpoint_shard").eq(shard) & Key("endpoint_key").gt(f"{sip_uri}!")
        return sorted(found)

    def registrations_at(self, sip_uri: str) -> Iterator[tuple[str, bool]]:
        """(msisdn, suspended) of every wanted or suspended registration at `sip_uri` (the index
        is eventually consistent: a change of the last second may not show yet)."""
        for shard in self.all_shards():
            condition = Key("endpoint_shard").eq(shard) & Key("endpoint_key").begins_with(f"{sip_uri} ")
            for item in self._query_all(IndexName=ENDPOINT_INDEX, KeyConditionExpression=condition):
                yield str(item["msisdn"]), bool(item.get("suspended", False))

    def suspended_registrations(self) -> dict[str, list[str]]:
        """The MSISDNs of the suspended registrations, by sip_uri (from the sparse `Suspended`
        index: eventually consistent, as `registrations_at`)."""
        found: dict[str, list[str]] = {}
        for shard in self.all_shards():
            condition = Key("suspended_shard").eq(shard)
            for item in self._query_all(IndexName=SUSPENDED_INDEX, KeyConditionExpression=condition):
                found.setdefault(str(item["sip_uri"]), []).append(str(item["msisdn"]))
        return found


def now() -> datetime:
    return datetime.now(UTC)
