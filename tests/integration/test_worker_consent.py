"""Given subscribers consenting at wg2sim's identity server (pages walked over HTTP, tokens stored
KMS-encrypted), the worker waits for consent, refreshes a refused token mid-run, and on revoke
leaves nothing on the core."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from devstack.wg2sim.oidc.config import DEV_CLIENT
from devstack.wg2sim.process import Wg2simProcess
from sipreg.config import AuthMode
from sipreg.events import EventType, RevokeEvent
from sipreg.store.registrations import RegistrationStatus
from sipreg.store.subscribers import ConsentStatus
from tests.support.worker import Rig, build_rig
from tests.support.worker_events import consented, revoke, upsert

PBX = "sips:pbx.acme.example"
VOICEMAIL = "sips:voicemail.acme.example"
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def rig(aws: str, wg2sim_faults: Wg2simProcess) -> Iterator[Rig]:
    yield build_rig(aws, wg2sim_faults)


def unauthenticated_calls(sim: Wg2simProcess) -> int:
    return sum(counts.get("UNAUTHENTICATED", 0) for counts in sim.stats()["calls"].values())


def test_awaiting_consent_then_consent_arrives_and_the_registrations_become_active(
    rig: Rig, new_msisdn: Callable[[], str]
) -> None:
    msisdn = new_msisdn()
    # Given the CRM provisions a number whose subscriber has not consented yet
    rig.send(
        upsert("c1", msisdn=msisdn, sip_uri=PBX, route_type="fork", at=T0),
        upsert("c2", msisdn=msisdn, sip_uri=VOICEMAIL, route_type="fallback", at=T0),
    )
    rig.drain()
    assert {r.status for r in rig.records(msisdn)} == {RegistrationStatus.AWAITING_CONSENT}
    assert rig.on_core(msisdn) == []
    # When the subscriber consents and the callback's subscriber.consented arrives
    rig.consent(msisdn)
    rig.send(consented(msisdn))
    rig.drain()
    # Then both registrations are applied
    assert {r.status for r in rig.records(msisdn)} == {RegistrationStatus.ACTIVE}
    assert sorted((r["sip_uri"], r["route_type"]) for r in rig.on_core(msisdn)) == [
        (PBX, "ROUTE_TYPE_FORK"),
        (VOICEMAIL, "ROUTE_TYPE_FALLBACK"),
    ]


def test_a_token_refused_mid_run_is_refreshed_once_and_the_event_applies(
    rig: Rig, new_msisdn: Callable[[], str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    msisdn = new_msisdn()
    rig.consent(msisdn)
    rig.send(upsert("t1", msisdn=msisdn, sip_uri=PBX, route_type="fork", at=T0))
    rig.drain()
    old_token = rig.stored_access_token(msisdn)  # the one the worker holds in memory now
    # When the access token dies at the identity server mid-run (revoked there)
    httpx.post(
        f"{rig.sim.http_url}/oauth2/revoke",
        data={"token": old_token, "token_type_hint": "access_token"},
        auth=(DEV_CLIENT.client_id, DEV_CLIENT.client_secret),
        timeout=5,
    ).raise_for_status()
    refused_before = unauthenticated_calls(rig.sim)
    rig.send(upsert("t2", msisdn=msisdn, sip_uri=PBX, route_type="loop", at=T0 + timedelta(seconds=1)))
    rig.drain()
    # Then the core refused the old token once, the worker refreshed it and applied the event
    assert unauthenticated_calls(rig.sim) == refused_before + 1
    assert [r["route_type"] for r in rig.on_core(msisdn)] == ["ROUTE_TYPE_LOOP"]
    assert [(e.event_id, e.outcome) for e in rig.log(msisdn)] == [("t1", "active"), ("t2", "active")]
    new_token = rig.stored_access_token(msisdn)
    assert new_token != old_token
    # And neither token appears in any log line
    assert old_token not in caplog.text and new_token not in caplog.text


def test_revoke_leaves_nothing_on_the_core_and_revokes_the_tokens(
    rig: Rig, new_msisdn: Callable[[], str]
) -> None:
    msisdn, bystander = new_msisdn(), new_msisdn()
    for number in (msisdn, bystander):
        rig.consent(number)
    rig.send(
        upsert(msisdn=msisdn, sip_uri=PBX, at=T0),
        upsert(msisdn=msisdn, sip_uri=VOICEMAIL, route_type="fallback", at=T0),
        upsert(msisdn=bystander, sip_uri=PBX, at=T0),
    )
    rig.drain()
    assert len(rig.on_core(msisdn)) == 2
    token = rig.stored_access_token(msisdn)
    # When the subscriber revokes
    rig.send(
        RevokeEvent(
            id="revoke-1",
            type=EventType.SUBSCRIBER_REVOKE,
            msisdn=msisdn,
            occurred_at=T0 + timedelta(minutes=1),
        )
    )
    rig.drain()
    # Then the core holds nothing of theirs, their records say why, and their tokens are gone
    assert rig.on_core(msisdn) == []
    assert {r.status for r in rig.records(msisdn)} == {RegistrationStatus.CONSENT_REVOKED}
    subscriber = rig.subscriber(msisdn)
    assert subscriber is not None and subscriber.status is ConsentStatus.REVOKED and not subscriber.has_tokens
    assert rig.log(msisdn)[-1].outcome == "consent_revoked"
    # And the identity server no longer knows the token
    answer = httpx.get(
        f"{rig.sim.http_url}/userinfo", headers={"Authorization": f"Bearer {token}"}, timeout=5
    )
    assert answer.status_code == 401
    # And another subscriber is untouched
    assert [r["msisdn"] for r in rig.on_core(bystander)] == [bystander]


def test_in_client_mode_a_revoked_number_stays_off_the_core_until_it_consents_again(
    aws: str, wg2sim_faults: Wg2simProcess, new_msisdn: Callable[[], str]
) -> None:
    # Given client mode (one product token, good for every number) and a registration on the core
    rig = build_rig(aws, wg2sim_faults, auth_mode=AuthMode.CLIENT)
    msisdn = new_msisdn()
    rig.send(upsert(msisdn=msisdn, sip_uri=PBX, at=T0))
    rig.drain()
    assert len(rig.on_core(msisdn)) == 1
    # When the subscriber's consent is revoked, and the CRM, unaware, then sends a newer upsert
    rig.send(revoke(msisdn=msisdn, at=T0 + timedelta(minutes=1)))
    rig.drain()
    rig.send(upsert(msisdn=msisdn, sip_uri=VOICEMAIL, route_type="fallback", at=T0 + timedelta(minutes=2)))
    rig.drain()
    # Then the core holds nothing of the number, and its records say why
    assert rig.on_core(msisdn) == []
    assert {r.status for r in rig.records(msisdn)} == {RegistrationStatus.CONSENT_REVOKED}
    subscriber = rig.subscriber(msisdn)
    assert subscriber is not None and subscriber.status is ConsentStatus.REVOKED
    # And when the subscriber consents again, what they wanted is put back
    rig.consent(msisdn)
    rig.send(consented(msisdn=msisdn, at=T0 + timedelta(minutes=3)))
    rig.drain()
    assert sorted(r["sip_uri"] for r in rig.on_core(msisdn)) == [VOICEMAIL]
