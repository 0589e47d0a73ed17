"""The endpoint health check: up/down with time and reason, a published change, and with
`suspend` the queued suspend/resume events that take a down endpoint's registrations off the core."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sipreg.config import ConfigError, DownAction, HealthSettings
from sipreg.events import AnyEvent, ResumeEvent, SuspendEvent
from sipreg.health import HealthCheck
from sipreg.notify import Change, EndpointChange
from sipreg.queue import SendResult
from sipreg.sip import ProbeResult
from sipreg.store.endpoints import EndpointHealth
from sipreg.wiring import endpoint_health
from tests.support.health_fakes import Records

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
PBX = "sips:pbx.example.com:5061"
OTHER = "sips:vm.example.com:5061"


class Directory:
    def __init__(self, registrations: dict[str, list[tuple[str, bool]]]) -> None:
        self.registrations = registrations

    def endpoints_in_use(self) -> list[str]:
        return sorted(self.registrations)

    def registrations_at(self, sip_uri: str) -> Iterable[tuple[str, bool]]:
        return list(self.registrations.get(sip_uri, []))

    def suspended_registrations(self) -> Mapping[str, Sequence[str]]:
        held = {uri: [m for m, suspended in regs if suspended] for uri, regs in self.registrations.items()}
        return {uri: msisdns for uri, msisdns in held.items() if msisdns}


class Prober:
    """Answers from `up` (uri -> bool, or a list of answers given in turn); counts the probes."""

    def __init__(self, up: dict[str, bool | list[bool]]) -> None:
        self.up = up
        self.probes: list[str] = []

    def __call__(self, uris: Sequence[str]) -> Mapping[str, ProbeResult]:
        answers = {}
        for uri in uris:
            self.probes.append(uri)
            value = self.up[uri]
            is_up = value.pop(0) if isinstance(value, list) else value
            reason = "200 OK" if is_up else "timeout: no final response within 5 s"
            answers[uri] = ProbeResult(uri, is_up, 200 if is_up else None, reason, 0.01)
        return answers


class Queue:
    def __init__(self, refuse: int = 0) -> None:
        self.sent: list[AnyEvent] = []
        self.refuse = refuse

    def send(self, events: Sequence[AnyEvent]) -> SendResult:
        taken, refused = list(events[self.refuse :]), list(events[: self.refuse])
        self.refuse = 0
        self.sent.extend(taken)
        return SendResult(tuple(e.id for e in taken), tuple(e.id for e in refused))


class Publisher:
    def __init__(self) -> None:
        self.changes: list[Change] = []

    def publish(self, changes: Sequence[Change]) -> None:
        self.changes.extend(changes)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def check(
    registrations: dict[str, list[tuple[str, bool]]],
    prober: Prober,
    *,
    action: DownAction = DownAction.ALARM,
    queue: Queue | None = None,
    max_events: int = 5000,
    wave_size: int = 8,
) -> tuple[HealthCheck, Records, Queue, Publisher, Clock]:
    records, publisher, clock = Records(), Publisher(), Clock()
    queue = queue or Queue()
    health = HealthCheck(
        Directory(registrations),
        records,
        prober,
        queue,
        publisher,
        action=action,
        max_events=max_events,
        wave_size=wave_size,
        wave_seconds=10.0,
        clock=clock,
    )
    return health, records, queue, publisher, clock


def test_each_endpoint_in_use_is_probed_once_and_recorded_up_with_no_change_published() -> None:
    prober = Prober({PBX: True, OTHER: True})
    health, records, _, publisher, _ = check({PBX: [("+4799990000", False)], OTHER: []}, prober)
    report = health.run()
    assert sorted(prober.probes) == sorted([PBX, OTHER])
    assert report.endpoints == 2 and report.down == 0
    assert records.saved[PBX].up and records.saved[PBX].reason == "200 OK"
    assert publisher.changes == []  # a new endpoint that answers is no news


def test_one_failed_probe_is_tried_again_before_the_endpoint_counts_as_down() -> None:
    prober = Prober({PBX: [False, True]})
    health, records, _, publisher, _ = check({PBX: []}, prober)
    assert health.run().down == 0
    assert prober.probes == [PBX, PBX]
    assert records.saved[PBX].up
    assert publisher.changes == []


def test_an_endpoint_that_stops_answering_is_down_since_then_with_the_reason_and_published() -> None:
    prober = Prober({PBX: [True, False, False, False, False]})
    health, records, queue, publisher, clock = check({PBX: [("+4799990000", False)]}, prober)
    health.run()
    clock.now = T0 + timedelta(minutes=1)
    report = health.run()
    assert report.down == 1 and report.changed == 1
    saved = records.saved[PBX]
    assert (saved.up, saved.since, saved.reason) == (
        False,
        clock.now,
        "timeout: no final response within 5 s",
    )
    [change] = publisher.changes
    assert isinstance(change, EndpointChange)
    assert change.detail()["up"] is False and change.detail()["action"] == "alarm"
    assert queue.sent == []  # alarm: nothing else happens to the registrations
    clock.now = T0 + timedelta(minutes=2)
    health.run()
    assert records.saved[PBX].since == T0 + timedelta(minutes=1)  # still down since the first failure
    assert len(publisher.changes) == 1


def test_suspend_queues_a_suspend_for_each_registration_not_yet_suspended_every_run_while_down() -> None:
    registrations = {PBX: [("+4799990001", False), ("+4799990002", True)], OTHER: [("+4799990003", False)]}
    prober = Prober({PBX: False, OTHER: True})
    health, _, queue, _, clock = check(registrations, prober, action=DownAction.SUSPEND)
    health.run()
    assert [(type(e), e.msisdn) for e in queue.sent] == [(SuspendEvent, "+4799990001")]
    first = queue.sent[0]
    assert isinstance(first, SuspendEvent)
    assert first.registration.sip_uri == PBX
    assert first.reason is not None and first.reason.startswith("endpoint down: timeout")
    # A registration created meanwhile at the down endpoint is suspended by the next run; the one
    # already queued gets the same id again (the worker or SQS absorbs it).
    registrations[PBX].append(("+4799990004", False))
    clock.now = T0 + timedelta(minutes=1)
    health.run()
    ids = [e.id for e in queue.sent]
    assert ids[1:] == [first.id, ids[2]] and queue.sent[2].msisdn == "+4799990004"


def test_when_it_answers_again_every_suspended_registration_is_resumed_and_then_it_is_up() -> None:
    registrations = {PBX: [("+4799990001", False), ("+4799990002", False)]}
    prober = Prober({PBX: [False, False, True]})
    health, records, queue, publisher, clock = check(registrations, prober, action=DownAction.SUSPEND)
    health.run()
    registrations[PBX] = [("+4799990001", True), ("+4799990002", True)]  # the worker applied them
    clock.now = T0 + timedelta(minutes=1)
    report = health.run()
    assert report.resumes == 2
    resumes = [e for e in queue.sent if isinstance(e, ResumeEvent)]
    assert sorted(e.msisdn for e in resumes) == ["+4799990001", "+4799990002"]
    assert records.saved[PBX].up and records.saved[PBX].since == clock.now
    assert [c.up for c in publisher.changes if isinstance(c, EndpointChange)] == [False, True]


def test_a_suspend_applied_after_the_endpoint_came_back_is_resumed_by_the_next_run() -> None:
    # Given a down endpoint whose suspend is queued, held behind its number's retrying event
    registrations = {PBX: [("+4799990001", False)]}
    prober = Prober({PBX: [False, False, True, True, True]})
    health, _, queue, _, clock = check(registrations, prober, action=DownAction.SUSPEND)
    health.run()
    # When the endpoint answers before the worker applied it: nothing is suspended to resume yet
    clock.now = T0 + timedelta(minutes=1)
    assert health.run().resumes == 0
    # and the suspend is applied afterwards
    registrations[PBX] = [("+4799990001", True)]
    # Then the next run, the endpoint still up, resumes it
    clock.now = T0 + timedelta(minutes=2)
    report = health.run()
    assert (report.changed, report.resumes) == (0, 1)
    [resume] = [e for e in queue.sent if isinstance(e, ResumeEvent)]
    assert resume.msisdn == "+4799990001" and resume.registration.sip_uri == PBX


def test_an_endpoint_stays_recorded_down_until_every_resume_was_queued() -> None:
    registrations = {PBX: [("+4799990001", False), ("+4799990002", False)]}
    prober = Prober({PBX: [False, False, True, True]})
    queue = Queue()
    health, records, _, _, clock = check(registrations, prober, action=DownAction.SUSPEND, queue=queue)
    health.run()
    registrations[PBX] = [("+4799990001", True), ("+4799990002", True)]
    queue.refuse = 1
    clock.now = T0 + timedelta(minutes=1)
    assert health.run().not_accepted == 1
    assert not records.saved[PBX].up
    registrations[PBX] = [("+4799990001", True), ("+4799990002", False)]  # one resumed
    clock.now = T0 + timedelta(minutes=2)
    health.run()
    assert records.saved[PBX].up
    resumed = [e.msisdn for e in queue.sent if isinstance(e, ResumeEvent)]
    assert resumed == ["+4799990002", "+4799990001"]


def test_the_events_of_one_run_are_bounded_and_the_next_run_continues() -> None:
    registrations = {PBX: [(f"+47999900{n:02d}", False) for n in range(5)]}
    prober = Prober({PBX: False})
    health, _, queue, _, _ = check(registrations, prober, action=DownAction.SUSPEND, max_events=3)
    assert health.run().suspends == 3
    assert len(queue.sent) == 3


def test_a_ca_bundle_that_cannot_be_read_fails_at_cold_start_naming_the_variable(tmp_path: Path) -> None:
    settings = HealthSettings.from_env(
        {
            "REGISTRATIONS_TABLE": "regs",
            "ENDPOINTS_TABLE": "endpoints",
            "EVENTS_QUEUE_URL": "https://sqs.example/q.fifo",
            "SIP_CA_FILE": str(tmp_path / "missing.pem"),
        }
    )
    with pytest.raises(ConfigError, match="SIP_CA_FILE"):
        endpoint_health.build(settings)


def test_an_unknown_down_action_is_refused_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match="ENDPOINT_DOWN_ACTION"):
        HealthSettings.from_env(
            {
                "REGISTRATIONS_TABLE": "regs",
                "ENDPOINTS_TABLE": "endpoints",
                "EVENTS_QUEUE_URL": "https://sqs.example/q.fifo",
                "ENDPOINT_DOWN_ACTION": "ignore",
            }
        )


class SlowProber(Prober):
    """Each call takes the 5 s of a probe timeout on the invocation's clock (`spent`)."""

    def __init__(self, up: dict[str, bool | list[bool]]) -> None:
        super().__init__(up)
        self.spent = 0.0

    def __call__(self, uris: Sequence[str]) -> Mapping[str, ProbeResult]:
        self.spent += 5.0
        return super().__call__(uris)


