"""`make demo`: sipreg's mission, end to end on this machine, narrated.

Starts the local stack (the local AWS with IAM enforced, wg2sim, template.yaml's functions on the
local host) with the clock running fast, then: three subscribers consent through the real sign-in
and consent pages; the CRM gives one FORK and one LOOP through the signed webhook; billing turns on
voicemail as FALLBACK for the third straight through the queue; a bad event is refused with its
reason; time runs through two registration TTLs while the refresher keeps all three alive; one
subscriber's consent is revoked by an operator (AWS credentials; the CRM's secret is refused) and
the core drops their registration. It ends with what the core holds and each event's outcome,
stops the stack, and exits 0 only when the final state is exactly the expected one.

    python -m devstack.demo [--time-factor 360] [--log-dir DIR]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from devstack.scenario import Scenario, ScenarioTimeoutError, upsert
from devstack.stack import LocalStack, StackOptions

PBX = "sips:pbx.acme.example:5061"
VOICEMAIL = "sips:voicemail.acme.example:5061"
DEFAULT_TIME_FACTOR = 360.0  # a 3600 s TTL lasts 10 real seconds


@dataclass(frozen=True)
class Subscriber:
    name: str
    msisdn: str  # demo numbers: shown in full here, masked in every log


ALICE = Subscriber("Alice", "+4799990001")
BOB = Subscriber("Bob", "+4799990002")
CAROL = Subscriber("Carol", "+4799990003")
STRANGER = "+4799990009"  # the bad event's number: it must never reach sipreg's state

# What the core must hold at the end: (MSISDN, route type, SIP URI).
EXPECTED_CORE = {(ALICE.msisdn, "FORK", PBX), (CAROL.msisdn, "FALLBACK", VOICEMAIL)}


class Narrator:
    def __init__(self) -> None:
        self.started = time.monotonic()
        self.number = 0
        self.problems: list[str] = []

    def step(self, text: str) -> None:
        self.number += 1
        print(f"\n[{time.monotonic() - self.started:5.1f}s] {self.number}. {text}", flush=True)

    def say(self, text: str) -> None:
        print(f"       {text}", flush=True)

    def check(self, ok: bool, text: str) -> bool:
        self.say(("ok    " if ok else "WRONG ") + text)
        if not ok:
            self.problems.append(text)
        return ok


def consent_all(scenario: Scenario, out: Narrator) -> None:
    out.step("Three subscribers open their consent link and sign in at the operator")
    for who in (ALICE, BOB, CAROL):
        walk = scenario.consent(who.msisdn)
        out.say(f"{who.name} ({who.msisdn}): number -> SMS PIN read from the page -> consent page")
        if who is ALICE:
            out.say(f"  the operator asks: {'; '.join(walk.scopes)}")
        out.check(walk.granted, f"{who.name} pressed Allow and sipreg answered '{walk.heading}'")


def provision(scenario: Scenario, out: Narrator) -> None:
    out.step("The CRM sends two signed events to POST /v1/events: FORK for Alice, LOOP for Bob")
    crm = [
        upsert("crm-0001", ALICE.msisdn, "fork", PBX, source="crm"),
        upsert("crm-0002", BOB.msisdn, "loop", PBX, source="crm"),
    ]
    outcome = scenario.send(crm)
    out.check(outcome.accepted == ["crm-0001", "crm-0002"], f"202 accepted: {', '.join(outcome.accepted)}")

    out.step("Billing turns on voicemail for Carol: FALLBACK, sent straight to the queue (IAM)")
    sent = scenario.send_to_queue(
        [upsert("billing-0001", CAROL.msisdn, "fallback", VOICEMAIL, source="billing")]
    )
    out.check(sent.complete, f"the queue took {', '.join(sent.accepted)}")

    out.step("The CRM sends a bad event: a plain sip: URI (the core takes only sips:)")
    bad = upsert("crm-0003", STRANGER, "fork", "sip:pbx.acme.example", source="crm")
    refused = scenario.send([bad])
    reason = refused.rejected.get("crm-0003", "")
    out.check("registration.sip_uri" in reason, f"400 refused, naming the field: {reason}")

    out.step("The registration worker applies the queued events to the core")
    expected = {
        (ALICE.msisdn, "FORK", PBX),
        (BOB.msisdn, "LOOP", PBX),
        (CAROL.msisdn, "FALLBACK", VOICEMAIL),
    }
    try:
        scenario.wait_for("three registrations on the core", lambda: scenario.core_keys() == expected, 15)
    except ScenarioTimeoutError as error:
        out.check(False, str(error))
    show_core(scenario, out)
    out.check(scenario.core_keys() == expected, "the core holds FORK, LOOP and FALLBACK as asked")


def keep_alive(scenario: Scenario, out: Narrator) -> None:
    ttl = scenario.ttl_seconds
    out.step(
        f"Time runs {scenario.info['time_factor']:g}x fast: a registration's 3600 s TTL lasts {ttl:g} s. "
        "Nobody sends anything for two TTLs"
    )
    first = {(r["msisdn"], r["sip_uri"]): r["expires_at"] for r in scenario.core()}
    upserts_before = scenario.core_calls("UpsertRegistration").get("OK", 0)
    watched_until = time.monotonic() + 2 * ttl + 1
    lowest = len(first)
    while time.monotonic() < watched_until:
        lowest = min(lowest, len(scenario.core()))
        time.sleep(0.25)
    now = {(r["msisdn"], r["sip_uri"]): r["expires_at"] for r in scenario.core()}
    refreshes = scenario.core_calls("UpsertRegistration").get("OK", 0) - upserts_before
    out.say(
        f"the refresher re-upserted {refreshes} times in {2 * ttl + 1:g} s (without it all would be gone)"
    )
    out.check(lowest == 3, f"all three stayed on the core the whole time (fewest seen: {lowest})")
    out.check(refreshes >= 6, "each registration was refreshed at least twice")
    moved = all(now.get(key, "") > expires for key, expires in first.items())
    out.check(moved, "every expiry moved forward past the first TTL")


def revoke(scenario: Scenario, out: Narrator) -> None:
    out.step("Bob withdraws his consent; an operator revokes him: POST /v1/subscribers/+4799990002/revoke")
    stolen = scenario.post_signed(f"/v1/subscribers/{BOB.msisdn}/revoke")
    out.check(
        stolen.status_code == 403,
        f"{stolen.status_code}: the CRM's webhook secret cannot revoke (operators sign with AWS credentials)",
    )
    code, _ = scenario.revoke(BOB.msisdn)
    out.check(code == 202, f"{code}: signed by the operator (SigV4, IAM), a subscriber.revoke is queued")
    try:
        scenario.wait_for("Bob's registration gone", lambda: scenario.core_keys() == EXPECTED_CORE, 15)
    except ScenarioTimeoutError as error:
        out.check(False, str(error))
    bob = scenario.registration(BOB.msisdn, PBX) or {}
    out.check(
        bob.get("status") == "consent_revoked",
        f"the core dropped Bob's LOOP; sipreg holds it as '{bob.get('status')}'",
    )


def show_core(scenario: Scenario, out: Narrator) -> None:
    held = scenario.core()
    now = datetime.now(UTC)
    out.say(f"{'MSISDN':<14} {'route':<9} {'SIP URI':<34} expires in")
    for reg in sorted(held, key=lambda r: r["msisdn"]):
        left = (datetime.fromisoformat(reg["expires_at"]) - now).total_seconds()
        route = reg["route_type"].removeprefix("ROUTE_TYPE_")
        out.say(f"{reg['msisdn']:<14} {route:<9} {reg['sip_uri']:<34} {left:4.1f} s")
    if not held:
        out.say("(the core holds nothing)")


def event_table(scenario: Scenario, out: Narrator) -> dict[str, list[dict[str, Any]]]:
    logs: dict[str, list[dict[str, Any]]] = {}
    out.say(f"{'MSISDN':<14} {'event':<16} {'type':<22} outcome")
    for who in (ALICE, BOB, CAROL):
        changes = (scenario.status(who.msisdn) or {}).get("events", [])
        refreshed = (scenario.status(who.msisdn, type="registration.refresh", limit="100") or {}).get(
            "events", []
        )
        events = sorted(changes + refreshed, key=lambda e: e["occurred_at"])
        logs[who.msisdn] = events
        refreshes = Counter(e["outcome"] for e in events if e["event_type"] == "registration.refresh")
        # One line per event and outcome (a revoke logs one per registration, then its summary).
        lines: dict[tuple[str, str], dict[str, Any]] = {}
        for event in events:
            if event["event_type"] != "registration.refresh":
                key = (event["event_id"], event["outcome"])
                if key not in lines or event.get("reason"):
                    lines[key] = event
        for event in lines.values():
            reason = f" ({event['reason']})" if event.get("reason") else ""
            out.say(
                f"{who.msisdn:<14} {event['event_id'][:16]:<16} {event['event_type']:<22} "
                f"{event['outcome']}{reason}"
            )
        for outcome, count in sorted(refreshes.items()):
            out.say(f"{who.msisdn:<14} {'(refresher)':<16} {'registration.refresh':<22} {outcome} x{count}")
    out.say(f"{STRANGER:<14} {'crm-0003':<16} {'registration.upsert':<22} refused at the API (400)")
    return logs


def verify(scenario: Scenario, out: Narrator, logs: dict[str, list[dict[str, Any]]]) -> None:
    def outcomes(msisdn: str, event_type: str) -> list[str]:
        return [e["outcome"] for e in logs[msisdn] if e["event_type"] == event_type]

    out.check(
        scenario.core_keys() == EXPECTED_CORE, "the core holds exactly Alice's FORK and Carol's FALLBACK"
    )
    for who, route in ((ALICE, "fork"), (CAROL, "fallback")):
        reg = scenario.registration(who.msisdn, VOICEMAIL if who is CAROL else PBX) or {}
        applied = (reg.get("applied") or {}).get("route_type", "")
        out.check(
            reg.get("status") == "active" and applied.lower() == route,
            f"{who.name}: active {route}",
        )
        out.check(outcomes(who.msisdn, "registration.upsert") == ["active"], f"{who.name}: her event applied")
        out.check(
            outcomes(who.msisdn, "registration.refresh").count("refreshed") >= 2,
            f"{who.name}: refreshed at least twice",
        )
    out.check(outcomes(BOB.msisdn, "registration.upsert") == ["active"], "Bob: his event applied")
    revoked = outcomes(BOB.msisdn, "subscriber.revoke")
    out.check(bool(revoked) and set(revoked) == {"consent_revoked"}, "Bob: consent revoked")
    out.check(
        scenario.status(STRANGER) is None, "the bad event changed nothing (sipreg does not know its number)"
    )


def run(stack: LocalStack, started: float) -> list[str]:
    out = Narrator()
    info = stack.ready_info()
    out.say(f"local stack up in {out.started - started:.1f} s: API {info['api']}, core {info['core_grpc']}")
    out.say(f"logs in {info['log_dir']}")
    scenario = Scenario(info)
    try:
        consent_all(scenario, out)
        provision(scenario, out)
        keep_alive(scenario, out)
        revoke(scenario, out)
        out.step("What the core holds now (wg2sim)")
        show_core(scenario, out)
        out.step("Each event's outcome (GET /v1/registrations/{msisdn}, the event log)")
        logs = event_table(scenario, out)
        out.step("Checking the final state")
        verify(scenario, out, logs)
    except ScenarioTimeoutError as error:
        out.check(False, str(error))
    finally:
        scenario.close()
    out.say(f"({time.monotonic() - out.started:.1f} s in all)")
    return out.problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--time-factor", type=float, default=DEFAULT_TIME_FACTOR, help="default 360")
    parser.add_argument("--log-dir", type=Path, help="default: devstack-logs/<timestamp>")
    args = parser.parse_args(argv)
    print("Starting the local stack: moto (AWS), wg2sim (core + identity server), template.yaml's functions")
    started = time.monotonic()
    with LocalStack(StackOptions(time_factor=args.time_factor, log_dir=args.log_dir)).start() as stack:
        problems = run(stack, started)
        print("\nStopping the local stack")
    if problems:
        print(f"\nDemo FAILED: {len(problems)} check(s) did not hold:")
        for problem in problems:
            print(f"  - {problem}")
        return 1
    print("\nDemo succeeded: the final state is exactly the expected one.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
