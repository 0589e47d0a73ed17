"""Given a wg2sim core with injected faults, gRPC's own retry policy and the deadline do their work.

The session's shared emulator (`wg2sim_faults` clears faults around each test); faults are limited
to each test's own MSISDNs.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

import pytest

from devstack.wg2sim.process import Wg2simProcess
from sipreg.config import CoreSettings
from sipreg.core.channel import SERVICE_CONFIG
from sipreg.core.client import GrpcCoreClient
from sipreg.core.port import Applied, CoreCall, Operation, Transient, outcome_name
from sipreg.models import ApiVersion, Registration, RouteType

UPSERT_PATH = "/wgtwo.sipbreakout.v1.SipBreakoutService/UpsertRegistration"
MAX_ATTEMPTS = SERVICE_CONFIG["methodConfig"][0]["retryPolicy"]["maxAttempts"]


@pytest.fixture
def faults(wg2sim_faults: Wg2simProcess) -> Wg2simProcess:
    return wg2sim_faults


@pytest.fixture
def upserts(faults: Wg2simProcess, new_msisdn: Callable[[], str]) -> Callable[[int], list[CoreCall]]:
    def make(count: int) -> list[CoreCall]:
        numbers = [new_msisdn() for _ in range(count)]
        return [
            CoreCall(
                Operation.UPSERT,
                Registration(msisdn=msisdn, sip_uri="sips:pbx.acme.example", route_type=RouteType.FORK),
                faults.mint_token(msisdn=msisdn),
            )
            for msisdn in numbers
        ]

    return make


def client_for(sim: Wg2simProcess, deadline: float = 3.0) -> GrpcCoreClient:
    settings = CoreSettings.from_env(
        {
            "CORE_ENDPOINT": sim.grpc_target,
            "CORE_PLAINTEXT": "true",
            "API_VERSION": ApiVersion.V1,
            "CORE_DEADLINE_SECONDS": str(deadline),
        }
    )
    return GrpcCoreClient.from_settings(settings)


def attempts(sim: Wg2simProcess) -> Counter[str]:
    return Counter(sim.stats()["calls"].get(UPSERT_PATH, {}))


def test_a_core_that_stays_unavailable_is_tried_max_attempts_times_then_transient(faults, upserts) -> None:
    [call] = upserts(1)
    faults.set_faults(unavailable_rate=1.0, msisdns=[call.registration.msisdn])
    before = attempts(faults)

    with client_for(faults) as client:
        outcome = client.upsert(call.registration, call.token)

    assert outcome == Transient(code="UNAVAILABLE", detail="injected fault: the core is unavailable")
    assert attempts(faults) - before == Counter({"UNAVAILABLE": MAX_ATTEMPTS})


def test_calls_failing_unavailable_half_the_time_mostly_succeed_after_grpc_retries(faults, upserts) -> None:
    calls = upserts(20)
    faults.set_faults(unavailable_rate=0.5, msisdns=[call.registration.msisdn for call in calls])
    before = attempts(faults)

    with client_for(faults) as client:
        outcomes = client.apply_many(calls)

    made = attempts(faults) - before
    applied = sum(isinstance(outcome, Applied) for outcome in outcomes)
    # Without retries about 10 of 20 would pass; with 4 attempts each, about 19 (fewer than 15: p < 0.001).
    assert applied >= 15
    assert made["OK"] == applied
    assert made.total() > len(calls)  # the server saw more attempts than the client made calls
    assert {outcome_name(outcome) for outcome in outcomes} <= {"applied", "transient:UNAVAILABLE"}


def test_a_stalled_call_ends_at_the_deadline_as_transient(faults, upserts) -> None:
    [call] = upserts(1)
    faults.set_faults(stall_rate=1.0, msisdns=[call.registration.msisdn])

    with client_for(faults, deadline=0.3) as client:
        started = time.perf_counter()
        outcome = client.upsert(call.registration, call.token)
        elapsed = time.perf_counter() - started

    assert isinstance(outcome, Transient)
    assert outcome.code == "DEADLINE_EXCEEDED"
    assert 0.3 <= elapsed < 1.5  # the deadline, not the emulator's 30 s stall limit


def test_ten_calls_at_once_take_about_one_round_trip(faults, upserts) -> None:
    calls = upserts(10)
    faults.set_faults(latency_ms=50, msisdns=[call.registration.msisdn for call in calls])

    with client_for(faults) as client:
        client.upsert(calls[0].registration, calls[0].token)  # connect first: time only the calls
        # The best of three rounds each: a machine busy with other tests stalls a round, not three
        sequential = concurrent = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            one_by_one = [client.upsert(call.registration, call.token) for call in calls]
            sequential = min(sequential, time.perf_counter() - started)
            started = time.perf_counter()
            together = client.apply_many(calls)
            concurrent = min(concurrent, time.perf_counter() - started)

    assert one_by_one == together == [Applied(ttl_seconds=3600.0)] * 10
    # Ten round trips against about one: well under a third even on a busy machine.
    assert concurrent / sequential < 0.34, f"concurrent {concurrent:.3f} s vs sequential {sequential:.3f} s"