def test_a_run_probes_what_its_time_holds_and_the_next_starts_with_the_rest() -> None:
    # Given 48 endpoints that never answer, 8 probed at once, a wave taking up to 10 s, and 60 s
    silent = [f"sips:pbx{n:02d}.acme.example" for n in range(48)]
    prober = SlowProber(dict.fromkeys(silent, False))
    health, records, _, publisher, clock = check({uri: [] for uri in silent}, prober)
    # When the run goes while a wave and its finish still fit in what is left
    report = health.run(remaining_seconds=lambda: 60.0 - prober.spent)
    # Then five waves are probed and recorded down (published), the sixth is left for the next run
    assert (report.endpoints, report.down, report.not_probed) == (40, 40, 8)
    assert prober.spent == 50.0 and sorted(records.saved) == sorted(silent[:40])
    assert len(publisher.changes) == 40
    # And the next run starts with those it did not reach, then the ones checked longest ago
    prober.spent, prober.probes, clock.now = 0.0, [], T0 + timedelta(minutes=1)
    assert health.run(remaining_seconds=lambda: 60.0 - prober.spent).not_probed == 8
    assert prober.probes[:16] == silent[40:48] * 2  # a probe and its retry, in one wave
    assert sorted(records.saved) == sorted(silent)


def test_a_run_without_a_clock_probes_everything() -> None:
    uris = [f"sips:pbx{n:02d}.acme.example" for n in range(20)]
    prober = Prober(dict.fromkeys(uris, True))
    health, records, *_ = check({uri: [] for uri in uris}, prober, wave_size=3)
    assert health.run().endpoints == 20 and sorted(prober.probes) == sorted(uris)
    assert len(records.saved) == 20


