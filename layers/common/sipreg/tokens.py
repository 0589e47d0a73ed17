"""OAuth 2.0 tokens: the identity-server client (authlib), KMS encryption, and the token service.

Everything that needs a token for the core asks a `Tokens`:

    tokens = token_service()                               # one per process (cold start)
    bearer = tokens.access_token_for(msisdn)               # user mode; warm path: no I/O at all
    bearer = tokens.access_token_for(msisdn, force_refresh=True)   # after the core said UNAUTHENTICATED
    bearer = tokens.product_token()                        # client-credentials mode
    tokens.revoke(msisdn)                                  # at the identity server and here

`ConsentMissing` and `ConsentRevoked` are permanent (record them; retrying will not help);
`IdentityServerUnavailableError` is transient (retry later); `IdentityServerRejectedError` means the
identity server refuses this client (configuration: client id, secret or scopes).

Tokens exist in plaintext only in memory: the Subscribers table holds KMS ciphertexts bound to
the MSISDN (encryption context), and no repr, log line or error message carries a token.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any, Protocol

from sipreg.config import TokenSettings
from sipreg.models import ApiVersion, mask_msisdn
from sipreg.store import ConcurrentUpdateError
from sipreg.store.subscribers import (
    ConsentStatus,
    SubscriberRecord,
    Subscribers,
    SubscriberStore,
)
from sipreg.store.subscribers import now as utc_now

if TYPE_CHECKING:
    import httpx
    from authlib.integrations.httpx_client import OAuth2Client

logger = logging.getLogger(__name__)

# The service scope each SipBreakoutService version requires (wg2-interfaces.md §1).
SERVICE_SCOPES: Mapping[ApiVersion, str] = {
    ApiVersion.V0: "call.control:answer_and_initiate",
    ApiVersion.V1: "call.routing:write",
}
# ID token + phone_number claim + a refresh token, then the service scope.
USER_SCOPES = ("openid", "phone", "offline_access")
# RFC 7009 token type hints (names, not secrets).
ACCESS_TOKEN = "access_token"  # noqa: S105
REFRESH_TOKEN = "refresh_token"  # noqa: S105


def default_user_scopes(api_version: ApiVersion) -> tuple[str, ...]:
    return (*USER_SCOPES, SERVICE_SCOPES[api_version])


# --- errors -------------------------------------------------------------------------------------


class TokenError(Exception):
    """Base of every token failure; messages never contain a token or secret."""


class ConsentMissing(TokenError):  # noqa: N818  # the name the worker records
    """No subscriber, or no usable consent on record: the subscriber has to consent first."""


class ConsentRevoked(TokenError):  # noqa: N818
    """The subscriber's consent was revoked (here, or at the identity server: `invalid_grant`)."""


class IdentityServerUnavailableError(TokenError):
    """No answer, a 5xx, or a garbled one: the same call may succeed later."""


class IdentityServerRejectedError(TokenError):
    """The identity server refused the request with an OAuth error (`error` says which)."""

    def __init__(self, error: str, description: str | None = None) -> None:
        super().__init__(f"identity server refused: {error}" + (f" ({description})" if description else ""))
        self.error = error


class GrantRejectedError(IdentityServerRejectedError):
    """`invalid_grant`: the code or refresh token is unknown, used, expired or revoked."""


# --- the identity server port -------------------------------------------------------------------


@dataclass(frozen=True)
class TokenResponse:
    """A token endpoint answer; the tokens never show in its repr."""

    access_token: str = field(repr=False)
    expires_at: float  # epoch seconds, by our clock
    scopes: tuple[str, ...]
    refresh_token: str | None = field(default=None, repr=False)
    id_token: str | None = field(default=None, repr=False)


class IdentityServer(Protocol):
    """What sipreg asks of the operator's OAuth 2.0 / OpenID Connect server."""

    def authorization_url(
        self, *, state: str, code_verifier: str, nonce: str, scopes: Sequence[str], login_hint: str | None
    ) -> str: ...

    def exchange_code(self, code: str, *, code_verifier: str) -> TokenResponse: ...

    def refresh(self, refresh_token: str) -> TokenResponse: ...

    def client_credentials(self, scopes: Sequence[str]) -> TokenResponse: ...

    def revoke(self, token: str, *, token_type_hint: str) -> None: ...

    def userinfo(self, access_token: str) -> dict[str, Any]: ...

    def jwks(self) -> dict[str, Any]: ...


CLIENT_AUTH_METHOD = "client_secret_basic"  # HTTP Basic, as WG2 asks
SecretSource = Callable[[bool], str]
"""Returns the client secret; called with True to bypass a cache (after `invalid_client`)."""


