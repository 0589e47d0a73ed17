"""What the rest of sipreg sees of the core: the calls it makes, their typed outcomes, and the
`CoreClient` protocol it is given (`sipreg.core.client.GrpcCoreClient`; tests use a fake)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from sipreg.models import ApiVersion, Registration

# --- outcomes -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Applied:
    """The core holds the registration; it lives `ttl_seconds` (None: the core did not say)."""

    ttl_seconds: float | None


@dataclass(frozen=True)
class Deleted:
    """The core no longer holds the registration; `note` says why sipreg concluded so when the core
    refused the delete of one it did not hold."""

    note: str | None = None


@dataclass(frozen=True)
class Rejected:
    """The registration as asked can never be applied: the same request will fail again.

    `by_core` is False when this client refused it before calling (a route type the configured
    API version lacks); otherwise the core answered STATUS_CODE_NOT_ACCEPTABLE (or
    INVALID_ARGUMENT) and `message` is its reason.
    """

    message: str
    by_core: bool = True


@dataclass(frozen=True)
class Unauthenticated:
    """The core refused the token (unknown, expired, revoked) or it could not be sent."""

    detail: str


@dataclass(frozen=True)
class PermissionDenied:
    """The token is valid but lacks the version's scope, or may not act for this number."""

    detail: str


@dataclass(frozen=True)
class Transient:
    """No definite answer: the same call may succeed later.

    `code` is the gRPC status name (UNAVAILABLE after gRPC's own retries ran out,
    DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, INTERNAL, ...) or, for an OK call whose answer
    carries no usable status, `STATUS_CODE_UNSPECIFIED` / `STATUS_CODE_<n>`. The core always
    sets OK or NOT_ACCEPTABLE, so those mean a broken or newer core: we cannot tell whether the
    change was applied, and upsert and delete are safe to repeat, so the caller retries and a
    persistent one ends in the DLQ where an operator sees it, instead of being recorded as the
    subscriber's fault.
    """

    code: str
    detail: str


CoreOutcome = Applied | Deleted | Rejected | Unauthenticated | PermissionDenied | Transient


def outcome_name(outcome: CoreOutcome) -> str:
    """A short label for logs and metrics, e.g. `applied` or `transient:UNAVAILABLE`."""
    match outcome:
        case Transient(code=code):
            return f"transient:{code}"
        case _:
            return type(outcome).__name__.lower()


# --- the port -----------------------------------------------------------------------------------


class Operation(StrEnum):
    UPSERT = "upsert"
    DELETE = "delete"


@dataclass(frozen=True)
class CoreCall:
    """One call to make; the token never shows in its repr."""

    operation: Operation
    registration: Registration
    token: str = field(repr=False)


class PendingOutcome(Protocol):
    def result(self) -> CoreOutcome: ...


class CoreClient(Protocol):
    """What the rest of sipreg needs from the core. Injected; tests use a fake."""

    @property
    def api_version(self) -> ApiVersion: ...

    def upsert(self, registration: Registration, token: str) -> CoreOutcome: ...

    def delete(self, registration: Registration, token: str) -> CoreOutcome: ...

    def apply_many(self, calls: Sequence[CoreCall]) -> list[CoreOutcome]:
        """All calls at once (one channel, HTTP/2 streams); outcomes in the order of `calls`."""
        ...
