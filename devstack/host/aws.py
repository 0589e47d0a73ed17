"""boto3 clients of the host itself (provisioning), and of the work it does as a function's role
(an SQS source's polling), pointed at the AWS endpoint."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import boto3
import botocore.session
from botocore.config import Config
from botocore.credentials import RefreshableCredentials

from devstack.aws_engine import ROOT


def local_credentials() -> dict[str, str]:
    """The credentials the host provisions with: the caller's, else the local engine's root."""
    if os.environ.get("AWS_ACCESS_KEY_ID") and os.environ.get("AWS_SECRET_ACCESS_KEY"):
        keys = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
        return {k: os.environ[k] for k in keys if os.environ.get(k)}
    return ROOT.as_environment()


class Clients:
    def __init__(self, endpoint: str, region: str) -> None:
        credentials = local_credentials()
        self.endpoint = endpoint
        self.region = region
        self._session = boto3.session.Session(
            aws_access_key_id=credentials["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=credentials["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=credentials.get("AWS_SESSION_TOKEN"),
            region_name=region,
        )
        self._clients: dict[str, Any] = {}
        self._lock = threading.RLock()  # boto3 sessions are not thread-safe

    def client(self, service: str) -> Any:
        with self._lock:
            if service not in self._clients:
                self._clients[service] = self.new_client(service)
            return self._clients[service]

    def new_client(self, service: str, connections: int = 10) -> Any:
        with self._lock:
            return self._session.client(service, endpoint_url=self.endpoint, config=_config(connections))

    def role_client(
        self, service: str, credentials: Callable[[], tuple[dict[str, str], float]], connections: int = 10
    ) -> Any:
        """A client signing with a role's session (`credentials`: its variables and when they
        expire), renewed before they run out."""

        def current() -> dict[str, str]:
            variables, expires_at = credentials()
            return {
                "access_key": variables["AWS_ACCESS_KEY_ID"],
                "secret_key": variables["AWS_SECRET_ACCESS_KEY"],
                "token": variables.get("AWS_SESSION_TOKEN", ""),
                "expiry_time": datetime.fromtimestamp(expires_at, UTC).isoformat(),
            }

        session = botocore.session.get_session()
        session._credentials = RefreshableCredentials.create_from_metadata(  # botocore's way to attach them
            metadata=current(), refresh_using=current, method="sts-assume-role"
        )
        return boto3.session.Session(botocore_session=session, region_name=self.region).client(
            service, endpoint_url=self.endpoint, config=_config(connections)
        )

    def account_id(self) -> str:
        """The account the endpoint works in, as its STS says."""
        return str(self.client("sts").get_caller_identity()["Account"])


def _config(connections: int) -> Config:
    return Config(
        retries={"mode": "standard", "max_attempts": 3},
        connect_timeout=3,
        read_timeout=30,
        max_pool_connections=connections,
    )
