"""HMAC-SHA256 request signatures of the events API's producers (header `Sipreg-Signature`).

A signature fits exactly one request: it covers the method, the path (with any MSISDN in it), the
query string, the time, a request id and the body.

    Sipreg-Request-Id: <16 to 128 of A-Z a-z 0-9 . _ : ->          a new one for every request
    Sipreg-Signature: t=<unix seconds>,v2=<lower-case hex HMAC-SHA256(secret, string to sign)>

    string to sign = "sipreg-v2" LF t LF request id LF METHOD LF path LF query LF hex SHA-256(body)

`path` is the path percent-decoded, as API Gateway's HTTP APIs hand it on (`/v1/events` has
nothing to decode); `query` is exactly as sent on the request line (percent-encoding kept, no `?`;
an empty query is an empty line); the body is the exact bytes sent; `v2` is lower-case hex. `t` is 1
to 12 ASCII digits (any other `t` refuses the header unread). The time must be within
`tolerance` (5 minutes) of our clock either way, and the API remembers each request id for that
window, so a request cannot be replayed at all: not on another route, number or method (the
signature no longer fits) and not as it was (its id is used up).

During a secret rotation a sender may put several `v2=` values in one header; a request is good
when any of them matches any secret we hold. The secret in Secrets Manager is JSON:
`{"current": "<secret>", "previous": ["<older>", ...]}`: senders sign with `current`; `previous`
keeps the old ones valid while senders move over.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets as random_tokens
import time
from collections.abc import Sequence
from dataclasses import dataclass

HEADER = "Sipreg-Signature"
REQUEST_ID_HEADER = "Sipreg-Request-Id"
TOLERANCE_SECONDS = 300
SCHEME = "v2"
_PREFIX = "sipreg-v2"
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{16,128}")
# Unix seconds until the year 33658: a `t` of more digits (or of any other characters) is refused
# unread, so neither int() (4300 digits at most) nor the float clock (1e308) ever meets it.
_TIMESTAMP = re.compile(r"[0-9]{1,12}")


@dataclass(frozen=True)
class Request:
    """What a signature covers, as it travels: method, raw path, raw query, request id, body."""

    method: str
    path: str
    query: str
    request_id: str
    body: bytes

    def string_to_sign(self, timestamp: int) -> bytes:
        lines = [
            _PREFIX,
            str(timestamp),
            self.request_id,
            self.method.upper(),
            self.path,
            self.query,
            hashlib.sha256(self.body).hexdigest(),
        ]
        return "\n".join(lines).encode()


def new_request_id() -> str:
    return random_tokens.token_urlsafe(24)  # 32 characters of A-Z a-z 0-9 - _


def signature(secret: str, timestamp: int, request: Request) -> str:
    return hmac.new(secret.encode(), request.string_to_sign(timestamp), hashlib.sha256).hexdigest()


def sign(request: Request, secret: str, *, timestamp: int | None = None) -> str:
    """The `Sipreg-Signature` header value for `request`, signed now (or at `timestamp`)."""
    moment = int(time.time()) if timestamp is None else timestamp
    return f"t={moment},{SCHEME}={signature(secret, moment, request)}"


def signed_headers(
    secret: str,
    method: str,
    path: str,
    body: bytes = b"",
    *,
    query: str = "",
    timestamp: int | None = None,
    request_id: str | None = None,
) -> dict[str, str]:
    """Both headers a request needs: a new request id and the signature over it."""
    request = Request(method, path, query, request_id or new_request_id(), body)
    return {REQUEST_ID_HEADER: request.request_id, HEADER: sign(request, secret, timestamp=timestamp)}


def verify(
    header: str | None,
    request: Request,
    secrets: Sequence[str],
    *,
    now: float | None = None,
    tolerance: int = TOLERANCE_SECONDS,
) -> int | None:
    """The signing time when `header` signs `request` with one of `secrets` within `tolerance`
    seconds of now (and the request id is well formed), else None."""
    if not header or not secrets or REQUEST_ID.fullmatch(request.request_id) is None:
        return None
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            if _TIMESTAMP.fullmatch(value) is None:
                return None
            if timestamp is None:
                timestamp = int(value)
        elif key == SCHEME and value:
            candidates.append(value)
    if timestamp is None or not candidates:
        return None
    clock = time.time() if now is None else now
    if abs(clock - timestamp) > tolerance:
        return None
    expected = [signature(secret, timestamp, request).encode() for secret in secrets]
    # Compare every pair (no early exit) so timing says nothing about which part matched.
    matched = False
    for candidate in candidates:
        for good in expected:
            matched |= hmac.compare_digest(candidate.encode(), good)
    return timestamp if matched else None


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
