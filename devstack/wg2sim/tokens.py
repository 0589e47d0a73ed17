"""The token registry shared by the gRPC core and the (admin and future OIDC) HTTP side."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

from devstack.wg2sim.clock import EmulatorClock

SCOPE_V0 = "call.control:answer_and_initiate"
SCOPE_V1 = "call.routing:write"
SIP_BREAKOUT_SCOPES = (SCOPE_V0, SCOPE_V1)


@dataclass(frozen=True, slots=True)
class Token:
    """An opaque access token as the core sees it; `msisdn` is None for a client token."""

    access_token: str = field(repr=False)  # a bearer secret: never in logs or reprs
    msisdn: str | None
    scopes: frozenset[str]
    client_id: str
    issued_at: float
    expires_at: float

    def expires_in(self, now: float) -> int:
        return max(0, round(self.expires_at - now))


class TokenRegistry:
    """Thread-safe; expiry is judged by the emulator clock."""

    def __init__(self, clock: EmulatorClock) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens: dict[str, Token] = {}

    def mint(
        self,
        msisdn: str | None,
        scopes: Iterable[str],
        ttl_seconds: float,
        client_id: str = "dev",
    ) -> Token:
        now = self._clock.now()
        token = Token(
            access_token=secrets.token_urlsafe(32),  # 256 random bits
            msisdn=msisdn,
            scopes=frozenset(scopes),
            client_id=client_id,
            issued_at=now,
            expires_at=now + ttl_seconds,
        )
        with self._lock:
            self._tokens[token.access_token] = token
        return token

    def lookup(self, access_token: str) -> Token | None:
        """The live token, or None when unknown, expired or revoked."""
        with self._lock:
            token = self._tokens.get(access_token)
            if token is not None and token.expires_at <= self._clock.now():
                del self._tokens[access_token]  # lazy purge
                return None
            return token

    def revoke(self, access_token: str) -> None:
        with self._lock:
            self._tokens.pop(access_token, None)
