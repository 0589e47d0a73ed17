"""The demo's story as assertions, on the stack `sipreg devstack up` started: subscribers consent
through the real pages, the CRM and billing provision them, a bad event is refused, the refresher
keeps registrations alive through two TTLs, and a revoke drops a registration from the core."""

from __future__ import annotations

import time
from collections.abc import Callable

from devstack.scenario import Scenario, upsert

APPLY_TIMEOUT = 15.0


def consented(scenario: Scenario, msisdn: str) -> str:
    walk = scenario.consent(msisdn)
    assert walk.granted, (walk.final.status_code, walk.heading)
    return msisdn


def core_holds(scenario: Scenario, msisdn: str) -> set[tuple[str, str]]:
    return {(route, uri) for number, route, uri in scenario.core_keys() if number == msisdn}


def test_consented_subscribers_get_what_crm_and_billing_ask_for(
    pbx: str, voicemail_box: str, scenario: Scenario, new_msisdn: Callable[[], str]
) -> None:
    # Given three subscribers who consented through the operator's sign-in and consent pages
    fork, loop, voicemail = (consented(scenario, new_msisdn()) for _ in range(3))
    # When the CRM sends a FORK and a LOOP through the signed webhook
    crm = scenario.send(
        [
            upsert("m-crm-1", fork, "fork", pbx, source="crm"),
            upsert("m-crm-2", loop, "LOOP", pbx, source="crm"),
        ]
    )
    # And billing sends voicemail as FALLBACK straight to the queue
    billing = scenario.send_to_queue(
        [upsert("m-bill-1", voicemail, "fallback", voicemail_box, source="billing")]
    )
    # Then both producers were accepted
    assert crm.accepted == ["m-crm-1", "m-crm-2"] and not crm.rejected and not crm.failed
    assert billing.complete
    # And the core holds exactly what was asked, through the worker on the host's SQS source
    scenario.wait_for("the fallback on the core", lambda: core_holds(scenario, voicemail), APPLY_TIMEOUT)
    scenario.wait_for("the loop on the core", lambda: core_holds(scenario, loop), APPLY_TIMEOUT)
    assert core_holds(scenario, fork) == {("FORK", pbx)}
    assert core_holds(scenario, loop) == {("LOOP", pbx)}
    assert core_holds(scenario, voicemail) == {("FALLBACK", voicemail_box)}
    # And the status API reports each as active, with the event's outcome in the event log
    for msisdn, event_id in ((fork, "m-crm-1"), (loop, "m-crm-2"), (voicemail, "m-bill-1")):
        status = scenario.status(msisdn)
        assert status is not None
        assert [r["status"] for r in status["registrations"]] == ["active"]
        outcomes = {e["event_id"]: e["outcome"] for e in status["events"]}
        assert outcomes[event_id] == "active"


def test_a_bad_event_is_refused_naming_its_field_and_changes_nothing(
    pbx: str, scenario: Scenario, new_msisdn: Callable[[], str]
) -> None:
    # Given a number sipreg has never heard of
    msisdn = new_msisdn()
    # When the CRM sends an upsert with a plain sip: URI and one with an unknown route type
    plain = scenario.send([upsert("m-bad-1", msisdn, "fork", "sip:pbx.acme.example", source="crm")])
    unknown = scenario.send([upsert("m-bad-2", msisdn, "forward", pbx, source="crm")])
    # Then each is refused with the field and the reason
    assert "registration.sip_uri" in plain.rejected["m-bad-1"]
    assert "sips:" in plain.rejected["m-bad-1"]
    assert "registration.route_type" in unknown.rejected["m-bad-2"]
    assert not plain.accepted and not unknown.accepted
    # And nothing reached sipreg's state or the core
    time.sleep(1.0)  # a queued event would have been applied by now
    assert scenario.status(msisdn) is None
    # (the core's call counts are no measure here: the refresher keeps other tests' numbers alive)
    assert not any(number == msisdn for number, _, _ in scenario.core_keys())


