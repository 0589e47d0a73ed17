"""Each route type's call path, on API v0 and v1: wg2sim routes a call (POST /_admin/calls) by the
registrations it holds, sending real SIP INVITEs over TLS to the local PBX (Kamailio), which sends
Loop calls back to wg2sim's SIP port. docs/call-routing.md has the rules these tests hold it to.

One wg2sim and one Kamailio for the module (`core_and_pbx`); tests isolate by MSISDN.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable
from typing import Any

import grpc
import httpx
import pytest

from devstack.pbx import LocalPbx
from devstack.wg2sim.process import Wg2simProcess
from devstack.wg2sim.sip.transport import client_context
from devstack.wg2sim.sip.uac import ClientInvite
from sipreg.proto.wgtwo.sipbreakout.v0 import sipbreakout_pb2 as v0
from sipreg.proto.wgtwo.sipbreakout.v0 import sipbreakout_pb2_grpc as v0_grpc
from sipreg.proto.wgtwo.sipbreakout.v1 import sipbreakout_pb2 as v1
from sipreg.proto.wgtwo.sipbreakout.v1 import sipbreakout_pb2_grpc as v1_grpc
from tests.integration.conftest import CALL_TIME_SCALE

NO_ANSWER_REAL_SECONDS = 30 / CALL_TIME_SCALE
KAMAILIO = "sipreg-local-pbx (kamailio)"
CORE = "wg2sim-core/1"
Register = Callable[..., None]


@pytest.fixture
def sim(core_and_pbx: tuple[Wg2simProcess, LocalPbx]) -> Wg2simProcess:
    return core_and_pbx[0]


@pytest.fixture
def pbx(core_and_pbx: tuple[Wg2simProcess, LocalPbx]) -> LocalPbx:
    return core_and_pbx[1]


@pytest.fixture
def register(sim: Wg2simProcess, wg2_channel: Callable[[Wg2simProcess], grpc.Channel]) -> Register:
    """Upserts a registration through the core's real gRPC API, v0 or v1, with the subscriber's token."""
    channel = wg2_channel(sim)
    stubs = {
        "v0": (v0, v0_grpc.SipBreakoutServiceStub(channel)),
        "v1": (v1, v1_grpc.SipBreakoutServiceStub(channel)),
    }

    def upsert(
        version: str, msisdn: str, route: str, sip_uri: str, *, mo_prefix: str = "", mt_prefix: str = ""
    ) -> None:
        api, stub = stubs[version]
        registration = api.Registration(
            sip_uri=sip_uri,
            route_type=api.RouteType.Value(f"ROUTE_TYPE_{route}"),
            mobile_originating_prefix=mo_prefix,
            mobile_terminating_prefix=mt_prefix,
        )
        token = sim.mint_token(msisdn=msisdn)
        answer = stub.UpsertRegistration(
            api.UpsertRegistrationRequest(registration=registration),
            metadata=[("authorization", f"Bearer {token}")],
            timeout=5,
        )
        assert answer.status_code == api.STATUS_CODE_OK, answer.error_message

    return upsert


def path(call: dict[str, Any]) -> list[tuple[int, int | None]]:
    """(leg, final SIP status) in the order the legs began."""
    return [(leg["leg"], leg["sip_status"]) for leg in call["legs"]]


def leg(call: dict[str, Any], number: int) -> dict[str, Any]:
    [found] = [leg for leg in call["legs"] if leg["leg"] == number]
    return dict(found)


# --- Loop ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["v0", "v1"])
def test_loop_goes_to_the_pbx_which_sends_it_back_as_leg_3_before_leg_4_rings(
    version: str, sim: Wg2simProcess, pbx: LocalPbx, register: Register, new_msisdn: Callable[[], str]
) -> None:
    # Given a callee whose calls loop through the PBX
    caller, callee = new_msisdn(), new_msisdn()
    register(version, callee, "LOOP", pbx.pbx_uri)
    # When someone calls and the callee answers
    call = sim.call(caller, callee, "answer")
    # Then leg 2 went to the PBX, came back from it as leg 3, and only then leg 4 rang the phone
    assert path(call) == [(2, 200), (3, 200), (4, 200)]
    assert leg(call, 2)["to"] == pbx.pbx_uri
    assert leg(call, 3)["from"].startswith("sips:127.0.0.1:")  # Kamailio's own connection to the core
    assert leg(call, 4)["started_ms"] >= leg(call, 3)["started_ms"] > leg(call, 2)["started_ms"]
    # And the phone's ringing and answer travelled back through the PBX (a proxy in the path)
    assert 180 in leg(call, 2)["provisional"] and leg(call, 2)["server"] == CORE
    assert call["sip_status"] == 200 and call["answered_by"] == "phone"
    # And hanging up went through the PBX to the core's side of the call (BYE on leg 2 ends leg 3)
    assert leg(call, 2)["bye_status"] == 200 and leg(call, 3)["bye_status"] == 200


@pytest.mark.parametrize("version", ["v0", "v1"])
def test_loop_with_a_busy_callee_relays_486_back_through_the_pbx(
    version: str, sim: Wg2simProcess, pbx: LocalPbx, register: Register, new_msisdn: Callable[[], str]
) -> None:
    caller, callee = new_msisdn(), new_msisdn()
    register(version, callee, "LOOP", pbx.pbx_uri)
    call = sim.call(caller, callee, "busy")
    assert path(call) == [(2, 486), (3, 486), (4, 486)]
    assert call["sip_status"] == 486 and call["answered_by"] is None


# --- Fork ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("version", "behaviour"), [("v0", "answer"), ("v1", "busy"), ("v1", "no-answer")])
def test_fork_rings_the_pbx_and_the_phone_at_once_and_the_pbx_answers(  # noqa: PLR0917  # fixtures
    version: str,
    behaviour: str,
    sim: Wg2simProcess,
    pbx: LocalPbx,
    register: Register,
    new_msisdn: Callable[[], str],
) -> None:
    # Given a callee with a FORK to the PBX
    caller, callee = new_msisdn(), new_msisdn()
    register(version, callee, "FORK", pbx.pbx_uri)
    # When someone calls (whatever the phone does)
    call = sim.call(caller, callee, behaviour)
    # Then leg 2 to the PBX and leg 4 to the phone began together
    to_pbx, phone = leg(call, 2), leg(call, 4)
    assert abs(to_pbx["started_ms"] - phone["started_ms"]) < 20
    # And the PBX itself (Kamailio over TLS) answered; the phone's leg ended without the call
    assert (to_pbx["sip_status"], to_pbx["server"]) == (200, KAMAILIO)
    assert phone["sip_status"] == (486 if behaviour == "busy" else 487)
    assert call["sip_status"] == 200 and call["answered_by"] == pbx.pbx_uri
    assert to_pbx["bye_status"] == 200


# --- Fallback ------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["v0", "v1"])
def test_fallback_leaves_an_answered_call_alone(
    version: str, sim: Wg2simProcess, pbx: LocalPbx, register: Register, new_msisdn: Callable[[], str]
) -> None:
    caller, callee = new_msisdn(), new_msisdn()
    register(version, callee, "FALLBACK", pbx.voicemail_uri)
    call = sim.call(caller, callee, "answer")
    assert path(call) == [(4, 200)]
    assert call["answered_by"] == "phone"


@pytest.mark.parametrize("version", ["v0", "v1"])
def test_fallback_takes_a_busy_callee_to_voicemail_at_once(
    version: str, sim: Wg2simProcess, pbx: LocalPbx, register: Register, new_msisdn: Callable[[], str]
) -> None:
    caller, callee = new_msisdn(), new_msisdn()
    register(version, callee, "FALLBACK", pbx.voicemail_uri)
    call = sim.call(caller, callee, "busy")
    assert path(call) == [(4, 486), (2, 200)]
    assert leg(call, 2)["to"] == pbx.voicemail_uri and leg(call, 2)["server"] == KAMAILIO
    assert leg(call, 2)["started_ms"] < NO_ANSWER_REAL_SECONDS * 1000 / 2  # no waiting for the timeout
    assert call["sip_status"] == 200 and call["answered_by"] == pbx.voicemail_uri


@pytest.mark.parametrize("version", ["v0", "v1"])
def test_fallback_on_no_answer_waits_out_the_scaled_30_seconds(
    version: str, sim: Wg2simProcess, pbx: LocalPbx, register: Register, new_msisdn: Callable[[], str]
) -> None:
    caller, callee = new_msisdn(), new_msisdn()
    register(version, callee, "FALLBACK", pbx.voicemail_uri)
    call = sim.call(caller, callee, "no-answer")
    assert path(call) == [(4, 487), (2, 200)]
    assert leg(call, 4)["cancelled"] is True
    # 30 emulator seconds at x60: the voicemail leg starts after half a real second, not before
    started = leg(call, 2)["started_ms"] / 1000
    assert NO_ANSWER_REAL_SECONDS * 0.95 <= started < NO_ANSWER_REAL_SECONDS + 1.0
    assert call["answered_by"] == pbx.voicemail_uri


def test_no_answer_without_fallback_ends_as_temporarily_unavailable(
    sim: Wg2simProcess, new_msisdn: Callable[[], str]
) -> None:
    call = sim.call(new_msisdn(), new_msisdn(), "no-answer")
    assert path(call) == [(4, 487)] and call["sip_status"] == 480 and call["routing"] == []


# --- v1 only: LOOP_MO, LOOP_MT, INGRESS, prefixes ------------------------------------------------


def test_loop_mo_loops_the_callers_own_calls_and_not_calls_to_it(
    sim: Wg2simProcess, pbx: LocalPbx, register: Register, new_msisdn: Callable[[], str]
) -> None:
    subscriber, other = new_msisdn(), new_msisdn()
    register("v1", subscriber, "LOOP_MO", pbx.pbx_uri, mo_prefix="00")
    outgoing = sim.call(subscriber, other, "answer")
    incoming = sim.call(other, subscriber, "answer")
    assert path(outgoing) == [(2, 200), (3, 200), (4, 200)]
    # The caller has the registration: its mobile-originating prefix goes after the '+' towards the
    # TAS (WG2: "00" turns sip:+4711... into sip:+0047 11...)
    assert leg(outgoing, 2)["request_uri"].startswith(f"sips:+00{other[1:]}@")
    assert path(incoming) == [(4, 200)]


def test_loop_mt_loops_calls_to_it_and_not_its_own(
    sim: Wg2simProcess, pbx: LocalPbx, register: Register, new_msisdn: Callable[[], str]
) -> None:
    subscriber, other = new_msisdn(), new_msisdn()
    register("v1", subscriber, "LOOP_MT", pbx.pbx_uri, mt_prefix="0")
    incoming = sim.call(other, subscriber, "answer")
    outgoing = sim.call(subscriber, other, "answer")
    assert path(incoming) == [(2, 200), (3, 200), (4, 200)]
    assert leg(incoming, 2)["request_uri"].startswith(f"sips:+0{subscriber[1:]}@")
    assert path(outgoing) == [(4, 200)]


def test_a_caller_loop_and_a_callee_loop_both_see_the_call_in_turn(
    sim: Wg2simProcess, pbx: LocalPbx, register: Register, new_msisdn: Callable[[], str]
) -> None:
    caller, callee = new_msisdn(), new_msisdn()
    register("v1", caller, "LOOP_MO", pbx.pbx_uri)
    register("v1", callee, "LOOP", pbx.voicemail_uri)
    call = sim.call(caller, callee, "answer")
    assert path(call) == [(2, 200), (3, 200), (2, 200), (3, 200), (4, 200)]
    assert [leg["to"] for leg in call["legs"] if leg["leg"] == 2] == [pbx.pbx_uri, pbx.voicemail_uri]


def test_ingress_leaves_calls_to_the_number_alone(
    sim: Wg2simProcess, pbx: LocalPbx, register: Register, new_msisdn: Callable[[], str]
) -> None:
    caller, callee = new_msisdn(), new_msisdn()
    register("v1", callee, "INGRESS", pbx.pbx_uri)
    call = sim.call(caller, callee, "busy")
    assert path(call) == [(4, 486)] and call["sip_status"] == 486


def tas_places_a_call(sim: Wg2simProcess, callee: str, behaviour: str = "answer") -> ClientInvite:
    """A TAS's INVITE to the core's SIP port over TLS (trusting its certificate), as Ingress allows."""
    assert sim.sip_ca_file is not None
    invite = ClientInvite(
        request_uri=f"sips:{callee}@ims.wg2sim.invalid;user=phone",
        from_uri="sips:pbx@127.0.0.1",
        to_uri=f"sips:{callee}@ims.wg2sim.invalid",
        contact="sips:pbx@127.0.0.1",
        context=client_context((sim.sip_ca_file,)),
        routes=(f"<{sim.sip_uri};lr>",),
        extra_headers=(("x-wg2sim-callee", behaviour),),
    )
    invite.start()
    assert invite.wait_final(10), invite.error
    return invite


def test_ingress_lets_the_tas_place_a_call_to_the_number(
    sim: Wg2simProcess, pbx: LocalPbx, register: Register, new_msisdn: Callable[[], str]
) -> None:
    # Given a number with an INGRESS registration
    callee = new_msisdn()
    register("v1", callee, "INGRESS", pbx.pbx_uri)
    # When the TAS sends an INVITE for it to the core
    invite = tas_places_a_call(sim, callee)
    # Then the core rang the phone (leg 4) and the answer came back to the TAS
    assert invite.status == 200 and 180 in invite.provisional
    assert invite.bye() == 200
    invite.close()
    # The core writes down the call once its thread sees the BYE, which may be just after it answered it
    deadline = time.monotonic() + 5
    while not (placed := [c for c in sim.calls() if c["kind"] == "ingress" and c["to"] == callee]):
        assert time.monotonic() < deadline, "the core never recorded the call"
        time.sleep(0.05)
    assert [path(call) for call in placed] == [[(3, 200), (4, 200)]]


def test_without_ingress_the_core_refuses_a_tas_call(
    sim: Wg2simProcess, new_msisdn: Callable[[], str]
) -> None:
    invite = tas_places_a_call(sim, new_msisdn())
    assert invite.status == 403
    invite.close()


# --- a TAS that cannot be reached ----------------------------------------------------------------


def test_an_unreachable_tas_fails_a_loop_but_not_a_fork_or_the_busy_callers_answer(
    sim: Wg2simProcess, register: Register, new_msisdn: Callable[[], str]
) -> None:
    # Given registrations to an endpoint where nothing listens (a PBX that is down)
    down = "sips:127.0.0.1:9"
    looped, forked, fallen = new_msisdn(), new_msisdn(), new_msisdn()
    register("v1", looped, "LOOP", down)
    register("v0", forked, "FORK", down)
    register("v0", fallen, "FALLBACK", down)
    # When each is called
    loop = sim.call(new_msisdn(), looped, "answer")
    fork = sim.call(new_msisdn(), forked, "answer")
    fallback = sim.call(new_msisdn(), fallen, "busy")
    # Then the Loop cannot go on without its TAS: 503, and leg 2 says why
    assert path(loop) == [(2, None)] and loop["sip_status"] == 503
    assert "connection refused" in leg(loop, 2)["error"]
    # And the Fork still reaches the phone, and the Fallback's caller hears busy
    assert fork["sip_status"] == 200 and fork["answered_by"] == "phone"
    assert fallback["sip_status"] == 486 and "connection refused" in leg(fallback, 2)["error"]


def test_a_tas_whose_certificate_the_core_does_not_trust_is_not_called(
    sim: Wg2simProcess, register: Register, new_msisdn: Callable[[], str]
) -> None:
    # wg2sim's own SIP port serves a certificate the core does not trust for TASes
    callee = new_msisdn()
    register("v0", callee, "FORK", sim.sip_uri)
    call = sim.call(new_msisdn(), callee, "answer")
    assert "certificate not trusted" in leg(call, 2)["error"]
    assert call["answered_by"] == "phone"


def test_the_pbx_answers_no_one_but_a_trusting_client(pbx: LocalPbx) -> None:
    # The PBX's certificate is its own root: without trusting it, TLS fails
    with pytest.raises(ssl.SSLCertVerificationError):
        ssl.create_default_context().wrap_socket(
            socket.create_connection(("127.0.0.1", pbx.pbx_port), timeout=2),
            server_hostname="127.0.0.1",
        )


# --- the admin API's input -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"from": "4799990001", "to": "+4799990002"}, "from"),
        ({"from": "+4799990001", "to": 47}, "to"),
        ({"from": "+4799990001", "to": "+4799990002", "callee": "maybe"}, "callee"),
        ({"from": "+4799990001", "to": "+4799990002", "via": "x"}, "via"),
        ({"from": "+4799990001", "to": "+4799990001"}, "to"),
    ],
)
def test_a_bad_call_request_is_refused_naming_its_field(
    sim: Wg2simProcess, body: dict[str, Any], field: str
) -> None:
    answer = httpx.post(f"{sim.http_url}/_admin/calls", json=body, timeout=5)
    assert answer.status_code == 400
    assert answer.json()["field"] == field
