"""`GET /oauth/callback?code=...&state=...` (or `error=...`): finish a consent (HTTP API, payload 2.0).

Thin: hand the query and the browser-binding cookie to `sipreg.consent`, then answer with a small
page (success names the MSISDN masked, a failure says what to do) or a 302 to the flow's
`return_to`. Metrics: `ConsentsGranted`, `ConsentsDeclined` (the subscriber said no),
`ConsentCallbacksRefused` (every other end, the reason in the log line and on the page; a consent
stored but not announced too: the page asks to run the flow again, which counts it granted), and
`ConsentsWithoutRefreshToken` (1 for a consent the identity server granted no refresh token:
it ends with its access token).
"""

from __future__ import annotations

from sipreg import cold_start  # first: nothing is collected while the function loads

# isort: split
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from sipreg import pages
from sipreg.consent.browser_binding import browser_from_cookies
from sipreg.consent.flow import CallbackOutcome, Consented, ConsentFlow, Declined
from sipreg.models import mask_msisdn
from sipreg.observability import entry_point, logger, metrics
from sipreg.wiring import consent as wiring

app = APIGatewayHttpResolver()


def _html(page: pages.Page) -> Response[str]:
    return Response(page.status, headers=dict(pages.SECURITY_HEADERS), body=page.html)


def _redirect(return_to: str, **params: str) -> Response[str]:
    parts = urlsplit(return_to)
    query = "&".join(part for part in (parts.query, urlencode(params)) if part)
    location = urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))
    return Response(
        302, headers={"Location": location, "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
    )


@app.exception_handler(Exception)  # type: ignore[untyped-decorator]  # powertools leaves it untyped
def _unexpected(error: Exception) -> Response[str]:
    logger.exception("oauth_callback failed: %s", type(error).__name__)
    return _html(pages.unavailable())


def _count(outcome: CallbackOutcome) -> None:
    if isinstance(outcome, Consented):
        metrics.add_metric(name="ConsentsGranted", unit=MetricUnit.Count, value=1)
        lacking = 0 if outcome.refresh_token else 1
        metrics.add_metric(name="ConsentsWithoutRefreshToken", unit=MetricUnit.Count, value=lacking)
    elif isinstance(outcome, Declined):
        metrics.add_metric(name="ConsentsDeclined", unit=MetricUnit.Count, value=1)
    else:
        metrics.add_metric(name="ConsentCallbacksRefused", unit=MetricUnit.Count, value=1)


@app.get("/oauth/callback")
def callback() -> Response[str]:
    flow: ConsentFlow = app.context["flow"]
    outcome = flow.callback(
        app.current_event.query_string_parameters or {},
        browser=browser_from_cookies(app.current_event.cookies),
    )
    _count(outcome)
    match outcome:
        case Consented(return_to=str(return_to)):
            return _redirect(return_to, consent="granted")
        case Consented(msisdn=msisdn, refresh_token=lasting):
            return _html(pages.consented(mask_msisdn(msisdn), lasting=lasting))
        case Declined(return_to=str(return_to)):
            return _redirect(return_to, consent="declined")
        case Declined():
            return _html(pages.declined())
        case _:
            return _html(pages.refused(outcome.reason))


@entry_point
def lambda_handler(
    event: dict[str, Any], context: LambdaContext, flow: ConsentFlow | None = None
) -> dict[str, Any]:
    app.context["flow"] = flow or wiring.from_env()  # read by the route; powertools clears it after resolve
    return app.resolve(event, context)


cold_start.loaded()  # last: what the load made is frozen, collection is back on
