"""Calling the core for one subscriber: a token first, then the calls, and what each came to.

- UNAUTHENTICATED -> the token is refreshed once and the call repeated at once. No token (consent
  missing or revoked, `invalid_grant`) or no answer from the identity server: no call is made,
  and each call comes to that instead of a core outcome.
- Client mode: one product token for every number, so a revoked consent is known only from the
  subscriber's record, read before calls that put something new on the core (not before a
  refresh or a delete).
- A call names the registration as the core knows it (by MSISDN + sip_uri): a delete by what
  the record says was sent, or any route when it says nothing.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from sipreg.config import AuthMode
from sipreg.core.port import CoreCall, CoreClient, CoreOutcome, Operation, Unauthenticated
from sipreg.models import Registration, RouteSpec, mask_msisdn
from sipreg.store.registrations import RegistrationRecord
from sipreg.store.registrations import RegistrationStatus as Status
from sipreg.telemetry import observe, span
from sipreg.tokens import ConsentMissing, ConsentRevoked, TokenError, Tokens
from sipreg.worker.attempt import Run

CLIENT_MODE_REVOKED = "consent revoked: kept off the core until the subscriber consents again"


@dataclass(frozen=True)
class TokenRefused:
    """No token: the subscriber's consent is missing or revoked (permanent for this event)."""

    status: Status
    reason: str


@dataclass(frozen=True)
class Retry:
    """No definite answer before the core could be asked (e.g. the identity server is down)."""

    reason: str


CallOutcome = CoreOutcome | TokenRefused | Retry  # what a call (or the token before it) came to


class CoreCaller:
    """Calls the core with the subscriber's token (or the product's, in client mode). Thread-safe."""

    def __init__(self, *, core: CoreClient, tokens: Tokens, auth_mode: AuthMode) -> None:
        self._core = core
        self._tokens = tokens
        self._auth_mode = auth_mode

    def call(
        self, msisdn: str, calls: Sequence[tuple[Operation, Registration]], run: Run, *, refresh: bool = False
    ) -> list[CallOutcome]:
        """The outcome of each call; a refused token is refreshed once and those calls repeated.
        `refresh`: the calls keep what the core holds alive (they put nothing new on it)."""
        if not calls:
            return []
        puts_on_core = not refresh and any(operation is Operation.UPSERT for operation, _ in calls)
        token = self._token(msisdn, force=False, puts_on_core=puts_on_core)
        if not isinstance(token, str):
            return [token] * len(calls)
        run.called.update(registration.sip_uri for _, registration in calls)
        results: list[CallOutcome] = list(
            self._apply_many([CoreCall(op, reg, token) for op, reg in calls], msisdn)
        )
        refused = [index for index, outcome in enumerate(results) if isinstance(outcome, Unauthenticated)]
        if refused:
            fresh = self._token(msisdn, force=True)
            if not isinstance(fresh, str):
                for index in refused:
                    results[index] = fresh
                return results
            again = self._apply_many([CoreCall(calls[i][0], calls[i][1], fresh) for i in refused], msisdn)
            for index, outcome in zip(refused, again, strict=True):
                results[index] = outcome
        return results

    def _apply_many(self, calls: Sequence[CoreCall], msisdn: str) -> list[CoreOutcome]:
        operations = ",".join(sorted({str(call.operation) for call in calls}))
        with span(
            "core call", msisdn=mask_msisdn(msisdn), operations=operations, calls=len(calls)
        ) as annotate:
            started = time.perf_counter()
            outcomes = self._core.apply_many(calls)
            observe("CoreLatency", (time.perf_counter() - started) * 1000)
            annotate("outcomes", ",".join(sorted({type(outcome).__name__ for outcome in outcomes})))
        return outcomes

    def _token(self, msisdn: str, *, force: bool, puts_on_core: bool = False) -> str | TokenRefused | Retry:
        try:
            if self._auth_mode is AuthMode.CLIENT:
                # The product token works for every number: a revoked consent is only on record.
                # (A refresh needs no look: the revoke ended every active registration of it.)
                if puts_on_core and self._tokens.consent_revoked(msisdn):
                    return TokenRefused(Status.CONSENT_REVOKED, CLIENT_MODE_REVOKED)
                return self._tokens.product_token(force_refresh=force)
            return self._tokens.access_token_for(msisdn, force_refresh=force)
        except ConsentMissing as error:
            return TokenRefused(Status.AWAITING_CONSENT, f"waiting for consent: {error}")
        except ConsentRevoked as error:
            return TokenRefused(Status.CONSENT_REVOKED, str(error))
        except TokenError as error:  # identity server unreachable or refusing this client: retry
            return Retry(f"no token: {type(error).__name__}: {error}")


def may_be_on_core(record: RegistrationRecord | None) -> bool:
    """Whether the core may hold it: applied, a call in flight or of unknown outcome, or no history here."""
    return (
        record is None
        or record.applied is not None
        or record.in_flight is not None
        or record.status in (Status.PENDING, Status.DELETING)
    )


def known_spec(record: RegistrationRecord | None) -> RouteSpec:
    """The parameters a delete names the registration with (the core keys it by MSISDN + sip_uri)."""
    if record is not None and (record.applied or record.desired):
        return record.applied or record.desired  # type: ignore[return-value]  # one is set
    return _ANY_ROUTE


_ANY_ROUTE = RouteSpec(route_type="fork")  # type: ignore[arg-type]  # the core ignores it on delete


def registration_at(msisdn: str, sip_uri: str, spec: RouteSpec | None) -> Registration:
    """The registration a call names: `spec` at (msisdn, sip_uri), any route if none."""
    spec = spec or _ANY_ROUTE
    return spec.at(msisdn, sip_uri)
