"""wg2sim checks every call's bearer token like the core: who (UNAUTHENTICATED), may they
(PERMISSION_DENIED), and for which MSISDN (a user token's own, or a client token's phone_number)."""

from __future__ import annotations

import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

import grpc
import pytest

from devstack.wg2sim.process import Wg2simProcess
from devstack.wg2sim.tokens import SCOPE_V0, SCOPE_V1
from sipreg.proto.wgtwo.sipbreakout.v0 import sipbreakout_pb2 as v0
from sipreg.proto.wgtwo.sipbreakout.v0 import sipbreakout_pb2_grpc as v0_grpc
from sipreg.proto.wgtwo.sipbreakout.v1 import sipbreakout_pb2 as v1
from sipreg.proto.wgtwo.sipbreakout.v1 import sipbreakout_pb2_grpc as v1_grpc

PBX = "sips:pbx.acme.example"
ChannelTo = Callable[[Wg2simProcess], grpc.Channel]


def upserter(pb: ModuleType, pb_grpc: ModuleType) -> Callable[..., Any]:
    """An UpsertRegistration call (a fork to PBX) through one API version's generated modules."""

    def upsert(
        channel: grpc.Channel, metadata: list[tuple[str, str]], phone_number: str | None = None
    ) -> Any:
        registration = pb.Registration(sip_uri=PBX, route_type=pb.ROUTE_TYPE_FORK)
        if phone_number is not None:
            registration.phone_number.e164 = phone_number
        stub = pb_grpc.SipBreakoutServiceStub(channel)
        return stub.UpsertRegistration(
            pb.UpsertRegistrationRequest(registration=registration), metadata=metadata, timeout=5
        )

    return upsert


upsert_v0 = upserter(v0, v0_grpc)
upsert_v1 = upserter(v1, v1_grpc)


