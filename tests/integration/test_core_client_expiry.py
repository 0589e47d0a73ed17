"""Given a wg2sim core whose clock runs 1800x fast, registrations and tokens run out in seconds.

The TTL the client reports is in core seconds (3600); at this scale that is 2 real seconds.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from devstack.wg2sim.process import Wg2simProcess
from sipreg.config import CoreSettings
from sipreg.core import Applied, GrpcCoreClient, Unauthenticated
from sipreg.models import Registration, RouteType

TIME_SCALE = 1800
LONG_LIVED = 10**8  # core seconds: outlives the test at any scale
FORK = Registration(msisdn="+4794000001", sip_uri="sips:pbx.acme.example", route_type=RouteType.FORK)


@pytest.fixture(scope="module")
def sim() -> Iterator[Wg2simProcess]:
    with Wg2simProcess.start(time_scale=TIME_SCALE) as running:
        yield running


@pytest.fixture
def core(sim: Wg2simProcess) -> Iterator[GrpcCoreClient]:
    settings = CoreSettings.from_env(
        {"CORE_ENDPOINT": sim.grpc_target, "CORE_PLAINTEXT": "1", "API_VERSION": "v0"}
    )
    with GrpcCoreClient.from_settings(settings) as client:
        yield client


def test_a_registration_disappears_when_the_ttl_the_core_returned_runs_out(sim, core) -> None:
    outcome = core.upsert(FORK, sim.mint_token(msisdn=FORK.msisdn, ttl=LONG_LIVED))

    assert isinstance(outcome, Applied)
    assert outcome.ttl_seconds == 3600.0
    assert [r["msisdn"] for r in sim.registrations()] == [FORK.msisdn]
    real_ttl = outcome.ttl_seconds / TIME_SCALE
    deadline = time.monotonic() + real_ttl + 3
    while sim.registrations() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert sim.registrations() == []


def test_an_expired_token_is_unauthenticated(sim, core) -> None:
    token = sim.mint_token(msisdn=FORK.msisdn, ttl=1)  # one core second: gone in under a millisecond
    time.sleep(0.01)

    assert isinstance(core.upsert(FORK, token), Unauthenticated)
