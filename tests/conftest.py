"""Fixtures shared by every test layer.

Integration and e2e tests talk to real local servers over sockets: the local AWS engine
(`devstack.aws_engine`, IAM enforced) and `devstack.wg2sim` processes for the operator side.
Unit tests get no network at all (pytest-socket), so a unit test can never reach a server by
accident.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.aws_engine import ROOT, LocalAws
from devstack.host.aws import Clients


def pytest_configure(config: pytest.Config) -> None:
    # The X-Ray SDK opens its UDP emitter's socket when first imported (powertools' Tracer imports
    # it lazily): imported here, before unit tests lose the network, so that a unit test that is
    # the first to load a handler passes on its own as in the full run.
    import aws_xray_sdk.core  # type: ignore[import-untyped]  # noqa: F401, PLC0415


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        path = str(item.path)
        if f"{os.sep}tests{os.sep}unit{os.sep}" in path:
            item.add_marker(pytest.mark.disable_socket)
        elif f"{os.sep}tests{os.sep}integration{os.sep}" in path:
            item.add_marker(pytest.mark.integration)
        elif f"{os.sep}tests{os.sep}e2e{os.sep}" in path:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(autouse=True)
def _no_real_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every boto3 client in tests gets the local engine's root credentials and a region, never real ones."""
    for name, value in ROOT.as_environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture(scope="session")
def aws_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One local AWS engine (real HTTP on loopback, IAM enforced) for the session; tests use unique names."""
    log_dir: Path = tmp_path_factory.mktemp("aws")
    with LocalAws.start(log_file=log_dir / "aws.log") as engine:
        yield engine.endpoint


@pytest.fixture(scope="session")
def aws_account(aws_endpoint: str) -> str:
    """The account the local engine works in, as its STS says."""
    return str(Clients(aws_endpoint, "eu-west-1").account_id())


@pytest.fixture
def aws(aws_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Points every boto3 client created in the test at the local AWS engine."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws_endpoint)
    return aws_endpoint
