"""The consent stack for integration and e2e tests: template.yaml's functions on the local host
(moto server behind them), a wg2sim process or the certified provider (`devstack.certified_idp`)
as the identity server, and form-submitting HTTP clients that walk the sign-in pages like a
person would."""

from __future__ import annotations

import json
import re
import secrets
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, quote_plus, urljoin, urlsplit

import boto3
import httpx
from botocore.credentials import Credentials

from devstack import TEMPLATE
from devstack.aws_engine import ROOT
from devstack.certified_idp import CertifiedIdp
from devstack.host.local_host import LocalHost
from devstack.wg2sim.process import Wg2simProcess
from sipreg.cipher import KmsCipher
from sipreg.client import OperatorApi
from sipreg.config import TokenSettings
from sipreg.http import Answer
from sipreg.store.subscribers import SubscriberStore
from sipreg.tokens import SERVICE_SCOPES, TokenService
from sipreg.wiring import parts
from tests.support.events_api import allow_sending_to, events_queue_like

REGION = "eu-west-1"
RETURN_TO = "https://crm.example/consent-done"
WEBHOOK_SECRET = "consent-tests-webhook-secret"  # signs status API requests in these stacks


@dataclass
class BaseConsentStack:
    host: LocalHost
    identity_url: str  # IdentityServerUrl: wg2sim's, or the certified provider's issuer
    endpoint: str
    client_id: str
    client_secret: str
    log_dir: Path
    # The callback's own queue: the template's EventsQueue has a consumer (the registration worker).
    events_queue_url: str

    @property
    def api_url(self) -> str:
        assert self.host.api_url
        return self.host.api_url

    def ref(self, logical_id: str, attribute: str = "Ref") -> str:
        return str(self.host.resources[logical_id][attribute])

    @property
    def subscribers_table(self) -> str:
        return self.ref("SubscribersTable")

    @property
    def states_table(self) -> str:
        return self.ref("OAuthStatesTable")

    @property
    def queue_url(self) -> str:
        return self.events_queue_url

    def env(self, **extra: str) -> dict[str, str]:
        """TokenSettings' variables as the template gives them to the functions."""
        return {
            "IDENTITY_SERVER_URL": self.identity_url,
            "CLIENT_ID": self.client_id,
            "CLIENT_SECRET_ARN": self.ref("OAuthClientSecret"),
            "SUBSCRIBERS_TABLE": self.subscribers_table,
            "DATA_KEY_ID": self.ref("DataKey", "Arn"),
            **extra,
        }

    def token_settings(self, **extra: str) -> TokenSettings:
        return TokenSettings.from_env(self.env(**extra))

    def aws(self, service: str) -> Any:
        return boto3.client(service, endpoint_url=self.endpoint, region_name=REGION)

    def raw_subscriber(self, msisdn: str) -> dict[str, Any] | None:
        item: dict[str, Any] | None = (
            self.aws("dynamodb")
            .get_item(TableName=self.subscribers_table, Key={"msisdn": {"S": msisdn}}, ConsistentRead=True)
            .get("Item")
        )
        return item

    def queued(self) -> list[dict[str, Any]]:
        """Receives (and deletes) what is on the events queue now."""
        sqs = self.aws("sqs")
        found: list[dict[str, Any]] = []
        while True:
            batch = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not batch:
                return found
            found.extend(batch)
            for message in batch:
                sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])

    def function_logs(self) -> str:
        return "\n".join(path.read_text(errors="replace") for path in sorted(self.log_dir.glob("*")))

    def status(self, msisdn: str) -> Answer:
        """The status API's answer for the number (`GET /v1/registrations/{msisdn}`), asked as an
        operator (SigV4 with the local account's root credentials)."""
        operator = Credentials(ROOT.access_key_id, ROOT.secret_access_key)
        with OperatorApi(self.api_url, region=REGION, credentials=operator) as api:
            return api.request("GET", f"/v1/registrations/{quote(msisdn, safe='')}")

    def stored_tokens(self, msisdn: str) -> tuple[str | None, str | None]:
        """The subscriber's access and refresh tokens, decrypted (None where none is stored)."""
        item = self.raw_subscriber(msisdn)
        assert item is not None
        cipher = KmsCipher(self.ref("DataKey", "Arn"), client=self.aws("kms"))
        found = [item.get(name) for name in ("access_token_ciphertext", "refresh_token_ciphertext")]
        access, refresh = (cipher.decrypt(v["B"], msisdn=msisdn) if v else None for v in found)
        return access, refresh

    def token_service(self, *, refresh_margin_seconds: float = 120.0) -> TokenService:
        """A token service as a worker process builds one (its own cache and metadata)."""
        settings = self.token_settings()
        return TokenService(
            store=SubscriberStore(settings.subscribers_table),
            cipher=KmsCipher(settings.data_key_id, client=self.aws("kms")),
            identity=parts.identity_server(settings),
            service_scope=SERVICE_SCOPES[settings.api_version],
            refresh_margin_seconds=refresh_margin_seconds,
        )

    # --- at the identity server, as sipreg's client (its own credentials) ---------------------

    def userinfo(self, access_token: str) -> httpx.Response:
        return httpx.get(
            f"{self.identity_url}/userinfo", headers={"Authorization": f"Bearer {access_token}"}, timeout=5
        )

    def basic_auth(self) -> tuple[str, str]:
        """HTTP Basic's parts, form-urlencoded first (RFC 6749 §2.3.1; httpx sends them raw)."""
        return quote_plus(self.client_id, safe=""), quote_plus(self.client_secret, safe="")

    def refresh_at_identity_server(self, refresh_token: str) -> httpx.Response:
        return httpx.post(
            f"{self.identity_url}/oauth2/token",
            data={"grant_type": "refresh_token", "refresh_token": refresh_token},
            auth=self.basic_auth(),
            timeout=5,
        )

    def revoke_at_identity_server(self, refresh_token: str) -> httpx.Response:
        """RFC 7009 revocation of a refresh token (and so of its grant)."""
        return httpx.post(
            f"{self.identity_url}/oauth2/revoke",
            data={"token": refresh_token, "token_type_hint": "refresh_token"},
            auth=self.basic_auth(),
            timeout=5,
        )


