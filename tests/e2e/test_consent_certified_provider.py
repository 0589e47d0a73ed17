"""Given the consent functions on the local host and an OpenID Certified provider implementation
(oidc-provider from npm, `make idp`, configured with WG2's paths) as the identity server, a
subscriber in a real headless browser consents on the provider's own login and consent pages
(its devInteractions): the consent yields an encrypted refresh token, a forced refresh works, a
renewed consent in the same browser session leaves working tokens, revoke leaves none, deny
stores nothing, and foreign callbacks are refused. Client-credentials mode works unchanged.

The provider behaves as certified ones do: it ignores offline_access without prompt=consent,
reuses the browser session's grant for a new authorization, revokes a whole grant with one of
its refresh tokens, leaves phone_number out of the ID token and sends iss (RFC 9207)."""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Iterator
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from devstack.certified_idp import CertifiedIdp
from sipreg.wiring import parts
from tests.support.consent import CertifiedConsentStack, certified_consent_stack, walk_certified_consent

_numbers = itertools.count(random.randrange(10**7))


def new_msisdn() -> str:
    return f"+4797{next(_numbers) % 10**8:08d}"


@pytest.fixture(scope="module")
def stack(aws_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CertifiedConsentStack]:
    logs = tmp_path_factory.mktemp("certified-logs")
    with (
        CertifiedIdp.start(log_file=logs / "idp.log") as idp,
        certified_consent_stack(aws_endpoint, idp, logs) as running,
    ):
        yield running


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """One browser (its own cookies: sipreg's flow binding, the provider's session)."""
    opened = browser.new_context()
    opened.set_default_timeout(15_000)
    yield opened
    opened.close()


def start_url(stack: CertifiedConsentStack, msisdn: str) -> str:
    return f"{stack.api_url}/oauth/start?{urlencode({'msisdn': msisdn})}"


def consent(page: Page, stack: CertifiedConsentStack, msisdn: str, *, decision: str = "allow") -> bool:
    """Opens the consent link and walks the provider's pages; True if it asked to sign in."""
    page.goto(start_url(stack, msisdn))
    asked_to_sign_in = page.locator('input[name="login"]').count() > 0
    if asked_to_sign_in:
        expect(page.locator('input[name="login"]')).to_have_value(msisdn)  # from login_hint
        page.fill('input[name="password"]', "any")
        page.get_by_role("button", name="Sign-in").click()
    # prompt=consent: the provider asks every time, also when the grant covers the scopes
    expect(page.get_by_role("button", name="Continue")).to_be_visible()
    if decision == "allow":
        page.get_by_role("button", name="Continue").click()
    else:
        page.get_by_role("link", name="[ Cancel ]").click()
    page.wait_for_url(re.compile(r".*/oauth/callback\?.*"))
    return asked_to_sign_in


def callback_url_of(stack: CertifiedConsentStack, http: httpx.Client, msisdn: str) -> str:
    """The provider's redirect back to sipreg, stopped before the browser follows it.

    An HTTP client walks the pages here: Playwright cannot hold a redirect's target."""
    answer = walk_certified_consent(http, start_url(stack, msisdn), msisdn=msisdn, follow_callback=False)
    assert answer.is_redirect, answer.text[:300]
    return answer.headers["location"]


def test_first_consent_yields_an_encrypted_refresh_token_and_a_forced_refresh_works(
    stack: CertifiedConsentStack, context: BrowserContext, aws: str
) -> None:
    msisdn = new_msisdn()
    page = context.new_page()
    # When the subscriber consents on the provider's pages
    assert consent(page, stack, msisdn)
    # Then sipreg's success page shows, for the number the provider's userinfo named
    expect(page.get_by_role("heading")).to_have_text("Consent granted")
    expect(page.locator("main")).not_to_contain_text("short time only")
    # And both tokens are stored KMS-encrypted, none in plaintext
    access, refresh = stack.stored_tokens(msisdn)
    assert access and refresh
    raw = str(stack.raw_subscriber(msisdn))
    assert access not in raw
    assert refresh not in raw
    assert stack.userinfo(access).json()["phone_number"] == msisdn
    # When the worker forces a refresh (the core refused the token)
    fresh = stack.token_service().access_token_for(msisdn, force_refresh=True)
    # Then the new access token works at the provider, and is the stored one
    assert fresh != access
    assert stack.userinfo(fresh).status_code == 200
    assert stack.stored_tokens(msisdn)[0] == fresh


