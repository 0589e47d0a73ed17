"""Given a wg2sim core that refuses a call, the client says why with a typed outcome, never raising."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator

import pytest

from devstack.wg2sim.process import Wg2simProcess
from devstack.wg2sim.tokens import SCOPE_V0, SCOPE_V1
from sipreg.config import AuthMode, CoreSettings
from sipreg.core.client import GrpcCoreClient
from sipreg.core.port import PermissionDenied, Rejected, Transient, Unauthenticated
from sipreg.models import ApiVersion, Registration, RouteType

ClientFactory = Callable[..., GrpcCoreClient]
SCOPE = {ApiVersion.V0: SCOPE_V0, ApiVersion.V1: SCOPE_V1}
OTHER_SCOPE = {ApiVersion.V0: SCOPE_V1, ApiVersion.V1: SCOPE_V0}


@pytest.fixture
def sim(wg2sim: Wg2simProcess) -> Wg2simProcess:
    return wg2sim


@pytest.fixture
def registration(new_msisdn: Callable[[], str]) -> Callable[[], Registration]:
    def make() -> Registration:
        return Registration(msisdn=new_msisdn(), sip_uri="sips:pbx.acme.example", route_type=RouteType.FORK)

    return make


@pytest.fixture
def make_client(sim: Wg2simProcess) -> Iterator[ClientFactory]:
    built: list[GrpcCoreClient] = []

    def make(
        version: ApiVersion = ApiVersion.V1,
        auth_mode: AuthMode = AuthMode.USER,
        endpoint: str | None = None,
        deadline: float = 3.0,
    ) -> GrpcCoreClient:
        settings = CoreSettings.from_env(
            {
                "CORE_ENDPOINT": endpoint or sim.grpc_target,
                "CORE_PLAINTEXT": "true",
                "API_VERSION": version,
                "AUTH_MODE": auth_mode,
                "CORE_DEADLINE_SECONDS": str(deadline),
            }
        )
        built.append(GrpcCoreClient.from_settings(settings))
        return built[-1]

    yield make
    for client in built:
        client.close()


@pytest.mark.parametrize("version", list(ApiVersion))
def test_an_unknown_token_is_unauthenticated(make_client, version, registration) -> None:
    outcome = make_client(version).upsert(registration(), "not-a-token-the-core-knows")

    assert isinstance(outcome, Unauthenticated)
    assert "not-a-token-the-core-knows" not in outcome.detail


@pytest.mark.parametrize("version", list(ApiVersion))
def test_a_token_without_the_versions_scope_is_permission_denied(
    sim, make_client, version, registration
) -> None:
    wanted = registration()
    token = sim.mint_token(msisdn=wanted.msisdn, scopes=[OTHER_SCOPE[version]])

    outcome = make_client(version).upsert(wanted, token)

    assert isinstance(outcome, PermissionDenied)
    assert SCOPE[version] in outcome.detail


def test_a_user_token_for_another_number_in_client_mode_is_rejected_by_the_core(
    sim, make_client, registration
) -> None:
    wanted = registration()
    someone_else = sim.mint_token(msisdn="+4791999999")

    outcome = make_client(ApiVersion.V1, AuthMode.CLIENT).upsert(wanted, someone_else)

    assert isinstance(outcome, Rejected)
    assert outcome.by_core
    assert "phone_number" in outcome.message


@pytest.mark.parametrize("version", list(ApiVersion))
def test_what_the_core_finds_unacceptable_comes_back_with_its_message(
    sim, make_client, version, registration
) -> None:
    # A registration our own model would refuse, built unchecked, stands in for a stricter core.
    wanted = registration()
    bad = Registration.model_construct(
        msisdn=wanted.msisdn,
        sip_uri="sips:pbx acme",
        route_type=RouteType.FORK,
        mobile_originating_prefix=None,
        mobile_terminating_prefix=None,
    )

    outcome = make_client(version).upsert(bad, sim.mint_token(msisdn=wanted.msisdn))

    assert isinstance(outcome, Rejected)
    assert outcome.by_core
    assert "sip_uri" in outcome.message


def test_an_endpoint_nobody_listens_on_is_transient_unavailable(make_client, registration) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    client = make_client(endpoint=f"127.0.0.1:{closed_port}", deadline=2.0)

    outcome = client.upsert(registration(), "any-token")

    assert isinstance(outcome, Transient)
    assert outcome.code == "UNAVAILABLE"
