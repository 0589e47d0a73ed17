"""Given the consent functions on the local host and wg2sim as the operator's identity server, a
subscriber in a real headless browser (Debian's chromium, driven by Playwright) goes from
`/oauth/start` through the number, PIN and consent pages to the success page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest
from playwright.sync_api import Browser, expect

from devstack.wg2sim.process import Wg2simProcess
from sipreg.models import mask_msisdn
from tests.support.consent import ConsentStack, consent_stack

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
MSISDN = "+4799991234"


@pytest.fixture(scope="module")
def stack(aws_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsentStack]:
    with (
        Wg2simProcess.start() as sim,
        consent_stack(aws_endpoint, sim, tmp_path_factory.mktemp("browser-logs")) as running,
    ):
        yield running


def test_subscriber_consents_in_a_real_browser(stack: ConsentStack, browser: Browser) -> None:
    page = browser.new_page()
    page.set_default_timeout(15_000)
    # When the subscriber opens the consent link
    page.goto(f"{stack.api_url}/oauth/start?{urlencode({'msisdn': MSISDN})}")
    # Then the operator's sign-in page asks for the number (prefilled from the link)
    expect(page.get_by_role("heading")).to_have_text("Sign in with your mobile number")
    expect(page.get_by_test_id("msisdn")).to_have_value(MSISDN)
    page.get_by_test_id("send-pin").click()
    # And the PIN it "sent" is typed in
    pin = page.get_by_test_id("sent-pin").inner_text().strip()
    assert re.fullmatch(r"\d{6}", pin)
    page.get_by_test_id("pin").fill(pin)
    page.get_by_test_id("verify-pin").click()
    # And the consent page lists what is asked, and Allow is pressed
    expect(page.get_by_test_id("scopes")).to_contain_text("Route your calls")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "consent-operator-page.png"), full_page=True)
    page.get_by_test_id("allow").click()
    # Then the browser lands on our success page, which names the number masked
    page.wait_for_url(re.compile(r".*/oauth/callback\?.*"))
    expect(page.get_by_role("heading")).to_have_text("Consent granted")
    expect(page.locator("main")).to_contain_text(mask_msisdn(MSISDN))
    assert MSISDN not in page.content()
    page.screenshot(path=str(ARTIFACTS / "consent-success.png"), full_page=True)
    # And the subscriber's consent is stored
    item = stack.raw_subscriber(MSISDN)
    assert item is not None
    assert item["status"]["S"] == "consented"
    page.close()
