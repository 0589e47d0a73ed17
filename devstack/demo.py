"""`make demo`: sipreg's mission, end to end on this machine, narrated.

Starts the local stack (the local AWS with IAM enforced, wg2sim, template.yaml's functions on the
local host) with the clock running fast, then: three subscribers consent through the real sign-in
and consent pages; the CRM gives one FORK and one LOOP through the signed webhook; billing turns on
voicemail as FALLBACK for the third straight through the queue; a bad event is refused with its
reason; calls to the three reach the local PBX (Kamailio over TLS) as FORK, LOOP and FALLBACK
say, printed leg by leg; time runs through two registration TTLs while the refresher keeps all
three alive; one subscriber's consent is revoked by an operator (AWS credentials; the CRM's
secret is refused), the core drops their registration, and a call to them no longer touches the
PBX. It ends with what the core holds and each event's outcome, stops the stack, and exits 0
only when the final state is exactly the expected one and every call went where its route type
says.

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
from devstack.stack import LocalStack
from devstack.stack_options import StackOptions

DEFAULT_TIME_FACTOR = 360.0  # a 3600 s TTL lasts 10 real seconds


@dataclass(frozen=True)
class Subscriber:
    name: str
    msisdn: str  # demo numbers: shown in full here, masked in every log


ALICE = Subscriber("Alice", "+4799990001")
BOB = Subscriber("Bob", "+4799990002")
CAROL = Subscriber("Carol", "+4799990003")
STRANGER = "+4799990009"  # the bad event's number: it must never reach sipreg's state
DAVE = Subscriber("Dave", "+4799990010")  # calls them: a subscriber of the operator, not of sipreg


@dataclass(frozen=True)
class Endpoints:
    """The provider's SIP endpoints: the local PBX's two TLS listeners (Kamailio)."""

    pbx: str
    voicemail: str

    def expected_core(self) -> set[tuple[str, str, str]]:
        """What the core must hold at the end: (MSISDN, route type, SIP URI)."""
        return {(ALICE.msisdn, "FORK", self.pbx), (CAROL.msisdn, "FALLBACK", self.voicemail)}


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


def provision(scenario: Scenario, out: Narrator, ep: Endpoints) -> None:
    out.step("The CRM sends two signed events to POST /v1/events: FORK for Alice, LOOP for Bob")
    crm = [
        upsert("crm-0001", ALICE.msisdn, "fork", ep.pbx, source="crm"),
        upsert("crm-0002", BOB.msisdn, "loop", ep.pbx, source="crm"),
    ]
    outcome = scenario.send(crm)
    out.check(outcome.accepted == ["crm-0001", "crm-0002"], f"202 accepted: {', '.join(outcome.accepted)}")

    out.step("Billing turns on voicemail for Carol: FALLBACK, sent straight to the queue (IAM)")
    sent = scenario.send_to_queue(
        [upsert("billing-0001", CAROL.msisdn, "fallback", ep.voicemail, source="billing")]
    )
    out.check(sent.complete, f"the queue took {', '.join(sent.accepted)}")

    out.step("The CRM sends a bad event: a plain sip: URI (the core takes only sips:)")
    bad = upsert("crm-0003", STRANGER, "fork", "sip:pbx.acme.example", source="crm")
    refused = scenario.send([bad])
    reason = refused.rejected.get("crm-0003", "")
    out.check("registration.sip_uri" in reason, f"400 refused, naming the field: {reason}")

    out.step("The registration worker applies the queued events to the core")
    expected = {
        (ALICE.msisdn, "FORK", ep.pbx),
        (BOB.msisdn, "LOOP", ep.pbx),
        (CAROL.msisdn, "FALLBACK", ep.voicemail),
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


def revoke(scenario: Scenario, out: Narrator, ep: Endpoints) -> None:
    out.step("Bob withdraws his consent; an operator revokes him: POST /v1/subscribers/+4799990002/revoke")
    stolen = scenario.post_signed(f"/v1/subscribers/{BOB.msisdn}/revoke")
    out.check(
        stolen.status_code == 403,
        f"{stolen.status_code}: the CRM's webhook secret cannot revoke (operators sign with AWS credentials)",
    )
    code, _ = scenario.revoke(BOB.msisdn)
    out.check(code == 202, f"{code}: signed by the operator (SigV4, IAM), a subscriber.revoke is queued")
    try:
        scenario.wait_for("Bob's registration gone", lambda: scenario.core_keys() == ep.expected_core(), 15)
    except ScenarioTimeoutError as error:
        out.check(False, str(error))
    bob = scenario.registration(BOB.msisdn, ep.pbx) or {}
    out.check(
        bob.get("status") == "consent_revoked",
        f"the core dropped Bob's LOOP; sipreg holds it as '{bob.get('status')}'",
    )


def show_call(out: Narrator, call: dict[str, Any], names: dict[str, str]) -> None:
    """One line per leg, in the order the core made them (docs/call-routing.md numbers them)."""
    answered = call["answered_by"] or "nobody"
    out.say(f"caller got {call['sip_status']}, answered by {names.get(answered, answered)}")
    for leg in call["legs"]:
        where = (
            names.get(leg["to"], leg["to"])
            if leg["leg"] != 3
            else f"from {names.get(leg['from'], leg['from'])}"
        )
        responses = " ".join(str(code) for code in leg["provisional"])
        final = f"{leg['sip_status']} {leg['reason']}".strip() if leg["sip_status"] else leg.get("error", "-")
        extra = "  (cancelled)" if leg.get("cancelled") else ""
        extra += f"  BYE {leg['bye_status']}" if leg.get("bye_status") else ""
        extra += f"  [{leg['server']}]" if leg.get("server") else ""
        out.say(
            f"  leg {leg['leg']}  {leg['started_ms']:6.1f} ms  {leg['method']} {where:<28} "
            f"{responses + ' ' if responses else ''}{final}{extra}"
        )


def legs_to(call: dict[str, Any], uri: str) -> list[dict[str, Any]]:
    return [leg for leg in call["legs"] if leg["leg"] == 2 and leg["to"] == uri]


def place(scenario: Scenario, out: Narrator, who: Subscriber, callee: str, text: str) -> dict[str, Any]:
    out.say(
        f"{DAVE.name} ({DAVE.msisdn}) calls {who.name} ({who.msisdn}); {who.name}'s phone: {callee}. {text}"
    )
    return scenario.call(DAVE.msisdn, who.msisdn, callee)


def calls_reach_the_pbx(scenario: Scenario, out: Narrator, ep: Endpoints) -> None:
    out.step("Calls: the core routes each by the callee's registration (real SIP INVITEs over TLS)")
    names = {ep.pbx: "the PBX", ep.voicemail: "voicemail", "phone": "the phone"}
    for who in (ALICE, BOB, CAROL):
        names[f"tel:{who.msisdn}"] = f"{who.name}'s phone"

    fork = place(scenario, out, ALICE, "answer", "FORK: the PBX and her phone ring at once")
    show_call(out, fork, names)
    [to_pbx] = legs_to(fork, ep.pbx) or [{}]
    phone = [leg for leg in fork["legs"] if leg["leg"] == 4]
    out.check(
        bool(to_pbx.get("sip_status"))
        and len(phone) == 1
        and abs(phone[0]["started_ms"] - to_pbx["started_ms"]) < 50,
        "FORK: leg 2 reached the PBX (it answered over TLS) at the same time as leg 4 to her phone",
    )
    out.check(fork["sip_status"] == 200, "FORK: the call was answered")

    loop = place(scenario, out, BOB, "answer", "LOOP: the PBX gets it first and sends it back")
    show_call(out, loop, names)
    order = [(leg["leg"], leg["sip_status"]) for leg in loop["legs"]]
    out.check(
        order == [(2, 200), (3, 200), (4, 200)], "LOOP: leg 2 to the PBX, back as leg 3, then leg 4 rang Bob"
    )

    fallback = place(scenario, out, CAROL, "busy", "FALLBACK: voicemail only when she is busy")
    show_call(out, fallback, names)
    path: list[tuple[Any, ...]] = [(leg["leg"], leg["to"], leg["sip_status"]) for leg in fallback["legs"]]
    out.check(
        path == [(4, f"tel:{CAROL.msisdn}", 486), (2, ep.voicemail, 200)]
        and fallback["answered_by"] == ep.voicemail,
        "FALLBACK: her phone was busy (486), so the call went to voicemail, which answered",
    )


def call_after_revoke(scenario: Scenario, out: Narrator, ep: Endpoints) -> None:
    out.step("Bob's consent is gone, and with it his LOOP: a call to him no longer touches the PBX")
    names = {ep.pbx: "the PBX", f"tel:{BOB.msisdn}": "Bob's phone", "phone": "the phone"}
    call = place(scenario, out, BOB, "answer", "No registration left")
    show_call(out, call, names)
    out.check(
        [leg["leg"] for leg in call["legs"]] == [4] and call["sip_status"] == 200 and not call["routing"],
        "only leg 4, straight to Bob's phone: no leg to the PBX",
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


def verify(scenario: Scenario, out: Narrator, logs: dict[str, list[dict[str, Any]]], ep: Endpoints) -> None:
    def outcomes(msisdn: str, event_type: str) -> list[str]:
        return [e["outcome"] for e in logs[msisdn] if e["event_type"] == event_type]

    out.check(
        scenario.core_keys() == ep.expected_core(), "the core holds exactly Alice's FORK and Carol's FALLBACK"
    )
    for who, route in ((ALICE, "fork"), (CAROL, "fallback")):
        reg = scenario.registration(who.msisdn, ep.voicemail if who is CAROL else ep.pbx) or {}
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
    ep = Endpoints(info["pbx_uri"], info["voicemail_uri"])
    out.say(f"the provider's PBX {ep.pbx}, voicemail {ep.voicemail} (Kamailio, SIP over TLS)")
    try:
        consent_all(scenario, out)
        provision(scenario, out, ep)
        calls_reach_the_pbx(scenario, out, ep)
        keep_alive(scenario, out)
        revoke(scenario, out, ep)
        call_after_revoke(scenario, out, ep)
        out.step("What the core holds now (wg2sim)")
        show_core(scenario, out)
        out.step("Each event's outcome (GET /v1/registrations/{msisdn}, the event log)")
        logs = event_table(scenario, out)
        out.step("Checking the final state")
        verify(scenario, out, logs, ep)
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
    print(
        "Starting the local stack: ministack (AWS), wg2sim (core + identity server), the local PBX "
        "(Kamailio), template.yaml's functions"
    )
    started = time.monotonic()
    with LocalStack(StackOptions(time_factor=args.time_factor, log_dir=args.log_dir)).start() as stack:
        problems = run(stack, started)
        print("\nStopping the local stack")
    if problems:
        print(f"\nDemo FAILED: {len(problems)} check(s) did not hold:")
        for problem in problems:
            print(f"  - {problem}")
        return 1
    print(
        "\nDemo succeeded: the final state is exactly the expected one, "
        "and every call went where its route type says."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
