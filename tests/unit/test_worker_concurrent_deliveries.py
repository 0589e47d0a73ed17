"""Two invocations on one MSISDN group at once (SQS redelivered the group while the first still ran):
whichever save loses, the core ends holding what the record says, and the record holds the newest
desired state. The core here keeps what it was sent, in the order the calls land."""

from __future__ import annotations

import threading
from datetime import timedelta

from sipreg.core.port import Applied, CoreCall, CoreOutcome, Deleted, Operation
from sipreg.store.registrations import RegistrationStatus
from tests.support.worker_events import MSISDN, SIP_URI, T0, delete, message, upsert
from tests.support.worker_fakes import World, world


class LandingCore:
    """A core that holds what lands; `hold(event_route)` keeps calls of that route type waiting."""

    def __init__(self) -> None:
        self.held: dict[tuple[str, str], str] = {}  # (msisdn, sip_uri) -> route type
        self.landed: list[tuple[str, str]] = []  # (operation, route type) in landing order
        self.gates: dict[str, threading.Event] = {}
        self.entered: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def hold(self, route_type: str) -> threading.Event:
        self.gates[route_type] = threading.Event()
        self.entered[route_type] = threading.Event()
        return self.gates[route_type]

    def __call__(self, call: CoreCall) -> CoreOutcome:
        route = call.registration.route_type.value
        if route in self.gates and call.operation is Operation.UPSERT:
            self.entered[route].set()
            assert self.gates[route].wait(5), "the held call was never released"
        key = (call.registration.msisdn, call.registration.sip_uri)
        with self._lock:
            self.landed.append((call.operation.value, route))
            if call.operation is Operation.UPSERT:
                self.held[key] = route
                return Applied(ttl_seconds=3600.0)
            self.held.pop(key, None)
            return Deleted()


def run_in_thread(w: World, *messages: object) -> tuple[threading.Thread, list[object]]:
    reports: list[object] = []
    thread = threading.Thread(target=lambda: reports.append(w.run(*messages)))  # type: ignore[arg-type]
    thread.start()
    return thread, reports


def test_a_newer_delete_that_wins_the_race_is_what_the_core_keeps() -> None:
    # Given an upsert whose core call is slow, and a newer delete of the same registration
    core = LandingCore()
    w = world(core)
    released = core.hold("fork")
    first, _ = run_in_thread(w, message(upsert("crm-1", route_type="fork", at=T0)))
    assert core.entered["fork"].wait(5)
    # When the delete runs to the end while the upsert is still on its way to the core
    report = w.run(message(delete("crm-2", at=T0 + timedelta(seconds=1))))
    assert report.failed == []
    released.set()  # the upsert lands after the delete
    first.join(5)
    # Then the core holds nothing, and the record agrees: deleted, nothing applied
    assert core.held == {}
    record = w.journal.record()
    assert record.status is RegistrationStatus.DELETED and record.applied is None
    assert record.in_flight is None
    assert core.landed[-1][0] == "delete"
    outcome = {e.event_id: e.outcome for e in w.journal.entries}
    assert outcome == {"crm-1": "superseded", "crm-2": "deleted"}


def test_a_newer_upsert_that_wins_the_race_is_what_the_core_keeps() -> None:
    core = LandingCore()
    w = world(core)
    released = core.hold("fork")
    first, _ = run_in_thread(w, message(upsert("crm-1", route_type="fork", at=T0)))
    assert core.entered["fork"].wait(5)
    report = w.run(message(upsert("crm-2", route_type="loop", at=T0 + timedelta(seconds=1))))
    assert report.failed == []
    released.set()  # FORK lands after LOOP
    first.join(5)
    # Then the core is set back to LOOP, the newest desired state, as the record says
    assert core.held == {(MSISDN, SIP_URI): "loop"}
    record = w.journal.record()
    assert record.status is RegistrationStatus.ACTIVE
    assert record.applied is not None and record.applied.route_type.value == "loop"
    assert [e.outcome for e in w.journal.entries] == ["superseded", "active"]


def test_one_event_delivered_twice_at_once_is_applied_once_in_effect() -> None:
    core = LandingCore()
    w = world(core)
    released = core.hold("fork")
    event = upsert("crm-1", route_type="fork", at=T0)
    first, _ = run_in_thread(w, message(event))
    assert core.entered["fork"].wait(5)
    del core.gates["fork"]  # the second delivery's call goes straight through
    report = w.run(message(event, receive_count=2))
    assert report.failed == []
    released.set()
    first.join(5)
    assert core.held == {(MSISDN, SIP_URI): "fork"}
    record = w.journal.record()
    assert record.status is RegistrationStatus.ACTIVE and record.recent_event_ids.count("crm-1") == 1
    # One item, one final decision, whichever delivery saved it
    [item] = w.journal.entries
    assert (item.outcome, item.decisions) == ("active", 1)


def test_a_conflict_before_any_core_call_just_decides_again() -> None:
    # Given a save that loses once, at the claim (nothing was sent to the core yet)
    core = LandingCore()
    w = world(core)
    w.journal.conflicts_to_raise = 1
    report = w.run(message(upsert("crm-1", at=T0)))
    # Then the event is decided again and called once
    assert report.failed == []
    assert core.landed == [("upsert", "fork")]
    assert w.journal.record().status is RegistrationStatus.ACTIVE
