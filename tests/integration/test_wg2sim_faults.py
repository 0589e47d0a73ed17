"""Injected faults (admin API or flags) hit calls before they are handled: added latency,
UNAVAILABLE, stalls past the caller's deadline; optionally only for chosen MSISDNs."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import httpx
import pytest

from devstack.wg2sim.process import Wg2simProcess
from sipreg.proto.wgtwo.sipbreakout.v1 import sipbreakout_pb2 as v1
from sipreg.proto.wgtwo.sipbreakout.v1 import sipbreakout_pb2_grpc as v1_grpc

UPSERT = "/wgtwo.sipbreakout.v1.SipBreakoutService/UpsertRegistration"
FORK_TO_PBX: dict[str, Any] = {"sip_uri": "sips:pbx.acme.example", "route_type": "ROUTE_TYPE_FORK"}
RETRY_FOUR_TIMES = {
    "methodConfig": [
        {
            "name": [{"service": "wgtwo.sipbreakout.v1.SipBreakoutService"}],
            "retryPolicy": {
                "maxAttempts": 4,
                "initialBackoff": "0.01s",
                "maxBackoff": "0.1s",
                "backoffMultiplier": 2,
                "retryableStatusCodes": ["UNAVAILABLE"],
            },
        }
    ]
}
ChannelTo = Callable[[Wg2simProcess], grpc.Channel]
Upsert = Callable[..., Any]


@pytest.fixture
def upsert(wg2sim_faults: Wg2simProcess, wg2_channel: ChannelTo) -> Upsert:
    """Upserts through v1 as the subscriber `msisdn` (user token), or with a client token."""
    stub = v1_grpc.SipBreakoutServiceStub(wg2_channel(wg2sim_faults))

    def call(msisdn: str, *, client_token: bool = False, timeout: float = 5) -> Any:
        registration = v1.Registration(**FORK_TO_PBX)
        if client_token:
            registration.phone_number.e164 = msisdn
        token = wg2sim_faults.mint_token(msisdn=None if client_token else msisdn)
        return stub.UpsertRegistration(
            v1.UpsertRegistrationRequest(registration=registration),
            metadata=[("authorization", f"Bearer {token}")],
            timeout=timeout,
        )

    return call


def code_of(call: Callable[[], Any]) -> grpc.StatusCode:
    try:
        call()
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


def count(stats: dict[str, Any], outcome: str) -> int:
    return int(stats["calls"].get(UPSERT, {}).get(outcome, 0))


def test_unavailable_rate_one_fails_every_call_and_is_counted(
    wg2sim_faults: Wg2simProcess, upsert: Upsert, new_msisdn: Callable[[], str]
) -> None:
    # Given every call is to fail UNAVAILABLE
    wg2sim_faults.set_faults(unavailable_rate=1.0)
    before = wg2sim_faults.stats()
    # When a valid upsert comes in
    code = code_of(lambda: upsert(new_msisdn()))
    # Then it fails UNAVAILABLE, and the stats say so
    after = wg2sim_faults.stats()
    assert code == grpc.StatusCode.UNAVAILABLE
    assert count(after, "UNAVAILABLE") == count(before, "UNAVAILABLE") + 1
    assert after["faults_injected"]["unavailable"] == before["faults_injected"].get("unavailable", 0) + 1


def test_faults_hit_about_the_given_fraction_of_calls(
    wg2sim_faults: Wg2simProcess, upsert: Upsert, new_msisdn: Callable[[], str]
) -> None:
    wg2sim_faults.set_faults(unavailable_rate=0.5)
    msisdn = new_msisdn()
    codes = [code_of(lambda: upsert(msisdn)) for _ in range(100)]
    failed = codes.count(grpc.StatusCode.UNAVAILABLE)
    # Binomial(100, 0.5) leaves 20..80 with certainty for all practical purposes
    assert 20 <= failed <= 80
    assert codes.count(grpc.StatusCode.OK) == 100 - failed


def test_the_first_attempts_of_every_call_fail_and_a_retry_after_them_is_served(
    wg2sim_faults: Wg2simProcess, upsert: Upsert, new_msisdn: Callable[[], str]
) -> None:
    # Given the first 2 attempts of every call are to fail
    wg2sim_faults.set_faults(unavailable_attempts=2)
    # Then a call that is never retried fails, every time: each is its first attempt
    assert [code_of(lambda: upsert(new_msisdn())) for _ in range(3)] == [grpc.StatusCode.UNAVAILABLE] * 3
    # And a call retried by gRPC (grpc-previous-rpc-attempts on each retry) is served on its third
    retrying = grpc.insecure_channel(
        wg2sim_faults.grpc_target,
        options=[("grpc.enable_retries", 1), ("grpc.service_config", json.dumps(RETRY_FOUR_TIMES))],
    )
    msisdn = new_msisdn()
    before = wg2sim_faults.stats()
    with retrying:
        response = v1_grpc.SipBreakoutServiceStub(retrying).UpsertRegistration(
            v1.UpsertRegistrationRequest(registration=v1.Registration(**FORK_TO_PBX)),
            metadata=[("authorization", f"Bearer {wg2sim_faults.mint_token(msisdn=msisdn)}")],
            timeout=5,
        )
    after = wg2sim_faults.stats()
    assert response.status_code == v1.STATUS_CODE_OK
    assert count(after, "UNAVAILABLE") - count(before, "UNAVAILABLE") == 2
    assert count(after, "OK") - count(before, "OK") == 1


def test_a_stalled_call_ends_deadline_exceeded_while_others_are_served(
    wg2sim_faults: Wg2simProcess, upsert: Upsert, new_msisdn: Callable[[], str]
) -> None:
    # Given calls for one number stall
    stalled_msisdn, other_msisdn = new_msisdn(), new_msisdn()
    wg2sim_faults.set_faults(stall_rate=1.0, msisdns=[stalled_msisdn])
    # When that number's call has a 0.5 s deadline, and another number calls meanwhile
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=1) as pool:
        stalled = pool.submit(code_of, lambda: upsert(stalled_msisdn, timeout=0.5))
        other = upsert(other_msisdn)
        other_took = time.monotonic() - started
        stalled_code = stalled.result(timeout=10)
    stalled_took = time.monotonic() - started
    # Then the stalled call hits its deadline, and the other is answered at once
    assert stalled_code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert 0.45 <= stalled_took < 3
    assert other.status_code == v1.STATUS_CODE_OK
    assert other_took < 0.45


def test_fixed_latency_delays_the_answer(
    wg2sim_faults: Wg2simProcess, upsert: Upsert, new_msisdn: Callable[[], str]
) -> None:
    wg2sim_faults.set_faults(latency_ms=300)
    started = time.monotonic()
    response = upsert(new_msisdn())
    took = time.monotonic() - started
    assert response.status_code == v1.STATUS_CODE_OK
    assert 0.3 <= took < 2


def test_latency_range_delays_within_it(
    wg2sim_faults: Wg2simProcess, upsert: Upsert, new_msisdn: Callable[[], str]
) -> None:
    wg2sim_faults.set_faults(latency_ms=[100, 200])
    msisdn = new_msisdn()
    for _ in range(3):
        started = time.monotonic()
        upsert(msisdn)
        assert 0.1 <= time.monotonic() - started < 1.5
    assert wg2sim_faults.stats()["faults_injected"]["latency"] >= 3


def test_faults_limited_to_msisdns_spare_the_others(
    wg2sim_faults: Wg2simProcess, upsert: Upsert, new_msisdn: Callable[[], str]
) -> None:
    # Given faults for one number only
    faulty, healthy = new_msisdn(), new_msisdn()
    wg2sim_faults.set_faults(unavailable_rate=1.0, msisdns=[faulty])
    # Then that number fails, by user token and by client token with phone_number alike,
    # and the other number is served
    assert code_of(lambda: upsert(faulty)) == grpc.StatusCode.UNAVAILABLE
    assert code_of(lambda: upsert(faulty, client_token=True)) == grpc.StatusCode.UNAVAILABLE
    assert code_of(lambda: upsert(healthy)) == grpc.StatusCode.OK
    assert code_of(lambda: upsert(healthy, client_token=True)) == grpc.StatusCode.OK


def test_faults_limited_to_a_method_spare_the_other(
    wg2sim_faults: Wg2simProcess, upsert: Upsert, new_msisdn: Callable[[], str], wg2_channel: ChannelTo
) -> None:
    # Given faults for deletes only
    msisdn = new_msisdn()
    wg2sim_faults.set_faults(unavailable_rate=1.0, methods=["DeleteRegistration"])
    stub = v1_grpc.SipBreakoutServiceStub(wg2_channel(wg2sim_faults))
    token = wg2sim_faults.mint_token(msisdn=msisdn)

    def delete() -> Any:
        return stub.DeleteRegistration(
            v1.DeleteRegistrationRequest(registration=v1.Registration(**FORK_TO_PBX)),
            metadata=[("authorization", f"Bearer {token}")],
            timeout=5,
        )

    # Then upserts are served and deletes fail
    assert code_of(lambda: upsert(msisdn)) == grpc.StatusCode.OK
    assert code_of(delete) == grpc.StatusCode.UNAVAILABLE


def test_clearing_faults_restores_service(
    wg2sim_faults: Wg2simProcess, upsert: Upsert, new_msisdn: Callable[[], str]
) -> None:
    wg2sim_faults.set_faults(unavailable_rate=1.0)
    wg2sim_faults.clear_faults()
    assert wg2sim_faults.faults() == {
        "unavailable_rate": 0.0,
        "unavailable_attempts": 0,
        "stall_rate": 0.0,
        "latency_ms": [0, 0],
        "msisdns": [],
        "methods": [],
        "identity_down": False,
    }
    assert code_of(lambda: upsert(new_msisdn())) == grpc.StatusCode.OK


def test_fault_flags_apply_from_start_up(wg2_channel: ChannelTo, new_msisdn: Callable[[], str]) -> None:
    # Given an emulator started with faults for one number
    faulty, healthy = new_msisdn(), new_msisdn()
    flags = ["--unavailable-rate", "1", "--latency-ms", "20-80", "--fault-msisdn", faulty]
    with Wg2simProcess.start(extra_args=flags) as sim:
        # Then they are in force, for that number only
        assert sim.faults() == {
            "unavailable_rate": 1.0,
            "unavailable_attempts": 0,
            "stall_rate": 0.0,
            "latency_ms": [20, 80],
            "msisdns": [faulty],
            "methods": [],
            "identity_down": False,
        }
        stub = v1_grpc.SipBreakoutServiceStub(wg2_channel(sim))

        def call(msisdn: str) -> Any:
            return stub.UpsertRegistration(
                v1.UpsertRegistrationRequest(
                    registration=v1.Registration(
                        sip_uri="sips:pbx.acme.example", route_type="ROUTE_TYPE_FORK"
                    )
                ),
                metadata=[("authorization", f"Bearer {sim.mint_token(msisdn=msisdn)}")],
                timeout=5,
            )

        assert code_of(lambda: call(faulty)) == grpc.StatusCode.UNAVAILABLE
        assert code_of(lambda: call(healthy)) == grpc.StatusCode.OK


def test_an_identity_server_outage_answers_503_everywhere_until_cleared(wg2sim_faults: Wg2simProcess) -> None:
    # Given an identity server told to be down
    wg2sim_faults.set_faults(identity_down=True)
    with httpx.Client(base_url=wg2sim_faults.http_url, timeout=5) as http:
        # Then discovery and the token endpoint answer 503 (an OAuth `temporarily_unavailable`)
        discovery = http.get("/.well-known/openid-configuration")
        token = http.post("/oauth2/token", data={"grant_type": "client_credentials"})
        assert (discovery.status_code, token.status_code) == (503, 503)
        assert token.json()["error"] == "temporarily_unavailable"
        assert wg2sim_faults.stats()["faults_injected"]["identity_down"] >= 2
        # And the admin API (not the identity server) still answers, and clearing brings it back
        wg2sim_faults.clear_faults()
        assert http.get("/.well-known/openid-configuration").status_code == 200
