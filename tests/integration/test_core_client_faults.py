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
from sipreg.core.port import Applied, CoreCall, Operation, Transient
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


def test_calls_whose_first_attempt_fails_are_all_applied_by_grpcs_retries(faults, upserts) -> None:
    calls = upserts(20)
    faults.set_faults(unavailable_attempts=1, msisdns=[call.registration.msisdn for call in calls])
    before = attempts(faults)

    with client_for(faults) as client:
        outcomes = client.apply_many(calls)

    assert outcomes == [Applied(ttl_seconds=3600.0)] * 20
    assert attempts(faults) - before == Counter({"UNAVAILABLE": 20, "OK": 20})


def test_a_call_is_applied_on_its_last_attempt(faults, upserts) -> None:
    [call] = upserts(1)
    faults.set_faults(unavailable_attempts=MAX_ATTEMPTS - 1, msisdns=[call.registration.msisdn])
    before = attempts(faults)

    with client_for(faults) as client:
        outcome = client.upsert(call.registration, call.token)

    assert outcome == Applied(ttl_seconds=3600.0)
    assert attempts(faults) - before == Counter({"UNAVAILABLE": MAX_ATTEMPTS - 1, "OK": 1})


def attempts_under_throttling(outcomes: list[bool]) -> list[int]:
    """The attempts gRPC makes of each call in turn, by gRFC A6's retry throttling: a failed
    attempt costs a token, a success earns tokenRatio, and no retry is made while the tokens are
    at most half of maxTokens. `outcomes`: whether each call's attempts fail (all of them) or not."""
    throttling = SERVICE_CONFIG["retryThrottling"]
    tokens = float(throttling["maxTokens"])
    made = []
    for fails in outcomes:
        tries = 1
        if fails:
            tokens -= 1
            while tries < MAX_ATTEMPTS and tokens > throttling["maxTokens"] / 2:
                tries += 1
                tokens -= 1
        else:
            tokens = min(tokens + throttling["tokenRatio"], throttling["maxTokens"])
        made.append(tries)
    return made


def test_retries_stop_while_failures_outweigh_successes_and_resume_after_successes(faults, upserts) -> None:
    # Given a core that fails every attempt for some numbers and serves the others
    failing, healthy = upserts(12), upserts(16)
    faults.set_faults(unavailable_rate=1.0, msisdns=[call.registration.msisdn for call in failing])
    # 12 failing calls (the channel's tokens run low), 16 healthy ones (they earn tokens back),
    # and failing calls again
    plan = (
        [(call, True) for call in failing]
        + [(call, False) for call in healthy]
        + [(call, True) for call in failing[:3]]
    )

    with client_for(faults) as client:
        made = []
        for call, _ in plan:
            before = attempts(faults).total()
            client.upsert(call.registration, call.token)
            made.append(attempts(faults).total() - before)

    expected = attempts_under_throttling([fails for _, fails in plan])
    assert made == expected
    # The model's shape, so the test cannot pass on a model that never throttles
    assert expected[0] == MAX_ATTEMPTS and expected[11] == 1 and expected[-3] > 1


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
