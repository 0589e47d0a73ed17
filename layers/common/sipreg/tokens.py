"""The token service: a valid access token for each subscriber, from the Subscribers table.

Everything that needs a token for the core asks a `Tokens`:

    tokens = sipreg.wiring.parts.token_service(settings)  # one per process (cold start)
    bearer = tokens.access_token_for(msisdn)               # user mode; warm path: no I/O at all
    bearer = tokens.access_token_for(msisdn, force_refresh=True)   # after the core said UNAUTHENTICATED
    bearer = tokens.product_token()                        # client-credentials mode
    tokens.revoke(msisdn)                                  # at the identity server and here

`ConsentMissing` and `ConsentRevoked` are permanent (record them; retrying will not help);
`IdentityServerUnavailableError` is transient (retry later); `IdentityServerRejectedError` means the
identity server refuses this client (configuration: client id, secret or scopes).

The parts: the OAuth client (`sipreg.oauth_client`), the KMS cipher (`sipreg.cipher`) and the
service here, which the consent flow uses through `ConsentTokens` (`record_consent`).

A consent whose token response carried no refresh token (the provider did not grant offline
access) is stored with `refresh_token_missing` set: it works until its access token expires,
and then `access_token_for` raises `ConsentMissing` saying so (the worker records the
registration as `awaiting_consent` with that reason), without asking the identity server.

A renewed consent never revokes the tokens it replaces. A certified provider may issue the new
code under the grant the old tokens belong to (same browser session), and revoking a refresh
token may revoke its whole grant (RFC 7009 §2.1), the new tokens with it; sipreg cannot tell
from the token response whether the grant is shared. Left alone, a replaced grant that is not
shared stays unused (its ciphertext is overwritten here) until the provider expires it or the
subscriber revokes it at the operator; `revoke(msisdn)` still revokes what sipreg holds.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from sipreg.cipher import Cipher, KmsCipher
from sipreg.models import ApiVersion, mask_msisdn
from sipreg.oauth_client import (
    GrantRejectedError,
    IdentityServer,
    IdentityServerRejectedError,
    IdentityServerUnavailableError,
    OAuthClient,
    TokenError,
    TokenResponse,
)
from sipreg.store import ConcurrentUpdateError
from sipreg.store.subscribers import (
    ConsentStatus,
    SubscriberRecord,
    Subscribers,
)
from sipreg.store.subscribers import now as utc_now
from sipreg.telemetry import count, span

# Re-exported: callers import these from here (the worker, the CLI, tests).
__all__ = [
    "ACCESS_TOKEN",
    "REFRESH_TOKEN",
    "SERVICE_SCOPES",
    "USER_SCOPES",
    "Cipher",
    "ConsentMissing",
    "ConsentRevoked",
    "ConsentTokens",
    "GrantRejectedError",
    "IdentityServer",
    "IdentityServerRejectedError",
    "IdentityServerUnavailableError",
    "KmsCipher",
    "OAuthClient",
    "TokenError",
    "TokenResponse",
    "TokenService",
    "Tokens",
    "default_user_scopes",
]

logger = logging.getLogger(__name__)

# The service scope each SipBreakoutService version requires (docs/reference/wg2-interfaces.md §1).
SERVICE_SCOPES: Mapping[ApiVersion, str] = {
    ApiVersion.V0: "call.control:answer_and_initiate",
    ApiVersion.V1: "call.routing:write",
}
# ID token + phone_number claim + a refresh token, then the service scope.
OFFLINE_ACCESS = "offline_access"  # a refresh token (OIDC Core §11)
USER_SCOPES = ("openid", "phone", OFFLINE_ACCESS)
# RFC 7009 token type hints (names, not secrets).
ACCESS_TOKEN = "access_token"  # noqa: S105
REFRESH_TOKEN = "refresh_token"  # noqa: S105
CONSENT_ENDED_WITHOUT_REFRESH = (
    "consent expired: the identity server granted no refresh token (no offline access), "
    "so the subscriber must consent again"
)


def default_user_scopes(api_version: ApiVersion) -> tuple[str, ...]:
    return (*USER_SCOPES, SERVICE_SCOPES[api_version])


class ConsentMissing(TokenError):  # noqa: N818  # the name the worker records
    """No subscriber, or no usable consent on record: the subscriber has to consent first."""


class ConsentRevoked(TokenError):  # noqa: N818
    """The subscriber's consent was revoked (here, or at the identity server: `invalid_grant`)."""