def test_an_event_before_consent_waits_and_is_applied_once_the_subscriber_consents(
    pbx: str, scenario: Scenario, new_msisdn: Callable[[], str]
) -> None:
    # Given an upsert for a subscriber who has not consented yet
    msisdn = new_msisdn()
    assert scenario.send([upsert("m-early-1", msisdn, "fork", pbx, source="crm")]).accepted == ["m-early-1"]
    # Then it waits for consent, and the core holds nothing for the number
    waiting = scenario.wait_for(
        "the registration awaiting consent",
        lambda: (scenario.registration(msisdn, pbx) or {}).get("status") == "awaiting_consent",
        APPLY_TIMEOUT,
    )
    assert waiting
    assert not core_holds(scenario, msisdn)
    # When the subscriber consents through the pages
    consented(scenario, msisdn)
    # Then the waiting registration is applied
    scenario.wait_for("the registration on the core", lambda: core_holds(scenario, msisdn), APPLY_TIMEOUT)
    assert core_holds(scenario, msisdn) == {("FORK", pbx)}
    assert (scenario.registration(msisdn, pbx) or {}).get("status") == "active"


def test_the_refresher_keeps_registrations_alive_through_two_ttls(
    pbx: str, scenario: Scenario, new_msisdn: Callable[[], str]
) -> None:
    # Given two active registrations on the core
    numbers = [consented(scenario, new_msisdn()) for _ in range(2)]
    events = [upsert(f"m-alive-{i}", n, "fork", pbx, source="crm") for i, n in enumerate(numbers)]
    assert len(scenario.send(events).accepted) == 2

    def both_held() -> bool:
        return all(core_holds(scenario, m) for m in numbers)

    scenario.wait_for("both registrations on the core", both_held, APPLY_TIMEOUT)
    first_expiry = {r["msisdn"]: r["expires_at"] for r in scenario.core() if r["msisdn"] in numbers}
    # When two TTLs pass with nobody sending anything
    deadline = time.monotonic() + 2 * scenario.ttl_seconds + 1
    fewest = 2
    while time.monotonic() < deadline:
        fewest = min(fewest, sum(1 for m in numbers if core_holds(scenario, m)))
        time.sleep(0.25)
    # Then the core never lost them, and their expiry moved on
    assert fewest == 2
    now_expiry = {r["msisdn"]: r["expires_at"] for r in scenario.core() if r["msisdn"] in numbers}
    assert all(now_expiry[m] > first_expiry[m] for m in numbers)
    # And the event log shows the refresher's work, at least once per TTL
    for msisdn in numbers:
        events_seen = (scenario.status(msisdn, type="registration.refresh") or {})["events"]
        refreshed = [e for e in events_seen if e["event_type"] == "registration.refresh"]
        assert len(refreshed) >= 2
        assert {e["outcome"] for e in refreshed} == {"refreshed"}


def test_a_revoked_subscriber_loses_their_registration_on_the_core(
    pbx: str, scenario: Scenario, new_msisdn: Callable[[], str]
) -> None:
    # Given a consented subscriber with a LOOP on the core
    msisdn = consented(scenario, new_msisdn())
    assert scenario.send([upsert("m-revoke-1", msisdn, "loop", pbx, source="crm")]).accepted
    scenario.wait_for("the loop on the core", lambda: core_holds(scenario, msisdn), APPLY_TIMEOUT)
    # When their consent is revoked
    assert scenario.revoke(msisdn)[0] == 202
    # Then the core drops the registration and sipreg records why
    scenario.wait_for("the loop gone", lambda: not core_holds(scenario, msisdn), APPLY_TIMEOUT)
    registration = scenario.wait_for(
        "the registration marked revoked",
        lambda: (scenario.registration(msisdn, pbx) or {}).get("status") == "consent_revoked",
        APPLY_TIMEOUT,
    )
    assert registration

    def revoke_outcomes() -> set[str]:
        events = (scenario.status(msisdn) or {})["events"]
        return {e["outcome"] for e in events if e["event_type"] == "subscriber.revoke"}

    # The revoke's own item (the subscriber's) is final once the tokens are revoked too, after the
    # registrations' items
    scenario.wait_for(
        "the revoke's outcomes", lambda: revoke_outcomes() == {"consent_revoked"}, APPLY_TIMEOUT
    )
    # And a later upsert is not applied without a new consent
    assert scenario.send([upsert("m-revoke-2", msisdn, "fork", pbx, source="crm")]).accepted
    scenario.wait_for(
        "the new upsert held back",
        lambda: (scenario.registration(msisdn, pbx) or {}).get("last_event_id") == "m-revoke-2",
        APPLY_TIMEOUT,
    )
    assert not core_holds(scenario, msisdn)
