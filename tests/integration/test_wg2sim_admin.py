"""The admin HTTP API mints tokens, reports stats and takes faults; bad input is a 400 naming
the field, and changes nothing."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import grpc
import httpx
import pytest

from devstack.wg2sim.process import Wg2simAdminError, Wg2simProcess
from devstack.wg2sim.tokens import SCOPE_V0, SCOPE_V1
from sipreg.proto.wgtwo.sipbreakout.v0 import sipbreakout_pb2 as v0
from sipreg.proto.wgtwo.sipbreakout.v0 import sipbreakout_pb2_grpc as v0_grpc

UPSERT_V0 = "/wgtwo.sipbreakout.v0.SipBreakoutService/UpsertRegistration"


def post(sim: Wg2simProcess, path: str, body: Any) -> httpx.Response:
    return httpx.post(f"{sim.http_url}{path}", json=body, timeout=5)


def test_a_minted_token_is_opaque_random_and_lives_its_ttl(wg2sim: Wg2simProcess) -> None:
    first = post(wg2sim, "/_admin/tokens", {"msisdn": "+4799990000", "scopes": [SCOPE_V1], "ttl": 600})
    second = post(wg2sim, "/_admin/tokens", {})
    assert first.status_code == second.status_code == 200
    assert set(first.json()) == {"access_token", "expires_in"}
    assert first.json()["expires_in"] == 600
    assert second.json()["expires_in"] == 3600  # --token-ttl's default
    tokens = {first.json()["access_token"], second.json()["access_token"]}
    assert len(tokens) == 2
    # 43 URL-safe characters: 256 random bits (at least 128 are required)
    assert all(len(token) >= 22 for token in tokens)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"msisdn": "4799990000"}, "msisdn"),
        ({"msisdn": "+0799990000"}, "msisdn"),
        ({"msisdn": "+47"}, "msisdn"),
        ({"msisdn": 4799990000}, "msisdn"),
        ({"scopes": SCOPE_V1}, "scopes"),
        ({"scopes": [1]}, "scopes"),
        ({"scopes": [""]}, "scopes"),
        ({"ttl": 0}, "ttl"),
        ({"ttl": "3600"}, "ttl"),
        ({"ttl": 1.5}, "ttl"),
        ({"ttl": True}, "ttl"),
        ({"ttl": 60, "scope": SCOPE_V1}, "scope"),
        ([], "body"),
        ("token please", "body"),
    ],
)
def test_bad_token_requests_are_refused_naming_the_field(
    wg2sim: Wg2simProcess, body: Any, field: str
) -> None:
    response = post(wg2sim, "/_admin/tokens", body)
    assert response.status_code == 400
    assert response.json()["field"] == field
    assert response.json()["error"]


def test_a_body_that_is_not_json_is_refused(wg2sim: Wg2simProcess) -> None:
    response = httpx.post(f"{wg2sim.http_url}/_admin/faults", content=b"{nope", timeout=5)
    assert response.status_code == 400
    assert response.json()["field"] == "body"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"unavailable_rate": 1.5}, "unavailable_rate"),
        ({"unavailable_rate": -0.1}, "unavailable_rate"),
        ({"unavailable_rate": "often"}, "unavailable_rate"),
        ({"unavailable_rate": True}, "unavailable_rate"),
        ({"unavailable_attempts": 6}, "unavailable_attempts"),
        ({"unavailable_attempts": -1}, "unavailable_attempts"),
        ({"unavailable_attempts": 1.5}, "unavailable_attempts"),
        ({"unavailable_attempts": True}, "unavailable_attempts"),
        ({"stall_rate": 2}, "stall_rate"),
        ({"latency_ms": [80, 20]}, "latency_ms"),
        ({"latency_ms": [1, 2, 3]}, "latency_ms"),
        ({"latency_ms": -5}, "latency_ms"),
        ({"latency_ms": 12.5}, "latency_ms"),
        ({"latency_ms": "slow"}, "latency_ms"),
        ({"latency_ms": 60_001}, "latency_ms"),
        ({"msisdns": "+4799990000"}, "msisdns"),
        ({"msisdns": ["4799990000"]}, "msisdns"),
        ({"msisdns": [4799990000]}, "msisdns"),
        ({"methods": ["Upsert"]}, "methods"),
        ({"methods": "UpsertRegistration"}, "methods"),
        ({"unavailable": 0.5}, "unavailable"),
        (["unavailable_rate"], "body"),
    ],
)
def test_bad_faults_are_refused_naming_the_field_and_change_nothing(
    wg2sim_faults: Wg2simProcess, body: Any, field: str
) -> None:
    # Given faults in force
    in_force = wg2sim_faults.set_faults(latency_ms=[1, 2], msisdns=["+4799990000"])
    # When a bad fault set is posted
    response = post(wg2sim_faults, "/_admin/faults", body)
    # Then it is refused naming the field, and the faults in force stay
    assert response.status_code == 400
    assert response.json()["field"] == field
    assert wg2sim_faults.faults() == in_force


def test_a_fault_set_replaces_the_previous_one(wg2sim_faults: Wg2simProcess) -> None:
    wg2sim_faults.set_faults(unavailable_rate=0.3, stall_rate=0.05)
    assert wg2sim_faults.set_faults(latency_ms=50) == {
        "unavailable_rate": 0.0,
        "unavailable_attempts": 0,
        "stall_rate": 0.0,
        "latency_ms": [50, 50],
        "msisdns": [],
        "methods": [],
        "identity_down": False,
    }


def test_the_helper_raises_with_the_admin_answer(wg2sim: Wg2simProcess) -> None:
    with pytest.raises(Wg2simAdminError) as raised:
        wg2sim.mint_token(msisdn="not-a-number")
    assert raised.value.status_code == 400
    assert '"field":"msisdn"' in raised.value.body.replace(" ", "")


def test_stats_count_each_call_by_method_and_outcome(
    wg2sim: Wg2simProcess,
    wg2_channel: Callable[[Wg2simProcess], grpc.Channel],
    new_msisdn: Callable[[], str],
) -> None:
    # Given the counters now
    stub = v0_grpc.SipBreakoutServiceStub(wg2_channel(wg2sim))
    token = wg2sim.mint_token(msisdn=new_msisdn(), scopes=[SCOPE_V0])
    before = wg2sim.stats()["calls"].get(UPSERT_V0, {})

    def upsert(sip_uri: str, token: str) -> None:
        request = v0.UpsertRegistrationRequest(
            registration=v0.Registration(sip_uri=sip_uri, route_type=v0.ROUTE_TYPE_LOOP)
        )
        with contextlib.suppress(grpc.RpcError):
            stub.UpsertRegistration(request, metadata=[("authorization", f"Bearer {token}")], timeout=5)

    # When one call is OK, two are NOT_ACCEPTABLE and one UNAUTHENTICATED
    upsert("sips:pbx.acme.example", token)
    upsert("sip:pbx.acme.example", token)
    upsert("sips:pbx.acme.example:0", token)
    upsert("sips:pbx.acme.example", "unknown-token")
    # Then exactly those are added to v0 upsert's counters
    after = wg2sim.stats()["calls"][UPSERT_V0]
    added = {outcome: after[outcome] - before.get(outcome, 0) for outcome in after}
    assert {outcome: n for outcome, n in added.items() if n} == {
        "OK": 1,
        "NOT_ACCEPTABLE": 2,
        "UNAUTHENTICATED": 1,
    }
