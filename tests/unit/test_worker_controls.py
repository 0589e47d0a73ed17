"""An operator's disable / enable / force_refresh and the health check's suspend / resume: they
change whether a registration's desired state is on the core, never the desired state itself."""

from __future__ import annotations

from datetime import timedelta

from sipreg.core.port import Applied, Rejected, Transient
from sipreg.models import RouteSpec
from sipreg.store.registrations import RegistrationStatus
from tests.support.worker_events import SIP_URI, T0, consented, control, message, refresh, revoke, upsert
from tests.support.worker_fakes import World, answers, world

Status = RegistrationStatus


def active_world(route_type: str = "fork") -> World:
    w = world()
    w.run(message(upsert("crm-1", route_type=route_type, at=T0)))
    assert w.journal.record().status is Status.ACTIVE
    w.core.calls.clear()
    w.publisher.published.clear()
    return w


def test_disable_deletes_at_the_core_and_keeps_the_desired_state() -> None:
    w = active_world()
    w.run(message(control("disable", reason="customer asked for a pause")))
    record = w.journal.record()
    assert w.core.operations() == [("delete", "+4799990000", SIP_URI)]
    assert record.status is Status.DISABLED
    assert record.desired == RouteSpec(route_type="fork")  # type: ignore[arg-type]
    assert record.applied is None and record.expires_at is None
    assert record.last_error == "disabled: customer asked for a pause"
    assert w.journal.outcomes()[-1] == "disabled"
    [[change]] = w.publisher.published
    assert (change.old_status, change.new_status, change.event_type) == (
        "active",
        "disabled",
        "registration.disable",
    )


def test_a_disabled_registration_is_not_refreshed_and_a_new_upsert_is_only_recorded() -> None:
    w = active_world()
    w.run(message(control("disable")))
    w.core.calls.clear()
    w.clock.advance(50 * 60)
    w.run(message(refresh("keepalive-1", at=T0 + timedelta(minutes=45))))
    w.run(message(upsert("crm-2", route_type="loop", at=T0 + timedelta(minutes=50))))
    record = w.journal.record()
    assert w.core.calls == []
    assert record.status is Status.DISABLED
    assert record.desired == RouteSpec(route_type="loop")  # type: ignore[arg-type]
    assert record.last_event_id == "crm-2"


def test_enable_applies_the_newest_desired_state() -> None:
    w = active_world()
    w.run(message(control("disable")))
    w.run(message(upsert("crm-2", route_type="loop", at=T0 + timedelta(minutes=1))))
    w.core.calls.clear()
    w.run(message(control("enable")))
    record = w.journal.record()
    assert [c.operation for c in w.core.calls] == ["upsert"]
    assert w.core.calls[0].registration.route_type == "loop"
    assert record.status is Status.ACTIVE
    assert record.applied == RouteSpec(route_type="loop")  # type: ignore[arg-type]
    assert not record.disabled


def test_enable_of_what_is_not_disabled_changes_nothing() -> None:
    w = active_world()
    before = w.journal.record()
    w.run(message(control("enable")))
    assert w.core.calls == []
    assert w.journal.record().status is Status.ACTIVE
    assert w.journal.record().expires_at == before.expires_at
    assert w.journal.entries[-1].outcome == "superseded"
    assert w.journal.entries[-1].reason == "not disabled"


def test_force_refresh_re_upserts_now_and_moves_the_expiry() -> None:
    w = active_world()
    w.clock.advance(600)
    w.run(message(control("force_refresh")))
    record = w.journal.record()
    assert [c.operation for c in w.core.calls] == ["upsert"]
    assert record.status is Status.ACTIVE
    assert record.expires_at == T0 + timedelta(seconds=600 + 3600)


def test_force_refresh_retries_a_rejected_registration() -> None:
    w = world(answers(Rejected(message="certificate not trusted")))
    w.run(message(upsert("crm-1")))
    assert w.journal.record().status is Status.REJECTED
    w.run(message(control("force_refresh")))
    assert w.journal.record().status is Status.ACTIVE
    assert len(w.core.calls) == 2


