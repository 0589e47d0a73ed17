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


def rfc3339(epoch_seconds: float) -> str:
    """UTC, whole seconds, `Z` suffix, e.g. `2026-01-31T12:00:00Z`."""
    moment = datetime.fromtimestamp(int(epoch_seconds), tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