# --- the token service --------------------------------------------------------------------------


class Tokens(Protocol):
    """What the registration worker and the operator tools need; easy to fake."""

    def access_token_for(self, msisdn: str, *, force_refresh: bool = False) -> str:
        """A valid access token for the subscriber (user mode).

        `force_refresh=True` after the core refused the token: returns a newer token someone
        else stored meanwhile, or refreshes. Raises ConsentMissing, ConsentRevoked,
        IdentityServerUnavailableError (transient) or IdentityServerRejectedError (configuration).
        """
        ...

    def product_token(self, *, force_refresh: bool = False) -> str:
        """The deployment's client-credentials token (client mode)."""
        ...

    def revoke(self, msisdn: str) -> None:
        """Revokes at the identity server, deletes the stored tokens, marks consent revoked (also
        of a subscriber with no consent on record: client mode keeps no tokens per subscriber)."""
        ...

    def consent_revoked(self, msisdn: str) -> bool:
        """Whether the subscriber's consent is on record as revoked (client mode asks before it
        puts a number on the core: its product token works for every number)."""
        ...


class ConsentTokens(Tokens, Protocol):
    """`Tokens` plus what the consent flow needs: storing a fresh consent."""

    def record_consent(self, msisdn: str, answer: TokenResponse, *, subject: str | None) -> SubscriberRecord:
        """Stores a new or renewed consent (KMS-encrypted), replacing what was on record."""
        ...

    def holds_consent(self, msisdn: str) -> bool:
        """True when a consent with tokens is on record for the subscriber."""
        ...


@dataclass(frozen=True)
class _Cached:
    token: str = field(repr=False)
    expires_at: float
    ciphertext: bytes = field(repr=False)  # what it was decrypted from: tells a newer one apart


