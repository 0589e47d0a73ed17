"""The ID tokens' RS256 signing keys: the newest signs, the one before it stays published until
the next rotation, so a client holding the old JWKS still verifies what it was given."""

from __future__ import annotations

import secrets
import threading
from typing import Any

from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey


class SigningKeys:
    """Thread-safe; the first key is made on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: list[RSAKey] = []  # newest first; the first one signs

    def rotate(self, *, keep_previous: bool = True) -> list[str]:
        """A new signing key; the kids now published, the signing one first."""
        key = _new_key()
        with self._lock:
            self._keys = [key, *self._keys[:1]] if keep_previous else [key]
            return [str(k.kid) for k in self._keys]

    def jwks(self) -> dict[str, Any]:
        self._signing_key()
        with self._lock:
            return dict(KeySet(list(self._keys)).as_dict(private=False))

    def sign(self, claims: dict[str, Any]) -> str:
        key = self._signing_key()
        return jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key, algorithms=["RS256"])

    def _signing_key(self) -> RSAKey:
        with self._lock:
            if not self._keys:
                self._keys = [_new_key()]
            return self._keys[0]


def _new_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": secrets.token_hex(8), "use": "sig", "alg": "RS256"})
