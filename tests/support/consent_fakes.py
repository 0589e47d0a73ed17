"""In-memory fakes at the consent ports' boundaries (DynamoDB tables, KMS, the identity server).

Each keeps the contract of the real thing that the code relies on: versioned conditional saves,
ciphertexts bound to the MSISDN, single-use states, rotating refresh tokens.
"""

from __future__ import annotations

import base64
import secrets
import threading
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

from botocore.exceptions import ClientError

from sipreg.store import ConcurrentUpdateError
from sipreg.store.oauth_states import OAuthState, StateProblem, StateRefusedError
from sipreg.store.subscribers import SubscriberRecord
from sipreg.tokens import (
    GrantRejectedError,
    IdentityServerUnavailableError,
    TokenResponse,
)


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeSubscribers:
    def __init__(self) -> None:
        self.records: dict[str, SubscriberRecord] = {}
        self.gets = 0
        self.saves = 0
        self._lock = threading.Lock()

    def get(self, msisdn: str) -> SubscriberRecord | None:
        with self._lock:
            self.gets += 1
            return self.records.get(msisdn)

    def save(self, record: SubscriberRecord, *, read_version: int | None) -> SubscriberRecord:
        with self._lock:
            current = self.records.get(record.msisdn)
            if (current.version if current else None) != read_version:
                raise ConcurrentUpdateError("changed")
            saved = record.model_copy(update={"version": (read_version or 0) + 1})
            self.records[record.msisdn] = saved
            self.saves += 1
            return saved


class FakeCipher:
    """Reversible, but bound to the MSISDN like KMS's encryption context."""

    def __init__(self) -> None:
        self.decrypts = 0
        self.encrypts = 0

    def encrypt(self, plaintext: str, *, msisdn: str) -> bytes:
        self.encrypts += 1
        salt = secrets.token_bytes(4)  # KMS ciphertexts differ each time too
        return b"ct:" + salt + base64.b64encode(f"{msisdn}|{plaintext}".encode())

    def decrypt(self, ciphertext: bytes, *, msisdn: str) -> str:
        self.decrypts += 1
        owner, _, plaintext = base64.b64decode(ciphertext[7:]).decode().partition("|")
        if owner != msisdn:
            raise ValueError("InvalidCiphertextException")
        return plaintext


class FakeIdentityServer:
    """Rotating refresh tokens; a used or unknown one is `invalid_grant`."""

    def __init__(self, clock: Clock, *, lifetime: float = 3600.0) -> None:
        self.clock = clock
        self.lifetime = lifetime
        self.live_refresh: dict[str, str] = {}  # refresh token -> msisdn
        self.revoked: list[tuple[str, str]] = []
        self.refresh_calls = 0
        self.client_credentials_calls = 0
        self.fail_with: Exception | None = None
        self.codes: dict[str, tuple[str, TokenResponse]] = {}  # code -> (verifier, answer)
        self.userinfo_answer: dict[str, Any] = {}
        self.keys: dict[str, Any] = {"keys": []}
        self.jwks_calls = 0
        self.announces_iss = False

    def issue(
        self,
        msisdn: str,
        *,
        scopes: Sequence[str] = ("call.control:answer_and_initiate",),
        refresh_token: bool = True,
    ) -> TokenResponse:
        refresh: str | None = f"rt-{secrets.token_hex(8)}" if refresh_token else None
        if refresh:
            self.live_refresh[refresh] = msisdn
        return TokenResponse(
            access_token=f"at-{secrets.token_hex(8)}",
            expires_at=self.clock() + self.lifetime,
            scopes=tuple(scopes),
            refresh_token=refresh,
        )

    def authorization_url(
        self, *, state: str, code_verifier: str, nonce: str, scopes: Sequence[str], login_hint: str | None
    ) -> str:
        query = {
            "state": state,
            "nonce": nonce,
            "scope": " ".join(scopes),
            "verifier_len": len(code_verifier),
        }
        if login_hint:
            query["login_hint"] = login_hint
        return "https://id.example/oauth2/auth?" + urlencode(query)

    def issuer_in_authorization_response(self) -> bool:
        self._maybe_fail()
        return self.announces_iss

    def exchange_code(self, code: str, *, code_verifier: str) -> TokenResponse:
        self._maybe_fail()
        verifier, answer = self.codes.pop(code, ("", None))
        if answer is None or verifier != code_verifier:
            raise GrantRejectedError("invalid_grant")
        return answer

    def refresh(self, refresh_token: str) -> TokenResponse:
        self.refresh_calls += 1
        self._maybe_fail()
        msisdn = self.live_refresh.pop(refresh_token, None)
        if msisdn is None:
            raise GrantRejectedError("invalid_grant")
        return self.issue(msisdn)

    def client_credentials(self, scopes: Sequence[str]) -> TokenResponse:
        self.client_credentials_calls += 1
        self._maybe_fail()
        return TokenResponse(
            access_token=f"cc-{secrets.token_hex(8)}",
            expires_at=self.clock() + self.lifetime,
            scopes=tuple(scopes),
        )

    def revoke(self, token: str, *, token_type_hint: str) -> None:
        self._maybe_fail()
        self.live_refresh.pop(token, None)
        self.revoked.append((token_type_hint, token))

    def userinfo(self, access_token: str) -> dict[str, Any]:
        return dict(self.userinfo_answer)

    def jwks(self) -> dict[str, Any]:
        self.jwks_calls += 1
        return self.keys

    def _maybe_fail(self) -> None:
        if self.fail_with is not None:
            raise self.fail_with


class FakeStates:
    def __init__(self) -> None:
        self.items: dict[str, OAuthState] = {}

    def put(self, record: OAuthState) -> None:
        self.items[record.state] = record

    def consume(self, state: str, *, now: float) -> OAuthState:
        if len(state.encode()) > 2048:  # as DynamoDB refuses a partition key over 2048 bytes
            raise ClientError(
                {
                    "Error": {
                        "Code": "ValidationException",
                        "Message": "Size of hashkey has exceeded 2048 bytes",
                    }
                },
                "DeleteItem",
            )
        record = self.items.get(state)
        if record is None:
            raise StateRefusedError(StateProblem.UNKNOWN)
        if record.expires_at <= now:
            raise StateRefusedError(StateProblem.EXPIRED)
        del self.items[state]
        return record


class FakeEvents:
    def __init__(self) -> None:
        self.consented_msisdns: list[str] = []
        self.event_ids: list[str] = []
        self.fail_with: Exception | None = None  # the queue did not take the announcement

    def consented(self, msisdn: str, *, event_id: str) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.consented_msisdns.append(msisdn)
        self.event_ids.append(event_id)


UNAVAILABLE = IdentityServerUnavailableError("token: ConnectError")
