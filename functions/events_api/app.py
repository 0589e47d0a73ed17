"""The events API (HTTP API, payload 2.0): provisioning events in, registration status out.

Thin on purpose: the raw-request gate, then powertools routes and validation, each route one call
into `sipreg.api.service`. Regenerate the published OpenAPI document with
`python functions/events_api/app.py > docs/openapi.json`.
"""

from __future__ import annotations

from sipreg import cold_start  # first: nothing is collected while the function loads

# isort: split
import json
import sys
from functools import cache
from typing import Annotated, Any
from urllib.parse import quote, unquote

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, BeforeValidator

from sipreg.api.gate import Caller
from sipreg.api.models import (
    Accepted,
    ControlAction,
    ControlRequest,
    EventsRequest,
    Problem,
    SubscriberStatus,
)
from sipreg.api.problems import (
    PROBLEM_JSON,
    Answer,
    ApiError,
    NoSuchRouteError,
    UnsupportedMediaTypeError,
    problem_for,
    validation_problem,
    without_default_validation_answers,
)
from sipreg.api.service import EventsService
from sipreg.events import EventType, InvalidEventsError, MsisdnField
from sipreg.observability import entry_point
from sipreg.signing import HEADER, REQUEST_ID_HEADER
from sipreg.store.event_log import PAGE_LIMIT, Outcome
from sipreg.telemetry import count
from sipreg.wiring import events_api as wiring

app = APIGatewayHttpResolver(enable_validation=True)

# An HTTP API hands the path on percent-decoded, and powertools matches routes on it with a pattern
# of URL characters: a space or a control character in an MSISDN would miss every route (404, where
# the document says 400). The router gets the path percent-encoded again (`_routable`); each path
# parameter is decoded back to what API Gateway handed on.
PathMsisdn = Annotated[
    MsisdnField, BeforeValidator(lambda value: unquote(value) if isinstance(value, str) else value)
]

# Producers sign with the webhook secret (both headers); operators with AWS credentials (SigV4).
PRODUCERS: list[dict[str, list[str]]] = [{"SipregSignature": [], "SipregRequestId": []}]
OPERATORS: list[dict[str, list[str]]] = [{"AwsSigV4": []}]


def _problem_response(description: str) -> OpenAPIResponse:
    return {"description": description, "content": {PROBLEM_JSON: {"model": Problem}}}


def _json_response(description: str, model: type[BaseModel]) -> OpenAPIResponse:
    return {"description": description, "content": {"application/json": {"model": model}}}


_COMMON: dict[int, OpenAPIResponse] = {
    400: _problem_response("Invalid request: `errors` names each field and why; nothing was done."),
    413: _problem_response("Body over 256 KiB."),
}
_PRODUCER: dict[int, OpenAPIResponse] = {
    **_COMMON,
    401: _problem_response(
        "Missing, stale, future or wrong `Sipreg-Signature` (it covers method, path, query, time, "
        "request id and body), or a `Sipreg-Request-Id` used already (`WWW-Authenticate: "
        "Sipreg-Signature`)."
    ),
}
# Operators read without a request id (a GET spends none); their changes spend one each.
_OPERATOR_READ: dict[int, OpenAPIResponse] = {
    **_COMMON,
    403: _problem_response(
        "Not signed with AWS credentials allowed `execute-api:Invoke` on this route (API Gateway "
        "answers this itself), or signed with the webhook secret: producers cannot read or revoke."
    ),
}
_OPERATOR: dict[int, OpenAPIResponse] = {
    **_OPERATOR_READ,
    401: _problem_response(
        "The `Sipreg-Request-Id` of this change was used already (`WWW-Authenticate: "
        "AWS4-HMAC-SHA256`): sign it anew with a new one."
    ),
}


def _answer(answer: Answer) -> Response[str]:
    return Response(
        status_code=answer.status, content_type=PROBLEM_JSON, body=answer.body(), headers=dict(answer.headers)
    )


@app.exception_handler([ApiError, InvalidEventsError])  # type: ignore[untyped-decorator]  # powertools leaves it untyped
def _domain_error(error: Exception) -> Response[str]:
    return _answer(problem_for(error))


