"""The events API over real HTTP: template.yaml's functions on the local host, IAM enforced, each
module with a host and an events queue of its own (so what a test finds queued is its own)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack.host import LocalHost
from tests.support.events_api import events_host, events_queue_like


@pytest.fixture(scope="module")
def queue_url(aws_endpoint: str) -> str:
    return events_queue_like(aws_endpoint)


@pytest.fixture(scope="module")
def host(aws_endpoint: str, queue_url: str) -> Iterator[LocalHost]:
    with events_host(aws_endpoint, EVENTS_QUEUE_URL=queue_url) as running:
        yield running


@pytest.fixture(scope="module")
def api(host: LocalHost) -> str:
    assert host.api_url
    return host.api_url
