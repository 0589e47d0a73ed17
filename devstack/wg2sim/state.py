"""`Wg2Sim`: the one in-process state object every front end (gRPC, admin HTTP, OIDC) shares."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from devstack.wg2sim.clock import EmulatorClock
from devstack.wg2sim.faults import FaultConfig
from devstack.wg2sim.registrations import RegistrationStore
from devstack.wg2sim.stats import Stats
from devstack.wg2sim.tokens import TokenRegistry

if TYPE_CHECKING:
    from devstack.wg2sim.calls.router import CallRouter

DEFAULT_TOKEN_TTL_SECONDS = 3600


class Wg2Sim:
    """Clock, tokens, registrations, faults and stats of one emulated operator core.

    Every part is thread-safe: the gRPC worker threads and the HTTP server threads use it at once.
    """

    def __init__(
        self,
        *,
        time_scale: float = 1.0,
        token_ttl_seconds: int = DEFAULT_TOKEN_TTL_SECONDS,
        faults: FaultConfig | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.clock = EmulatorClock(time_scale)
        self.tokens = TokenRegistry(self.clock)
        self.registrations = RegistrationStore(self.clock)
        self.stats = Stats()
        self.token_ttl_seconds = token_ttl_seconds
        self.rng = rng or random.Random()
        # Swapped whole (an atomic reference assignment), never mutated in place.
        self.faults = faults or FaultConfig()
        # The call path (POST /_admin/calls): set when the server runs the core's SIP side.
        self.calls: CallRouter | None = None

    def set_faults(self, faults: FaultConfig) -> None:
        self.faults = faults

    def clear_faults(self) -> None:
        self.faults = FaultConfig()
