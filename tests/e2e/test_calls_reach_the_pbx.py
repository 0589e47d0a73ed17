"""On the stack `sipreg devstack up` started: what the CRM and billing provision decides where a
subscriber's calls go. The emulated core's INVITEs cross real TLS to the local PBX (Kamailio):
after a FORK a call reaches the PBX, after a FALLBACK a busy subscriber's call reaches voicemail,
after a revoke the call no longer touches the PBX."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from devstack.scenario import Scenario, upsert

APPLY_TIMEOUT = 15.0
KAMAILIO = "sipreg-local-pbx (kamailio)"


def legs(call: dict[str, Any]) -> list[tuple[int, str, int | None]]:
    return [(leg["leg"], leg["to"], leg["sip_status"]) for leg in call["legs"]]


def test_provisioned_routes_bring_calls_to_the_pbx_and_a_revoke_takes_them_away(
    scenario: Scenario, devstack: dict[str, Any], new_msisdn: Callable[[], str]
) -> None:
    pbx, voicemail = devstack["pbx_uri"], devstack["voicemail_uri"]
    caller = new_msisdn()
    # Given two subscribers who consented through the operator's pages
    forked, busy = new_msisdn(), new_msisdn()
    for msisdn in (forked, busy):
        assert scenario.consent(msisdn).granted
    # When the CRM gives one a FORK to the PBX, and billing the other voicemail as FALLBACK
    assert scenario.send([upsert("e2e-call-1", forked, "fork", pbx, source="crm")]).accepted == ["e2e-call-1"]
    assert scenario.send_to_queue(
        [upsert("e2e-call-2", busy, "fallback", voicemail, source="billing")]
    ).complete
    scenario.wait_for(
        "both on the core",
        lambda: {(m, r) for m, r, _ in scenario.core_keys()} >= {(forked, "FORK"), (busy, "FALLBACK")},
        APPLY_TIMEOUT,
    )
    # Then a call to the first rings the PBX (answered by Kamailio over TLS) and the phone together
    fork = scenario.call(caller, forked, "no-answer")
    assert legs(fork) == [(4, f"tel:{forked}", 487), (2, pbx, 200)]
    assert fork["legs"][1]["server"] == KAMAILIO and fork["answered_by"] == pbx
    # And a call to the busy one goes to voicemail, once the phone said busy
    fallback = scenario.call(caller, busy, "busy")
    assert legs(fallback) == [(4, f"tel:{busy}", 486), (2, voicemail, 200)]
    # When the first subscriber's consent is revoked
    assert scenario.revoke(forked)[0] == 202
    scenario.wait_for(
        "the FORK gone", lambda: all(m != forked for m, _, _ in scenario.core_keys()), APPLY_TIMEOUT
    )
    # Then a call to them goes straight to their phone: no leg to the PBX
    after = scenario.call(caller, forked, "answer")
    assert legs(after) == [(4, f"tel:{forked}", 200)] and after["routing"] == []
