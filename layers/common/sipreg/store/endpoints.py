"""The Endpoints table: the last health of each PBX endpoint (sip_uri) the health check probed.

Key: pk `sip_uri`. One item per endpoint, written on every check: `up`, `since` (when it last
changed), `checked_at`, the probe's `reason` and `status_code`. Items expire a day after their
last check, so an endpoint no registration names any more leaves the table by itself.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict

from sipreg.aws import dynamodb_table
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

    def save(self, health: EndpointHealth) -> None:
        item = health.model_dump(mode="json", exclude_none=True)
        item["expires"] = int((health.checked_at + KEPT_AFTER_LAST_CHECK).timestamp())
        self._table.put_item(Item=item)


def _from_item(item: dict[str, Any]) -> EndpointHealth:
    cleaned = {key: int(value) if isinstance(value, Decimal) else value for key, value in item.items()}
    return EndpointHealth.model_validate(cleaned)
