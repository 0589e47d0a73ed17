"""wg2sim keeps registrations like the core: upsert adds or replaces, delete removes, both
API versions share one store keyed by (MSISDN, sip_uri), and the admin API lists them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest

from devstack.wg2sim.process import Wg2simProcess
from sipreg.proto.wgtwo.sipbreakout.v0 import sipbreakout_pb2 as v0
from sipreg.proto.wgtwo.sipbreakout.v0 import sipbreakout_pb2_grpc as v0_grpc
from sipreg.proto.wgtwo.sipbreakout.v1 import sipbreakout_pb2 as v1
from sipreg.proto.wgtwo.sipbreakout.v1 import sipbreakout_pb2_grpc as v1_grpc

PBX = "sips:pbx.acme.example:5061"
Stubs = tuple[Any, Any]


def listed(sim: Wg2simProcess, msisdn: str) -> list[dict[str, Any]]:
    return [r for r in sim.registrations() if r["msisdn"] == msisdn]


def auth(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


@pytest.fixture
def stubs(wg2sim: Wg2simProcess, wg2_channel: Callable[[Wg2simProcess], grpc.Channel]) -> Stubs:
    channel = wg2_channel(wg2sim)
    return v0_grpc.SipBreakoutServiceStub(channel), v1_grpc.SipBreakoutServiceStub(channel)


def test_v1_upsert_is_answered_ok_and_listed_with_every_field(
    wg2sim: Wg2simProcess, stubs: Stubs, new_msisdn: Callable[[], str]
) -> None:
    # Given a subscriber's user token
    msisdn = new_msisdn()
    token = wg2sim.mint_token(msisdn=msisdn)
    # When the v1 API upserts a FORK registration with prefixes
    registration = v1.Registration(
        sip_uri=PBX,
        route_type=v1.ROUTE_TYPE_FORK,
        mobile_originating_prefix="00",
        mobile_terminating_prefix="0",
    )
    before = datetime.now(UTC)
    response = stubs[1].UpsertRegistration(
        v1.UpsertRegistrationRequest(registration=registration), metadata=auth(token), timeout=5
    )
    # Then it is answered OK with the hour to live, and the core holds exactly that
    assert response.status_code == v1.STATUS_CODE_OK
    assert response.error_message == ""
    assert response.time_to_live.seconds == 3600
    [held] = listed(wg2sim, msisdn)
    expires_at = datetime.fromisoformat(held.pop("expires_at"))
    upserted_at = datetime.fromisoformat(held.pop("upserted_at"))
    assert before - timedelta(milliseconds=1) <= upserted_at <= datetime.now(UTC)
    assert held == {
        "msisdn": msisdn,
        "sip_uri": PBX,
        "route_type": "ROUTE_TYPE_FORK",
        "mobile_originating_prefix": "00",
        "mobile_terminating_prefix": "0",
        "api_version": "v1",
    }
    assert expires_at.tzinfo is not None
    assert 3590 <= (expires_at - before).total_seconds() <= 3610


def test_v0_upsert_then_delete_removes_the_registration(
    wg2sim: Wg2simProcess, stubs: Stubs, new_msisdn: Callable[[], str]
) -> None:
    # Given a v0 FALLBACK registration
    msisdn = new_msisdn()
    token = wg2sim.mint_token(msisdn=msisdn)
    registration = v0.Registration(sip_uri=PBX, route_type=v0.ROUTE_TYPE_FALLBACK)
    upserted = stubs[0].UpsertRegistration(
        v0.UpsertRegistrationRequest(registration=registration), metadata=auth(token), timeout=5
    )
    assert upserted.status_code == v0.STATUS_CODE_OK
    assert upserted.time_to_live.seconds == 3600
    [held] = listed(wg2sim, msisdn)
    assert (held["route_type"], held["api_version"]) == ("ROUTE_TYPE_FALLBACK", "v0")
    # When it is deleted by MSISDN (the token's) and sip_uri
    deleted = stubs[0].DeleteRegistration(
        v0.DeleteRegistrationRequest(registration=registration), metadata=auth(token), timeout=5
    )
    # Then the delete is OK and the core no longer holds it
    assert deleted.status_code == v0.STATUS_CODE_OK
    assert listed(wg2sim, msisdn) == []


def test_upsert_replaces_the_same_sip_uri_and_adds_another(
    wg2sim: Wg2simProcess, stubs: Stubs, new_msisdn: Callable[[], str]
) -> None:
    msisdn = new_msisdn()
    token = wg2sim.mint_token(msisdn=msisdn)

    def upsert(sip_uri: str, route_type: Any) -> None:
        request = v1.UpsertRegistrationRequest(
            registration=v1.Registration(sip_uri=sip_uri, route_type=route_type)
        )
        response = stubs[1].UpsertRegistration(request, metadata=auth(token), timeout=5)
        assert response.status_code == v1.STATUS_CODE_OK

    # Given a LOOP registration
    upsert(PBX, v1.ROUTE_TYPE_LOOP)
    # When the same sip_uri is upserted as FORK, and a second sip_uri as FALLBACK
    upsert(PBX, v1.ROUTE_TYPE_FORK)
    upsert("sips:voicemail.acme.example", v1.ROUTE_TYPE_FALLBACK)
    # Then the first was replaced, the second added
    assert {(r["sip_uri"], r["route_type"]) for r in listed(wg2sim, msisdn)} == {
        (PBX, "ROUTE_TYPE_FORK"),
        ("sips:voicemail.acme.example", "ROUTE_TYPE_FALLBACK"),
    }


def test_both_versions_share_one_store(
    wg2sim: Wg2simProcess, stubs: Stubs, new_msisdn: Callable[[], str]
) -> None:
    # Given a registration made through v0
    msisdn = new_msisdn()
    token = wg2sim.mint_token(msisdn=msisdn)
    made = stubs[0].UpsertRegistration(
        v0.UpsertRegistrationRequest(
            registration=v0.Registration(sip_uri=PBX, route_type=v0.ROUTE_TYPE_LOOP)
        ),
        metadata=auth(token),
        timeout=5,
    )
    assert made.status_code == v0.STATUS_CODE_OK
    # When v1 deletes it, naming only the sip_uri (route type and prefixes left empty)
    deleted = stubs[1].DeleteRegistration(
        v1.DeleteRegistrationRequest(registration=v1.Registration(sip_uri=PBX)),
        metadata=auth(token),
        timeout=5,
    )
    # Then it is gone
    assert deleted.status_code == v1.STATUS_CODE_OK
    assert listed(wg2sim, msisdn) == []


def test_deleting_a_registration_the_core_does_not_hold_is_refused(
    wg2sim: Wg2simProcess, stubs: Stubs, new_msisdn: Callable[[], str]
) -> None:
    # Given a subscriber with one registration
    token = wg2sim.mint_token(msisdn=new_msisdn())
    made = stubs[1].UpsertRegistration(
        v1.UpsertRegistrationRequest(
            registration=v1.Registration(sip_uri=PBX, route_type=v1.ROUTE_TYPE_FORK)
        ),
        metadata=auth(token),
        timeout=5,
    )
    assert made.status_code == v1.STATUS_CODE_OK
    request = v1.DeleteRegistrationRequest(registration=v1.Registration(sip_uri=PBX))
    # When a delete is sent twice (a retry after a lost answer looks just like this)
    first = stubs[1].DeleteRegistration(request, metadata=auth(token), timeout=5)
    second = stubs[1].DeleteRegistration(request, metadata=auth(token), timeout=5)
    # Then the first deletes it, and the second is refused naming what is not there (the strict
    # reading of documents that do not say)
    assert first.status_code == v1.STATUS_CODE_OK
    assert second.status_code == v1.STATUS_CODE_NOT_ACCEPTABLE
    assert PBX in second.error_message


@pytest.mark.parametrize(
    "route_type",
    [name for name in v1.RouteType.keys() if name != "ROUTE_TYPE_UNSPECIFIED"],  # noqa: SIM118
)
def test_v1_accepts_every_route_type(
    wg2sim: Wg2simProcess, stubs: Stubs, new_msisdn: Callable[[], str], route_type: str
) -> None:
    msisdn = new_msisdn()
    token = wg2sim.mint_token(msisdn=msisdn)
    request = v1.UpsertRegistrationRequest(registration=v1.Registration(sip_uri=PBX, route_type=route_type))
    response = stubs[1].UpsertRegistration(request, metadata=auth(token), timeout=5)
    assert response.status_code == v1.STATUS_CODE_OK, response.error_message
    assert [r["route_type"] for r in listed(wg2sim, msisdn)] == [route_type]
