"""An operator's client of the events API's IAM routes, signed with AWS credentials (SigV4).

    with OperatorApi("https://abc123.execute-api.eu-west-1.amazonaws.com") as api:
        code, body = api.status("+4799990000", query={"limit": "10"})
        code, body = api.revoke("+4799990000")

API Gateway authorizes these routes with IAM: the request is signed for the service
`execute-api` in the API's region (taken from an execute-api URL, else `region`/`AWS_REGION`/
the profile) with whatever credentials botocore finds (environment, profile, SSO, instance role)
unless `credentials` are given; the principal needs `execute-api:Invoke` on the route (the
stack's `OperatorPolicy`). A change (revoke, controls) carries a new `Sipreg-Request-Id`, signed
with the rest, so it cannot be replayed.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from sipreg.client.errors import ApiError
from sipreg.client.producers import json_object
from sipreg.http import Answer, HttpError, Urllib3Http
from sipreg.signing import REQUEST_ID_HEADER, new_request_id

SERVICE = "execute-api"
CONTROLS = ("disable", "enable", "refresh")
_EXECUTE_API_HOST = re.compile(r"^[a-z0-9]+\.execute-api\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(\.cn)?$")


class OperatorCredentialsError(ApiError):
    """No AWS credentials or region to sign with; the message says where they are looked for."""


def region_of(api: str) -> str | None:
    found = _EXECUTE_API_HOST.match(urlsplit(api).hostname or "")
    return found["region"] if found else None


class OperatorApi:
    def __init__(
        self,
        api: str,
        *,
        region: str | None = None,
        credentials: Credentials | None = None,
        timeout: float = 10.0,
    ) -> None:
        session = botocore.session.get_session()
        self._base = api.rstrip("/")
        self._credentials = credentials or session.get_credentials()
        if self._credentials is None:
            raise OperatorCredentialsError(
                "no AWS credentials: operator routes are signed with them (environment, profile, SSO, role)"
            )
        self._region = region or region_of(api) or session.get_config_variable("region")
        if not self._region:
            raise OperatorCredentialsError("no AWS region: pass --region or set AWS_REGION")
        self._http = Urllib3Http(timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> OperatorApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, str] | None = None,
        change: bool = False,
        json_body: dict[str, Any] | None = None,
    ) -> Answer:
        """Signs and sends one request; `path` is sent as given (percent-encode an MSISDN's `+`).
        A `json_body` is sent as application/json, its hash signed with the rest. Raises HttpError
        when there is no answer."""
        url = self._base + path + (f"?{urlencode(query)}" if query else "")
        headers: dict[str, str] = {}
        if change:
            headers[REQUEST_ID_HEADER] = new_request_id()
        body = b"" if json_body is None else json.dumps(json_body).encode()
        if json_body is not None:
            headers["Content-Type"] = "application/json"
        signed = AWSRequest(method=method, url=url, data=body, headers=headers)
        SigV4Auth(self._credentials, SERVICE, self._region).add_auth(signed)
        return self._http.request(method, url, body or None, dict(signed.headers.items()))

    def call(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, str] | None = None,
        change: bool = False,
        json_body: dict[str, Any] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """(HTTP status, JSON body) of one request. Raises ApiError when there is no answer, or
        when API Gateway refuses the credentials (403): no route answers anything useful then."""
        try:
            answer = self.request(method, path, query=query, change=change, json_body=json_body)
        except HttpError as error:
            raise ApiError(f"no answer from the API ({error})") from None
        body = json_object(answer)
        if answer.status == 403:
            message = body.get("message") or body.get("detail") or "Forbidden"
            raise ApiError(
                f"the API refused these AWS credentials ({message}): operators need "
                "execute-api:Invoke on the route (the stack's OperatorPolicy)"
            )
        return answer.status, body

    def status(self, msisdn: str, *, query: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
        """`GET /v1/registrations/{msisdn}` (`query`: type, outcome, limit, cursor); 404: unknown."""
        return self.call("GET", f"/v1/registrations/{_segment(msisdn)}", query=query)

    def revoke(self, msisdn: str) -> tuple[int, dict[str, Any]]:
        """`POST /v1/subscribers/{msisdn}/revoke`: all of a subscriber's registrations and tokens."""
        return self.call("POST", f"/v1/subscribers/{_segment(msisdn)}/revoke", change=True)

    def control(
        self, action: str, msisdn: str, sip_uri: str, *, reason: str | None = None
    ) -> tuple[int, dict[str, Any]]:
        """`POST /v1/registrations/{msisdn}/{action}` of one registration (action: CONTROLS)."""
        if action not in CONTROLS:
            raise ValueError(f"action must be one of {', '.join(CONTROLS)}, not {action!r}")
        body = {"sip_uri": sip_uri, **({"reason": reason} if reason else {})}
        return self.call(
            "POST", f"/v1/registrations/{_segment(msisdn)}/{action}", change=True, json_body=body
        )


def _segment(msisdn: str) -> str:
    """An MSISDN as one path segment: its `+` percent-encoded (%2B), so no hop reads it as a space."""
    return quote(msisdn, safe="")