def test_a_renewed_consent_in_the_same_browser_session_leaves_working_tokens(
    stack: CertifiedConsentStack, context: BrowserContext, aws: str
) -> None:
    msisdn = new_msisdn()
    page = context.new_page()
    assert consent(page, stack, msisdn)
    first_access, first_refresh = stack.stored_tokens(msisdn)
    # When the subscriber consents again in the same browser (signed in: no login page)
    assert not consent(page, stack, msisdn)
    expect(page.get_by_role("heading")).to_have_text("Consent granted")
    # Then the new tokens work: userinfo takes the access token, a forced refresh succeeds
    access, refresh = stack.stored_tokens(msisdn)
    assert access and refresh
    assert access != first_access
    assert stack.userinfo(access).status_code == 200
    refreshed = stack.token_service().access_token_for(msisdn, force_refresh=True)
    assert stack.userinfo(refreshed).status_code == 200
    # And that grant is the first consent's: revoking the replaced refresh token (what sipreg
    # used to do) kills the renewed consent's tokens too (RFC 7009 §2.1)
    assert first_refresh
    revoked = stack.revoke_at_identity_server(first_refresh)
    assert revoked.status_code == 200
    assert stack.userinfo(stack.stored_tokens(msisdn)[0] or "").status_code == 401


def test_revoke_leaves_no_token_alive(
    stack: CertifiedConsentStack, context: BrowserContext, aws: str
) -> None:
    msisdn = new_msisdn()
    consent(context.new_page(), stack, msisdn)
    access, refresh = stack.stored_tokens(msisdn)
    assert access and refresh
    stack.token_service().revoke(msisdn)
    assert stack.userinfo(access).status_code == 401
    assert stack.refresh_at_identity_server(refresh).json()["error"] == "invalid_grant"
    item = stack.raw_subscriber(msisdn)
    assert item is not None
    assert item["status"]["S"] == "revoked"
    assert {"access_token_ciphertext", "refresh_token_ciphertext"}.isdisjoint(item)


def test_deny_shows_declined_and_stores_nothing(
    stack: CertifiedConsentStack, context: BrowserContext
) -> None:
    msisdn = new_msisdn()
    page = context.new_page()
    consent(page, stack, msisdn, decision="deny")
    assert parse_qs(urlsplit(page.url).query)["error"] == ["access_denied"]
    expect(page.get_by_role("heading")).to_have_text("Consent declined")
    assert stack.raw_subscriber(msisdn) is None


def test_a_callback_naming_another_issuer_is_refused(stack: CertifiedConsentStack) -> None:
    msisdn = new_msisdn()
    with httpx.Client(timeout=10) as http:
        url = callback_url_of(stack, http, msisdn)
        query = {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}
        assert query["iss"] == stack.identity_url  # the provider sends iss (RFC 9207)
        parts = urlsplit(url)
        forged = urlunsplit((*parts[:3], urlencode({**query, "iss": "https://id.evil.example"}), ""))
        answer = http.get(forged)
    assert answer.status_code == 400
    assert "This answer is not from your operator" in answer.text
    assert stack.raw_subscriber(msisdn) is None


def test_a_callback_opened_in_another_browser_is_refused(
    stack: CertifiedConsentStack, browser: Browser
) -> None:
    msisdn = new_msisdn()
    with httpx.Client(timeout=10) as attacker:
        url = callback_url_of(stack, attacker, msisdn)
    victim = browser.new_context()
    try:
        page = victim.new_page()
        answer = page.goto(url)
        assert answer is not None
        assert answer.status == 400
        expect(page.get_by_role("heading")).to_have_text("Finish in the browser you started in")
    finally:
        victim.close()
    assert stack.raw_subscriber(msisdn) is None


def test_client_credentials_mode_is_unchanged(stack: CertifiedConsentStack, aws: str) -> None:
    tokens = parts.token_service(stack.token_settings(AUTH_MODE="client"))
    first = tokens.product_token()
    assert tokens.product_token() == first  # cached per process
    assert tokens.product_token(force_refresh=True) != first
