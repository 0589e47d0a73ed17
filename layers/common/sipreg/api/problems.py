"""Domain errors and their HTTP answers (RFC 9457 problem documents), in this one module.

Routes and the gate raise the errors below (or let validation raise); `problem_for` turns any of
them into a status, a document and its headers. Nothing here repeats caller input back, and 401
says nothing but, in `WWW-Authenticate` (RFC 9110 section 11.6.1: every 401 carries one), the
scheme to authenticate with: `Sipreg-Signature` on the producers' route, `AWS4-HMAC-SHA256`
(SigV4) on the operators' routes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from sipreg.api.models import MAX_BATCH, SHAPE_TAGS, Problem
from sipreg.events import InvalidEventsError, describe
from sipreg.models import FieldError
from sipreg.telemetry import count

PROBLEM_JSON = "application/problem+json"
_TYPE = "urn:sipreg:problem:"
# The challenges of a 401 (`WWW-Authenticate`): the auth scheme each kind of caller signs with.
PRODUCER_CHALLENGE = "Sipreg-Signature"
OPERATOR_CHALLENGE = "AWS4-HMAC-SHA256"


class ApiError(Exception):
    """A request the API answers with a problem document instead of doing it."""


class UnauthenticatedError(ApiError):
    """A 401: `challenge` names the scheme the caller must sign the request with."""

    def __init__(self, challenge: str = PRODUCER_CHALLENGE) -> None:
        super().__init__("unauthenticated")
        self.challenge = challenge


class NotAuthenticatedError(UnauthenticatedError):
    pass


class ReplayedRequestError(UnauthenticatedError):
    """A well-signed request whose request id was used already (a replay, or a resend without a new id)."""


class NotAuthorizedError(ApiError):
    """An operator route reached without an IAM identity (e.g. signed with a producer's secret)."""


class BodyTooLargeError(ApiError):
    pass


class UnsupportedMediaTypeError(ApiError):
    pass


class InvalidRequestError(ApiError):
    def __init__(self, errors: Sequence[FieldError]) -> None:
        super().__init__("invalid request")
        self.errors = tuple(errors)


class UnknownMsisdnError(ApiError):
    pass


class UnknownRegistrationError(ApiError):
    """A control names a registration (MSISDN, sip_uri) sipreg has no record of."""


class NoSuchRouteError(ApiError):
    pass


class NotAcceptedError(ApiError):
    """Some events did not reach the queue; the others did."""

    def __init__(self, accepted: Sequence[str], not_accepted: Sequence[str]) -> None:
        super().__init__("not accepted")
        self.accepted = tuple(accepted)
        self.not_accepted = tuple(not_accepted)


class SecretsUnavailableError(ApiError):
    """The signing secrets could not be read; no request can be checked until they can."""


@dataclass(frozen=True)
class Answer:
    status: int
    problem: Problem
    headers: Mapping[str, str] = field(default_factory=dict)  # besides its Content-Type

    def body(self) -> str:
        # json.dumps escapes what UTF-8 cannot carry (a lone surrogate in an unknown field name).
        return json.dumps(self.problem.model_dump(mode="json", exclude_none=True))


def _problem(
    status: HTTPStatus, *, kind: str | None = None, detail: str | None = None, **extra: Any
) -> Answer:
    return Answer(
        status=status.value,
        problem=Problem(
            type=f"{_TYPE}{kind}" if kind else "about:blank",
            title=status.phrase,
            status=status.value,
            detail=detail,
            **extra,
        ),
    )


_MAX_TEXT = 200  # an unknown field's name is repeated back: never at any length


def _field_problems(errors: Iterable[FieldError]) -> list[dict[str, str]]:
    return [
        {"field": (error.field or "body")[:_MAX_TEXT], "message": error.message[:_MAX_TEXT]}
        for error in errors
    ]


# Errors answered with a fixed status and detail; the rest are spelled out in `problem_for`.
_FIXED: dict[type[ApiError], tuple[HTTPStatus, str | None]] = {
    NotAuthenticatedError: (HTTPStatus.UNAUTHORIZED, None),  # no detail: nothing to learn from it
    ReplayedRequestError: (
        HTTPStatus.UNAUTHORIZED,
        "this request id was used already: sign every request with a new Sipreg-Request-Id",
    ),
    NotAuthorizedError: (
        HTTPStatus.FORBIDDEN,
        "this route is for operators: sign it with AWS credentials (SigV4, IAM), not the webhook secret",
    ),
    BodyTooLargeError: (HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "the body must be at most 256 KiB"),
    UnsupportedMediaTypeError: (HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send application/json"),
    UnknownMsisdnError: (HTTPStatus.NOT_FOUND, "sipreg knows nothing of this MSISDN"),
    UnknownRegistrationError: (
        HTTPStatus.NOT_FOUND,
        "this MSISDN has no registration at that sip_uri (an upsert still queued is not one yet)",
    ),
    NoSuchRouteError: (HTTPStatus.NOT_FOUND, "no such route"),
    SecretsUnavailableError: (HTTPStatus.SERVICE_UNAVAILABLE, "try again later"),
}


def problem_for(error: Exception) -> Answer:
    """The answer to a domain error; anything else is a bug and is raised again. Each answer is
    counted by kind (metric `Refused_<kind>`, e.g. `Refused_NotAuthenticated`)."""
    if isinstance(error, ApiError | InvalidEventsError):
        count(f"Refused_{type(error).__name__.removesuffix('Error')}")
    match error:
        case InvalidEventsError() | InvalidRequestError():
            return _problem(
                HTTPStatus.BAD_REQUEST,
                kind="invalid-request",
                detail="nothing was done; correct the fields listed in errors",
                errors=_field_problems(error.errors),
            )
        case NotAcceptedError():
            return _problem(
                HTTPStatus.SERVICE_UNAVAILABLE,
                kind="not-accepted",
                detail="some events did not reach the queue; send those again (resending is safe)",
                accepted=list(error.accepted),
                not_accepted=list(error.not_accepted),
            )
        case ApiError() if type(error) in _FIXED:
            status, detail = _FIXED[type(error)]
            answer = _problem(status, detail=detail)
            if isinstance(error, UnauthenticatedError):
                return Answer(answer.status, answer.problem, {"WWW-Authenticate": error.challenge})
            return answer
    raise error


def validation_problem(errors: Sequence[Any]) -> Answer:
    """powertools' RequestValidationError details as our 400: field paths without `body` or union tags."""
    found = []
    for detail in errors:
        loc = list(detail.get("loc", ()))
        if loc[:1] == ["body"]:
            loc = loc[1:]
            if loc[:1] and loc[0] in SHAPE_TAGS:
                loc = loc[1:]
        elif loc[:1] in (["path"], ["query"]):
            loc = loc[1:]
        kind = detail.get("type")
        if kind == "json_invalid":
            found.append(FieldError(field="body", message="must be valid JSON"))
        elif kind in ("too_short", "too_long") and loc == ["events"]:
            found.append(FieldError(field="events", message=f"must hold 1 to {MAX_BATCH} events"))
        else:
            found.append(describe({**detail, "loc": tuple(loc)}))
    return problem_for(InvalidRequestError(found))


def without_default_validation_answers(document: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI document without powertools' generic 422: validation answers are our 400 above."""
    for path in document.get("paths", {}).values():
        for operation in path.values():
            operation.get("responses", {}).pop("422", None)
    schemas = document.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError", "ResponseValidationError"):
        schemas.pop(name, None)
    return document
