"""On the stack `sipreg devstack up --endpoint-down-action suspend` started: the PBX (Kamailio)
stops answering, the scheduled endpoint health check marks it down, its subscriber's FORK leaves
the core (calls ring only the phone), and when Kamailio answers again the FORK comes back."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from typing import Any

from devstack.scenario import Scenario, upsert

# Probes time out after 1 s and are tried twice, every ~2 s; then the queue and the worker.
OUTAGE_TIMEOUT = 30.0


def status_of(scenario: Scenario, msisdn: str, sip_uri: str) -> str | None:
    registration = scenario.registration(msisdn, sip_uri)
    return registration["status"] if registration else None


def test_a_pbx_that_stops_answering_loses_its_forks_until_it_answers_again(
    scenario: Scenario, devstack: dict[str, Any], new_msisdn: Callable[[], str]
) -> None:
    assert devstack["endpoint_down_action"] == "suspend"
    pbx, caller, subscriber = devstack["pbx_uri"], new_msisdn(), new_msisdn()
    assert scenario.consent(subscriber).granted
    assert scenario.send([upsert("e2e-outage-1", subscriber, "fork", pbx, source="crm")]).accepted

    def on_core() -> bool:
        return (subscriber, "FORK", pbx) in scenario.core_keys()

    scenario.wait_for("the FORK on the core", on_core, 15.0)
    health_changes = scenario.watch_status_bus("EndpointHealthChanged")
    group = int(devstack["pbx_pgid"])
    try:
        # When Kamailio stops answering (its processes stopped: connections hang, nothing is refused)
        os.killpg(group, signal.SIGSTOP)
        # Then the FORK leaves the core, the registration says why, and a call rings the phone only
        scenario.wait_for("the FORK suspended", lambda: not on_core(), OUTAGE_TIMEOUT)
        registration = scenario.registration(subscriber, pbx)
        assert registration is not None and registration["status"] == "suspended"
        assert "endpoint down: timeout" in (registration.get("last_error") or "")
        call = scenario.call(caller, subscriber, "answer")
        assert [leg["to"] for leg in call["legs"]] == [f"tel:{subscriber}"]
    finally:
        # When it answers again
        os.killpg(group, signal.SIGCONT)
    # Then the FORK is back on the core, and a call reaches the PBX again
    scenario.wait_for("the FORK resumed", on_core, OUTAGE_TIMEOUT)
    # The worker records the outcome just after the core answers, so the status may lag a moment.
    scenario.wait_for("its record active", lambda: status_of(scenario, subscriber, pbx) == "active", 5.0)
    call = scenario.call(caller, subscriber, "no-answer")
    assert pbx in [leg["to"] for leg in call["legs"]]
    # And the status bus told its subscribers the endpoint went down, then came back

    def ups_and_downs() -> list[bool]:
        return [change["up"] for change in health_changes() if change["sip_uri"] == pbx]

    scenario.wait_for(
        "the PBX down, then up, on the status bus", lambda: ups_and_downs() == [False, True], 10.0
    )
