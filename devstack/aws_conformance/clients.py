"""The conformance checks' clients of the engine, and the queues and tables they make on it."""

from __future__ import annotations

import uuid
from typing import Any

import boto3
from botocore.config import Config

from devstack.aws_engine import REGION, ROOT


def client(endpoint: str, service: str, *, pool: int = 10, credentials: dict[str, str] | None = None) -> Any:
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        **(credentials or ROOT.as_client_kwargs()),
        # No retries: a 500 must be seen, not hidden by botocore's retry of it.
        config=Config(retries={"max_attempts": 1, "mode": "standard"}, max_pool_connections=pool),
    )


def fifo_queue(sqs: Any, prefix: str, **attributes: str) -> str:
    """A new FIFO queue deduplicating per message group, as template.yaml's EventsQueue; its URL."""
    url: str = sqs.create_queue(
        QueueName=f"{prefix}-{uuid.uuid4().hex[:12]}.fifo",
        Attributes={
            "FifoQueue": "true",
            **attributes,
            "DeduplicationScope": "messageGroup",
            "FifoThroughputLimit": "perMessageGroupId",
        },
    )["QueueUrl"]
    return url


def pk_table(dynamodb: Any, name: str, **options: Any) -> None:
    """A new on-demand table keyed by the string attribute `pk`."""
    dynamodb.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        **options,
    )
