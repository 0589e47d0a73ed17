"""A registration lives 3600 emulator seconds after its last upsert; with a sped-up clock the
expiry can be watched: it disappears, and a refresh (another upsert) pushes it out."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import grpc
import pytest

from devstack.wg2sim.process import Wg2simProcess
from sipreg.proto.wgtwo.sipbreakout.v1 import sipbreakout_pb2 as v1
from sipreg.proto.wgtwo.sipbreakout.v1 import sipbreakout_pb2_grpc as v1_grpc

PBX = "sips:pbx.acme.example"
ChannelTo = Callable[[Wg2simProcess], grpc.Channel]
LONG_TOKEN_TTL = 10**7  # emulator seconds: lasts the session even on the fast clock


def upsert(sim: Wg2simProcess, channel_to: ChannelTo, token: str) -> Any:
    stub = v1_grpc.SipBreakoutServiceStub(channel_to(sim))
    request = v1.UpsertRegistrationRequest(
        registration=v1.Registration(sip_uri=PBX, route_type=v1.ROUTE_TYPE_FORK)
    )
    return stub.UpsertRegistration(request, metadata=[("authorization", f"Bearer {token}")], timeout=5)


def held(sim: Wg2simProcess, msisdn: str) -> list[dict[str, Any]]:
    return [r for r in sim.registrations() if r["msisdn"] == msisdn]


def test_the_registration_disappears_when_its_ttl_runs_out(
    wg2sim_fast: Wg2simProcess, wg2_channel: ChannelTo, new_msisdn: Callable[[], str]
) -> None:
    # Given a registration on a clock where its hour passes in one real second
    msisdn = new_msisdn()
    token = wg2sim_fast.mint_token(msisdn=msisdn, ttl=LONG_TOKEN_TTL)
    started = time.monotonic()
    response = upsert(wg2sim_fast, wg2_channel, token)
    # The TTL is answered in real seconds, the only ones a client can count
    assert response.time_to_live.ToTimedelta().total_seconds() == pytest.approx(3600 / wg2sim_fast.time_scale)
    assert len(held(wg2sim_fast, msisdn)) == 1
    # When its TTL runs out
    while held(wg2sim_fast, msisdn) and time.monotonic() - started < 5:
        time.sleep(0.05)
    # Then the core no longer holds it, and that took about the TTL in real time
    elapsed = time.monotonic() - started
    assert held(wg2sim_fast, msisdn) == []
    assert 3600 / wg2sim_fast.time_scale * 0.8 <= elapsed < 5


def test_an_upsert_refreshes_the_ttl(
    wg2sim_fast: Wg2simProcess, wg2_channel: ChannelTo, new_msisdn: Callable[[], str]
) -> None:
    # Given a registration
    msisdn = new_msisdn()
    token = wg2sim_fast.mint_token(msisdn=msisdn, ttl=LONG_TOKEN_TTL)
    upsert(wg2sim_fast, wg2_channel, token)
    [first] = held(wg2sim_fast, msisdn)
    # When it is upserted again a little later (0.3 s real = 1080 emulator seconds)
    time.sleep(0.3)
    upsert(wg2sim_fast, wg2_channel, token)
    [refreshed] = held(wg2sim_fast, msisdn)
    # Then it lives a full TTL from the second upsert: its real expiry moved by the time between
    moved = datetime.fromisoformat(refreshed["expires_at"]) - datetime.fromisoformat(first["expires_at"])
    assert 0.25 <= moved.total_seconds() <= 3600 / wg2sim_fast.time_scale