def secrets_manager_secret(secret_id: str, *, max_age_seconds: int) -> SecretSource:
    """The client secret from Secrets Manager, cached per process by powertools."""

    def fetch(force: bool) -> str:
        from aws_lambda_powertools.utilities import parameters  # noqa: PLC0415  # cold-start cost

        value = parameters.get_secret(secret_id, max_age=max_age_seconds, force_fetch=force)
        if not isinstance(value, str) or not value:
            raise IdentityServerRejectedError(
                "client_secret_unreadable", "the secret must be a non-empty string"
            )
        return value

    return fetch


class OAuthClient:
    """`IdentityServer` over HTTP with authlib's httpx client (client auth: HTTP Basic).

    Paths are WG2's (`/oauth2/auth`, `/oauth2/token`, ...). One authlib client per process; a
    lock serialises its use because authlib keeps the last token on the client object.
    """

    def __init__(
        self,
        base_url: str,
        *,
        client_id: str,
        client_secret: SecretSource,
        redirect_uri: str | None = None,
        timeout_seconds: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        base = base_url.rstrip("/")
        self.authorization_endpoint = f"{base}/oauth2/auth"
        self.token_endpoint = f"{base}/oauth2/token"
        self.revocation_endpoint = f"{base}/oauth2/revoke"
        self.userinfo_endpoint = f"{base}/userinfo"
        self.jwks_uri = f"{base}/.well-known/jwks.json"
        self._client_id = client_id
        self._secret = client_secret
        self._redirect_uri = redirect_uri
        self._timeout = timeout_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._session: OAuth2Client | None = None
        self._session_secret_digest: bytes | None = None

    # -- the browser leg: no secret needed ------------------------------------------------------

    def authorization_url(
        self, *, state: str, code_verifier: str, nonce: str, scopes: Sequence[str], login_hint: str | None
    ) -> str:
        from authlib.integrations.httpx_client import OAuth2Client  # noqa: PLC0415

        extra = {"nonce": nonce}
        if login_hint:
            extra["login_hint"] = login_hint
        with OAuth2Client(
            client_id=self._client_id,
            redirect_uri=self._redirect_uri,
            scope=" ".join(scopes),
            code_challenge_method="S256",
        ) as builder:
            url, _ = builder.create_authorization_url(
                self.authorization_endpoint, state=state, code_verifier=code_verifier, **extra
            )
        return str(url)

    # -- the token endpoint -----------------------------------------------------------------------

    def exchange_code(self, code: str, *, code_verifier: str) -> TokenResponse:
        return self._token_call(
            lambda s: s.fetch_token(
                self.token_endpoint,
                grant_type="authorization_code",
                code=code,
                code_verifier=code_verifier,
                redirect_uri=self._redirect_uri,
            ),
            requested=(),
        )

    def refresh(self, refresh_token: str) -> TokenResponse:
        answer = self._token_call(
            lambda s: s.refresh_token(self.token_endpoint, refresh_token=refresh_token), requested=()
        )
        return answer

    def client_credentials(self, scopes: Sequence[str]) -> TokenResponse:
        return self._token_call(
            lambda s: s.fetch_token(
                self.token_endpoint, grant_type="client_credentials", scope=" ".join(scopes)
            ),
            requested=tuple(scopes),
        )

    def revoke(self, token: str, *, token_type_hint: str) -> None:
        response = self._call(
            "revoke",
            lambda s: s.revoke_token(self.revocation_endpoint, token=token, token_type_hint=token_type_hint),
            client_auth=True,
        )
        self._raise_for_status(response)

    # -- public endpoints ---------------------------------------------------------------------------

    def userinfo(self, access_token: str) -> dict[str, Any]:
        response = self._call(
            "userinfo",
            lambda s: s.request(
                "GET",
                self.userinfo_endpoint,
                headers={"Authorization": f"Bearer {access_token}"},
                withhold_token=True,
            ),
        )
        return self._json_object(response)

    def jwks(self) -> dict[str, Any]:
        return self._json_object(
            self._call("jwks", lambda s: s.request("GET", self.jwks_uri, withhold_token=True))
        )

    # -- plumbing -----------------------------------------------------------------------------------

    def _session_for(self, force_secret: bool) -> OAuth2Client:
        from authlib.integrations.httpx_client import OAuth2Client  # noqa: PLC0415

        secret = self._secret(force_secret)
        digest = hashlib.sha256(secret.encode()).digest()
        if self._session is None or digest != self._session_secret_digest:
            if self._session is not None:
                self._session.close()
            self._session = OAuth2Client(
                client_id=self._client_id,
                client_secret=secret,
                token_endpoint_auth_method=CLIENT_AUTH_METHOD,
                revocation_endpoint_auth_method=CLIENT_AUTH_METHOD,
                redirect_uri=self._redirect_uri,
                timeout=self._timeout,
            )
            self._session_secret_digest = digest
        return self._session

    def _call(self, what: str, action: Callable[[OAuth2Client], Any], *, client_auth: bool = False) -> Any:
        """Runs `action`, mapping failures to our errors; retries once with a re-read secret when
        the server says `invalid_client` (the secret may have been rotated)."""
        import httpx  # noqa: PLC0415
        from authlib.integrations.base_client import OAuthError  # noqa: PLC0415

        for attempt in range(2):
            with self._lock:
                try:
                    session = self._session_for(force_secret=attempt > 0)
                    answer = action(session)
                    unauthorized = isinstance(answer, httpx.Response) and answer.status_code == 401
                    if client_auth and unauthorized and attempt == 0:
                        continue  # a plain 401 from an endpoint with client auth: bad secret
                    return answer
                except OAuthError as error:
                    if error.error == "invalid_client" and attempt == 0:
                        continue
                    if error.error == "invalid_grant":
                        raise GrantRejectedError(error.error, error.description) from None
                    raise IdentityServerRejectedError(str(error.error), error.description) from None
                except httpx.HTTPStatusError as error:
                    status = error.response.status_code
                    if status >= 500 or status == 429:
                        raise IdentityServerUnavailableError(f"{what}: HTTP {status}") from None
                    raise IdentityServerRejectedError(
                        f"http_{status}", f"{what} answered HTTP {status}"
                    ) from None
                except httpx.TransportError as error:
                    raise IdentityServerUnavailableError(f"{what}: {type(error).__name__}") from None
                except ValueError:
                    raise IdentityServerUnavailableError(
                        f"{what}: the answer was not a JSON object"
                    ) from None
        raise IdentityServerRejectedError("invalid_client", f"{what}: the client id or secret was refused")

    def _token_call(
        self, action: Callable[[OAuth2Client], Any], *, requested: tuple[str, ...]
    ) -> TokenResponse:
        token = self._call("token", action)
        access_token = token.get("access_token")
        if not isinstance(access_token, str) or not access_token:
            raise IdentityServerUnavailableError("token: the answer has no access_token")
        expires_in = token.get("expires_in")
        lifetime = (
            float(expires_in) if isinstance(expires_in, int | float | str) and expires_in != "" else 3600.0
        )
        scope = token.get("scope")
        return TokenResponse(
            access_token=access_token,
            expires_at=self._clock() + lifetime,
            scopes=tuple(scope.split()) if isinstance(scope, str) else requested,
            refresh_token=token.get("refresh_token") or None,
            id_token=token.get("id_token") or None,
        )

    def _raise_for_status(self, response: httpx.Response) -> None:
        if response.status_code < 400:
            return
        if response.status_code >= 500 or response.status_code == 429:
            raise IdentityServerUnavailableError(f"HTTP {response.status_code}")
        try:
            body = response.json()
            error = str(body.get("error", f"http_{response.status_code}"))
            description = body.get("error_description")
        except ValueError:
            error, description = f"http_{response.status_code}", None
        raise IdentityServerRejectedError(error, description)

    def _json_object(self, response: httpx.Response) -> dict[str, Any]:
        self._raise_for_status(response)
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise IdentityServerUnavailableError("the answer was not a JSON object")
        return body


# --- KMS ----------------------------------------------------------------------------------------


class Cipher(Protocol):
    def encrypt(self, plaintext: str, *, msisdn: str) -> bytes: ...

    def decrypt(self, ciphertext: bytes, *, msisdn: str) -> str: ...


class KmsCipher:
    """Encrypts each token with the data key; the MSISDN is the encryption context, so a
    ciphertext copied to another subscriber's item does not decrypt."""

    PURPOSE = "sipreg-oauth-token"

    def __init__(self, key_id: str, *, client: Any = None) -> None:
        if client is None:
            from sipreg.aws import client as aws_client  # noqa: PLC0415

            client = aws_client("kms")
        self._key_id = key_id
        self._kms = client

    def _context(self, msisdn: str) -> dict[str, str]:
        return {"msisdn": msisdn, "purpose": self.PURPOSE}

    def encrypt(self, plaintext: str, *, msisdn: str) -> bytes:
        answer = self._kms.encrypt(
            KeyId=self._key_id, Plaintext=plaintext.encode(), EncryptionContext=self._context(msisdn)
        )
        blob: bytes = answer["CiphertextBlob"]
        return blob

    def decrypt(self, ciphertext: bytes, *, msisdn: str) -> str:
        answer = self._kms.decrypt(
            KeyId=self._key_id, CiphertextBlob=ciphertext, EncryptionContext=self._context(msisdn)
        )
        plaintext: bytes = answer["Plaintext"]
        return plaintext.decode()


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
        """Revokes at the identity server, deletes the stored tokens, marks consent revoked."""
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
        if claimed.refresh_token_ciphertext is None:
            self._release(claimed)
            raise ConsentMissing("the stored consent has no refresh token: the subscriber must consent again")
        refresh_token = self._cipher.decrypt(claimed.refresh_token_ciphertext, msisdn=msisdn)
        try:
            answer = self._identity.refresh(refresh_token)
        except GrantRejectedError:
            logger.warning(
                "refresh refused with invalid_grant: consent of %s marked revoked", mask_msisdn(msisdn)
            )
            self._mark_revoked(claimed, reason="invalid_grant at refresh")
            raise ConsentRevoked("the identity server no longer accepts this subscriber's consent") from None
        except TokenError:
            self._release(claimed)
            raise
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
        """Stores a fresh consent (new or renewed), replacing whatever was on record."""
        for _ in range(5):
            existing = self._store.get(msisdn)
            base = existing or SubscriberRecord(
                msisdn=msisdn, status=ConsentStatus.CONSENTED, updated_at=utc_now()
            )
            record = self._with_tokens(base, answer, keep_refresh=None).model_copy(
                update={"subject": subject, "consented_at": utc_now()}
            )
            try:
                saved = self._store.save(record, read_version=existing.version if existing else None)
            except ConcurrentUpdateError:
                continue
            self._remember(saved, plaintext=answer.access_token)
            if existing is not None and existing.refresh_token_ciphertext is not None:
                self._retire(existing.refresh_token_ciphertext, msisdn=msisdn)
            return saved
        raise IdentityServerUnavailableError("the subscriber record kept changing; try again")

    def _retire(self, refresh_ciphertext: bytes, *, msisdn: str) -> None:
        """Revokes the grant a renewed consent replaced, so no live grant is left unheld.

        Best effort: the new consent is stored either way, and the old grant dies with its
        refresh token's lifetime if the identity server cannot be reached now.
        """
        try:
            token = self._cipher.decrypt(refresh_ciphertext, msisdn=msisdn)
            self._identity.revoke(token, token_type_hint=REFRESH_TOKEN)
        except Exception as error:  # never fail a consent over the old grant
            logger.warning(
                "could not revoke the replaced grant of %s: %s", mask_msisdn(msisdn), type(error).__name__
            )

    def revoke(self, msisdn: str) -> None:
        record = self._store.get(msisdn)
        if record is None:
            raise ConsentMissing("no consent on record for this subscriber")
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

    # -- client mode --------------------------------------------------------------------------------

    def product_token(self, *, force_refresh: bool = False) -> str:
        with self._product_lock:
            if not force_refresh and self._product and self._product[1] - self._clock() > self._margin:
                return self._product[0]
            answer = self._identity.client_credentials([self._service_scope])
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


# --- wiring -------------------------------------------------------------------------------------


def identity_server(settings: TokenSettings, *, redirect_uri: str | None = None) -> OAuthClient:
    return OAuthClient(
        settings.identity_server_url,
        client_id=settings.client_id,
        client_secret=secrets_manager_secret(
            settings.client_secret_arn, max_age_seconds=settings.secret_max_age_seconds
        ),
        redirect_uri=redirect_uri,
        timeout_seconds=settings.http_timeout_seconds,
    )


def build_token_service(settings: TokenSettings, *, identity: IdentityServer | None = None) -> TokenService:
    return TokenService(
        store=SubscriberStore(settings.subscribers_table),
        cipher=KmsCipher(settings.data_key_id),
        identity=identity or identity_server(settings),
        service_scope=SERVICE_SCOPES[settings.api_version],
        refresh_margin_seconds=settings.refresh_margin_seconds,
        lease_seconds=max(30.0, 3 * settings.http_timeout_seconds),
    )


@cache
def token_service() -> TokenService:
    """The process-wide token service, configured from the environment (`TokenSettings`)."""
    return build_token_service(TokenSettings.from_env())
