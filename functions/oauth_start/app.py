"""`GET /oauth/start?msisdn=...&return_to=...`: begin a subscriber's consent (HTTP API, payload 2.0).

Thin: read the two optional parameters and the browser-binding cookie, ask `sipreg.consent` for
the authorization URL, answer 302 there setting the cookie (or a 400 page naming the bad
parameter). The logic lives in `sipreg.consent`.
"""

from __future__ import annotations

from sipreg import cold_start  # first: nothing is collected while the function loads

# isort: split
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from sipreg import pages
from sipreg.consent.browser_binding import browser_cookie, browser_from_cookies
from sipreg.consent.flow import BadRequestError, ConsentFlow, RefusalReason
from sipreg.oauth_client import IdentityServerRejectedError, IdentityServerUnavailableError
from sipreg.observability import entry_point, logger, metrics
from sipreg.wiring import consent as wiring

app = APIGatewayHttpResolver()


def _html(page: pages.Page) -> Response[str]:
    return Response(page.status, headers=dict(pages.SECURITY_HEADERS), body=page.html)


@app.exception_handler(BadRequestError)  # type: ignore[untyped-decorator]  # powertools leaves it untyped
def _bad_request(error: BadRequestError) -> Response[str]:
    return _html(pages.bad_request(error.field, error.message))


@app.exception_handler(IdentityServerUnavailableError)  # type: ignore[untyped-decorator]
def _identity_server_down(error: IdentityServerUnavailableError) -> Response[str]:
    logger.warning("identity server unavailable at start: %s", error)
    return _html(pages.refused(RefusalReason.IDENTITY_SERVER_DOWN))


@app.exception_handler(IdentityServerRejectedError)  # type: ignore[untyped-decorator]
def _identity_server_unusable(error: IdentityServerRejectedError) -> Response[str]:
    # e.g. its discovery document names another issuer: the operator must fix the configuration
    logger.error("identity server not usable: %s", error)
    return _html(pages.refused(RefusalReason.CLIENT_REFUSED))


@app.exception_handler(Exception)  # type: ignore[untyped-decorator]
def _unexpected(error: Exception) -> Response[str]:
    logger.exception("oauth_start failed: %s", type(error).__name__)
    return _html(pages.unavailable())


@app.get("/oauth/start")
def start() -> Response[str]:
    query = app.current_event.query_string_parameters or {}
    flow: ConsentFlow = app.context["flow"]
    started = flow.start(
        msisdn=query.get("msisdn") or None,
        return_to=query.get("return_to") or None,
        browser=browser_from_cookies(app.current_event.cookies),
    )
    return Response(
        302,
        headers={"Location": started.url, "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
        cookies=[browser_cookie(started.browser, secure=flow.secure_cookies)],
    )


@entry_point
def lambda_handler(
    event: dict[str, Any], context: LambdaContext, flow: ConsentFlow | None = None
) -> dict[str, Any]:
    app.context["flow"] = flow or wiring.from_env(
        announce=False
    )  # read by the route; powertools clears it after resolve
    answer = app.resolve(event, context)
    metrics.add_metric(
        name="ConsentsStarted" if answer["statusCode"] == 302 else "ConsentStartsRefused",
        unit=MetricUnit.Count,
        value=1,
    )
    return answer


cold_start.loaded()  # last: what the load made is frozen, collection is back on
