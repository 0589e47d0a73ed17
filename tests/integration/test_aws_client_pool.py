"""sipreg.aws's shared DynamoDB client holds a connection for each thread a function may run: as
many threads as the concurrency settings allow (WORKER_GROUP_CONCURRENCY, REFRESH_PARALLELISM,
PROBE_CONCURRENCY: at most 64) read at once, over the local engine, without one connection
thrown away and opened again (urllib3's "Connection pool is full", a new TLS handshake on AWS)."""

from __future__ import annotations

import logging
import threading
import uuid

import pytest

from sipreg import aws as sipreg_aws
from sipreg.config import HealthSettings, RefresherSettings, WorkerSettings
from tests.support.host import client
from tests.support.settings import most_allowed


def test_the_most_threads_a_function_runs_share_the_tables_client_without_dropping_connections(
    aws: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a table, and as many threads as a function may run on it at once
    threads = max(
        most_allowed(WorkerSettings, "group_concurrency"),
        most_allowed(RefresherSettings, "parallelism"),
        most_allowed(HealthSettings, "probe_concurrency"),
    )
    name = f"pool{uuid.uuid4().hex[:8]}"
    client(aws, "dynamodb").create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
    )
    table = sipreg_aws.dynamodb_table(name)
    start, errors = threading.Barrier(threads), []

    def read() -> None:
        start.wait()
        try:
            for round_ in range(3):
                table.get_item(Key={"id": f"item-{round_}"})
        except Exception as error:  # every failure is the test's
            errors.append(repr(error))

    # When they all read at the same moment, three times
    with caplog.at_level(logging.WARNING, logger="urllib3.connectionpool"):
        workers = [threading.Thread(target=read) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    # Then every read succeeded and the pool kept each connection it opened
    assert errors == []
    assert [r.getMessage() for r in caplog.records if "pool is full" in r.getMessage()] == []