def test_force_refresh_of_a_disabled_registration_sends_nothing() -> None:
    w = active_world()
    w.run(message(control("disable")))
    w.core.calls.clear()
    w.run(message(control("force_refresh")))
    assert w.core.calls == []
    assert w.journal.record().status is Status.DISABLED


def test_suspend_takes_a_fork_off_the_core_and_resume_puts_it_back() -> None:
    w = active_world("fork")
    w.run(message(control("suspend", reason="OPTIONS timed out")))
    assert w.core.operations() == [("delete", "+4799990000", SIP_URI)]
    assert w.journal.record().status is Status.SUSPENDED
    w.core.calls.clear()
    w.run(message(control("resume")))
    assert [c.operation for c in w.core.calls] == ["upsert"]
    record = w.journal.record()
    assert record.status is Status.ACTIVE and not record.suspended


def test_a_fallback_stays_on_the_core_while_its_endpoint_is_down_but_a_fork_it_becomes_does_not() -> None:
    w = active_world("fallback")
    w.run(message(control("suspend")))
    assert w.core.calls == []
    assert w.journal.record().status is Status.ACTIVE
    assert w.journal.record().suspended  # the endpoint is down: remembered for what comes next
    w.run(message(upsert("crm-2", route_type="fork", at=T0 + timedelta(minutes=1))))
    # The core held the fallback: it is deleted, and the fork waits for the endpoint.
    assert w.core.operations() == [("delete", "+4799990000", SIP_URI)]
    assert w.journal.record().status is Status.SUSPENDED
    w.core.calls.clear()
    w.run(message(control("resume")))
    assert [(c.operation, c.registration.route_type) for c in w.core.calls] == [("upsert", "fork")]


def test_resume_keeps_an_operator_disabled_registration_off_the_core() -> None:
    w = active_world()
    w.run(message(control("suspend")))
    w.run(message(control("disable")))
    w.core.calls.clear()
    w.run(message(control("resume")))
    assert w.core.calls == []
    assert w.journal.record().status is Status.DISABLED
    w.run(message(control("enable")))
    assert [c.operation for c in w.core.calls] == ["upsert"]
    assert w.journal.record().status is Status.ACTIVE


def test_consent_given_again_does_not_apply_a_disabled_registration() -> None:
    w = active_world()
    w.run(message(control("disable")))
    w.run(message(revoke(at=T0 + timedelta(minutes=1))))
    w.core.calls.clear()
    w.run(message(consented(at=T0 + timedelta(minutes=2))))
    assert [c.operation for c in w.core.calls] == []


def test_a_control_of_an_unknown_registration_is_rejected_and_creates_nothing() -> None:
    w = world()
    w.run(message(control("disable", sip_uri="sips:other.example.com")))
    assert w.core.calls == []
    assert w.journal.records == {}
    [entry] = w.journal.entries
    assert entry.outcome == "rejected"
    assert "has no registration at sips:other.example.com" in (entry.reason or "")


def test_a_failed_disable_is_retried_and_holds_back_an_upsert_meanwhile() -> None:
    w = world(answers(Applied(ttl_seconds=3600.0), Transient(code="UNAVAILABLE", detail="core restarting")))
    w.run(message(upsert("crm-1")))
    report = w.run(message(control("disable", "op-1")))
    assert len(report.failed) == 1
    record = w.journal.record()
    assert record.disabled and record.status is Status.DELETING
    w.run(message(upsert("crm-2", route_type="loop", at=T0 + timedelta(minutes=1))))
    # Held: the upsert does not put it back; it tries the delete that is still owed instead.
    assert [c.operation for c in w.core.calls][-1] == "delete"
    assert w.journal.record().status is Status.DISABLED


def test_a_redelivered_disable_is_a_duplicate() -> None:
    w = active_world()
    event = control("disable", "op-1")
    w.run(message(event))
    w.run(message(event))
    assert [c.operation for c in w.core.calls] == ["delete"]
