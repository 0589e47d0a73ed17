"""What the chaos run is: its configuration, and the plan drawn from it of what each number is
sent and must end with."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

PBX = "sips:pbx.chaos.example"
VOICEMAIL = "sips:voicemail.chaos.example"


@dataclass(frozen=True)
class ChaosConfig:
    events: int = 10_000
    numbers: int = 1_000
    producers: int = 4
    unavailable_rate: float = 0.2
    stall_rate: float = 0.05
    duplicate_rate: float = 0.1
    reorder_rate: float = 0.2
    storm_seconds: float = 120.0  # the producers spread their sends over this long
    identity_outage_seconds: float = 15.0
    kills: int = 6  # worker sandboxes killed mid-batch during the storm
    seed: int = 1
    settle_timeout: float = 900.0
    sample_every: float = 2.0
    log_dir: Path | None = None


@dataclass(frozen=True)
class Plan:
    events: dict[str, list[dict[str, Any]]]  # per number, in occurred order
    expected: dict[tuple[str, str], str | None]  # (msisdn, sip_uri) -> route type, None: nothing

    @property
    def all_events(self) -> list[dict[str, Any]]:
        return [event for events in self.events.values() for event in events]


def plan(config: ChaosConfig, rng: random.Random) -> Plan:
    per_number = max(1, config.events // config.numbers)
    start = datetime.now(UTC) - timedelta(seconds=per_number + 120)
    run = uuid.uuid4().hex[:6]
    events: dict[str, list[dict[str, Any]]] = {}
    expected: dict[tuple[str, str], str | None] = {}
    for n in range(config.numbers):
        msisdn = f"+4791{n:06d}"
        mine = []
        for i in range(per_number):
            sip_uri = PBX if rng.random() < 0.7 else VOICEMAIL
            occurred = (start + timedelta(seconds=i)).isoformat().replace("+00:00", "Z")
            event: dict[str, Any] = {
                "id": f"chaos-{run}-{n}-{i}",
                "msisdn": msisdn,
                "occurred_at": occurred,
                "source": "chaos",
            }
            if rng.random() < 0.7:
                route = rng.choice(["fork", "loop"]) if sip_uri == PBX else "fallback"
                event |= {
                    "type": "registration.upsert",
                    "registration": {"route_type": route, "sip_uri": sip_uri},
                }
                expected[(msisdn, sip_uri)] = route
            else:
                event |= {"type": "registration.delete", "registration": {"sip_uri": sip_uri}}
                expected[(msisdn, sip_uri)] = None
            mine.append(event)
        events[msisdn] = mine
    return Plan(events, expected)
