"""boto3 clients, built once per process from one session and reused across warm invocations.

One session, because a session's loader reads botocore's data (the endpoints, each service's
model) once for all the clients made from it: a session per client read it all again, and made
the worker's first invocation spend several times as long building its clients
(bench/bench_cold_start.py). A session is not thread-safe, so clients are made under a lock; the
clients themselves are. The tables share one DynamoDB client, whose pool holds a connection for
each thread any function runs (at most 64: the concurrency settings' bound in sipreg.config).

Endpoints come from the standard `AWS_ENDPOINT_URL` variable, so the same code talks to the
local engine and to AWS when deployed.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import boto3
from botocore.config import Config

# Lambda's own timeouts bound every call; retries use botocore's adaptive-free standard mode.
_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 3},
    connect_timeout=3,
    read_timeout=10,
    max_pool_connections=64,
)


class _Made:
    """One session and what was made from it."""

    def __init__(self) -> None:
        self.session = boto3.session.Session()
        self.clients: dict[str, Any] = {}
        self.dynamodb: Any = None  # the resource every table shares
        self.tables: dict[str, Any] = {}
        self.secrets: Any = None


_lock = threading.Lock()
_made: dict[tuple[str | None, ...], _Made] = {}


def _for_environment() -> _Made:
    """The session for the endpoint, principal and region the environment names: one for the
    life of a Lambda sandbox (its environment does not change); a test acting as another
    principal, or on another engine, gets its own. Called under the lock."""
    names = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_DEFAULT_REGION", "AWS_REGION")
    key = tuple(os.environ.get(name) for name in names)
    if key not in _made:
        _made[key] = _Made()
    return _made[key]


def client(service: str) -> Any:
    with _lock:
        made = _for_environment()
        if service not in made.clients:
            made.clients[service] = made.session.client(service, config=_CONFIG)
        return made.clients[service]


def dynamodb_table(name: str) -> Any:
    with _lock:
        made = _for_environment()
        if name not in made.tables:
            if made.dynamodb is None:
                made.dynamodb = made.session.resource("dynamodb", config=_CONFIG)
            made.tables[name] = made.dynamodb.Table(name)
        return made.tables[name]


def secrets() -> Any:
    """powertools' Secrets Manager provider (it caches each value for its `max_age`) on the shared
    session's client: `parameters.get_secret` would make a session of its own."""
    from aws_lambda_powertools.utilities.parameters import SecretsProvider  # noqa: PLC0415  # where read

    secretsmanager = client("secretsmanager")
    with _lock:
        made = _for_environment()
        if made.secrets is None:
            made.secrets = SecretsProvider(boto3_client=secretsmanager)
        return made.secrets
