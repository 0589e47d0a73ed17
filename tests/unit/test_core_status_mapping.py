"""Given any answer of the core, the client returns one typed outcome and never raises."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration

from sipreg.core.answers import MAX_TTL_SECONDS, outcome_from_rpc_error, outcome_from_status
from sipreg.core.port import (
    Applied,
    Deleted,
    Operation,
    PermissionDenied,
    Rejected,
    Transient,
    Unauthenticated,
    outcome_name,
)

S = grpc.StatusCode


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (S.UNAUTHENTICATED, Unauthenticated(detail="token expired")),
        (S.PERMISSION_DENIED, PermissionDenied(detail="token expired")),
        (S.INVALID_ARGUMENT, Rejected(message="INVALID_ARGUMENT: token expired")),
        (S.UNAVAILABLE, Transient(code="UNAVAILABLE", detail="token expired")),
        (S.DEADLINE_EXCEEDED, Transient(code="DEADLINE_EXCEEDED", detail="token expired")),
        (S.RESOURCE_EXHAUSTED, Transient(code="RESOURCE_EXHAUSTED", detail="token expired")),
        (S.INTERNAL, Transient(code="INTERNAL", detail="token expired")),
        (S.UNKNOWN, Transient(code="UNKNOWN", detail="token expired")),
        (S.ABORTED, Transient(code="ABORTED", detail="token expired")),
        (S.CANCELLED, Transient(code="CANCELLED", detail="token expired")),
        (S.UNIMPLEMENTED, Transient(code="UNIMPLEMENTED", detail="token expired")),
        (S.FAILED_PRECONDITION, Transient(code="FAILED_PRECONDITION", detail="token expired")),
        (S.NOT_FOUND, Transient(code="NOT_FOUND", detail="token expired")),
    ],
)
def test_grpc_status_maps_to_its_outcome(code, expected) -> None:
    assert outcome_from_rpc_error(Operation.UPSERT, code, "token expired") == expected


def test_grpc_status_without_details_names_the_code() -> None:
    assert outcome_from_rpc_error(Operation.DELETE, S.UNAVAILABLE, "") == Transient(
        code="UNAVAILABLE", detail="UNAVAILABLE"
    )


def test_a_delete_the_core_answers_not_found_is_deleted_saying_so() -> None:
    # A core that answers a delete of what it does not hold NOT_FOUND (an expired registration, a
    # retry whose first attempt went through): what the delete wanted holds
    outcome = outcome_from_rpc_error(Operation.DELETE, S.NOT_FOUND, "no such registration")

    assert isinstance(outcome, Deleted)
    assert outcome.note is not None and "NOT_FOUND: no such registration" in outcome.note


@pytest.mark.parametrize("code", [S.INVALID_ARGUMENT, S.UNAVAILABLE, S.PERMISSION_DENIED])
def test_other_failures_of_a_delete_are_not_taken_for_deleted(code) -> None:
    assert not isinstance(outcome_from_rpc_error(Operation.DELETE, code, "x"), Deleted)


def test_ok_upsert_is_applied_with_the_ttl_the_core_returned() -> None:
    outcome = outcome_from_status(Operation.UPSERT, 1, "", Duration(seconds=3599, nanos=500_000_000))

    assert outcome == Applied(ttl_seconds=3599.5)


def test_ok_upsert_without_ttl_says_it_does_not_know() -> None:
    assert outcome_from_status(Operation.UPSERT, 1, "", None) == Applied(ttl_seconds=None)


@pytest.mark.parametrize(
    ("ttl", "seconds"),
    [
        (Duration(seconds=315_576_000_000), MAX_TTL_SECONDS),  # a Duration's maximum: 10,000 years
        (Duration(seconds=172_800), MAX_TTL_SECONDS),
        (Duration(seconds=90, nanos=500_000_000), 90.5),
        (Duration(seconds=0), None),
        (Duration(seconds=-60), None),
    ],
)
def test_a_ttl_is_taken_up_to_a_day_and_one_of_no_time_as_none(ttl: Duration, seconds: float | None) -> None:
    assert outcome_from_status(Operation.UPSERT, 1, "", ttl) == Applied(ttl_seconds=seconds)


def test_ok_delete_is_deleted() -> None:
    assert outcome_from_status(Operation.DELETE, 1, "", None) == Deleted()


def test_not_acceptable_is_rejected_with_the_cores_message() -> None:
    outcome = outcome_from_status(Operation.UPSERT, 2, "sip_uri: port out of range", None)

    assert outcome == Rejected(message="sip_uri: port out of range", by_core=True)


def test_a_delete_the_core_refuses_is_deleted_with_the_cores_message() -> None:
    # The core refuses a delete of a registration it does not hold (or could never have made)
    outcome = outcome_from_status(Operation.DELETE, 2, "no registration of sips:pbx.example", None)

    assert isinstance(outcome, Deleted)
    assert outcome.note is not None and "NOT_ACCEPTABLE: no registration of sips:pbx.example" in outcome.note


def test_not_acceptable_without_message_still_says_why_it_failed() -> None:
    outcome = outcome_from_status(Operation.UPSERT, 2, "", None)

    assert isinstance(outcome, Rejected)
    assert "not acceptable" in outcome.message


@pytest.mark.parametrize("operation", list(Operation))
def test_unspecified_status_is_transient_because_we_cannot_tell_what_happened(operation) -> None:
    outcome = outcome_from_status(operation, 0, "", Duration(seconds=3600))

    assert isinstance(outcome, Transient)
    assert outcome.code == "STATUS_CODE_UNSPECIFIED"
    assert outcome.detail


def test_status_code_from_a_newer_core_is_transient_and_named_by_number() -> None:
    outcome = outcome_from_status(Operation.UPSERT, 7, "later", None)

    assert outcome == Transient(code="STATUS_CODE_7", detail="later")


@pytest.mark.parametrize(
    ("outcome", "name"),
    [
        (Applied(ttl_seconds=3600), "applied"),
        (Deleted(), "deleted"),
        (Rejected(message="x"), "rejected"),
        (Unauthenticated(detail="x"), "unauthenticated"),
        (PermissionDenied(detail="x"), "permissiondenied"),
        (Transient(code="UNAVAILABLE", detail="x"), "transient:UNAVAILABLE"),
    ],
)
def test_outcome_names_are_short_labels_for_logs(outcome, name) -> None:
    assert outcome_name(outcome) == name
