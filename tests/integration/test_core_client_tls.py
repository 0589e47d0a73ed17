"""Given a wg2sim core serving TLS with its own certificate, the client's default TLS path works."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack.wg2sim.process import Wg2simProcess
from sipreg.config import CoreSettings
from sipreg.core import Applied, Deleted, GrpcCoreClient, Transient
from sipreg.models import Registration, RouteType

FORK = Registration(msisdn="+4793000001", sip_uri="sips:pbx.acme.example", route_type=RouteType.FORK)


@pytest.fixture(scope="module")
def sim() -> Iterator[Wg2simProcess]:
    with Wg2simProcess.start(tls=True) as running:
        assert running.ca_file
        yield running


def client(**environment: str) -> GrpcCoreClient:
    return GrpcCoreClient.from_settings(
        CoreSettings.from_env({"API_VERSION": "v1", "CORE_DEADLINE_SECONDS": "2", **environment})
    )


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_tls_with_the_emulators_ca_file_upserts_and_deletes(sim, host) -> None:
    token = sim.mint_token(msisdn=FORK.msisdn)

    with client(CORE_ENDPOINT=f"{host}:{sim.grpc_port}", CORE_CA_FILE=sim.ca_file) as core:
        assert core.upsert(FORK, token) == Applied(ttl_seconds=3600.0)
        assert [r["msisdn"] for r in sim.registrations()] == [FORK.msisdn]
        assert core.delete(FORK, token) == Deleted()
    assert sim.registrations() == []


def test_tls_without_the_ca_file_does_not_trust_a_self_signed_core(sim) -> None:
    with client(CORE_ENDPOINT=sim.grpc_target) as core:
        outcome = core.upsert(FORK, sim.mint_token(msisdn=FORK.msisdn))

    assert isinstance(outcome, Transient)
    assert outcome.code == "UNAVAILABLE"
    assert sim.registrations() == []


def test_plaintext_to_a_tls_core_gets_no_answer_but_a_transient_outcome(sim) -> None:
    with client(CORE_ENDPOINT=sim.grpc_target, CORE_PLAINTEXT="true") as core:
        outcome = core.upsert(FORK, sim.mint_token(msisdn=FORK.msisdn))

    assert isinstance(outcome, Transient)
    assert sim.registrations() == []