class TokenService:
    """`Tokens` over the Subscribers table, KMS and the identity server.

    Refreshing is guarded twice: a per-process lock (stripes by MSISDN) and a lease in the
    subscriber's item, claimed with a conditional write. Only the lease holder calls the
    identity server; everyone else waits for the new version and uses its token, so a rotated
    refresh token is never used twice (the identity server would revoke the whole family).
    """

    CACHE_SIZE = 10_000
    LOCK_STRIPES = 32

    def __init__(
        self,
        *,
        store: Subscribers,
        cipher: Cipher,
        identity: IdentityServer,
        service_scope: str,
        refresh_margin_seconds: float = 120.0,
        lease_seconds: float = 30.0,
        poll_seconds: float = 0.05,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._store = store
        self._cipher = cipher
        self._identity = identity
        self._service_scope = service_scope
        self._margin = refresh_margin_seconds
        self._lease = lease_seconds
        self._poll = poll_seconds
        self._clock = clock
        self._sleep = sleep
        self._cache: OrderedDict[str, _Cached] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._stripes = [threading.Lock() for _ in range(self.LOCK_STRIPES)]
        self._product: tuple[str, float] | None = None
        self._product_lock = threading.Lock()

    # -- user mode ----------------------------------------------------------------------------------

    def access_token_for(self, msisdn: str, *, force_refresh: bool = False) -> str:
        cached = self._cached(msisdn)
        if cached and not force_refresh and cached.expires_at - self._clock() > self._margin:
            return cached.token
        refused = cached.ciphertext if (cached and force_refresh) else None
        self._forget(msisdn)
        with self._stripes[hash(msisdn) % self.LOCK_STRIPES]:
            return self._from_store(msisdn, force_refresh=force_refresh, refused=refused)

    def _from_store(self, msisdn: str, *, force_refresh: bool, refused: bytes | None) -> str:
        deadline = self._clock() + self._lease + 1.0
        baseline = refused  # the token we must not hand out again (force) or first saw stored
        while True:
            record = self._consented(msisdn)
            now = self._clock()
            assert record.access_token_ciphertext is not None  # _consented checked it
            if baseline is None:
                baseline = record.access_token_ciphertext
            remaining = (record.access_expires_at or 0.0) - now
            if remaining > self._margin and not force_refresh:
                return self._remember(record)
            if record.access_token_ciphertext != baseline and remaining > 0:
                return self._remember(record)  # someone refreshed meanwhile: theirs is ours
            if record.refresh_token_ciphertext is None:
                # Nothing to refresh with: no lease, no call; the subscriber must consent again.
                raise ConsentMissing(CONSENT_ENDED_WITHOUT_REFRESH)
            if record.lease_held(now):
                if now > deadline:
                    raise IdentityServerUnavailableError(
                        "another refresh of this subscriber's token takes too long"
                    )
                self._sleep(self._poll)
                continue
            try:
                claimed = self._store.save(
                    record.model_copy(update={"refresh_lease_until": now + self._lease}),
                    read_version=record.version,
                )
            except ConcurrentUpdateError:
                continue  # someone else changed it first: look again
            return self._refresh(claimed)

    def _refresh(self, claimed: SubscriberRecord) -> str:
        msisdn = claimed.msisdn
        assert claimed.refresh_token_ciphertext is not None  # _from_store checked it
        refresh_token = self._cipher.decrypt(claimed.refresh_token_ciphertext, msisdn=msisdn)
        try:
            with span("token refresh", msisdn=mask_msisdn(msisdn)):
                answer = self._identity.refresh(refresh_token)
        except GrantRejectedError:
            count("TokenRefreshFailures")
            logger.warning(
                "refresh refused with invalid_grant: consent of %s marked revoked", mask_msisdn(msisdn)
            )
            self._mark_revoked(claimed, reason="invalid_grant at refresh")
            raise ConsentRevoked("the identity server no longer accepts this subscriber's consent") from None
        except TokenError:
            count("TokenRefreshFailures")
            self._release(claimed)
            raise
        count("TokenRefreshes")
        updated = self._with_tokens(claimed, answer, keep_refresh=claimed.refresh_token_ciphertext)
        try:
            saved = self._store.save(updated, read_version=claimed.version)
        except ConcurrentUpdateError:
            # Our lease ran out and someone else took over: the rotated refresh token is lost.
            logger.error("refreshed token of %s could not be stored (lease lost)", mask_msisdn(msisdn))
            raise IdentityServerUnavailableError(
                "the refreshed token could not be stored; try again"
            ) from None
        logger.info("refreshed the access token of %s", mask_msisdn(msisdn))
        return self._remember(saved, plaintext=answer.access_token)

    def _consented(self, msisdn: str) -> SubscriberRecord:
        record = self._store.get(msisdn)
        if record is None:
            raise ConsentMissing("no consent on record for this subscriber")
        if record.status is ConsentStatus.REVOKED:
            raise ConsentRevoked(f"consent revoked ({record.revoked_reason or 'no reason recorded'})")
        if not record.has_tokens:
            raise ConsentMissing("no tokens on record for this subscriber")
        return record

    def _with_tokens(
        self, record: SubscriberRecord, answer: TokenResponse, *, keep_refresh: bytes | None
    ) -> SubscriberRecord:
        msisdn = record.msisdn
        refresh = (
            self._cipher.encrypt(answer.refresh_token, msisdn=msisdn)
            if answer.refresh_token
            else keep_refresh
        )
        return record.model_copy(
            update={
                "status": ConsentStatus.CONSENTED,
                "access_token_ciphertext": self._cipher.encrypt(answer.access_token, msisdn=msisdn),
                "refresh_token_ciphertext": refresh,
                "access_expires_at": answer.expires_at,
                "scopes": answer.scopes or record.scopes,
                "refresh_lease_until": None,
                "revoked_at": None,
                "revoked_reason": None,
            }
        )

    def _release(self, claimed: SubscriberRecord) -> None:
        with contextlib.suppress(ConcurrentUpdateError):  # if someone else moved on, the lease is theirs
            self._store.save(
                claimed.model_copy(update={"refresh_lease_until": None}), read_version=claimed.version
            )

    def _mark_revoked(self, record: SubscriberRecord, *, reason: str) -> SubscriberRecord | None:
        revoked = record.model_copy(
            update={
                "status": ConsentStatus.REVOKED,
                "access_token_ciphertext": None,
                "refresh_token_ciphertext": None,
                "access_expires_at": None,
                "refresh_lease_until": None,
                "revoked_at": utc_now(),
                "revoked_reason": reason,
            }
        )
        self._forget(record.msisdn)
        try:
            return self._store.save(revoked, read_version=record.version)
        except ConcurrentUpdateError:
            return None

    # -- consent and revocation ---------------------------------------------------------------------

    def record_consent(self, msisdn: str, answer: TokenResponse, *, subject: str | None) -> SubscriberRecord:
        """Stores a fresh consent (new or renewed), replacing whatever was on record.

        The replaced tokens are not revoked (see the module's docstring: the new ones may share
        their grant). A consent without a refresh token is stored, marked `refresh_token_missing`.
        """
        if answer.refresh_token is None:
            logger.warning(
                "consent of %s has no refresh token: it lasts until its access token expires",
                mask_msisdn(msisdn),
            )
        for _ in range(5):
            existing = self._store.get(msisdn)
            base = existing or SubscriberRecord(
                msisdn=msisdn, status=ConsentStatus.CONSENTED, updated_at=utc_now()
            )
            record = self._with_tokens(base, answer, keep_refresh=None).model_copy(
                update={
                    "subject": subject,
                    "consented_at": utc_now(),
                    "refresh_token_missing": answer.refresh_token is None,
                }
            )
            try:
                saved = self._store.save(record, read_version=existing.version if existing else None)
            except ConcurrentUpdateError:
                continue
            self._remember(saved, plaintext=answer.access_token)
            return saved
        raise IdentityServerUnavailableError("the subscriber record kept changing; try again")

    def holds_consent(self, msisdn: str) -> bool:
        record = self._store.get(msisdn)
        return record is not None and record.status is ConsentStatus.CONSENTED and record.has_tokens

    def revoke(self, msisdn: str) -> None:
        record = self._store.get(msisdn)
        while record is None:  # nothing to revoke anywhere: only the mark that it was
            marked = SubscriberRecord(
                msisdn=msisdn,
                status=ConsentStatus.REVOKED,
                revoked_at=utc_now(),
                revoked_reason="revoked",
                updated_at=utc_now(),
            )
            try:
                self._store.save(marked, read_version=None)
                logger.info("marked the consent of %s revoked (none on record)", mask_msisdn(msisdn))
                return
            except ConcurrentUpdateError:
                record = self._store.get(msisdn)  # a consent came meanwhile: revoke that one
        if record.status is ConsentStatus.REVOKED and not record.has_tokens:
            self._forget(msisdn)
            return  # already revoked: nothing left to do
        # At the identity server first: if it cannot be reached, nothing changes here and the
        # caller can try again (deleting first would leave live tokens we no longer hold).
        if record.refresh_token_ciphertext is not None:
            token = self._cipher.decrypt(record.refresh_token_ciphertext, msisdn=msisdn)
            self._identity.revoke(token, token_type_hint=REFRESH_TOKEN)
        if record.access_token_ciphertext is not None:
            token = self._cipher.decrypt(record.access_token_ciphertext, msisdn=msisdn)
            self._identity.revoke(token, token_type_hint=ACCESS_TOKEN)
        while self._mark_revoked(record, reason="revoked") is None:
            latest = self._store.get(msisdn)
            if latest is None or latest.status is ConsentStatus.REVOKED:
                break
            record = latest
        logger.info("revoked the consent of %s", mask_msisdn(msisdn))

    def consent_revoked(self, msisdn: str) -> bool:
        record = self._store.get(msisdn)
        return record is not None and record.status is ConsentStatus.REVOKED

    # -- client mode --------------------------------------------------------------------------------

    def product_token(self, *, force_refresh: bool = False) -> str:
        with self._product_lock:
            if not force_refresh and self._product and self._product[1] - self._clock() > self._margin:
                return self._product[0]
            try:
                with span("token client credentials"):
                    answer = self._identity.client_credentials([self._service_scope])
            except TokenError:
                count("TokenRefreshFailures")
                raise
            count("TokenRefreshes")
            self._product = (answer.access_token, answer.expires_at)
            logger.info("fetched a client-credentials token")
            return answer.access_token

    # -- the in-memory cache ------------------------------------------------------------------------

    def _cached(self, msisdn: str) -> _Cached | None:
        with self._cache_lock:
            return self._cache.get(msisdn)

    def _forget(self, msisdn: str) -> None:
        with self._cache_lock:
            self._cache.pop(msisdn, None)

    def _remember(self, record: SubscriberRecord, *, plaintext: str | None = None) -> str:
        assert record.access_token_ciphertext is not None
        token = plaintext or self._cipher.decrypt(record.access_token_ciphertext, msisdn=record.msisdn)
        entry = _Cached(token, record.access_expires_at or 0.0, record.access_token_ciphertext)
        with self._cache_lock:
            self._cache[record.msisdn] = entry
            self._cache.move_to_end(record.msisdn)
            while len(self._cache) > self.CACHE_SIZE:
                self._cache.popitem(last=False)
        return token