@dataclass
class ConsentStack(BaseConsentStack):
    sim: Wg2simProcess


@dataclass
class CertifiedConsentStack(BaseConsentStack):
    idp: CertifiedIdp


def register_client(sim: Wg2simProcess, client_id: str, secret: str, redirect_uri: str) -> None:
    answer = httpx.post(
        f"{sim.http_url}/_admin/oidc/clients",
        json={"client_id": client_id, "client_secret": secret, "redirect_uris": [redirect_uri]},
        timeout=5,
    )
    answer.raise_for_status()


@contextmanager
def _local_host(
    endpoint: str,
    identity_url: str,
    register: Callable[[str, str, str], None],
    log_dir: Path,
    *,
    consent_env: Mapping[str, str] | None = None,
    parameters: Mapping[str, str] | None = None,
) -> Iterator[tuple[LocalHost, str, str, str]]:
    """template.yaml on the local host, pointed at the identity server, with a client registered."""
    client_id = f"sipreg-{uuid.uuid4().hex[:8]}"
    # with characters form decoding changes: HTTP Basic must form-urlencode it (RFC 6749 §2.3.1)
    client_secret = secrets.token_urlsafe(24) + "+/ %"
    queue_url = events_queue_like(endpoint)
    host = LocalHost(
        TEMPLATE,
        endpoint,
        region=REGION,
        stack_name=f"cs{uuid.uuid4().hex[:8]}",
        parameter_overrides={
            "IdentityServerUrl": identity_url,
            "ClientId": client_id,
            "ConsentReturnToAllowlist": RETURN_TO,
            **(parameters or {}),
        },
        secret_values={
            "OAuthClientSecret": client_secret,
            "WebhookSecret": json.dumps({"current": WEBHOOK_SECRET, "previous": []}),
        },
        function_env_overrides={
            "OAuthStartFunction": dict(consent_env or {}),
            "OAuthCallbackFunction": {**(consent_env or {}), "EVENTS_QUEUE_URL": queue_url},
        },
        log_dir=log_dir,
        sqs_wait_seconds=1,
    )
    with host:
        assert host.api_url
        allow_sending_to(host, "OAuthCallbackFunction", queue_url)
        register(client_id, client_secret, f"{host.api_url}/oauth/callback")
        yield host, client_id, client_secret, queue_url


@contextmanager
def consent_stack(
    endpoint: str, sim: Wg2simProcess, log_dir: Path, *, consent_env: Mapping[str, str] | None = None
) -> Iterator[ConsentStack]:
    """template.yaml on the local host, pointed at `sim`, with a client registered there
    (`consent_env`: extra environment of the two consent functions, e.g. SCOPES)."""

    def register(client_id: str, secret: str, redirect_uri: str) -> None:
        register_client(sim, client_id, secret, redirect_uri)

    with _local_host(endpoint, sim.http_url, register, log_dir, consent_env=consent_env) as running:
        host, client_id, secret, queue = running
        yield ConsentStack(host, sim.http_url, endpoint, client_id, secret, log_dir, queue, sim)


@contextmanager
def certified_consent_stack(
    endpoint: str, idp: CertifiedIdp, log_dir: Path, **parameters: str
) -> Iterator[CertifiedConsentStack]:
    """template.yaml on the local host, pointed at the certified provider, a client registered there."""
    with _local_host(endpoint, idp.issuer, idp.register_client, log_dir, parameters=parameters) as running:
        host, client_id, secret, queue = running
        yield CertifiedConsentStack(host, idp.issuer, endpoint, client_id, secret, log_dir, queue, idp)


# --- a person at a browser, as an HTTP client (wg2sim's pages: devstack.consent_walk) ----------------


def query_of(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


def _form_action(page: httpx.Response) -> str:
    found = re.search(r'<form[^>]*\saction="([^"]+)"', page.text)
    assert found, f"no form on {page.url}"
    return urljoin(str(page.url), str(found[1]))


def walk_certified_consent(
    http: httpx.Client, start_url: str, *, msisdn: str, decision: str = "allow", follow_callback: bool = True
) -> httpx.Response:
    """The certified provider's devInteractions pages over HTTP: login (the MSISDN, any password)
    unless this browser is signed in, then consent (Continue) or Cancel; returns sipreg's answer,
    or with `follow_callback=False` the provider's last redirect (its Location: the callback)."""
    page = http.get(start_url, follow_redirects=True)
    assert page.status_code == 200, page.text[:500]
    if 'name="prompt" value="login"' in page.text:
        form = {"prompt": "login", "login": msisdn, "password": "any"}
        page = http.post(_form_action(page), data=form, follow_redirects=True)
    assert 'name="prompt" value="consent"' in page.text, page.text[:500]
    if decision == "allow":
        answer = http.post(_form_action(page), data={"prompt": "consent"})
    else:
        abort = re.search(r'href="([^"]+/abort)"', page.text)
        assert abort, page.text[:500]
        answer = http.get(urljoin(str(page.url), abort[1]))
    callback = start_url.split("/oauth/start", 1)[0] + "/oauth/callback"
    while answer.is_redirect:  # through the provider's own redirects, up to the one back to sipreg
        location = urljoin(str(answer.url), answer.headers["location"])
        if location.startswith(callback) and not follow_callback:
            return answer
        answer = http.get(location)
    return answer
