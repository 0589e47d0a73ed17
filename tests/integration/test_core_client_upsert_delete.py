"""Given a wg2sim core on loopback, the client upserts and deletes over real gRPC in v0 and v1.

The emulator is the session's shared one: each test uses its own MSISDNs (`new_msisdn`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from devstack.wg2sim.process import Wg2simProcess
from sipreg.config import AuthMode, CoreSettings
from sipreg.core.client import GrpcCoreClient
from sipreg.core.port import Applied, CoreCall, Deleted, Operation, Rejected
from sipreg.models import ApiVersion, Registration, RouteType

ClientFactory = Callable[..., GrpcCoreClient]


@pytest.fixture
def sim(wg2sim: Wg2simProcess) -> Wg2simProcess:
    return wg2sim


@pytest.fixture
def make_client(sim: Wg2simProcess) -> Iterator[ClientFactory]:
    built: list[GrpcCoreClient] = []

    def make(version: ApiVersion, auth_mode: AuthMode = AuthMode.USER) -> GrpcCoreClient:
        settings = CoreSettings.from_env(
            {
                "CORE_ENDPOINT": sim.grpc_target,
                "CORE_PLAINTEXT": "true",
                "API_VERSION": version,
                "AUTH_MODE": auth_mode,
                "CORE_DEADLINE_SECONDS": "3",
            }
        )
        built.append(GrpcCoreClient.from_settings(settings))
        return built[-1]

    yield make
    for client in built:
        client.close()


def held_by_core(sim: Wg2simProcess, msisdn: str) -> list[dict[str, Any]]:
    return [r for r in sim.registrations() if r["msisdn"] == msisdn]


@pytest.mark.parametrize("version", list(ApiVersion))
def test_upsert_then_delete_round_trips_through_the_core(sim, make_client, new_msisdn, version) -> None:
    client = make_client(version)
    msisdn = new_msisdn()
    token = sim.mint_token(msisdn=msisdn)
    registration = Registration(
        msisdn=msisdn,
        sip_uri="sips:pbx.acme.example:5061",
        route_type=RouteType.FORK,
        mobile_originating_prefix="00",
    )

    upserted = client.upsert(registration, token)

    assert upserted == Applied(ttl_seconds=3600.0)
    [held] = held_by_core(sim, msisdn)
    assert held["sip_uri"] == "sips:pbx.acme.example:5061"
    assert held["route_type"] == "ROUTE_TYPE_FORK"
    assert held["mobile_originating_prefix"] == "00"
    assert held["mobile_terminating_prefix"] == ""
    assert held["api_version"] == version

    deleted = client.delete(registration, token)

    assert deleted == Deleted()
    assert held_by_core(sim, msisdn) == []


@pytest.mark.parametrize("route_type", [RouteType.LOOP_MO, RouteType.LOOP_MT, RouteType.INGRESS])
def test_v1_applies_the_route_types_only_it_has(sim, make_client, new_msisdn, route_type) -> None:
    client = make_client(ApiVersion.V1)
    msisdn = new_msisdn()
    registration = Registration(msisdn=msisdn, sip_uri="sips:tas.example", route_type=route_type)

    assert isinstance(client.upsert(registration, sim.mint_token(msisdn=msisdn)), Applied)
    assert [r["route_type"] for r in held_by_core(sim, msisdn)] == [route_type.proto_name]


def test_v0_refuses_a_v1_route_type_without_calling_the_core(sim, make_client, new_msisdn) -> None:
    client = make_client(ApiVersion.V0)
    msisdn = new_msisdn()
    registration = Registration(msisdn=msisdn, sip_uri="sips:tas.example", route_type=RouteType.LOOP_MO)
    calls_before = sim.stats()["calls"]

    outcome = client.upsert(registration, sim.mint_token(msisdn=msisdn))

    assert isinstance(outcome, Rejected)
    assert not outcome.by_core
    assert "route_type" in outcome.message
    assert sim.stats()["calls"] == calls_before


@pytest.mark.parametrize("version", list(ApiVersion))
def test_client_token_mode_names_the_number_so_a_client_token_works(
    sim, make_client, new_msisdn, version
) -> None:
    client = make_client(version, AuthMode.CLIENT)
    msisdn = new_msisdn()
    registration = Registration(msisdn=msisdn, sip_uri="sips:pbx.acme.example", route_type=RouteType.FALLBACK)
    client_token = sim.mint_token(msisdn=None)

    assert client.upsert(registration, client_token) == Applied(ttl_seconds=3600.0)
    assert [r["route_type"] for r in held_by_core(sim, msisdn)] == ["ROUTE_TYPE_FALLBACK"]
    assert client.delete(registration, client_token) == Deleted()
    assert held_by_core(sim, msisdn) == []


@pytest.mark.parametrize("version", list(ApiVersion))
def test_user_token_mode_sends_no_number_so_a_client_token_is_rejected(
    sim, make_client, new_msisdn, version
) -> None:
    client = make_client(version, AuthMode.USER)
    msisdn = new_msisdn()
    registration = Registration(msisdn=msisdn, sip_uri="sips:pbx.acme.example", route_type=RouteType.FORK)

    outcome = client.upsert(registration, sim.mint_token(msisdn=None))

    assert isinstance(outcome, Rejected)
    assert outcome.by_core
    assert "phone_number" in outcome.message
    assert held_by_core(sim, msisdn) == []


def test_client_token_mode_with_a_user_token_for_the_same_number_is_applied(
    sim, make_client, new_msisdn
) -> None:
    client = make_client(ApiVersion.V1, AuthMode.CLIENT)
    msisdn = new_msisdn()
    registration = Registration(msisdn=msisdn, sip_uri="sips:pbx.acme.example", route_type=RouteType.LOOP)

    assert isinstance(client.upsert(registration, sim.mint_token(msisdn=msisdn)), Applied)


def test_apply_many_mixes_upserts_and_deletes_in_order(sim, make_client, new_msisdn) -> None:
    client = make_client(ApiVersion.V1)
    numbers = [new_msisdn() for _ in range(4)]
    tokens = {msisdn: sim.mint_token(msisdn=msisdn) for msisdn in numbers}
    registrations = [
        Registration(msisdn=msisdn, sip_uri="sips:pbx.acme.example", route_type=RouteType.FORK)
        for msisdn in numbers
    ]
    client.upsert(registrations[3], tokens[numbers[3]])
    calls = [CoreCall(Operation.UPSERT, r, tokens[r.msisdn]) for r in registrations[:3]]
    calls.append(CoreCall(Operation.DELETE, registrations[3], tokens[numbers[3]]))

    outcomes = client.apply_many(calls)

    assert outcomes == [Applied(ttl_seconds=3600.0)] * 3 + [Deleted()]
    held = {r["msisdn"] for r in sim.registrations()}
    assert set(numbers[:3]) <= held
    assert numbers[3] not in held
