"""The emulator's clock: wall time at start-up, then running `time_scale` times faster."""

from __future__ import annotations

import time
from datetime import UTC, datetime


class EmulatorClock:
    """Every TTL in the emulator (tokens, registrations) is measured on this clock.

    With `time_scale=3600` a registration's 3600 s TTL runs out after one real second, so
    tests can watch expiry happen. Injected latency and stalls stay in real time.
    """

    def __init__(self, time_scale: float = 1.0) -> None:
        if not time_scale > 0:
            raise ValueError(f"time_scale must be positive, got {time_scale}")
        self.time_scale = time_scale
        self._wall_at_start = time.time()
        self._monotonic_at_start = time.monotonic()

    def now(self) -> float:
        """Emulator time as seconds since the epoch (monotonic underneath, never jumps back)."""
        elapsed = time.monotonic() - self._monotonic_at_start
        return self._wall_at_start + elapsed * self.time_scale

    # What clients see is in real time: they only have real clocks. A TTL of 3600 emulator
    # seconds is answered as 3600 / time_scale seconds, and an expiry as the wall-clock moment
    # it happens, so a client that trusts the answers keeps a registration alive correctly.

    def real_seconds(self, emulator_seconds: float) -> float:
        return emulator_seconds / self.time_scale

    def to_wall(self, emulator_epoch: float) -> float:
        return self._wall_at_start + (emulator_epoch - self._wall_at_start) / self.time_scale


def rfc3339(epoch_seconds: float) -> str:
    """UTC, milliseconds, `Z` suffix, e.g. `2026-01-31T12:00:00.250Z` (sped-up TTLs are short)."""
    moment = datetime.fromtimestamp(round(epoch_seconds, 3), tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
