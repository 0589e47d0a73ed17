"""The Subscribers table: one item per MSISDN with its consent and its KMS-encrypted tokens.

Key: pk `msisdn`. Tokens are stored only as KMS ciphertext (encryption context = the MSISDN), so
the item never holds a usable token. `version` is an optimistic lock: every save names the
version it read, so two writers can never silently overwrite each other (e.g. two refreshers
losing a rotated refresh token). `refresh_lease_until` marks a refresh in flight elsewhere.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol

from boto3.dynamodb.conditions import Attr
from boto3.dynamodb.types import Binary
from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field

from sipreg.aws import dynamodb_table
from sipreg.models import Msisdn
from sipreg.store import ConcurrentUpdateError


class ConsentStatus(StrEnum):
    CONSENTED = "consented"
    REVOKED = "revoked"


class SubscriberRecord(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    msisdn: Msisdn
    status: ConsentStatus
    # KMS ciphertexts; never the tokens themselves. repr=False keeps even those out of logs.
    access_token_ciphertext: bytes | None = Field(default=None, repr=False)
    refresh_token_ciphertext: bytes | None = Field(default=None, repr=False)
    access_expires_at: float | None = None  # epoch seconds
    scopes: tuple[str, ...] = ()
    subject: str | None = None  # the identity server's `sub` for this subscriber
    consented_at: datetime | None = None
    revoked_at: datetime | None = None
    revoked_reason: str | None = None
    refresh_lease_until: float | None = None  # epoch seconds; a refresh is in flight until then
    # The identity server granted no refresh token: the consent ends with its access token.
    refresh_token_missing: bool = False
    updated_at: datetime
    version: int = 0

    @property
    def has_tokens(self) -> bool:
        return self.access_token_ciphertext is not None

    def lease_held(self, now: float) -> bool:
        return self.refresh_lease_until is not None and self.refresh_lease_until > now


def _to_item(record: SubscriberRecord) -> dict[str, Any]:
    item = record.model_dump(mode="python", exclude_none=True)
    for name in ("consented_at", "revoked_at", "updated_at"):
        if name in item:
            item[name] = item[name].isoformat()
    for name in ("access_expires_at", "refresh_lease_until"):
        if name in item:
            item[name] = Decimal(str(item[name]))
    item["scopes"] = list(record.scopes)
    return item


def _from_item(item: dict[str, Any]) -> SubscriberRecord:
    cleaned: dict[str, Any] = {}
    for key, value in item.items():
        if isinstance(value, Decimal):
            cleaned[key] = int(value) if key == "version" else float(value)
        elif isinstance(value, Binary):
            cleaned[key] = value.value
        else:
            cleaned[key] = value
    return SubscriberRecord.model_validate(cleaned)


_CONSENT_FIELDS = (
    "msisdn",
    "status",
    "access_expires_at",
    "scopes",
    "consented_at",
    "revoked_at",
    "revoked_reason",
    "refresh_token_missing",
    "updated_at",
)


class Subscribers(Protocol):
    """The port the token service uses (`SubscriberStore`, or an in-memory fake in unit tests)."""

    def get(self, msisdn: str) -> SubscriberRecord | None: ...

    def save(self, record: SubscriberRecord, *, read_version: int | None) -> SubscriberRecord: ...


class SubscriberStore:
    def __init__(self, table_name: str) -> None:
        self.table_name = table_name
        self._table = dynamodb_table(table_name)

    def get(self, msisdn: str) -> SubscriberRecord | None:
        found = self._table.get_item(Key={"msisdn": msisdn}, ConsistentRead=True)
        item = found.get("Item")
        return _from_item(item) if item else None

    def consent_of(self, msisdn: str) -> SubscriberRecord | None:
        """The consent without its ciphertexts (what the status API shows; it never reads tokens)."""
        found = self._table.get_item(
            Key={"msisdn": msisdn},
            ConsistentRead=True,
            ProjectionExpression=", ".join(f"#{name}" for name in _CONSENT_FIELDS),
            ExpressionAttributeNames={f"#{name}": name for name in _CONSENT_FIELDS},
        )
        item = found.get("Item")
        return _from_item(item) if item else None

    def save(self, record: SubscriberRecord, *, read_version: int | None) -> SubscriberRecord:
        """Writes `record` as version read_version + 1; `read_version=None` means it must be new."""
        saved = record.model_copy(update={"version": (read_version or 0) + 1, "updated_at": now()})
        if read_version is None:
            condition = Attr("msisdn").not_exists()
        else:
            condition = Attr("version").eq(read_version)
        try:
            self._table.put_item(Item=_to_item(saved), ConditionExpression=condition)
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise ConcurrentUpdateError(f"subscriber changed since version {read_version}") from None
            raise
        return saved


def now() -> datetime:
    return datetime.now(UTC)
