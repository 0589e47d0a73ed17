"""Each answer of the core (or of the token service) becomes the documented registration state."""

from __future__ import annotations

from datetime import timedelta

from sipreg.core.port import Applied, PermissionDenied, Rejected, Transient, Unauthenticated
from sipreg.models import RouteSpec
from sipreg.store.registrations import RegistrationStatus
from sipreg.tokens import ConsentMissing, ConsentRevoked, GrantRejectedError, IdentityServerUnavailableError
from tests.support.worker_events import T0, delete, message, upsert
from tests.support.worker_fakes import answers, world


def test_applied_upsert_is_active_with_expiry_from_the_core_ttl() -> None:
    w = world(answers(Applied(ttl_seconds=1800.0)))
    report = w.run(message(upsert(route_type="loop")))
    record = w.journal.record()
    assert report.failed == []
    assert record.status is RegistrationStatus.ACTIVE
    assert record.applied == record.desired == RouteSpec(route_type="loop")  # type: ignore[arg-type]
    assert record.expires_at == T0 + timedelta(seconds=1800)
    assert record.last_error is None
    assert w.journal.outcomes() == ["active"]


def test_without_a_ttl_in_the_answer_the_documented_3600_seconds_are_assumed() -> None:
    w = world(answers(Applied(ttl_seconds=None)))
    w.run(message(upsert()))
    assert w.journal.record().expires_at == T0 + timedelta(seconds=3600)


def test_not_acceptable_is_rejected_with_the_core_reason_and_not_retried() -> None:
    w = world(answers(Rejected(message="certificate of pbx.example.com not trusted")))
    report = w.run(message(upsert()))
    record = w.journal.record()
    assert report.failed == []
    assert record.status is RegistrationStatus.REJECTED
    assert record.last_error == "certificate of pbx.example.com not trusted"
    assert record.applied is None
    assert w.visibility.delays == []


def test_no_consent_yet_waits_for_consent_without_calling_the_core() -> None:
    w = world()
    w.tokens.errors[upsert().msisdn] = ConsentMissing("no consent on record for this subscriber")
    report = w.run(message(upsert(route_type="fallback")))
    record = w.journal.record()
    assert report.failed == []
    assert record.status is RegistrationStatus.AWAITING_CONSENT
    assert record.desired == RouteSpec(route_type="fallback")  # type: ignore[arg-type]
    assert w.core.calls == []


def test_revoked_consent_is_recorded_as_consent_revoked() -> None:
    w = world()
    w.tokens.errors[upsert().msisdn] = ConsentRevoked("consent revoked (invalid_grant at refresh)")
    w.run(message(upsert()))
    assert w.journal.record().status is RegistrationStatus.CONSENT_REVOKED
    assert "invalid_grant" in (w.journal.record().last_error or "")


def test_unauthenticated_refreshes_the_token_once_and_retries_in_place() -> None:
    w = world(answers(Unauthenticated(detail="token expired")))
    report = w.run(message(upsert()))
    assert report.failed == []
    assert w.journal.record().status is RegistrationStatus.ACTIVE
    assert [call.token for call in w.core.calls] == ["tok-+4799990000-0", "tok-+4799990000-1"]
    assert w.tokens.forced == ["+4799990000"]


def test_unauthenticated_twice_is_retried_later_not_forever_in_place() -> None:
    refused = Unauthenticated(detail="token unknown")
    w = world(answers(refused, refused))
    report = w.run(first := message(upsert()))
    assert report.failed == [first.message_id]
    assert len(w.core.calls) == 2
    assert "UNAUTHENTICATED after a token refresh" in (w.journal.record().last_error or "")


def test_refresh_refused_with_invalid_grant_marks_consent_revoked() -> None:
    w = world(answers(Unauthenticated(detail="token revoked")))
    w.tokens.refresh_errors["+4799990000"] = ConsentRevoked("the identity server no longer accepts it")
    report = w.run(message(upsert()))
    assert report.failed == []
    assert w.journal.record().status is RegistrationStatus.CONSENT_REVOKED


def test_permission_denied_fails_naming_the_missing_scope_and_is_not_retried() -> None:
    w = world(answers(PermissionDenied(detail="missing scope")))
    report = w.run(message(upsert()))
    record = w.journal.record()
    assert report.failed == []
    assert record.status is RegistrationStatus.FAILED
    assert "call.control:answer_and_initiate" in (record.last_error or "")


def test_transient_failure_keeps_the_intent_and_error_and_comes_back_later() -> None:
    w = world(answers(Transient(code="UNAVAILABLE", detail="connection refused")))
    report = w.run(first := message(upsert(route_type="loop"), receive_count=1))
    record = w.journal.record()
    assert report.failed == [first.message_id]
    assert record.status is RegistrationStatus.PENDING
    assert record.desired == RouteSpec(route_type="loop")  # type: ignore[arg-type]
    assert record.last_error == "UNAVAILABLE: connection refused"
    assert not record.seen(upsert().id)  # the retry must not be taken for a duplicate
    assert w.visibility.delays == [(first.receipt_handle, 30)]
    assert w.journal.outcomes() == ["retrying"]


def test_identity_server_down_is_transient() -> None:
    w = world()
    w.tokens.errors["+4799990000"] = IdentityServerUnavailableError("token: HTTP 503")
    report = w.run(first := message(upsert()))
    assert report.failed == [first.message_id]
    assert "HTTP 503" in (w.journal.record().last_error or "")


def test_grant_rejected_by_the_identity_server_mid_refresh_is_not_mistaken_for_a_core_error() -> None:
    w = world(answers(Unauthenticated(detail="expired")))
    w.tokens.refresh_errors["+4799990000"] = GrantRejectedError("invalid_client")
    report = w.run(first := message(upsert()))
    assert report.failed == [first.message_id]
    assert w.journal.record().status is RegistrationStatus.PENDING


def test_delete_of_an_applied_registration_deletes_it_at_the_core() -> None:
    w = world()
    w.run(message(upsert(at=T0)))
    w.run(message(delete(at=T0 + timedelta(seconds=1))))
    record = w.journal.record()
    assert record.status is RegistrationStatus.DELETED
    assert record.applied is None and record.desired is None and record.expires_at is None
    assert [op for op, _, _ in w.core.operations()] == ["upsert", "delete"]


def test_delete_of_a_registration_never_applied_needs_no_core_call() -> None:
    w = world()
    w.tokens.errors["+4799990000"] = ConsentMissing("no consent")
    w.run(message(upsert(at=T0)))
    w.run(message(delete(at=T0 + timedelta(seconds=1))))
    assert w.journal.record().status is RegistrationStatus.DELETED
    assert w.core.calls == []


def test_delete_transient_failure_is_deleting_until_it_succeeds() -> None:
    w = world(answers(Applied(ttl_seconds=3600.0), Transient(code="DEADLINE_EXCEEDED", detail="slow")))
    w.run(message(upsert(at=T0)))
    failed = w.run(message(delete("del-1", at=T0 + timedelta(seconds=1))))
    assert w.journal.record().status is RegistrationStatus.DELETING
    w.run(message(delete("del-1", at=T0 + timedelta(seconds=1)), receive_count=2))
    assert failed.failed and w.journal.record().status is RegistrationStatus.DELETED
    assert [op for op, _, _ in w.core.operations()] == ["upsert", "delete", "delete"]
