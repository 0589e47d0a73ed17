"""Correlation ids, counts and spans as sipreg's code reports them, and what the worker and the
events API report through them."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from sipreg import telemetry
from sipreg.api.models import EventBatch
from sipreg.api.problems import NotAuthenticatedError, problem_for
from sipreg.api.service import EventsService
from sipreg.core.port import CoreCall, CoreOutcome, Transient
from tests.support.events_api import FakeEventLog, FakeQueue, FakeRegistrations, FakeRequestIds
from tests.support.events_api import upsert as api_upsert
from tests.support.worker_events import T0, message, upsert
from tests.support.worker_fakes import default_answer, world


@pytest.fixture
def records(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.handler.addFilter(telemetry.CorrelationFilter())
    caplog.set_level(logging.INFO)
    telemetry.drain()
    return caplog


def test_lines_inside_correlated_carry_the_id_and_lines_outside_do_not(
    records: pytest.LogCaptureFixture,
) -> None:
    log = logging.getLogger("sipreg.test")
    with telemetry.correlated("evt-1"):
        log.info("inside")
        with telemetry.correlated("evt-2"):
            log.info("nested")
        log.info("inside again")
    log.info("outside")
    ids = [(r.getMessage(), getattr(r, "correlation_id", None)) for r in records.records]
    assert ids == [("inside", "evt-1"), ("nested", "evt-2"), ("inside again", "evt-1"), ("outside", None)]


def test_each_group_threads_lines_carry_their_own_events_id(records: pytest.LogCaptureFixture) -> None:
    # Given a batch of two numbers (two threads), one of whose core calls fail
    def script(call: CoreCall) -> CoreOutcome:
        if call.registration.msisdn == "+4799990001":
            return Transient(code="UNAVAILABLE", detail="down")
        return default_answer(call)

    w = world(script)
    w.run(message(upsert("ok-1", at=T0)), message(upsert("down-1", msisdn="+4799990001", at=T0)))
    # Then every worker line about an event carries that event's id, never the other's
    about = [
        r
        for r in records.records
        if r.name.startswith("sipreg") and ("ok-1" in r.getMessage() or "down-1" in r.getMessage())
    ]
    assert {r.correlation_id for r in about} == {"ok-1", "down-1"}  # type: ignore[attr-defined]
    assert all(r.correlation_id in r.getMessage() for r in about)  # type: ignore[attr-defined]


def test_the_worker_observes_core_latency_per_call_and_counts_nothing_it_did_not_do() -> None:
    telemetry.drain()
    w = world(latency=0.01)
    w.run(
        message(upsert("a", at=T0)), message(upsert("b", msisdn="+4799990001", at=T0 + timedelta(seconds=1)))
    )
    counts, observations = telemetry.drain()
    assert len(observations["CoreLatency"]) == 2 and all(ms >= 10 for ms in observations["CoreLatency"])
    assert "TokenRefreshes" not in counts  # the fake tokens needed no refresh
    assert telemetry.drain() == ({}, {})  # drained once


def test_every_refused_request_is_counted_by_kind() -> None:
    telemetry.drain()
    problem_for(NotAuthenticatedError())
    problem_for(NotAuthenticatedError())
    assert telemetry.drain()[0] == {"Refused_NotAuthenticated": 2}


def test_a_span_outside_a_traced_function_costs_nothing_and_still_yields_an_annotator() -> None:
    with telemetry.span("core call", msisdn="+47******00") as annotate:
        annotate("outcome", "applied")  # no tracer here: accepted and dropped


def test_the_events_api_logs_each_accepted_event_under_its_id_and_counts_them(
    records: pytest.LogCaptureFixture,
) -> None:
    service = EventsService(
        queue=FakeQueue(),
        secrets=lambda: ("s",),
        registrations=FakeRegistrations(),
        event_log=FakeEventLog(),
        request_ids=FakeRequestIds(),
    )
    service.accept(
        EventBatch.model_validate(
            {"events": [api_upsert("crm-1"), api_upsert("crm-2", msisdn="+4799990002")]}
        )
    )
    lines = {r.correlation_id: r.getMessage() for r in records.records if hasattr(r, "correlation_id")}
    assert set(lines) == {"crm-1", "crm-2"} and "queued" in lines["crm-1"]
    assert telemetry.drain()[0] == {"EventsAccepted": 2}
