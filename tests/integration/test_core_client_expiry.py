"""Given a wg2sim core whose clock runs fast, registrations and tokens run out in real seconds.

The session's shared fast emulator (`wg2sim_fast`). The TTL the client reports is in core
seconds (3600); at the emulator's time scale that passes in about a real second.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from devstack.wg2sim.process import Wg2simProcess
from sipreg.config import CoreSettings
from sipreg.core.client import GrpcCoreClient
from sipreg.core.port import Applied, Unauthenticated
from sipreg.models import Registration, RouteType

LONG_LIVED = 10**9  # core seconds: a token that outlives the test at any time scale


@pytest.fixture
def sim(wg2sim_fast: Wg2simProcess) -> Wg2simProcess:
    return wg2sim_fast


@pytest.fixture
def core(sim: Wg2simProcess) -> Iterator[GrpcCoreClient]:
    settings = CoreSettings.from_env(
        {"CORE_ENDPOINT": sim.grpc_target, "CORE_PLAINTEXT": "1", "API_VERSION": "v0"}
    )
    with GrpcCoreClient.from_settings(settings) as client:
        yield client


@pytest.fixture
def fork(new_msisdn: Callable[[], str]) -> Registration:
    return Registration(msisdn=new_msisdn(), sip_uri="sips:pbx.acme.example", route_type=RouteType.FORK)


def held_by_core(sim: Wg2simProcess, msisdn: str) -> bool:
    return any(r["msisdn"] == msisdn for r in sim.registrations())


def test_a_registration_disappears_when_the_ttl_the_core_returned_runs_out(sim, core, fork) -> None:
    outcome = core.upsert(fork, sim.mint_token(msisdn=fork.msisdn, ttl=LONG_LIVED))

    assert isinstance(outcome, Applied)
    assert outcome.ttl_seconds is not None
    assert outcome.ttl_seconds == pytest.approx(3600.0 / sim.time_scale)  # real seconds
    assert held_by_core(sim, fork.msisdn)
    deadline = time.monotonic() + outcome.ttl_seconds + 3
    while held_by_core(sim, fork.msisdn) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not held_by_core(sim, fork.msisdn)


def test_an_expired_token_is_unauthenticated(sim, core, fork) -> None:
    token = sim.mint_token(msisdn=fork.msisdn, ttl=1)  # one core second: gone within a millisecond
    time.sleep(0.01)

    assert isinstance(core.upsert(fork, token), Unauthenticated)
