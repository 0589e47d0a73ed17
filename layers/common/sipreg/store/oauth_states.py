"""The OAuthStates table: one item per consent flow in progress, consumed exactly once.

Key: pk `state` (>= 128 random bits, made by the start function). The item holds what the
callback needs to finish the flow: the PKCE verifier, the ID-token nonce, where to send the
browser afterwards, and the hash of the browser's binding cookie. `expires` is the table's TTL
attribute; TTL deletion lags (and never happens in moto), so expiry is also checked in the
conditional delete that consumes a state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol

from botocore.exceptions import ClientError

from sipreg.aws import dynamodb_table

LIFETIME_SECONDS = 600


@dataclass(frozen=True)
class OAuthState:
    state: str = field(repr=False)
    code_verifier: str = field(repr=False)
    nonce: str = field(repr=False)
    created_at: float  # epoch seconds
    expires_at: float
    return_to: str | None = None
    login_hint: str | None = None  # the MSISDN the flow was started for, if any
    # SHA-256 (hex) of the browser binding cookie the flow was started with; None: none (refused).
    browser_hash: str | None = field(default=None, repr=False)


class StateProblem(StrEnum):
    """Why a state could not be consumed (the callback says what to do for each)."""

    UNKNOWN = "unknown"  # never issued, or already consumed (a replay)
    EXPIRED = "expired"


class StateRefusedError(Exception):
    def __init__(self, reason: StateProblem) -> None:
        super().__init__(f"state {reason.value}")
        self.reason = reason


class OAuthStates(Protocol):
    def put(self, record: OAuthState) -> None: ...

    def consume(self, state: str, *, now: float) -> OAuthState: ...


class OAuthStateStore:
    def __init__(self, table_name: str) -> None:
        self.table_name = table_name
        self._table = dynamodb_table(table_name)

    def put(self, record: OAuthState) -> None:
        item: dict[str, Any] = {
            "state": record.state,
            "code_verifier": record.code_verifier,
            "nonce": record.nonce,
            "created_at": Decimal(str(record.created_at)),
            "expires": int(record.expires_at),
        }
        if record.return_to is not None:
            item["return_to"] = record.return_to
        if record.login_hint is not None:
            item["login_hint"] = record.login_hint
        if record.browser_hash is not None:
            item["browser_hash"] = record.browser_hash
        # A collision of 256-bit random states is not expected; refusing it beats overwriting.
        self._table.put_item(
            Item=item,
            ConditionExpression="attribute_not_exists(#s)",
            ExpressionAttributeNames={"#s": "state"},
        )

    def consume(self, state: str, *, now: float) -> OAuthState:
        """Deletes and returns the state if it exists and has not expired; else StateRefusedError.

        One conditional delete does both, so two callbacks racing with the same state cannot
        both succeed.
        """
        try:
            deleted = self._table.delete_item(
                Key={"state": state},
                ConditionExpression="attribute_exists(#s) AND #e > :now",
                ExpressionAttributeNames={"#s": "state", "#e": "expires"},
                ExpressionAttributeValues={":now": int(now)},
                ReturnValues="ALL_OLD",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            # An expired state stays refused; it is left for TTL to remove.
            reason = StateProblem.EXPIRED if error.response.get("Item") else StateProblem.UNKNOWN
            raise StateRefusedError(reason) from None
        item = deleted["Attributes"]
        return OAuthState(
            state=item["state"],
            code_verifier=item["code_verifier"],
            nonce=item["nonce"],
            created_at=float(item["created_at"]),
            expires_at=float(item["expires"]),
            return_to=item.get("return_to"),
            login_hint=item.get("login_hint"),
            browser_hash=item.get("browser_hash"),
        )
