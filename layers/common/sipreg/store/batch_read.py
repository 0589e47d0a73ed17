"""BatchGetItem with what DynamoDB leaves for later: its `UnprocessedKeys`.

DynamoDB answers a BatchGetItem only in part when the table is throttled or the answer would pass
16 MB, and names the rest in `UnprocessedKeys`: those are asked for again here, after a growing
pause, a few rounds. Whatever is still unread then is handed back, never taken for missing: a key
unread is not a key without an item.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

KEYS_PER_REQUEST = 100  # BatchGetItem's limit
ATTEMPTS = 4
PAUSE_SECONDS = 0.05  # before the second round; doubled before each later one

Key = dict[str, Any]


class UnreadKeysError(RuntimeError):
    """Keys DynamoDB still left unprocessed after every round (throttling): their items are unknown."""

    def __init__(self, table_name: str, unread: int) -> None:
        super().__init__(
            f"{unread} key(s) of {table_name} stayed unprocessed after {ATTEMPTS} BatchGetItem rounds"
        )
        self.unread = unread


@dataclass(frozen=True)
class BatchRead:
    items: list[dict[str, Any]]  # as the resource's client answers (Python values)
    unread: list[Key]  # keys neither answered nor known missing


def batch_get(
    table: Any,
    keys: Sequence[Key],
    *,
    consistent: bool = True,
    projection: str | None = None,
) -> BatchRead:
    """The items of `keys` (a boto3 Table's), 100 keys per request, unprocessed keys asked again."""
    items: list[dict[str, Any]] = []
    unread: list[Key] = []
    for start in range(0, len(keys), KEYS_PER_REQUEST):
        request: dict[str, Any] = {
            "Keys": list(keys[start : start + KEYS_PER_REQUEST]),
            "ConsistentRead": consistent,
        }
        if projection:
            request["ProjectionExpression"] = projection
        for attempt in range(ATTEMPTS):
            if attempt:
                time.sleep(PAUSE_SECONDS * 2 ** (attempt - 1))
            answer = table.meta.client.batch_get_item(RequestItems={table.name: request})
            items.extend(answer.get("Responses", {}).get(table.name, []))
            left = answer.get("UnprocessedKeys", {}).get(table.name, {}).get("Keys", [])
            if not left:
                break
            request = {**request, "Keys": left}
        else:
            unread.extend(left)
    return BatchRead(items, unread)
