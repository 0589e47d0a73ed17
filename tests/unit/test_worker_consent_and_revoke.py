"""subscriber.consented applies what waits for consent; subscriber.revoke removes everything."""

from __future__ import annotations

from datetime import timedelta

from sipreg.config import AuthMode
from sipreg.core.port import CoreCall, CoreOutcome, Operation, Transient, Unauthenticated
from sipreg.store.registrations import RegistrationStatus
from sipreg.tokens import ConsentMissing, ConsentRevoked, IdentityServerUnavailableError
from tests.support.worker_events import MSISDN, T0, consented, delete, message, refresh, revoke, upsert
from tests.support.worker_fakes import answers, default_answer, world

VOICEMAIL = "sips:voicemail.example.com"


def test_consent_applies_every_registration_waiting_for_it_in_one_round_trip() -> None:
    w = world()
    w.tokens.errors[MSISDN] = ConsentMissing("no consent")
    w.run(message(upsert(route_type="fork")), message(upsert(sip_uri=VOICEMAIL, route_type="fallback")))
    assert {r.status for r in w.journal.list_for(MSISDN)} == {RegistrationStatus.AWAITING_CONSENT}
    del w.tokens.errors[MSISDN]
    report = w.run(message(consented()))
    assert report.failed == []
    assert {r.status for r in w.journal.list_for(MSISDN)} == {RegistrationStatus.ACTIVE}
    assert sorted(c.registration.route_type.value for c in w.core.calls) == ["fallback", "fork"]
    items = [e for e in w.journal.entries if e.event_type == "subscriber.consented"]
    # One item per registration, and the event's own one saying what it did
    assert sorted((e.sip_uri or "", e.outcome) for e in items) == [
        ("", "consent_applied"),
        ("sips:pbx.example.com:5061", "active"),
        (VOICEMAIL, "active"),
    ]


def test_consent_leaves_active_and_deleted_registrations_alone() -> None:
    w = world()
    w.run(message(upsert(at=T0)))
    w.run(message(upsert(sip_uri=VOICEMAIL, at=T0)), message(delete(sip_uri=VOICEMAIL, at=T0 + timedelta(1))))
    calls = len(w.core.calls)
    report = w.run(message(consented()))
    assert len(w.core.calls) == calls
    assert report.outcomes["nothing_waiting"] == 1
    assert w.journal.entries[-1].outcome == "nothing_waiting"


def test_revoke_deletes_everything_at_the_core_then_revokes_the_tokens() -> None:
    w = world()
    w.run(message(upsert()), message(upsert(sip_uri=VOICEMAIL, route_type="fallback")))
    report = w.run(message(revoke(at=T0 + timedelta(seconds=5))))
    assert report.failed == []
    deletes = [c for c in w.core.calls if c.operation is Operation.DELETE]
    assert sorted(c.registration.sip_uri for c in deletes) == sorted(["sips:pbx.example.com:5061", VOICEMAIL])
    records = w.journal.list_for(MSISDN)
    assert {r.status for r in records} == {RegistrationStatus.CONSENT_REVOKED}
    assert all(r.desired is None and r.applied is None for r in records)
    assert w.tokens.revoked == [MSISDN]
    assert w.journal.entries[-1].outcome == "consent_revoked" and w.journal.entries[-1].sip_uri is None


def test_an_upsert_from_before_the_revoke_cannot_bring_the_registration_back() -> None:
    w = world()
    w.run(message(upsert(at=T0)))
    w.run(message(revoke(at=T0 + timedelta(seconds=10))))
    w.run(message(upsert("late", route_type="loop", at=T0 + timedelta(seconds=5))))
    assert w.journal.record().status is RegistrationStatus.CONSENT_REVOKED
    assert w.journal.entries[-1].outcome == "superseded"


