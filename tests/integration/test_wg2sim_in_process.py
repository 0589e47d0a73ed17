"""The emulator's parts run in-process too, over real sockets: the token registry revokes, and
a further HTTP blueprint (as the OIDC provider will be) shares the registry with the gRPC core."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import httpx
import pytest
from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from devstack.wg2sim.http_app import create_http_app
from devstack.wg2sim.server import Wg2simServer
from devstack.wg2sim.state import Wg2Sim
from devstack.wg2sim.tokens import SCOPE_V1
from sipreg.proto.wgtwo.sipbreakout.v1 import sipbreakout_pb2 as v1
from sipreg.proto.wgtwo.sipbreakout.v1 import sipbreakout_pb2_grpc as v1_grpc


def fake_identity_server(sim: Wg2Sim) -> Blueprint:
    """Stands in for the future OIDC blueprint: it mints through the shared registry."""
    identity = Blueprint("identity", __name__)

    @identity.post("/oauth2/token")
    def token() -> ResponseReturnValue:
        minted = sim.tokens.mint("+4799990077", [SCOPE_V1], ttl_seconds=3600, client_id="crm")
        return jsonify(access_token=minted.access_token)

    return identity


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[Wg2Sim, Wg2simServer]]:
    sim = Wg2Sim()
    server = Wg2simServer(sim, http_app=create_http_app(sim, [fake_identity_server(sim)]))
    server.start()
    try:
        yield sim, server
    finally:
        server.stop()


def upsert(server: Wg2simServer, token: str) -> v1.UpsertRegistrationResponse:
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        response: v1.UpsertRegistrationResponse = v1_grpc.SipBreakoutServiceStub(channel).UpsertRegistration(
            v1.UpsertRegistrationRequest(
                registration=v1.Registration(sip_uri="sips:pbx.acme.example", route_type=v1.ROUTE_TYPE_FORK)
            ),
            metadata=[("authorization", f"Bearer {token}")],
            timeout=5,
        )
    return response


def test_a_revoked_token_is_unauthenticated(served: tuple[Wg2Sim, Wg2simServer]) -> None:
    # Given a token that works
    sim, server = served
    token = sim.tokens.mint("+4799990078", [SCOPE_V1], ttl_seconds=3600)
    assert upsert(server, token.access_token).status_code == v1.STATUS_CODE_OK
    # When it is revoked
    sim.tokens.revoke(token.access_token)
    # Then the registry no longer knows it, and the core refuses it
    assert sim.tokens.lookup(token.access_token) is None
    with pytest.raises(grpc.RpcError) as raised:
        upsert(server, token.access_token)
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_a_further_blueprint_shares_the_token_registry_with_the_core(
    served: tuple[Wg2Sim, Wg2simServer],
) -> None:
    # Given the admin API and another blueprint on the same HTTP server
    sim, server = served
    base = f"http://127.0.0.1:{server.http_port}"
    # When that blueprint mints a token
    token = httpx.post(f"{base}/oauth2/token", timeout=5).json()["access_token"]
    # Then the gRPC core accepts it for the token's subscriber, and the admin API still answers
    assert upsert(server, token).status_code == v1.STATUS_CODE_OK
    listing = httpx.get(f"{base}/_admin/registrations", timeout=5).json()["registrations"]
    assert [r["sip_uri"] for r in listing if r["msisdn"] == "+4799990077"] == ["sips:pbx.acme.example"]
    token_record = sim.tokens.lookup(token)
    assert token_record is not None
    assert token_record.client_id == "crm"
    assert token not in repr(token_record)  # the secret never shows in logs or reprs
