"""A call as the admin API asks for it and shows it: the request, its legs and its result."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

CALLEE_BEHAVIOURS = ("answer", "busy", "no-answer")


@dataclass(frozen=True)
class CallRequest:
    caller: str  # E.164
    callee: str  # E.164
    behaviour: str = "answer"  # what the callee's phone does


@dataclass
class Leg:
    """One leg of a call, as the admin API shows it."""

    leg: int
    to: str
    started: float  # real seconds since the call began
    method: str = "INVITE"
    request_uri: str = ""
    source: str = ""  # leg 3: where it came from
    registration: str = ""  # the route type of the registration that made this leg
    sip_status: int | None = None
    reason: str = ""
    provisional: list[int] = field(default_factory=list)
    error: str = ""
    cancelled: bool = False
    bye_status: int | None = None
    answered_after: float | None = None  # real seconds since the call began
    server: str = ""  # the Server header of the final response: who really answered

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "leg": self.leg,
            "to": self.to,
            "method": self.method,
            "sip_status": self.sip_status,
            "reason": self.reason,
            "provisional": self.provisional,
            "started_ms": round(self.started * 1000, 1),
        }
        optional = {
            "request_uri": self.request_uri,
            "from": self.source,
            "registration": self.registration,
            "error": self.error,
            "server": self.server,
            "cancelled": self.cancelled or None,
            "bye_status": self.bye_status,
            "final_ms": None if self.answered_after is None else round(self.answered_after * 1000, 1),
        }
        body.update({key: value for key, value in optional.items() if value not in (None, "")})
        return body


@dataclass
class CallResult:
    caller: str
    callee: str
    behaviour: str
    legs: list[Leg] = field(default_factory=list)
    sip_status: int = 0
    answered_by: str | None = None  # a sips: URI, "phone", or None
    routing: list[dict[str, str]] = field(default_factory=list)
    kind: str = "call"  # "call" (POST /_admin/calls) or "ingress" (a TAS placed it)
    started_at: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "from": self.caller,
            "to": self.callee,
            "callee": self.behaviour,
            "sip_status": self.sip_status,
            "answered_by": self.answered_by,
            "routing": self.routing,
            "legs": [leg.to_json() for leg in sorted(self.legs, key=lambda leg: leg.started)],
        }
