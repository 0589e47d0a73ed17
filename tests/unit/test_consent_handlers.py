"""Given the sample API Gateway events in events/oauth_*, the two thin handlers answer what the
browser needs: a 302 to the identity server, small pages, or a 302 back to `return_to`; a bad
parameter gets a 400 page naming it, an unexpected failure a 503 page without internals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sipreg import pages
from sipreg.consent.browser_binding import BROWSER_COOKIE
from sipreg.consent.flow import BadRequestError, Consented, Declined, RefusalReason, Refused, Started
from sipreg.oauth_client import IdentityServerRejectedError, IdentityServerUnavailableError
from tests.support.lambda_context import LambdaContext, load_function

ROOT = Path(__file__).resolve().parents[2]


START = load_function("oauth_start")
CALLBACK = load_function("oauth_callback")


def event(name: str) -> dict[str, Any]:
    folder = "oauth_start" if name.startswith("start") else "oauth_callback"
    loaded: dict[str, Any] = json.loads((ROOT / "events" / folder / f"{name}.json").read_text())
    return loaded


class FakeFlow:
    """Records what the handler asked; answers what the test says."""

    secure_cookies = True
    BINDING = "b" * 43

    def __init__(self, outcome: Any = None, error: Exception | None = None) -> None:
        self.outcome = outcome
        self.error = error
        self.calls: list[Any] = []
        self.browsers: list[str | None] = []

    def start(self, *, msisdn: str | None, return_to: str | None, browser: str | None = None) -> Started:
        self.calls.append((msisdn, return_to))
        self.browsers.append(browser)
        if self.error:
            raise self.error
        return Started("https://id.example/oauth2/auth?state=s", self.BINDING)

    def callback(self, params: dict[str, str], *, browser: str | None = None) -> Any:
        self.calls.append(params)
        self.browsers.append(browser)
        if self.error:
            raise self.error
        return self.outcome


def test_start_redirects_to_the_identity_server_with_the_parameters() -> None:
    flow = FakeFlow()
    answer = START.lambda_handler(event("start"), LambdaContext(), flow=flow)
    assert answer["statusCode"] == 302
    assert answer["headers"]["Location"] == "https://id.example/oauth2/auth?state=s"
    assert answer["headers"]["Cache-Control"] == "no-store"
    assert flow.calls == [("+4799990000", "https://crm.example/consent-done")]


def test_start_without_parameters_passes_none() -> None:
    flow = FakeFlow()
    START.lambda_handler(event("start_without_parameters"), LambdaContext(), flow=flow)
    assert flow.calls == [(None, None)]


def test_start_with_a_bad_parameter_gets_a_400_page_naming_it() -> None:
    flow = FakeFlow(error=BadRequestError("msisdn", "must be E.164"))
    answer = START.lambda_handler(event("start_bad_msisdn"), LambdaContext(), flow=flow)
    assert answer["statusCode"] == 400
    assert answer["headers"]["Content-Type"].startswith("text/html")
    assert "msisdn: must be E.164" in answer["body"]


def test_unexpected_failure_gets_a_503_page_without_internals() -> None:
    flow = FakeFlow(error=RuntimeError("boom at /secret/path"))
    answer = START.lambda_handler(event("start"), LambdaContext(), flow=flow)
    assert answer["statusCode"] == 503
    assert "boom" not in answer["body"]


def test_callback_success_page_names_the_number_masked() -> None:
    flow = FakeFlow(Consented(msisdn="+4799990000", return_to=None))
    answer = CALLBACK.lambda_handler(event("callback_code"), LambdaContext(), flow=flow)
    assert answer["statusCode"] == 200
    assert "+47******00" in answer["body"]
    assert "+4799990000" not in answer["body"]
    assert answer["headers"]["Referrer-Policy"] == "no-referrer"
    assert answer["headers"]["Cache-Control"] == "no-store"
    assert flow.calls[0]["code"].startswith("sample-authorization-code")


def test_callback_success_with_return_to_redirects_there() -> None:
    flow = FakeFlow(Consented(msisdn="+4799990000", return_to="https://crm.example/done?x=1"))
    answer = CALLBACK.lambda_handler(event("callback_code"), LambdaContext(), flow=flow)
    assert answer["statusCode"] == 302
    assert answer["headers"]["Location"] == "https://crm.example/done?x=1&consent=granted"


def test_callback_declined_shows_the_declined_page() -> None:
    flow = FakeFlow(Declined(error="access_denied", return_to=None))
    answer = CALLBACK.lambda_handler(event("callback_access_denied"), LambdaContext(), flow=flow)
    assert answer["statusCode"] == 200
    assert "Consent declined" in answer["body"]


@pytest.mark.parametrize(
    ("reason", "status", "words"),
    [
        (RefusalReason.STATE_MISSING, 400, "incomplete"),
        (RefusalReason.STATE_UNKNOWN, 400, "already used"),
        (RefusalReason.STATE_EXPIRED, 400, "expired"),
        (RefusalReason.IDENTITY_SERVER_DOWN, 503, "try again"),
        (RefusalReason.CLIENT_REFUSED, 502, "administrator"),
        (RefusalReason.NOT_ANNOUNCED, 503, "try again in a minute"),
        (RefusalReason.OTHER_NUMBER, 400, "different number"),
    ],
)
def test_callback_refusals_say_what_to_do(reason: RefusalReason, status: int, words: str) -> None:
    flow = FakeFlow(Refused(reason))
    answer = CALLBACK.lambda_handler(event("callback_without_state"), LambdaContext(), flow=flow)
    assert answer["statusCode"] == status
    assert words in answer["body"]
    assert reason.value in answer["body"]


def test_start_sets_the_browser_binding_cookie_httponly_samesite_short_lived() -> None:
    flow = FakeFlow()
    answer = START.lambda_handler(event("start"), LambdaContext(), flow=flow)
    (cookie,) = answer["cookies"]
    attributes = [part.strip() for part in cookie.split(";")]
    assert attributes[0] == f"{BROWSER_COOKIE}={FakeFlow.BINDING}"
    assert {"HttpOnly", "Secure", "Path=/oauth", "Max-Age=600", "SameSite=Lax"} <= set(attributes)
    assert flow.browsers == [None]


def test_start_and_callback_pass_the_browsers_cookie_to_the_flow() -> None:
    flow = FakeFlow(Consented(msisdn="+4799990000", return_to=None))
    with_cookie = {**event("callback_code"), "cookies": ["other=1", f"{BROWSER_COOKIE}={'c' * 43}"]}
    CALLBACK.lambda_handler(with_cookie, LambdaContext(), flow=flow)
    START.lambda_handler(
        {**event("start"), "cookies": [f"{BROWSER_COOKIE}={'c' * 43}"]}, LambdaContext(), flow=flow
    )
    assert flow.browsers == ["c" * 43, "c" * 43]


@pytest.mark.parametrize(
    ("reason", "words"),
    [
        (RefusalReason.OTHER_BROWSER, "another browser"),
        (RefusalReason.ISSUER_MISMATCH, "another identity server"),
    ],
)
def test_a_foreign_callback_gets_a_400_page_saying_why(reason: RefusalReason, words: str) -> None:
    answer = CALLBACK.lambda_handler(event("callback_code"), LambdaContext(), flow=FakeFlow(Refused(reason)))
    assert answer["statusCode"] == 400
    assert words in answer["body"]
    assert "sample-authorization-code" not in answer["body"]


def test_a_consent_without_a_refresh_token_is_counted_and_the_page_says_it_is_short(
    capsys: pytest.CaptureFixture[str],
) -> None:
    flow = FakeFlow(Consented(msisdn="+4799990000", return_to=None, refresh_token=False))
    answer = CALLBACK.lambda_handler(event("callback_code"), LambdaContext(), flow=flow)
    assert answer["statusCode"] == 200
    assert "short time only" in answer["body"]
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert [m["ConsentsWithoutRefreshToken"] for m in emf] == [[1.0]]


def test_a_lasting_consent_counts_as_granted_with_a_refresh_token(capsys: pytest.CaptureFixture[str]) -> None:
    flow = FakeFlow(Consented(msisdn="+4799990000", return_to=None))
    answer = CALLBACK.lambda_handler(event("callback_code"), LambdaContext(), flow=flow)
    assert "short time only" not in answer["body"]
    (emf,) = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert (emf["ConsentsGranted"], emf["ConsentsWithoutRefreshToken"]) == ([1.0], [0.0])


@pytest.mark.parametrize(
    ("error", "status", "words"),
    [
        (IdentityServerUnavailableError("discovery: ConnectError"), 503, "cannot be reached"),
        (IdentityServerRejectedError("issuer_mismatch", "names issuer 'x'"), 502, "not set up correctly"),
    ],
)
def test_start_when_the_identity_server_is_down_or_unusable_gets_a_page_saying_so(
    error: Exception, status: int, words: str
) -> None:
    answer = START.lambda_handler(event("start"), LambdaContext(), flow=FakeFlow(error=error))
    assert answer["statusCode"] == status
    assert words in answer["body"]
    assert "names issuer" not in answer["body"]


def test_every_refusal_has_a_page_and_only_a_stored_consent_says_it_was_saved() -> None:
    for reason in RefusalReason:
        page = pages.refused(reason)
        assert reason.value in page.html
        if reason is RefusalReason.NOT_ANNOUNCED:
            assert "saved" in page.html
            assert "Nothing was stored" not in page.html
        else:
            assert "saved" not in page.html


def test_a_consent_stored_but_not_announced_is_counted_as_a_refused_callback_not_granted(
    capsys: pytest.CaptureFixture[str],
) -> None:
    flow = FakeFlow(Refused(RefusalReason.NOT_ANNOUNCED, transient=True))
    answer = CALLBACK.lambda_handler(event("callback_code"), LambdaContext(), flow=flow)
    assert answer["statusCode"] == 503
    assert "consent=granted" not in str(answer["headers"])
    (emf,) = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert emf["ConsentCallbacksRefused"] == [1.0]
    assert "ConsentsGranted" not in emf
