"""Keep-alive refreshes are most of the traffic: their routine success logs nothing at INFO, and
their event-log items live 3 days instead of 30 (docs/cost.md has the figures behind both)."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from sipreg.store.event_log import EventLogEntry, Outcome, update_action
from tests.support.worker_events import T0, message, refresh, upsert
from tests.support.worker_fakes import world


def test_a_routine_refresh_logs_at_debug_and_a_crm_event_at_info(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="sipreg")
    w = world()
    w.run(message(upsert("crm-1", at=T0)))
    w.clock.advance(40 * 60)
    w.run(message(refresh("refresh-1", at=T0 + timedelta(minutes=40))))
    levels = {r.getMessage().split()[1]: r.levelno for r in caplog.records if r.name == "sipreg.worker.batch"}
    assert levels == {"crm-1": logging.INFO, "refresh-1": logging.DEBUG}


def entry(event_type: str) -> EventLogEntry:
    return EventLogEntry(
        msisdn="+4799990000",
        event_id="e",
        event_type=event_type,
        outcome=Outcome.ACTIVE,
        occurred_at=T0,
        recorded_at=T0,
    )


def test_refresh_items_expire_after_3_days_and_the_rest_after_30() -> None:
    kept = {
        kind: update_action("EventLog", entry(kind))["ExpressionAttributeValues"][":expires"]
        - int(T0.timestamp())
        for kind in ("registration.refresh", "registration.upsert")
    }
    assert kept == {"registration.refresh": 3 * 86400, "registration.upsert": 30 * 86400}
