"""What each answer of the core means: a gRPC status, or OK with a `StatusCode` in the body."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf.duration_pb2 import Duration

from sipreg.core.port import (
    Applied,
    CoreOutcome,
    Deleted,
    Operation,
    PermissionDenied,
    Rejected,
    Transient,
    Unauthenticated,
)
from sipreg.proto.wgtwo.sipbreakout.v1 import sipbreakout_pb2 as sipbreakout_v1

# --- answers to outcomes ------------------------------------------------------------------------

# The core refuses a registration with NOT_ACCEPTABLE in the answer; INVALID_ARGUMENT says the same
# of the request, so it is a rejection too. Every status not handled in `outcome_from_rpc_error`
# is Transient: retried, and if it persists it ends in the DLQ for an operator instead of being
# recorded as the subscriber's fault.
_PERMANENT_REJECTIONS = frozenset({grpc.StatusCode.INVALID_ARGUMENT})
# A delete the core refuses names a registration it does not hold: never made, expired, deleted
# already (a retry whose first attempt went through but whose answer was lost), or one it could
# never have made. WG2's documents do not say what a delete of those answers; a core may refuse it
# (NOT_ACCEPTABLE in the answer, or gRPC NOT_FOUND, as Google's API design has it). Either way
# what the delete wanted holds. (INVALID_ARGUMENT stays a rejection: a malformed request says
# nothing of what the core holds.)
_NOT_HELD_ON_DELETE = frozenset({grpc.StatusCode.NOT_FOUND})


def outcome_from_status(
    operation: Operation, status_code: int, error_message: str, ttl: Duration | None
) -> CoreOutcome:
    """The outcome of a call the core answered with gRPC OK and a `StatusCode` in the body."""
    # The StatusCode enum has the same numbers in v0 and v1.
    if status_code == sipbreakout_v1.STATUS_CODE_OK:
        if operation is Operation.DELETE:
            return Deleted()
        return Applied(ttl_seconds=_ttl_seconds(ttl))
    if status_code == sipbreakout_v1.STATUS_CODE_NOT_ACCEPTABLE:
        if operation is Operation.DELETE:
            return _not_held(f"NOT_ACCEPTABLE: {error_message or 'the core gave no reason'}")
        return Rejected(message=error_message or "not acceptable (the core gave no reason)")
    name = sipbreakout_v1.StatusCode.Name(status_code) if status_code == 0 else f"STATUS_CODE_{status_code}"
    return Transient(code=name, detail=error_message or "the core answered without a usable status code")


# The longest time to live sipreg takes from the core: a registration is upserted again at least
# daily, whatever the core says (WG2's is 3,600 s), and a Duration's maximum (10,000 years) would
# overflow every datetime it meets.
MAX_TTL_SECONDS = 86_400.0


def _ttl_seconds(ttl: Duration | None) -> float | None:
    """The core's time to live in seconds: None when it gave none or one of no time at all."""
    if ttl is None:
        return None
    seconds = ttl.seconds + ttl.nanos / 1e9
    return min(seconds, MAX_TTL_SECONDS) if seconds > 0 else None


def _not_held(answer: str) -> Deleted:
    return Deleted(note=f"the core holds no such registration (its answer to the delete: {answer})")


def outcome_from_rpc_error(operation: Operation, code: grpc.StatusCode, details: str) -> CoreOutcome:
    """The outcome of a call that ended with a gRPC status other than OK."""
    details = details or code.name
    if operation is Operation.DELETE and code in _NOT_HELD_ON_DELETE:
        return _not_held(f"{code.name}: {details}")
    if code is grpc.StatusCode.UNAUTHENTICATED:
        return Unauthenticated(detail=details)
    if code is grpc.StatusCode.PERMISSION_DENIED:
        return PermissionDenied(detail=details)
    if code in _PERMANENT_REJECTIONS:
        return Rejected(message=f"{code.name}: {details}")
    return Transient(code=code.name, detail=details)


def outcome_from_response(operation: Operation, response: Any) -> CoreOutcome:
    # Only the upsert response has a TTL field.
    has_ttl = "time_to_live" in response.DESCRIPTOR.fields_by_name and response.HasField("time_to_live")
    ttl = response.time_to_live if has_ttl else None
    return outcome_from_status(operation, response.status_code, response.error_message, ttl)
