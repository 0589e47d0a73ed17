"""wg2sim validates like a strict core: a bad registration is answered NOT_ACCEPTABLE with a
human-readable message naming the field, and nothing is stored."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import grpc
import pytest

from devstack.wg2sim.process import Wg2simProcess
from sipreg.proto.wgtwo.sipbreakout.v0 import sipbreakout_pb2 as v0
from sipreg.proto.wgtwo.sipbreakout.v0 import sipbreakout_pb2_grpc as v0_grpc
from sipreg.proto.wgtwo.sipbreakout.v1 import sipbreakout_pb2 as v1
from sipreg.proto.wgtwo.sipbreakout.v1 import sipbreakout_pb2_grpc as v1_grpc

GOOD: dict[str, Any] = {"sip_uri": "sips:pbx.acme.example:5061", "route_type": v1.ROUTE_TYPE_FORK}

BAD_SIP_URIS = [
    "",
    "pbx.acme.example",
    "sip:pbx.acme.example",
    "tel:+4799990000",
    "sips:",
    "sips::5061",
    "sips:alice@pbx.acme.example",
    "sips:pbx.acme.example;transport=tls",
    "sips:pbx.acme.example?subject=x",
    "sips:pbx.acme.example:",
    "sips:pbx.acme.example:0",
    "sips:pbx.acme.example:65536",
    "sips:pbx.acme.example:50x",
    "sips:pbx.acme.example:5061:1",
    "sips:pbx acme.example",
    "sips:pbx.acme.example/path",
    "sips:-pbx.acme.example",
    "sips:pbx-.acme.example",
    "sips:pbx..acme.example",
    "sips:pbx.acme.example.",
    "sips:pbx.acme.123",
    "sips:pbx_1.acme.example",
    "sips:" + "a" * 64 + ".example",
    "sips:" + ".".join(["abcdefghi"] * 26),  # 259 characters of host
    "sips:1.2.3.999",
    "sips:01.2.3.4",
    "sips:1.2.3",
    "sips:[::1",
    "sips:[::g]",
    "sips:[::1]x",
    "sips:::1",
    "sips:pbx.acme.example:٥٠٦١",  # Arabic-Indic digits are not a port
]

GOOD_SIP_URIS = [
    "sips:pbx.acme.example",
    "sips:pbx.acme.example:5061",
    "sips:PBX.Acme.Example:1",
    "sips:pbx-1.acme.example:65535",
    "sips:localhost",
    "sips:192.0.2.10:5061",
    "sips:[2001:db8::1]",
    "sips:[2001:db8::1]:5061",
    "SIPS:pbx.acme.example",
]

BAD_PREFIXES = ["+00", "0a", " 00", "00 ", "123456789", "٠٠", "-1"]

ChannelTo = Callable[[Wg2simProcess], grpc.Channel]
Upsert = Callable[..., tuple[Any, list[dict[str, Any]]]]


@pytest.fixture
def upsert_v1(wg2sim: Wg2simProcess, wg2_channel: ChannelTo, new_msisdn: Callable[[], str]) -> Upsert:
    """Upserts through v1 for a fresh subscriber; returns (response, what the core holds)."""
    stub = v1_grpc.SipBreakoutServiceStub(wg2_channel(wg2sim))

    def upsert(**fields: Any) -> tuple[Any, list[dict[str, Any]]]:
        msisdn = new_msisdn()
        token = wg2sim.mint_token(msisdn=msisdn)
        request = v1.UpsertRegistrationRequest(registration=v1.Registration(**{**GOOD, **fields}))
        metadata = [("authorization", f"Bearer {token}")]
        response = stub.UpsertRegistration(request, metadata=metadata, timeout=5)
        return response, [r for r in wg2sim.registrations() if r["msisdn"] == msisdn]

    return upsert


@pytest.mark.parametrize("sip_uri", BAD_SIP_URIS)
def test_bad_sip_uri_is_not_acceptable(upsert_v1: Upsert, sip_uri: str) -> None:
    response, held = upsert_v1(sip_uri=sip_uri)
    assert response.status_code == v1.STATUS_CODE_NOT_ACCEPTABLE
    assert response.error_message.startswith("sip_uri")
    assert not response.HasField("time_to_live")
    assert held == []


@pytest.mark.parametrize("sip_uri", GOOD_SIP_URIS)
def test_good_sip_uri_is_accepted(upsert_v1: Upsert, sip_uri: str) -> None:
    response, held = upsert_v1(sip_uri=sip_uri)
    assert response.status_code == v1.STATUS_CODE_OK, response.error_message
    assert [r["sip_uri"] for r in held] == [sip_uri]


@pytest.mark.parametrize("route_type", [0, 7, 1000])
def test_unspecified_or_unknown_route_type_is_not_acceptable(upsert_v1: Upsert, route_type: int) -> None:
    response, held = upsert_v1(route_type=route_type)
    assert response.status_code == v1.STATUS_CODE_NOT_ACCEPTABLE
    assert "route_type" in response.error_message
    assert held == []


@pytest.mark.parametrize("field", ["mobile_originating_prefix", "mobile_terminating_prefix"])
@pytest.mark.parametrize("prefix", BAD_PREFIXES)
def test_bad_prefix_is_not_acceptable(upsert_v1: Upsert, field: str, prefix: str) -> None:
    response, held = upsert_v1(**{field: prefix})
    assert response.status_code == v1.STATUS_CODE_NOT_ACCEPTABLE
    assert response.error_message.startswith(field)
    assert held == []


@pytest.mark.parametrize("prefix", ["0", "00", "12345678"])
def test_prefixes_of_one_to_eight_digits_are_accepted(upsert_v1: Upsert, prefix: str) -> None:
    response, held = upsert_v1(mobile_originating_prefix=prefix, mobile_terminating_prefix=prefix)
    assert response.status_code == v1.STATUS_CODE_OK, response.error_message
    assert [(r["mobile_originating_prefix"], r["mobile_terminating_prefix"]) for r in held] == [
        (prefix, prefix)
    ]


def test_every_problem_is_named_in_one_message(upsert_v1: Upsert) -> None:
    response, _ = upsert_v1(sip_uri="sip:x", route_type=0, mobile_terminating_prefix="x")
    assert response.status_code == v1.STATUS_CODE_NOT_ACCEPTABLE
    for field in ("sip_uri", "route_type", "mobile_terminating_prefix"):
        assert field in response.error_message


def test_a_request_without_registration_is_not_acceptable(
    wg2sim: Wg2simProcess, wg2_channel: ChannelTo, new_msisdn: Callable[[], str]
) -> None:
    stub = v1_grpc.SipBreakoutServiceStub(wg2_channel(wg2sim))
    token = wg2sim.mint_token(msisdn=new_msisdn())
    response = stub.UpsertRegistration(
        v1.UpsertRegistrationRequest(), metadata=[("authorization", f"Bearer {token}")], timeout=5
    )
    assert response.status_code == v1.STATUS_CODE_NOT_ACCEPTABLE
    assert "registration is required" in response.error_message


@pytest.mark.parametrize("route_type", [4, 5, 6])
def test_v0_refuses_the_route_types_only_v1_has(
    wg2sim: Wg2simProcess, wg2_channel: ChannelTo, new_msisdn: Callable[[], str], route_type: int
) -> None:
    # Given a v0 client sending LOOP_MO, LOOP_MT or INGRESS (v1 numbers, unknown to v0)
    stub = v0_grpc.SipBreakoutServiceStub(wg2_channel(wg2sim))
    msisdn = new_msisdn()
    token = wg2sim.mint_token(msisdn=msisdn)
    request = v0.UpsertRegistrationRequest(
        registration=v0.Registration(sip_uri=GOOD["sip_uri"], route_type=cast(Any, route_type))
    )
    # When it upserts
    response = stub.UpsertRegistration(request, metadata=[("authorization", f"Bearer {token}")], timeout=5)
    # Then the v0 core does not accept it
    assert response.status_code == v0.STATUS_CODE_NOT_ACCEPTABLE
    assert f"route_type {route_type} is not a RouteType of the v0 API" in response.error_message
    assert [r for r in wg2sim.registrations() if r["msisdn"] == msisdn] == []


def test_delete_with_a_bad_sip_uri_is_not_acceptable(
    wg2sim: Wg2simProcess, wg2_channel: ChannelTo, new_msisdn: Callable[[], str]
) -> None:
    stub = v1_grpc.SipBreakoutServiceStub(wg2_channel(wg2sim))
    token = wg2sim.mint_token(msisdn=new_msisdn())
    response = stub.DeleteRegistration(
        v1.DeleteRegistrationRequest(registration=v1.Registration(sip_uri="sip:pbx.acme.example")),
        metadata=[("authorization", f"Bearer {token}")],
        timeout=5,
    )
    assert response.status_code == v1.STATUS_CODE_NOT_ACCEPTABLE
    assert response.error_message.startswith("sip_uri")