@app.exception_handler(RequestUnsupportedContentType)  # type: ignore[untyped-decorator]  # powertools leaves it untyped
def _unsupported(_: RequestUnsupportedContentType) -> Response[str]:
    return _answer(problem_for(UnsupportedMediaTypeError()))


@app.exception_handler(RequestValidationError)  # type: ignore[untyped-decorator]  # powertools leaves it untyped
def _invalid(error: RequestValidationError) -> Response[str]:
    return _answer(validation_problem(error.errors()))


@app.not_found
def _no_route(_: Exception) -> Response[str]:
    return _answer(problem_for(NoSuchRouteError()))


def _service() -> EventsService:
    service: EventsService = app.context["service"]
    return service


@app.post(
    "/v1/events",
    summary='Send one event, or up to 100 as {"events": [...]}; all or nothing',
    status_code=202,
    responses={
        202: {
            "description": "Every event is on the queue.",
            "content": {"application/json": {"model": Accepted}},
        },
        **_PRODUCER,
        415: _problem_response("Content type is not application/json."),
        503: _problem_response(
            "Some events did not reach the queue: `not_accepted` lists them "
            "(`urn:sipreg:problem:not-accepted`); or the signing secret could not be read "
            "(`about:blank`, nothing was done): send again later."
        ),
    },
    security=PRODUCERS,
    tags=["events"],
)
def post_events(request: Annotated[EventsRequest, Body()]) -> Response[str]:
    return Response(202, "application/json", _service().accept(request).model_dump_json())


@app.get(
    "/v1/registrations/<msisdn>",
    summary="Every registration of an MSISDN, and one page of what became of its events (newest first)",
    responses={
        200: {
            "description": "What sipreg knows.",
            "content": {"application/json": {"model": SubscriberStatus}},
        },
        **_OPERATOR_READ,
        404: _problem_response("Unknown MSISDN."),
    },
    security=OPERATORS,
    tags=["registrations"],
)
def get_registrations(
    msisdn: Annotated[PathMsisdn, Path()],
    limit: Annotated[int, Query(ge=1, le=PAGE_LIMIT, description="Events per page.")] = 50,
    cursor: Annotated[
        str | None, Query(max_length=1024, description="`next_cursor` of the page before.")
    ] = None,
    type: Annotated[
        EventType | None,
        Query(description="Only this event type; `registration.refresh` pages the keep-alive refreshes."),
    ] = None,
    outcome: Annotated[Outcome | None, Query(description="Only events with this outcome.")] = None,
) -> Response[str]:
    status = _service().status(msisdn, limit=limit, cursor=cursor, event_type=type, outcome=outcome)
    return Response(200, "application/json", status.model_dump_json())


@app.post(
    "/v1/subscribers/<msisdn>/revoke",
    summary="Revoke a subscriber: delete all its registrations and tokens (queued)",
    status_code=202,
    responses={
        202: {
            "description": "The revoke is on the queue.",
            "content": {"application/json": {"model": Accepted}},
        },
        **_OPERATOR,
        503: _problem_response("The revoke did not reach the queue; send again (with a new request id)."),
    },
    security=OPERATORS,
    tags=["subscribers"],
)
def post_revoke(msisdn: Annotated[PathMsisdn, Path()]) -> Response[str]:
    caller: Caller | None = app.context.get("caller")
    accepted = _service().revoke(msisdn, by=caller.principal if caller else "")
    return Response(202, "application/json", accepted.model_dump_json())


_CONTROLS = {
    ControlAction.DISABLE: "Disable one registration: deleted at the core, its desired state kept (queued)",
    ControlAction.ENABLE: "Enable a disabled registration: its desired state applied again (queued)",
    ControlAction.REFRESH: "Re-send one registration's desired state to the core now (queued)",
}
_CONTROL_RESPONSES: dict[int, OpenAPIResponse] = {
    202: {
        "description": "Queued, in the number's order; `sipreg status` shows its outcome.",
        "content": {"application/json": {"model": Accepted}},
    },
    **_OPERATOR,
    404: _problem_response("The MSISDN has no registration at that sip_uri."),
    415: _problem_response("Content type is not application/json."),
    503: _problem_response("The control did not reach the queue; send again (with a new request id)."),
}


