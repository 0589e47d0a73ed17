"""Given an OpenID Certified provider implementation (oidc-provider from npm, `make idp`) with its
own endpoint layout, not WG2's, sipreg's consent functions find every endpoint through the
issuer's discovery document: the consent walk ends with stored tokens that work there."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from urllib.parse import urlencode

import httpx
import pytest

from devstack.certified_idp import CertifiedIdp
from tests.support.consent import CertifiedConsentStack, certified_consent_stack, walk_certified_consent


@pytest.fixture(scope="module")
def stack(aws_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CertifiedConsentStack]:
    with (
        CertifiedIdp.start(default_routes=True) as idp,
        certified_consent_stack(aws_endpoint, idp, tmp_path_factory.mktemp("any-provider-logs")) as running,
    ):
        yield running


def test_a_provider_with_its_own_paths_works_through_its_discovery_document(
    stack: CertifiedConsentStack, new_msisdn: Callable[[], str]
) -> None:
    # Given a provider whose endpoints are not at WG2's paths
    doc = httpx.get(f"{stack.identity_url}/.well-known/openid-configuration", timeout=5).json()
    assert doc["authorization_endpoint"] == f"{stack.identity_url}/auth"
    assert doc["token_endpoint"] == f"{stack.identity_url}/token"
    # When a subscriber consents
    msisdn = new_msisdn()
    with httpx.Client(timeout=10) as browser:
        final = walk_certified_consent(
            browser, f"{stack.api_url}/oauth/start?{urlencode({'msisdn': msisdn})}", msisdn=msisdn
        )
    # Then the consent is stored with both tokens, and the access token works at its userinfo
    assert final.status_code == 200, final.text
    assert "Consent granted" in final.text
    access, refresh = stack.stored_tokens(msisdn)
    assert access and refresh
    info = httpx.get(doc["userinfo_endpoint"], headers={"Authorization": f"Bearer {access}"}, timeout=5)
    assert info.status_code == 200
    assert info.json()["phone_number"] == msisdn
