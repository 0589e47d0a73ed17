"""With --tls the emulator serves gRPC over TLS with a certificate it generates for localhost
and 127.0.0.1; a client trusting that CA file gets through, others do not."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from devstack.wg2sim.process import Wg2simProcess
from sipreg.proto.wgtwo.sipbreakout.v1 import sipbreakout_pb2 as v1
from sipreg.proto.wgtwo.sipbreakout.v1 import sipbreakout_pb2_grpc as v1_grpc


def upsert(channel: grpc.Channel, token: str) -> v1.UpsertRegistrationResponse:
    request = v1.UpsertRegistrationRequest(
        registration=v1.Registration(sip_uri="sips:pbx.acme.example", route_type=v1.ROUTE_TYPE_LOOP)
    )
    stub = v1_grpc.SipBreakoutServiceStub(channel)
    response: v1.UpsertRegistrationResponse = stub.UpsertRegistration(
        request, metadata=[("authorization", f"Bearer {token}")], timeout=5
    )
    return response


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_a_client_trusting_the_ca_file_round_trips(
    wg2sim_tls: Wg2simProcess, host: str, new_msisdn: Callable[[], str]
) -> None:
    # Given the CA file the emulator announced
    assert wg2sim_tls.ca_file is not None
    credentials = grpc.ssl_channel_credentials(root_certificates=Path(wg2sim_tls.ca_file).read_bytes())
    msisdn = new_msisdn()
    # When a TLS client verifying the server's name calls it
    with grpc.secure_channel(f"{host}:{wg2sim_tls.grpc_port}", credentials) as channel:
        response = upsert(channel, wg2sim_tls.mint_token(msisdn=msisdn))
    # Then the call goes through
    assert response.status_code == v1.STATUS_CODE_OK
    assert [r["msisdn"] for r in wg2sim_tls.registrations()].count(msisdn) == 1


def test_a_client_trusting_only_public_roots_is_refused(wg2sim_tls: Wg2simProcess) -> None:
    channel = grpc.secure_channel(wg2sim_tls.grpc_target, grpc.ssl_channel_credentials())
    with channel, pytest.raises(grpc.RpcError) as raised:
        upsert(channel, wg2sim_tls.mint_token(msisdn="+4799990001"))
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE


def test_a_plaintext_client_gets_nowhere(wg2sim_tls: Wg2simProcess) -> None:
    with grpc.insecure_channel(wg2sim_tls.grpc_target) as channel, pytest.raises(grpc.RpcError) as raised:
        upsert(channel, wg2sim_tls.mint_token(msisdn="+4799990001"))
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE


def test_the_plain_emulator_announces_no_ca_file(wg2sim: Wg2simProcess) -> None:
    assert wg2sim.ca_file is None
