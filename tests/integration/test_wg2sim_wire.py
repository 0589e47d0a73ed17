"""Our protos are exactly WG2's: a client that knows only the interface facts (paths, field
numbers, enum values) and hand-encodes protobuf wire bytes is understood by the emulator.

Nothing generated is imported here; if a package, service, method, field number or enum
value in protos/ drifted from the facts, these calls would fail or land in the wrong field.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import pytest

from devstack.wg2sim.process import Wg2simProcess

# Wire types (protobuf encoding spec)
VARINT, LENGTH_DELIMITED = 0, 2
# Interface facts, written out by hand
STATUS_CODE_OK, STATUS_CODE_NOT_ACCEPTABLE = 1, 2
ROUTE_TYPES = {
    "v0": {1: "ROUTE_TYPE_LOOP", 2: "ROUTE_TYPE_FORK", 3: "ROUTE_TYPE_FALLBACK"},
    "v1": {
        1: "ROUTE_TYPE_LOOP",
        2: "ROUTE_TYPE_FORK",
        3: "ROUTE_TYPE_FALLBACK",
        4: "ROUTE_TYPE_LOOP_MO",
        5: "ROUTE_TYPE_LOOP_MT",
        6: "ROUTE_TYPE_INGRESS",
    },
}
SCOPES = {"v0": "call.control:answer_and_initiate", "v1": "call.routing:write"}


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def varint_field(number: int, value: int) -> bytes:
    return varint(number << 3 | VARINT) + varint(value)


def bytes_field(number: int, payload: bytes) -> bytes:
    return varint(number << 3 | LENGTH_DELIMITED) + varint(len(payload)) + payload


def decode(message: bytes) -> dict[int, Any]:
    """Field number -> value (int for varints, bytes otherwise); no repeated fields here."""
    fields: dict[int, Any] = {}
    position = 0

    def read_varint() -> int:
        nonlocal position
        value, shift = 0, 0
        while True:
            byte = message[position]
            position += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value

    while position < len(message):
        key = read_varint()
        number, wire_type = key >> 3, key & 7
        assert number not in fields, f"field {number} twice"
        if wire_type == VARINT:
            fields[number] = read_varint()
        elif wire_type == LENGTH_DELIMITED:
            length = read_varint()
            fields[number] = message[position : position + length]
            position += length
        else:
            raise AssertionError(f"unexpected wire type {wire_type} for field {number}")
    return fields


def registration_bytes(
    *, sip_uri: str, route_type: int, mo_prefix: str = "", mt_prefix: str = "", e164: str = ""
) -> bytes:
    """wgtwo.sipbreakout.vN.Registration; phone_number = 5 is PhoneNumber/E164 with e164 = 1."""
    encoded = b""
    if mo_prefix:
        encoded += bytes_field(1, mo_prefix.encode())
    if mt_prefix:
        encoded += bytes_field(2, mt_prefix.encode())
    encoded += bytes_field(3, sip_uri.encode())
    if route_type:
        encoded += varint_field(4, route_type)
    if e164:
        encoded += bytes_field(5, bytes_field(1, e164.encode()))
    return encoded


def call(sim: Wg2simProcess, channel: grpc.Channel, version: str, method: str, request: bytes) -> bytes:
    """A raw unary call: bytes out, bytes back, no generated code in between."""
    raw = channel.unary_unary(
        f"/wgtwo.sipbreakout.{version}.SipBreakoutService/{method}",
        request_serializer=None,
        response_deserializer=None,
    )
    token = sim.mint_token(scopes=[SCOPES[version]])  # a client token: phone_number names the MSISDN
    response: bytes = raw(request, metadata=(("authorization", f"Bearer {token}"),), timeout=5)
    return response


@pytest.mark.parametrize(
    ("version", "route_type"),
    [(version, number) for version, numbers in ROUTE_TYPES.items() for number in numbers],
)
def test_hand_encoded_upsert_and_delete_are_understood(
    wg2sim: Wg2simProcess,
    wg2_channel: Callable[[Wg2simProcess], grpc.Channel],
    new_msisdn: Callable[[], str],
    version: str,
    route_type: int,
) -> None:
    # Given an UpsertRegistrationRequest (registration = 1) encoded from the facts alone
    msisdn = new_msisdn()
    registration = registration_bytes(
        sip_uri="sips:pbx.acme.example:5061",
        route_type=route_type,
        mo_prefix="00",
        mt_prefix="9",
        e164=msisdn,
    )
    channel = wg2_channel(wg2sim)
    # When it is sent as raw bytes
    response = decode(call(wg2sim, channel, version, "UpsertRegistration", bytes_field(1, registration)))
    # Then status_code = 1 is OK and time_to_live = 3 is a Duration of seconds = 1: 3600
    assert response.keys() == {1, 3}
    assert response[1] == STATUS_CODE_OK
    assert decode(response[3]) == {1: 3600}
    # And every field landed where the facts say
    [held] = [r for r in wg2sim.registrations() if r["msisdn"] == msisdn]
    assert held["sip_uri"] == "sips:pbx.acme.example:5061"
    assert held["route_type"] == ROUTE_TYPES[version][route_type]
    assert (held["mobile_originating_prefix"], held["mobile_terminating_prefix"]) == ("00", "9")
    assert held["api_version"] == version

    # When a DeleteRegistrationRequest (registration = 1) names it by phone number and sip_uri
    delete = registration_bytes(sip_uri="sips:pbx.acme.example:5061", route_type=0, e164=msisdn)
    deleted = decode(call(wg2sim, channel, version, "DeleteRegistration", bytes_field(1, delete)))
    # Then status_code = 1 says OK and the registration is gone
    assert deleted == {1: STATUS_CODE_OK}
    assert [r for r in wg2sim.registrations() if r["msisdn"] == msisdn] == []


@pytest.mark.parametrize("version", ["v0", "v1"])
def test_a_hand_encoded_refusal_carries_status_two_and_a_message(
    wg2sim: Wg2simProcess,
    wg2_channel: Callable[[Wg2simProcess], grpc.Channel],
    new_msisdn: Callable[[], str],
    version: str,
) -> None:
    # Given a registration with ROUTE_TYPE_UNSPECIFIED (0, so not even on the wire)
    registration = registration_bytes(sip_uri="sips:pbx.acme.example", route_type=0, e164=new_msisdn())
    # When it is upserted
    response = decode(
        call(wg2sim, wg2_channel(wg2sim), version, "UpsertRegistration", bytes_field(1, registration))
    )
    # Then status_code = 1 is NOT_ACCEPTABLE (2), error_message = 2 explains, no time_to_live = 3
    assert response.keys() == {1, 2}
    assert response[1] == STATUS_CODE_NOT_ACCEPTABLE
    assert "route_type" in response[2].decode()


def test_the_encoder_itself_matches_the_protobuf_spec() -> None:
    # The spec's own example: field 1 = 150 encodes as 08 96 01
    assert varint_field(1, 150) == bytes.fromhex("089601")
    assert bytes_field(2, b"testing") == bytes.fromhex("120774657374696e67")
    assert decode(bytes.fromhex("089601120774657374696e67")) == {1: 150, 2: b"testing"}