def _control(action: ControlAction, msisdn: str, request: ControlRequest) -> Response[str]:
    caller: Caller | None = app.context.get("caller")
    accepted = _service().control(msisdn, action, request, by=caller.principal if caller else "")
    return Response(202, "application/json", accepted.model_dump_json())


def _control_route(action: ControlAction) -> None:
    """POST /v1/registrations/<msisdn>/<action>, one route per control."""

    def post(
        msisdn: Annotated[PathMsisdn, Path()], request: Annotated[ControlRequest, Body()]
    ) -> Response[str]:
        return _control(action, msisdn, request)

    post.__name__ = f"post_{action.value}"  # the route's operationId
    app.post(
        f"/v1/registrations/<msisdn>/{action.value}",
        summary=_CONTROLS[action],
        status_code=202,
        responses=_CONTROL_RESPONSES,
        security=OPERATORS,
        tags=["registrations"],
    )(post)


for _action in ControlAction:
    _control_route(_action)


@cache
def openapi_document() -> str:
    """The API's OpenAPI document as published (`docs/openapi.json` holds a copy)."""
    generated = app.get_openapi_json_schema(
        title="sipreg events API",
        version="1.0.0",
        description=(
            "Provisioning events in, registration status out. Producers (CRM, billing) post events "
            "only, signed with the webhook secret: a new `Sipreg-Request-Id` per request and "
            "`Sipreg-Signature: t=<unix seconds>,v2=<lower-case hex HMAC-SHA256(secret, string "
            'to sign)>`, the string to sign being "sipreg-v2", t, the request id, METHOD, the '
            "path percent-decoded, the raw query and "
            "hex SHA-256 of the body, joined by newlines, within 5 minutes of our clock. Operators "
            "read status, revoke, and disable / enable / refresh a registration with AWS "
            "credentials: SigV4 (service execute-api), IAM "
            "`execute-api:Invoke` on the route. See docs/events-api.md. Errors are RFC 9457 problem "
            "documents."
        ),
        security_schemes={
            "SipregSignature": APIKey.model_validate({"name": HEADER, "in": APIKeyIn.header}),
            "SipregRequestId": APIKey.model_validate({"name": REQUEST_ID_HEADER, "in": APIKeyIn.header}),
            "AwsSigV4": APIKey.model_validate(
                {
                    "name": "Authorization",
                    "in": APIKeyIn.header,
                    "description": "AWS Signature Version 4 (service execute-api), checked by API Gateway",
                }
            ),
        },
    )
    return json.dumps(without_default_validation_answers(json.loads(generated)), indent=2, sort_keys=True)


@app.get("/v1/openapi.json", include_in_schema=False)
def get_openapi() -> Response[str]:
    return Response(200, "application/json", openapi_document())


@entry_point
def lambda_handler(
    event: dict[str, Any], context: LambdaContext, service: EventsService | None = None
) -> dict[str, Any]:
    service = service or wiring.from_env()
    count("ApiRequests")
    try:
        event, caller = service.admit(event)
    except (ApiError, InvalidEventsError) as refused:
        answer = problem_for(refused)
        return {
            "statusCode": answer.status,
            "headers": {"Content-Type": PROBLEM_JSON, **answer.headers},
            "body": answer.body(),
            "isBase64Encoded": False,
        }
    app.context["service"] = service  # read by the routes; powertools clears it after resolve
    app.context["caller"] = caller
    return app.resolve(_routable(event), context)


def _routable(event: dict[str, Any]) -> dict[str, Any]:
    """The event with its path percent-encoded again, for powertools' route patterns."""
    return {**event, "rawPath": quote(str(event.get("rawPath", "")), safe="/")}


cold_start.loaded()  # last: what the load made is frozen, collection is back on


if __name__ == "__main__":
    sys.stdout.write(openapi_document() + "\n")
