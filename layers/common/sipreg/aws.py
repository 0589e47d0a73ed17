"""boto3 clients, built once per process and reused across warm invocations.

Endpoints come from the standard `AWS_ENDPOINT_URL` variable, so the same code talks to moto
server locally and to AWS when deployed.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from botocore.config import Config

# Lambda's own timeouts bound every call; retries use botocore's adaptive-free standard mode.
_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=3, read_timeout=10)


@cache
def client(service: str) -> Any:
    return boto3.session.Session().client(service, config=_CONFIG)


@cache
def dynamodb_table(name: str) -> Any:
    return boto3.session.Session().resource("dynamodb", config=_CONFIG).Table(name)
