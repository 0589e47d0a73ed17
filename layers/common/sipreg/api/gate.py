"""Checks on the raw API Gateway request (HTTP API, payload 2.0) before anything parses it.

Order: size (413), signature on the exact body bytes (401), content type (415), then the body
must be UTF-8 JSON (400) so the validation behind it never meets bytes it cannot read.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sipreg import signing
from sipreg.api.problems import (
    BodyTooLargeError,
    InvalidRequestError,
    NotAuthenticatedError,
    UnsupportedMediaTypeError,
)
from sipreg.models import FieldError

MAX_BODY_BYTES = 256 * 1024
# Anyone may read the API's description; everything else needs a signature.
PUBLIC_ROUTES = frozenset({("GET", "/v1/openapi.json")})
JSON_ROUTES = frozenset({("POST", "/v1/events")})
_SHAPE = 'must be one event object or {"events": [...]}'


def raw_body(event: Mapping[str, Any]) -> bytes:
    """The body bytes exactly as the client sent them (API Gateway may base64 them)."""
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidRequestError([FieldError("body", "could not be read")]) from None
    return str(body).encode()


def route_of(event: Mapping[str, Any]) -> tuple[str, str]:
    http = event.get("requestContext", {}).get("http", {})
    return str(http.get("method", "")).upper(), str(event.get("rawPath") or http.get("path", ""))


def _header(event: Mapping[str, Any], name: str) -> str | None:
    # Payload 2.0 lowercases header names; a sample or another host might not.
    for key, value in (event.get("headers") or {}).items():
        if key.lower() == name:
            return str(value)
    return None


def _is_json(content_type: str | None) -> bool:
    if content_type is None:
        return False
    return content_type.split(";", 1)[0].strip().lower() == "application/json"


def admit(
    event: dict[str, Any],
    secrets: Callable[[], Sequence[str]],
    *,
    now: float | None = None,
) -> dict[str, Any]:
    """Raises the problem that stops this request, or returns the request for the routes."""
    route = route_of(event)
    if route in PUBLIC_ROUTES:
        return event
    body = raw_body(event)
    if len(body) > MAX_BODY_BYTES:
        raise BodyTooLargeError()
    if not signing.verify(_header(event, signing.HEADER.lower()), body, secrets(), now=now):
        raise NotAuthenticatedError()
    if route in JSON_ROUTES:
        if not _is_json(_header(event, "content-type")):
            raise UnsupportedMediaTypeError()
        _check_json(body)
        # Media types are case-insensitive; the validation behind us reads only lower case.
        headers = {k: v for k, v in (event.get("headers") or {}).items() if k.lower() != "content-type"}
        return {**event, "headers": {**headers, "content-type": "application/json"}}
    return event


def _check_json(body: bytes) -> None:
    if not body:
        raise InvalidRequestError([FieldError("body", "is required: " + _SHAPE)])
    try:
        parsed = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise InvalidRequestError([FieldError("body", "must be UTF-8")]) from None
    except (ValueError, RecursionError):
        raise InvalidRequestError([FieldError("body", "must be valid JSON")]) from None
    # Also spares the validation behind us its habit of taking a list's first item for an object.
    if not isinstance(parsed, dict):
        raise InvalidRequestError([FieldError("body", _SHAPE)])