def test_of_two_runs_side_by_side_that_find_an_endpoint_back_one_tells_and_the_resumes_are_one() -> None:
    # Given a PBX recorded down with a suspended registration, and two runs that both read it so
    # (the second runs whole while the first probes: Lambda overlaps a schedule's invocations)
    registrations = {PBX: [("+4799990000", True)]}
    second, records, queue, publisher, clock = check(
        registrations, Prober({PBX: True}), action=DownAction.SUSPEND
    )
    records.saved[PBX] = EndpointHealth(
        sip_uri=PBX,
        up=False,
        since=T0 - timedelta(hours=1),
        checked_at=T0 - timedelta(minutes=1),
        reason="timeout",
    )

    class ProbeAfterTheOther(Prober):
        def __call__(self, uris: Sequence[str]) -> Mapping[str, ProbeResult]:
            second.run()
            return super().__call__(uris)

    first = HealthCheck(
        Directory(registrations), records, ProbeAfterTheOther({PBX: True}), queue, publisher,
        action=DownAction.SUSPEND, clock=clock,
    )  # fmt: skip
    first.run()
    # Then the change is told once, and both runs' resumes carry one id (absorbed as duplicates)
    assert len(publisher.changes) == 1
    assert [type(e) for e in queue.sent] == [ResumeEvent, ResumeEvent]
    assert len({e.id for e in queue.sent}) == 1
    assert records.saved[PBX].up
