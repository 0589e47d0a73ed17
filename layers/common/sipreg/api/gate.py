"""Checks on the raw API Gateway request (HTTP API, payload 2.0) before anything parses it.

Two kinds of caller, on routes of their own:

- Producers (CRM, billing) may post events only: `POST /v1/events`, HMAC-signed with the webhook
  secret (`sipreg.signing`: method, path, query, time, request id and body). Order: size (413),
  signature (401), request id used once (401), content type (415), then the body must be UTF-8
  JSON (400) so the validation behind it never meets bytes it cannot read.
- Operators read status, revoke, and disable / enable / refresh one registration (a JSON body
  naming its sip_uri, checked as a producer's is): every other route but the public OpenAPI
  document. API
  Gateway authorizes those with IAM (SigV4, `execute-api:Invoke` on the route) and tells us who
  called in `requestContext.authorizer.iam`; a request without that identity is refused (403), so
  no producer secret ever reads or revokes. A state-changing operator request (any method but GET)
  also needs a `Sipreg-Request-Id` its SigV4 signature covers, used once.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sipreg import signing
from sipreg.api.problems import (
    OPERATOR_CHALLENGE,
    BodyTooLargeError,
    InvalidRequestError,
    NotAuthenticatedError,
    NotAuthorizedError,
    ReplayedRequestError,
    UnsupportedMediaTypeError,
)
from sipreg.models import FieldError
from sipreg.store.request_ids import RequestIds

MAX_BODY_BYTES = 256 * 1024
# Anyone may read the API's description; producers may post events; the rest is for operators.
PUBLIC_ROUTES = frozenset({("GET", "/v1/openapi.json")})
PRODUCER_ROUTES = frozenset({("POST", "/v1/events")})
# Operators' controls of one registration carry a JSON body too: {"sip_uri", "reason"}.
_CONTROL_PATH = re.compile(r"/v1/registrations/[^/]+/(disable|enable|refresh)")
# SigV4 accepts a request signed up to 5 minutes either side of AWS's clock: an operator request id
# is remembered for both halves of that window, and a minute more.
SIGV4_WINDOW_SECONDS = 2 * 300 + 60
_SIGNED_HEADERS = re.compile(r"SignedHeaders=([^,\s]+)")
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


@dataclass(frozen=True)
class Caller:
    """Who a request came from, as far as the API needs to know (never a secret)."""

    kind: str  # "producer" (HMAC) or "operator" (IAM)
    principal: str  # "webhook" for producers; the IAM user or role ARN for operators


def admit(
    event: dict[str, Any],
    secrets: Callable[[], Sequence[str]],
    request_ids: RequestIds,
    *,
    now: float | None = None,
) -> tuple[dict[str, Any], Caller | None]:
    """Raises the problem that stops this request, or returns the request for the routes and who
    sent it (None on a public route)."""
    route = route_of(event)
    clock = time.time() if now is None else now
    if route in PUBLIC_ROUTES:
        return event, None
    body = raw_body(event)
    if len(body) > MAX_BODY_BYTES:
        raise BodyTooLargeError()
    if route not in PRODUCER_ROUTES:
        caller = _operator(event, route, request_ids, clock)
        if route[0] == "POST" and _CONTROL_PATH.fullmatch(route[1]):
            event = _json_only(event, body, shape='must be an object: {"sip_uri": ..., "reason": ...}')
        return event, caller
    request = signing.Request(
        method=route[0],
        path=route[1],
        query=str(event.get("rawQueryString") or ""),
        request_id=_header(event, signing.REQUEST_ID_HEADER.lower()) or "",
        body=body,
    )
    signed_at = signing.verify(_header(event, signing.HEADER.lower()), request, secrets(), now=clock)
    if signed_at is None:
        raise NotAuthenticatedError()
    if not request_ids.first_use(
        f"hmac:{request.request_id}", now=clock, until=signed_at + signing.TOLERANCE_SECONDS
    ):
        raise ReplayedRequestError()
    return _json_only(event, body, shape=_SHAPE), Caller("producer", "webhook")


def _json_only(event: dict[str, Any], body: bytes, *, shape: str) -> dict[str, Any]:
    """415 unless the body says it is JSON, 400 unless it is a UTF-8 JSON object."""
    if not _is_json(_header(event, "content-type")):
        raise UnsupportedMediaTypeError()
    _check_json(body, shape)
    # Media types are case-insensitive; the validation behind us reads only lower case.
    headers = {k: v for k, v in (event.get("headers") or {}).items() if k.lower() != "content-type"}
    return {**event, "headers": {**headers, "content-type": "application/json"}}


def _operator(
    event: Mapping[str, Any], route: tuple[str, str], request_ids: RequestIds, now: float
) -> Caller:
    """The IAM principal API Gateway authorized for this route; a change also spends its request id."""
    authorizer = (event.get("requestContext") or {}).get("authorizer") or {}
    iam = authorizer.get("iam") if isinstance(authorizer, dict) else None
    principal = str(iam.get("userArn") or "") if isinstance(iam, dict) else ""
    if not principal:
        raise NotAuthorizedError()
    if route[0] != "GET":
        request_id = _header(event, signing.REQUEST_ID_HEADER.lower()) or ""
        signed = _SIGNED_HEADERS.search(_header(event, "authorization") or "")
        covered = signed is not None and signing.REQUEST_ID_HEADER.lower() in signed.group(1).split(";")
        if signing.REQUEST_ID.fullmatch(request_id) is None or not covered:
            raise InvalidRequestError(
                [
                    FieldError(
                        signing.REQUEST_ID_HEADER,
                        "is required on this route: 16 to 128 of A-Z a-z 0-9 . _ : -, new for every "
                        "request and covered by the SigV4 signature (SignedHeaders)",
                    )
                ]
            )
        key = f"iam:{iam.get('accessKey') if isinstance(iam, dict) else ''}:{request_id}"
        if not request_ids.first_use(key, now=now, until=now + SIGV4_WINDOW_SECONDS):
            raise ReplayedRequestError(OPERATOR_CHALLENGE)
    return Caller("operator", principal)


def _check_json(body: bytes, shape: str) -> None:
    if not body:
        raise InvalidRequestError([FieldError("body", "is required: " + shape)])
    try:
        parsed = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise InvalidRequestError([FieldError("body", "must be UTF-8")]) from None
    except (ValueError, RecursionError):
        raise InvalidRequestError([FieldError("body", "must be valid JSON")]) from None
    # Also spares the validation behind us its habit of taking a list's first item for an object.
    if not isinstance(parsed, dict):
        raise InvalidRequestError([FieldError("body", shape)])
