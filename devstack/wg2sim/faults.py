"""Fault injection: what to break, for which numbers, and the draw for one call."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from devstack.wg2sim.validation import FieldError, e164_problem

MAX_LATENCY_MS = 60_000
# gRPC makes at most 5 attempts of a call, whatever a retry policy asks for (gRFC A6).
MAX_ATTEMPTS = 5
FAULT_KEYS = (
    "unavailable_rate",
    "unavailable_attempts",
    "stall_rate",
    "latency_ms",
    "msisdns",
    "methods",
    "identity_down",
)
METHODS = ("UpsertRegistration", "DeleteRegistration")

FaultAction = Literal["unavailable", "stall"]


@dataclass(frozen=True, slots=True)
class FaultDraw:
    latency_seconds: float
    action: FaultAction | None


@dataclass(frozen=True, slots=True)
class FaultConfig:
    """Immutable; the emulator swaps the whole config when faults change."""

    unavailable_rate: float = 0.0
    # The first N attempts of every call fail UNAVAILABLE, whatever the rates draw: a retry
    # policy's work, counted exactly (an attempt's number is gRPC's grpc-previous-rpc-attempts + 1).
    unavailable_attempts: int = 0
    stall_rate: float = 0.0
    latency_ms: tuple[int, int] = (0, 0)  # uniform range; (n, n) is a fixed latency
    msisdns: frozenset[str] = frozenset()  # empty: every number
    methods: frozenset[str] = frozenset()  # empty: both rpcs
    identity_down: bool = False  # the identity server answers 503 to everything

    @classmethod
    def from_json(cls, data: Any) -> FaultConfig:
        """The body of `POST /_admin/faults`: every key optional, a missing key means off."""
        if not isinstance(data, Mapping):
            raise FieldError("body", "expected a JSON object")
        for key in data:
            if key not in FAULT_KEYS:
                raise FieldError(str(key), f"unknown field; expected some of {', '.join(FAULT_KEYS)}")
        msisdns = data.get("msisdns", [])
        if not isinstance(msisdns, list):
            raise FieldError("msisdns", "expected a list of E.164 numbers")
        methods = data.get("methods", [])
        if not isinstance(methods, list) or not all(method in METHODS for method in methods):
            raise FieldError("methods", f"expected a list of some of {', '.join(METHODS)}")
        return cls(
            unavailable_rate=parse_rate(data.get("unavailable_rate", 0.0), "unavailable_rate"),
            unavailable_attempts=parse_attempts(data.get("unavailable_attempts", 0), "unavailable_attempts"),
            stall_rate=parse_rate(data.get("stall_rate", 0.0), "stall_rate"),
            latency_ms=parse_latency(data.get("latency_ms", 0), "latency_ms"),
            msisdns=parse_msisdns(msisdns, "msisdns"),
            methods=frozenset(methods),
            identity_down=parse_flag(data.get("identity_down", False), "identity_down"),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "unavailable_rate": self.unavailable_rate,
            "unavailable_attempts": self.unavailable_attempts,
            "stall_rate": self.stall_rate,
            "latency_ms": list(self.latency_ms),
            "msisdns": sorted(self.msisdns),
            "methods": sorted(self.methods),
            "identity_down": self.identity_down,
        }

    def applies_to(self, msisdn: str | None, method: str | None = None) -> bool:
        injects = (
            self.unavailable_rate > 0
            or self.unavailable_attempts > 0
            or self.stall_rate > 0
            or self.latency_ms[1] > 0
        )
        return (
            injects
            and (not self.msisdns or msisdn in self.msisdns)
            and (not self.methods or method in self.methods)
        )

    def draw(self, rng: random.Random, attempt: int = 1) -> FaultDraw:
        """One draw decides the action, so the rates are fractions of all calls.

        An `attempt` within `unavailable_attempts` fails UNAVAILABLE without a draw. Otherwise
        UNAVAILABLE is drawn first; if both rates add up to more than 1, stall gets the rest.
        """
        low, high = self.latency_ms
        latency = (low if low == high else rng.uniform(low, high)) / 1000
        roll = rng.random()
        action: FaultAction | None = None
        if attempt <= self.unavailable_attempts or roll < self.unavailable_rate:
            action = "unavailable"
        elif roll < self.unavailable_rate + self.stall_rate:
            action = "stall"
        return FaultDraw(latency_seconds=latency, action=action)


def parse_flag(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise FieldError(field, "must be true or false")
    return value


def parse_rate(value: Any, field: str) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise FieldError(field, f"{value!r} is not a number") from None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise FieldError(field, "must be a number from 0 to 1 (a fraction of calls)")
    return float(value)


def parse_attempts(value: Any, field: str) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_ATTEMPTS:
        raise FieldError(field, f"must be a whole number of attempts from 0 to {MAX_ATTEMPTS}")
    return value


def parse_latency(value: Any, field: str) -> tuple[int, int]:
    """`50` (fixed), `[20, 80]` (uniform range), or on the command line "50" / "20-80"."""
    if isinstance(value, str):
        low_text, dash, high_text = value.partition("-")
        parts = [low_text, high_text] if dash else [low_text]
        if not all(part.strip().isdigit() for part in parts):
            raise FieldError(field, f"{value!r} must be milliseconds like '50' or '20-80'")
        value = [int(part) for part in parts]
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value, value]
    if (
        not isinstance(value, list)
        or len(value) not in (1, 2)
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        raise FieldError(field, "must be milliseconds: a whole number or a [low, high] pair")
    low, high = value[0], value[-1]
    if not 0 <= low <= high <= MAX_LATENCY_MS:
        raise FieldError(field, f"must satisfy 0 <= low <= high <= {MAX_LATENCY_MS} ms")
    return (low, high)


def parse_msisdns(values: list[Any], field: str) -> frozenset[str]:
    for value in values:
        problem = e164_problem(value, field) if isinstance(value, str) else None
        if not isinstance(value, str) or problem:
            raise FieldError(field, problem or "expected a list of E.164 numbers")
    return frozenset(values)
