"""The bench's request counter counts each AWS call once, however many stores share the client it
watches (the three tables share one DynamoDB client: watched once per table, it counted every
call three times). The calls are botocore's own events, emitted as a call emits them."""

from __future__ import annotations

from typing import Any

import boto3

from bench.common import RequestCounter


def new_client(service: str) -> Any:
    return boto3.client(service, region_name="eu-west-1", aws_access_key_id="k", aws_secret_access_key="s")


def call(client: Any, operation: str, **parsed: Any) -> None:
    """What botocore emits around one call of `operation`."""
    service, model = (
        client.meta.service_model.endpoint_prefix,
        client.meta.service_model.operation_model(operation),
    )
    request = {
        "url_path": "/",
        "query_string": {},
        "method": "POST",
        "headers": {},
        "body": b"",
        "context": {},
    }
    client.meta.events.emit(f"before-call.{service}.{operation}", params=request, model=model, context={})
    client.meta.events.emit(
        f"after-call.{service}.{operation}", parsed=parsed, http_response=None, model=model, context={}
    )


def test_a_client_watched_once_per_table_counts_each_call_once() -> None:
    client, counter = new_client("dynamodb"), RequestCounter()
    for _ in range(3):
        counter.watch(client)
    call(client, "DescribeLimits")
    call(client, "Query", ScannedCount=7)
    assert counter.calls == {"dynamodb:DescribeLimits": 1, "dynamodb:Query": 1}
    assert counter.items_read == 7


def test_two_counters_each_count_what_they_watch() -> None:
    client = new_client("sqs")
    first, second = RequestCounter(), RequestCounter()
    first.watch(client)
    second.watch(client)
    call(client, "ListQueues")
    assert first.calls == second.calls == {"sqs:ListQueues": 1}
