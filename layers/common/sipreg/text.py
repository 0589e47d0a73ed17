"""Text a peer sends, or makes sipreg write (the core's error_message or status details, an identity
server's `error` and `error_description`, the errors of a producer's malformed event): sipreg
keeps it in items, logs and status events, each with a size limit of its own (DynamoDB: 400 KB an
item; EventBridge: 256 KB a request), so it is clipped where it comes in, after anything secret
the request carried has been taken out of it."""

from __future__ import annotations

from collections.abc import Iterable

PEER_TEXT_LIMIT = 1000  # characters: a few lines of explanation, as much as anyone reads


def kept(text: object, *, secrets: Iterable[str | None] = (), limit: int = PEER_TEXT_LIMIT) -> str:
    """`text` as sipreg keeps it: each of `secrets` replaced by "[redacted]", then at most `limit`
    characters (the last one "…" when clipped). Redacting first: a clip could cut a secret in two."""
    kept_text = str(text)
    for secret in secrets:
        if secret:
            kept_text = kept_text.replace(secret, "[redacted]")
    return kept_text if len(kept_text) <= limit else kept_text[: limit - 1] + "…"
