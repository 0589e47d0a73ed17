"""The OAuth client authenticates with a secret that reads differently once form-decoded ('+', '%',
a space): RFC 6749 §2.3.1 has both parts of HTTP Basic form-urlencoded first, and wg2sim decodes
them as a certified provider does (a real identity server over a socket)."""

from __future__ import annotations

import secrets
from collections.abc import Callable

import grpc
import pytest

from devstack.wg2sim.process import Wg2simProcess
from sipreg.models import ApiVersion
from sipreg.oauth_client import OAuthClient
from sipreg.proto.wgtwo.sipbreakout.v1 import sipbreakout_pb2 as v1
from sipreg.proto.wgtwo.sipbreakout.v1 import sipbreakout_pb2_grpc as v1_grpc
from sipreg.tokens import SERVICE_SCOPES
from tests.support.consent import register_client

REDIRECT = "https://sipreg.example/oauth/callback"


def core_answers(channel: grpc.Channel, token: str) -> grpc.StatusCode:
    registration = v1.Registration(sip_uri="sips:pbx.acme.example", route_type=v1.ROUTE_TYPE_FORK)
    registration.phone_number.e164 = "+4799990077"
    try:
        v1_grpc.SipBreakoutServiceStub(channel).UpsertRegistration(
            v1.UpsertRegistrationRequest(registration=registration),
            metadata=[("authorization", f"Bearer {token}")],
            timeout=5,
        )
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


@pytest.mark.parametrize("odd", ["a+b", "100%25 sure", "p%2Fq", "x y+z%"])
def test_a_secret_with_form_characters_authenticates(
    wg2sim: Wg2simProcess, wg2_channel: Callable[[Wg2simProcess], grpc.Channel], odd: str
) -> None:
    # Given a client whose secret has characters form decoding changes
    client_id = f"odd-{secrets.token_hex(4)}"
    secret = f"{secrets.token_urlsafe(12)}{odd}"
    register_client(wg2sim, client_id, secret, REDIRECT)
    client = OAuthClient(wg2sim.http_url, client_id=client_id, client_secret=lambda _force: secret)
    # When it asks for a token, authenticating with HTTP Basic
    answer = client.client_credentials([SERVICE_SCOPES[ApiVersion.V1]])
    # Then the identity server knew it: the token works at the core
    channel = wg2_channel(wg2sim)
    assert core_answers(channel, answer.access_token) == grpc.StatusCode.OK
    # And so it does when the client revokes the token (which then no longer works)
    client.revoke(answer.access_token, token_type_hint="access_token")
    assert core_answers(channel, answer.access_token) == grpc.StatusCode.UNAUTHENTICATED