def auth(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


def held(sim: Wg2simProcess, msisdn: str) -> list[str]:
    return [r["sip_uri"] for r in sim.registrations() if r["msisdn"] == msisdn]


@pytest.mark.parametrize(
    "metadata",
    [
        pytest.param([], id="missing"),
        pytest.param(auth("not-a-token-the-core-ever-issued"), id="unknown"),
        pytest.param([("authorization", "Basic dXNlcjpwYXNz")], id="not-bearer"),
        pytest.param([("authorization", "Bearer ")], id="empty-bearer"),
    ],
)
@pytest.mark.parametrize("upsert", [upsert_v0, upsert_v1], ids=["v0", "v1"])
def test_a_call_without_a_live_token_is_unauthenticated(
    wg2sim: Wg2simProcess,
    wg2_channel: ChannelTo,
    upsert: Callable[..., Any],
    metadata: list[tuple[str, str]],
) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        upsert(wg2_channel(wg2sim), metadata)
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_an_expired_token_is_unauthenticated(
    wg2sim_fast: Wg2simProcess, wg2_channel: ChannelTo, new_msisdn: Callable[[], str]
) -> None:
    # Given a token living 360 emulator seconds (0.1 s real on the fast clock)
    msisdn = new_msisdn()
    token = wg2sim_fast.mint_token(msisdn=msisdn, ttl=360)
    # When it is used after it ran out
    time.sleep(0.2)
    with pytest.raises(grpc.RpcError) as raised:
        upsert_v1(wg2_channel(wg2sim_fast), auth(token))
    # Then the core refuses it as unauthenticated, without echoing the token
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert token not in (raised.value.details() or "")
    assert held(wg2sim_fast, msisdn) == []


def test_a_token_within_its_ttl_is_accepted_on_the_fast_clock(
    wg2sim_fast: Wg2simProcess, wg2_channel: ChannelTo, new_msisdn: Callable[[], str]
) -> None:
    # The control for the expiry test above: the fast clock does not break live tokens
    msisdn = new_msisdn()
    token = wg2sim_fast.mint_token(msisdn=msisdn, ttl=36_000)
    assert upsert_v1(wg2_channel(wg2sim_fast), auth(token)).status_code == v1.STATUS_CODE_OK


def test_two_authorization_entries_are_unauthenticated(
    wg2sim: Wg2simProcess, wg2_channel: ChannelTo, new_msisdn: Callable[[], str]
) -> None:
    # Given a client that sets the token on the channel and per call (two headers go out)
    token = wg2sim.mint_token(msisdn=new_msisdn())
    with pytest.raises(grpc.RpcError) as raised:
        upsert_v1(wg2_channel(wg2sim), auth(token) + auth(token))
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "more than one" in (raised.value.details() or "")


@pytest.mark.parametrize(
    ("scopes", "upsert"),
    [
        pytest.param([SCOPE_V1], upsert_v0, id="v1-scope-calling-v0"),
        pytest.param([SCOPE_V0], upsert_v1, id="v0-scope-calling-v1"),
        pytest.param(["openid", "phone"], upsert_v1, id="no-service-scope"),
    ],
)
def test_a_token_without_the_versions_scope_is_permission_denied(
    wg2sim: Wg2simProcess,
    wg2_channel: ChannelTo,
    new_msisdn: Callable[[], str],
    scopes: list[str],
    upsert: Callable[..., Any],
) -> None:
    msisdn = new_msisdn()
    token = wg2sim.mint_token(msisdn=msisdn, scopes=scopes)
    with pytest.raises(grpc.RpcError) as raised:
        upsert(wg2_channel(wg2sim), auth(token))
    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert held(wg2sim, msisdn) == []


@pytest.mark.parametrize(
    ("scopes", "upsert"),
    [([SCOPE_V0], upsert_v0), ([SCOPE_V1], upsert_v1)],
    ids=["v0", "v1"],
)
def test_a_client_token_with_phone_number_acts_for_that_number(
    wg2sim: Wg2simProcess,
    wg2_channel: ChannelTo,
    new_msisdn: Callable[[], str],
    scopes: list[str],
    upsert: Callable[..., Any],
) -> None:
    # Given a client token (client credentials: no MSISDN of its own)
    token = wg2sim.mint_token(scopes=scopes)
    msisdn = new_msisdn()
    # When it upserts for a phone number
    response = upsert(wg2_channel(wg2sim), auth(token), phone_number=msisdn)
    # Then the registration belongs to that number
    assert response.status_code == v1.STATUS_CODE_OK, response.error_message
    assert held(wg2sim, msisdn) == [PBX]


@pytest.mark.parametrize("upsert", [upsert_v0, upsert_v1], ids=["v0", "v1"])
def test_a_client_token_without_phone_number_is_not_acceptable(
    wg2sim: Wg2simProcess, wg2_channel: ChannelTo, upsert: Callable[..., Any]
) -> None:
    token = wg2sim.mint_token()
    response = upsert(wg2_channel(wg2sim), auth(token))
    assert response.status_code == v1.STATUS_CODE_NOT_ACCEPTABLE
    assert "phone_number is required" in response.error_message


def test_a_client_token_with_a_malformed_phone_number_is_not_acceptable(
    wg2sim: Wg2simProcess, wg2_channel: ChannelTo
) -> None:
    token = wg2sim.mint_token()
    response = upsert_v1(wg2_channel(wg2sim), auth(token), phone_number="4799990000")
    assert response.status_code == v1.STATUS_CODE_NOT_ACCEPTABLE
    assert response.error_message.startswith("phone_number.e164")


def test_a_user_token_with_another_phone_number_is_not_acceptable(
    wg2sim: Wg2simProcess, wg2_channel: ChannelTo, new_msisdn: Callable[[], str]
) -> None:
    # Given a subscriber's user token
    subscriber, other = new_msisdn(), new_msisdn()
    token = wg2sim.mint_token(msisdn=subscriber)
    # When it names another subscriber's number
    response = upsert_v1(wg2_channel(wg2sim), auth(token), phone_number=other)
    # Then the core refuses, and neither number gets a registration
    assert response.status_code == v1.STATUS_CODE_NOT_ACCEPTABLE
    assert "does not match" in response.error_message
    assert held(wg2sim, subscriber) == held(wg2sim, other) == []


def test_a_user_token_may_repeat_its_own_phone_number(
    wg2sim: Wg2simProcess, wg2_channel: ChannelTo, new_msisdn: Callable[[], str]
) -> None:
    msisdn = new_msisdn()
    token = wg2sim.mint_token(msisdn=msisdn)
    response = upsert_v1(wg2_channel(wg2sim), auth(token), phone_number=msisdn)
    assert response.status_code == v1.STATUS_CODE_OK
    assert held(wg2sim, msisdn) == [PBX]
