"""The check of the identity server's ID tokens (OIDC Core §3.1.3.7): signature by its JWKS, `iss`,
`aud` (and `azp`), `exp`, `iat`, `nonce`, and a `sub` (OIDC Core §2: `sub` and `iat` are required)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

ID_TOKEN_ALGORITHMS = ("RS256",)
CLOCK_LEEWAY_SECONDS = 30
MAX_SUBJECT_CHARS = 255  # OIDC Core §2: `sub` "MUST NOT exceed 255 ASCII characters in length"

# --- ID tokens ----------------------------------------------------------------------------------


class IdTokenError(ValueError):
    """The ID token is not one we can trust (the message says which check failed)."""


class IdTokenVerifier:
    """Checks ID tokens against the identity server's JWKS, fetched once and cached per process.

    Keys rotate without notice: a token signed with a `kid` we do not know triggers one refetch.
    """

    def __init__(
        self,
        fetch_jwks: Callable[[], dict[str, Any]],
        *,
        issuer: str,
        audience: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._fetch = fetch_jwks
        self._issuer = issuer
        self._audience = audience
        self._clock = clock
        self._keys: Any = None
        self._lock = threading.Lock()

    @property
    def issuer(self) -> str:
        return self._issuer

    def _key_set(self, *, refetch: bool) -> Any:
        from joserfc.jwk import KeySet  # noqa: PLC0415

        with self._lock:
            if self._keys is None or refetch:
                answer = self._fetch()
                keys = answer.get("keys") if isinstance(answer, dict) else None
                if not isinstance(keys, list) or not all(isinstance(key, dict) for key in keys):
                    # e.g. `{}`: not kept, so the next token asks again
                    raise IdTokenError("ID token rejected: the identity server's JWKS has no list of keys")
                try:
                    self._keys = KeySet.import_key_set({"keys": keys})
                except (KeyError, TypeError) as error:  # joserfc's own errors are JoseErrors
                    raise IdTokenError(f"ID token rejected: a broken JWKS ({type(error).__name__})") from None
            return self._keys

    def verify(self, id_token: str, *, nonce: str) -> dict[str, Any]:
        from joserfc import jwt  # noqa: PLC0415
        from joserfc.errors import InvalidKeyIdError, JoseError  # noqa: PLC0415

        try:
            try:
                token = jwt.decode(id_token, self._key_set(refetch=False), algorithms=ID_TOKEN_ALGORITHMS)
            except InvalidKeyIdError:
                token = jwt.decode(id_token, self._key_set(refetch=True), algorithms=ID_TOKEN_ALGORITHMS)
            claims: dict[str, Any] = dict(token.claims)
            jwt.JWTClaimsRegistry(
                now=int(self._clock()),
                leeway=CLOCK_LEEWAY_SECONDS,
                iss={"essential": True, "value": self._issuer},
                aud={"essential": True, "value": self._audience},
                exp={"essential": True},
                iat={"essential": True},
                sub={"essential": True},
                nonce={"essential": True, "value": nonce},
            ).validate(claims)
        except IdTokenError:
            raise
        # joserfc reads some malformed headers (a `crit` that is no list) into a TypeError or
        # the like before it checks the signature: each is a token refused, never a crash.
        except (JoseError, ValueError, TypeError, KeyError, AttributeError) as error:
            raise IdTokenError(f"ID token rejected: {type(error).__name__}") from None
        self._check_authorized_party(claims)
        subject = claims["sub"]
        if not isinstance(subject, str) or len(subject) > MAX_SUBJECT_CHARS or not _ascii_text(subject):
            # OIDC Core §2; past it, a provider's subject could outgrow the subscriber's item.
            raise IdTokenError(
                f"ID token rejected: its sub is not {MAX_SUBJECT_CHARS} or fewer ASCII characters"
            )
        return claims

    def _check_authorized_party(self, claims: dict[str, Any]) -> None:
        """OIDC Core §3.1.3.7: a token for several audiences must name us as its `azp`, and an
        `azp`, when there is one, must be our client_id."""
        audience = claims["aud"]
        several = isinstance(audience, list) and len(audience) > 1
        if ("azp" in claims or several) and claims.get("azp") != self._audience:
            raise IdTokenError("ID token rejected: its azp is not this client")


def _ascii_text(value: str) -> bool:
    return value.isascii() and value.isprintable()
