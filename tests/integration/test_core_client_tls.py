"""Given a wg2sim core serving TLS with its own certificate, the client's default TLS path works.

The session's shared TLS emulator: each test uses its own MSISDN.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from devstack.wg2sim.process import Wg2simProcess
from sipreg.config import CoreSettings
from sipreg.core.client import GrpcCoreClient
from sipreg.core.port import Applied, Deleted, Transient
from sipreg.models import Registration, RouteType


@pytest.fixture
def sim(wg2sim_tls: Wg2simProcess) -> Wg2simProcess:
    assert wg2sim_tls.ca_file
    return wg2sim_tls


@pytest.fixture
def fork(new_msisdn: Callable[[], str]) -> Registration:
    return Registration(msisdn=new_msisdn(), sip_uri="sips:pbx.acme.example", route_type=RouteType.FORK)


def held_by_core(sim: Wg2simProcess, msisdn: str) -> list[str]:
    return [r["sip_uri"] for r in sim.registrations() if r["msisdn"] == msisdn]


def client(**environment: str) -> GrpcCoreClient:
    return GrpcCoreClient.from_settings(
        CoreSettings.from_env({"API_VERSION": "v1", "CORE_DEADLINE_SECONDS": "2", **environment})
    )


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_tls_with_the_emulators_ca_file_upserts_and_deletes(sim, fork, host) -> None:
    token = sim.mint_token(msisdn=fork.msisdn)

    with client(CORE_ENDPOINT=f"{host}:{sim.grpc_port}", CORE_CA_FILE=sim.ca_file) as core:
        assert core.upsert(fork, token) == Applied(ttl_seconds=3600.0)
        assert held_by_core(sim, fork.msisdn) == [fork.sip_uri]
        assert core.delete(fork, token) == Deleted()
    assert held_by_core(sim, fork.msisdn) == []


def test_tls_without_the_ca_file_does_not_trust_a_self_signed_core(sim, fork) -> None:
    with client(CORE_ENDPOINT=sim.grpc_target) as core:
        outcome = core.upsert(fork, sim.mint_token(msisdn=fork.msisdn))

    assert isinstance(outcome, Transient)
    assert outcome.code == "UNAVAILABLE"
    assert held_by_core(sim, fork.msisdn) == []


def test_plaintext_to_a_tls_core_gets_no_answer_but_a_transient_outcome(sim, fork) -> None:
    with client(CORE_ENDPOINT=sim.grpc_target, CORE_PLAINTEXT="true") as core:
        outcome = core.upsert(fork, sim.mint_token(msisdn=fork.msisdn))

    assert isinstance(outcome, Transient)
    assert held_by_core(sim, fork.msisdn) == []
