"""What the emulated core holds: registrations keyed by (MSISDN, sip_uri), each with a TTL."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from devstack.wg2sim.clock import EmulatorClock, rfc3339

REGISTRATION_TTL_SECONDS = 3600


@dataclass(frozen=True, slots=True)
class Registration:
    msisdn: str
    sip_uri: str
    route_type: str  # the enum value's name, e.g. "ROUTE_TYPE_FORK"
    mobile_originating_prefix: str
    mobile_terminating_prefix: str
    api_version: str  # "v0" or "v1": the API that last upserted it
    expires_at: float  # emulator clock
    upserted_at: float  # emulator clock: when the core last took it (benches time POST-to-core with it)

    def to_json(self, clock: EmulatorClock) -> dict[str, str]:
        return {
            "msisdn": self.msisdn,
            "sip_uri": self.sip_uri,
            "route_type": self.route_type,
            "mobile_originating_prefix": self.mobile_originating_prefix,
            "mobile_terminating_prefix": self.mobile_terminating_prefix,
            "api_version": self.api_version,
            "expires_at": rfc3339(clock.to_wall(self.expires_at)),  # when it really happens
            "upserted_at": rfc3339(clock.to_wall(self.upserted_at)),
        }


class RegistrationStore:
    """Thread-safe. One store behind both API versions, as on the real core.

    The key is the `sip_uri` string exactly as sent: WG2 documents that a delete names the
    registration with the same `sip_uri` it was made with, so no canonicalisation happens.
    """

    def __init__(self, clock: EmulatorClock, ttl_seconds: int = REGISTRATION_TTL_SECONDS) -> None:
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._items: dict[tuple[str, str], Registration] = {}

    def upsert(
        self,
        *,
        msisdn: str,
        sip_uri: str,
        route_type: str,
        mobile_originating_prefix: str,
        mobile_terminating_prefix: str,
        api_version: str,
    ) -> Registration:
        """Add or replace; the TTL starts again from now."""
        registration = Registration(
            msisdn=msisdn,
            sip_uri=sip_uri,
            route_type=route_type,
            mobile_originating_prefix=mobile_originating_prefix,
            mobile_terminating_prefix=mobile_terminating_prefix,
            api_version=api_version,
            expires_at=(now := self._clock.now()) + self.ttl_seconds,
            upserted_at=now,
        )
        with self._lock:
            self._items[(msisdn, sip_uri)] = registration
        return registration

    def delete(self, msisdn: str, sip_uri: str) -> bool:
        """True when a live registration was removed."""
        with self._lock:
            self._purge_expired()
            return self._items.pop((msisdn, sip_uri), None) is not None

    def list(self) -> list[Registration]:
        with self._lock:
            self._purge_expired()
            return sorted(self._items.values(), key=lambda r: (r.msisdn, r.sip_uri))

    def _purge_expired(self) -> None:
        now = self._clock.now()
        for key in [key for key, r in self._items.items() if r.expires_at <= now]:
            del self._items[key]