def test_revoke_with_a_failed_delete_keeps_the_tokens_for_the_retry() -> None:
    w = world()
    w.run(message(upsert()), message(upsert(sip_uri=VOICEMAIL)))

    def voicemail_down(call: CoreCall) -> CoreOutcome:
        if call.registration.sip_uri == VOICEMAIL and call.operation is Operation.DELETE:
            return Transient(code="UNAVAILABLE", detail="down")
        return default_answer(call)

    w.core.script = voicemail_down
    event = revoke()
    first = w.run(message(event))
    assert first.failed and w.tokens.revoked == []
    assert w.journal.record(sip_uri=VOICEMAIL).status is RegistrationStatus.DELETING
    w.core.script = default_answer
    deletes_before = len(w.core.calls)
    second = w.run(message(event, receive_count=2))
    assert second.failed == [] and w.tokens.revoked == [MSISDN]
    # The registration already deleted is not deleted again.
    assert [c.registration.sip_uri for c in w.core.calls[deletes_before:]] == [VOICEMAIL]


def test_revoke_when_the_identity_server_is_down_is_retried() -> None:
    w = world()
    w.run(message(upsert()))
    w.tokens.revoke_error = IdentityServerUnavailableError("revoke: HTTP 503")
    report = w.run(message(revoke()))
    assert report.failed
    assert w.journal.record().status is RegistrationStatus.CONSENT_REVOKED


def test_revoke_without_a_usable_token_marks_revoked_and_leaves_expiry_to_the_core() -> None:
    w = world()
    w.run(message(upsert()))
    w.tokens.errors[MSISDN] = ConsentRevoked("consent revoked (invalid_grant at refresh)")
    report = w.run(message(revoke()))
    record = w.journal.record()
    assert report.failed == []
    assert record.status is RegistrationStatus.CONSENT_REVOKED and record.desired is None
    assert "TTL" in (record.last_error or "")


def test_revoke_refreshes_a_refused_token_once() -> None:
    w = world()
    w.run(message(upsert()))
    w.core.script = answers(Unauthenticated(detail="expired"))
    report = w.run(message(revoke()))
    assert report.failed == [] and w.tokens.forced == [MSISDN]
    assert w.journal.record().status is RegistrationStatus.CONSENT_REVOKED


def test_client_mode_uses_the_product_token_for_every_number() -> None:
    w = world(auth_mode=AuthMode.CLIENT)
    w.run(message(upsert()), message(upsert(msisdn="+4799990001")))
    assert {c.token for c in w.core.calls} == {"product-token"}


def test_client_mode_keeps_a_revoked_number_off_the_core_until_it_consents_again() -> None:
    # The product token works for every number: only the record says the subscriber revoked
    w = world(auth_mode=AuthMode.CLIENT)
    w.run(message(upsert(event_id="u1", at=T0)))
    w.run(message(revoke(at=T0 + timedelta(minutes=1))))
    calls = len(w.core.calls)
    # When the CRM, unaware, sends a newer upsert
    report = w.run(message(upsert(event_id="u2", route_type="fallback", at=T0 + timedelta(minutes=2))))
    # Then it is recorded consent_revoked and the core is not asked
    assert report.failed == []
    record = w.journal.record()
    assert record.status is RegistrationStatus.CONSENT_REVOKED and len(w.core.calls) == calls
    assert "consents again" in (record.last_error or "")
    # And a new consent puts it on the core
    w.tokens.revoked.clear()
    w.run(message(consented(at=T0 + timedelta(minutes=3))))
    assert w.journal.record().status is RegistrationStatus.ACTIVE
    assert w.core.calls[-1].registration.route_type.value == "fallback"


def test_client_mode_looks_at_the_consent_only_before_putting_a_number_on_the_core() -> None:
    w = world(auth_mode=AuthMode.CLIENT)
    w.run(message(upsert(event_id="u1")))
    reads = w.tokens.consent_reads
    # A refresh and a delete put nothing new on the core: no read of the subscriber
    w.run(message(refresh(event_id="r1")))
    w.run(message(delete(event_id="d1", at=T0 + timedelta(minutes=1))))
    assert w.tokens.consent_reads == reads == 1
