"""The Endpoints table: the last health of each PBX endpoint (sip_uri) the health check probed.

Key: pk `sip_uri`. One item per endpoint, written on every check: `up`, `since` (when it last
changed), `checked_at`, the probe's `reason` and `status_code`. Items expire a day after their
last check, so an endpoint no registration names any more leaves the table by itself.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict

from sipreg.aws import dynamodb_table

KEPT_AFTER_LAST_CHECK = timedelta(days=1)
BATCH_GET_LIMIT = 100
BATCH_GET_ATTEMPTS = 4


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

    def get_many(self, sip_uris: Collection[str]) -> dict[str, EndpointHealth]:
        """The stored health of these endpoints (those never checked, or still unread after a few
        throttled rounds, are left out: they count as new)."""
        found: dict[str, EndpointHealth] = {}
        unique = list(dict.fromkeys(sip_uris))
        for start in range(0, len(unique), BATCH_GET_LIMIT):
            keys = [{"sip_uri": uri} for uri in unique[start : start + BATCH_GET_LIMIT]]
            request: dict[str, Any] = {self._table.name: {"Keys": keys}}
            for attempt in range(BATCH_GET_ATTEMPTS):  # UnprocessedKeys: throttled, try again
                if attempt:
                    time.sleep(0.05 * 2**attempt)
                answer = self._table.meta.client.batch_get_item(RequestItems=request)
                for item in answer.get("Responses", {}).get(self._table.name, []):
                    health = _from_item(item)
                    found[health.sip_uri] = health
                request = answer.get("UnprocessedKeys") or {}
                if not request:
                    break
        return found

    def save(self, health: EndpointHealth) -> None:
        item = health.model_dump(mode="json", exclude_none=True)
        item["expires"] = int((health.checked_at + KEPT_AFTER_LAST_CHECK).timestamp())
        self._table.put_item(Item=item)


def _from_item(item: dict[str, Any]) -> EndpointHealth:
    cleaned = {key: int(value) if isinstance(value, Decimal) else value for key, value in item.items()}
    return EndpointHealth.model_validate(cleaned)
