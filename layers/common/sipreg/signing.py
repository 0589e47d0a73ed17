"""HMAC-SHA256 request signatures for the events API (header `Sipreg-Signature`).

    Sipreg-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, f"{t}." + raw body)>

The signed bytes are the exact body as sent: verify before parsing anything. During a secret
rotation a sender may put several `v1=` values in one header; a request is good when any of them
matches any secret we hold. The timestamp must be within `tolerance` of our clock either way
(stale and future requests are refused alike: replays are bounded to that window).

The secret in Secrets Manager is JSON: `{"current": "<secret>", "previous": ["<older>", ...]}`.
Senders sign with `current`; `previous` keeps the old ones valid while senders move over.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Sequence

HEADER = "Sipreg-Signature"
TOLERANCE_SECONDS = 300
SCHEME = "v1"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(body: bytes, secret: str, *, timestamp: int | None = None) -> str:
    """The `Sipreg-Signature` header value for `body`, signed now (or at `timestamp`)."""
    moment = int(time.time()) if timestamp is None else timestamp
    return f"t={moment},{SCHEME}={signature(secret, moment, body)}"


def verify(
    header: str | None,
    body: bytes,
    secrets: Sequence[str],
    *,
    now: float | None = None,
    tolerance: int = TOLERANCE_SECONDS,
) -> bool:
    """Whether `header` signs `body` with one of `secrets`, within `tolerance` seconds of now."""
    if not header or not secrets:
        return False
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isascii() and value.isdigit() and timestamp is None:
            timestamp = int(value)
        elif key == SCHEME and value:
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    clock = time.time() if now is None else now
    if abs(clock - timestamp) > tolerance:
        return False
    expected = [signature(secret, timestamp, body).encode() for secret in secrets]
    # Compare every pair (no early exit) so timing says nothing about which part matched.
    matched = False
    for candidate in candidates:
        for good in expected:
            matched |= hmac.compare_digest(candidate.encode(), good)
    return matched


class SecretFormatError(ValueError):
    """The stored signing secret does not have the documented JSON shape (never shows the value)."""


def parse_secret(value: str | bytes | dict[str, object]) -> tuple[str, ...]:
    """The signing secrets held in one Secrets Manager value, current first."""
    data: object = value
    if isinstance(value, str | bytes):
        try:
            data = json.loads(value)
        except ValueError:
            raise SecretFormatError("signing secret is not JSON") from None
    if not isinstance(data, dict):
        raise SecretFormatError('signing secret must be {"current": ..., "previous": [...]}')
    current = data.get("current")
    previous = data.get("previous", [])
    if not isinstance(current, str) or not current:
        raise SecretFormatError('signing secret needs a non-empty string "current"')
    if not isinstance(previous, list) or not all(isinstance(s, str) and s for s in previous):
        raise SecretFormatError('signing secret "previous" must be a list of non-empty strings')
    return (current, *previous)
