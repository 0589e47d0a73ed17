"""The Endpoints table: the last health of each PBX endpoint (sip_uri) the health check probed.

Key: pk `sip_uri`. One item per endpoint, written on every check: `up`, `since` (when it last
changed), `checked_at`, the probe's `reason` and `status_code`. A write is conditional on the
`checked_at` read (Lambda runs a schedule's invocations side by side when one runs long, and
retries a failed one), so of two runs that saw the same health only one records what it found.
Items expire a day after their last check, so an endpoint no registration names any more leaves
the table by itself.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict

from sipreg.aws import dynamodb_table
from sipreg.store import ConcurrentUpdateError
from sipreg.store.batch_read import batch_get

KEPT_AFTER_LAST_CHECK = timedelta(days=1)


class EndpointHealth(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    sip_uri: str
    up: bool
    since: datetime  # when `up` last changed (the first check, for a new endpoint)
    checked_at: datetime
    reason: str  # the probe's: "200 OK", "timeout: ...", "connect: ..."
    status_code: int | None = None


class EndpointHealthStore:
    def __init__(self, table_name: str) -> None:
        self._table = dynamodb_table(table_name)

    def get_many(self, sip_uris: Collection[str]) -> dict[str, EndpointHealth | None]:
        """The stored health of these endpoints: None for one never checked. One whose key DynamoDB
        still left unprocessed after a few throttled rounds is left out: its health is unknown."""
        unique = list(dict.fromkeys(sip_uris))
        read = batch_get(self._table, [{"sip_uri": uri} for uri in unique], consistent=False)
        found: dict[str, EndpointHealth | None] = {}
        for item in read.items:
            health = _from_item(item)
            found[health.sip_uri] = health
        unread = {key["sip_uri"] for key in read.unread}
        found.update({uri: None for uri in unique if uri not in unread and uri not in found})
        return found

    def save(self, health: EndpointHealth, *, previous: EndpointHealth | None) -> None:
        """Saves it if the stored health is still `previous` (None: there is none), else raises
        ConcurrentUpdateError: another run recorded this endpoint meanwhile."""
        item = health.model_dump(mode="json", exclude_none=True)
        item["expires"] = int((health.checked_at + KEPT_AFTER_LAST_CHECK).timestamp())
        if previous is None:
            condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(sip_uri)"}
        else:
            seen = previous.model_dump(mode="json")["checked_at"]
            condition = {
                "ConditionExpression": "checked_at = :seen",
                "ExpressionAttributeValues": {":seen": seen},
            }
        try:
            self._table.put_item(Item=item, **condition)
        except self._table.meta.client.exceptions.ConditionalCheckFailedException:
            raise ConcurrentUpdateError(health.sip_uri) from None


def _from_item(item: dict[str, Any]) -> EndpointHealth:
    cleaned = {key: int(value) if isinstance(value, Decimal) else value for key, value in item.items()}
    return EndpointHealth.model_validate(cleaned)
