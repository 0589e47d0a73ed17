"""An operator's controls on the stack `sipreg devstack up` started: `sipreg disable` takes a
subscriber's FORK off the core (calls ring only the phone) and keeps it, `sipreg enable` brings
it back, `sipreg refresh` re-sends it now; each shows in the event log and on the status bus. A
producer's secret can do none of it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from devstack.scenario import Scenario, upsert
from tests.e2e.test_who_may_do_what import sipreg

APPLY_TIMEOUT = 15.0


def test_disable_enable_and_refresh_with_the_cli(
    devstack: dict[str, Any], scenario: Scenario, new_msisdn: Callable[[], str]
) -> None:
    pbx, caller, msisdn = devstack["pbx_uri"], new_msisdn(), new_msisdn()
    assert scenario.consent(msisdn).granted
    assert scenario.send([upsert("ctl-1", msisdn, "fork", pbx, source="crm")]).accepted == ["ctl-1"]

    def on_core() -> bool:
        return (msisdn, "FORK", pbx) in scenario.core_keys()

    scenario.wait_for("the FORK on the core", on_core, APPLY_TIMEOUT)
    # A producer's secret cannot disable it
    refused = scenario.post_signed(f"/v1/registrations/{quote(msisdn, safe='')}/disable")
    assert refused.status_code == 403
    # When an operator disables it
    disabled = sipreg(devstack, "disable", msisdn, "--sip-uri", pbx, "--reason", "e2e pause")
    assert disabled.returncode == 0, disabled.stderr
    # Then it leaves the core, its status says so, and a call rings only the phone
    scenario.wait_for("the FORK off the core", lambda: not on_core(), APPLY_TIMEOUT)
    registration = scenario.registration(msisdn, pbx)
    assert registration is not None
    assert (registration["status"], registration["disabled"]) == ("disabled", True)
    assert registration["desired"]["route_type"] == "fork"
    assert registration["last_error"] == "disabled: e2e pause"
    call = scenario.call(caller, msisdn, "answer")
    assert [leg["to"] for leg in call["legs"]] == [f"tel:{msisdn}"]
    # A refresh of a disabled registration sends nothing
    assert sipreg(devstack, "refresh", msisdn, "--sip-uri", pbx).returncode == 0
    # When the operator enables it again
    enabled = sipreg(devstack, "enable", msisdn, "--sip-uri", pbx)
    assert enabled.returncode == 0, enabled.stderr
    # Then the FORK is back, and calls reach the PBX
    scenario.wait_for("the FORK back on the core", on_core, APPLY_TIMEOUT)
    assert pbx in [leg["to"] for leg in scenario.call(caller, msisdn, "no-answer")["legs"]]
    # And a refresh re-sends it (the expiry moves)
    before = scenario.registration(msisdn, pbx)["expires_at"]  # type: ignore[index]
    assert sipreg(devstack, "refresh", msisdn, "--sip-uri", pbx).returncode == 0
    scenario.wait_for(
        "the expiry moved",
        lambda: scenario.registration(msisdn, pbx)["expires_at"] > before,  # type: ignore[index]
        APPLY_TIMEOUT,
    )
    history = [(e["event_type"], e["outcome"]) for e in reversed(scenario.status(msisdn)["events"])]  # type: ignore[index]
    assert history == [
        ("subscriber.consented", "nothing_waiting"),
        ("registration.upsert", "active"),
        ("registration.disable", "disabled"),
        ("registration.force_refresh", "superseded"),
        ("registration.enable", "active"),
        ("registration.force_refresh", "active"),
    ]


def test_a_control_of_a_registration_that_does_not_exist_is_404(
    devstack: dict[str, Any], new_msisdn: Callable[[], str]
) -> None:
    answer = sipreg(devstack, "disable", new_msisdn(), "--sip-uri", "sips:nowhere.example")
    assert answer.returncode == 2
    assert "HTTP 404" in answer.stderr and "no registration at that sip_uri" in answer.stderr
