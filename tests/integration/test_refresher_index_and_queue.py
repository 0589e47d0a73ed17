"""Given registrations in the template's Registrations table (moto server), the refresher finds the
due ones through the sharded RefreshDue index and puts one refresh event each on the FIFO queue,
however often it runs; the handler reports its figures."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sipreg.models import RouteSpec
from sipreg.queue import EventQueue
from sipreg.refresher import Refresher
from sipreg.store.registrations import (
    RegistrationRecord,
    RegistrationStatus,
    RegistrationStore,
    refresh_shard,
)
from tests.support.events_api import drain
from tests.support.lambda_context import LambdaContext, load_function
from tests.support.worker import provision


def record(
    msisdn: str, expires_in: float, status: RegistrationStatus = RegistrationStatus.ACTIVE
) -> RegistrationRecord:
    spec = RouteSpec(route_type="fallback", mobile_terminating_prefix="00")  # type: ignore[arg-type]
    now = datetime.now(UTC)  # when the record is written, not when the tests were collected
    return RegistrationRecord(
        msisdn=msisdn,
        sip_uri="sips:voicemail.acme.example",
        status=status,
        desired=spec,
        applied=spec,
        expires_at=now + timedelta(seconds=expires_in),
        updated_at=now,
    )


@pytest.fixture
def stack(aws: str) -> dict[str, dict[str, Any]]:
    return provision(aws)


def refresher(stack: dict[str, dict[str, Any]], **options: Any) -> Refresher:
    return Refresher(
        RegistrationStore(stack["RegistrationsTable"]["Ref"]),
        EventQueue(stack["EventsQueue"]["Ref"]),
        margin_seconds=1200,
        **options,
    )


def test_due_registrations_get_one_refresh_event_each_even_from_overlapping_runs(
    aws: str, stack: dict[str, dict[str, Any]]
) -> None:
    store = RegistrationStore(stack["RegistrationsTable"]["Ref"])
    base = 4790000000 + uuid.uuid4().int % 10**6 * 100
    due = [f"+{base + n}" for n in range(40)]  # spread over the 16 shards
    for msisdn in due:
        store.save(record(msisdn, expires_in=600), read_version=None)
    store.save(record(f"+{base + 90}", expires_in=3000), read_version=None)  # not yet due
    store.save(
        record(f"+{base + 91}", 60, RegistrationStatus.REJECTED), read_version=None
    )  # not in the index
    # When two runs overlap (the second before the worker moved anything)
    first = refresher(stack).run(lambda: 60.0)
    second = refresher(stack).run(lambda: 60.0)
    # Then each due registration has one refresh event, with its stored parameters: the second
    # run's copy has its id (the worker's record absorbs it; SQS does not, as sipreg's own events
    # get random deduplication ids that no producer can take first)
    assert first.enqueued == second.enqueued == 40 and first.complete
    messages = drain(aws, stack["EventsQueue"]["Ref"])
    bodies = [json.loads(m["Body"]) for m in messages]
    ids_by_msisdn: dict[str, set[str]] = {}
    for body in bodies:
        ids_by_msisdn.setdefault(body["msisdn"], set()).add(body["id"])
    assert sorted(ids_by_msisdn) == sorted(due)
    assert all(len(ids) == 1 for ids in ids_by_msisdn.values())
    assert len(bodies) == 80
    assert len({m["Attributes"]["MessageDeduplicationId"] for m in messages}) == 80
    assert {b["type"] for b in bodies} == {"registration.refresh"}
    assert {
        (b["registration"]["route_type"], b["registration"]["mobile_terminating_prefix"]) for b in bodies
    } == {("fallback", "00")}


def test_the_handler_reports_overdue_registrations_and_a_bounded_run(
    aws: str,
    stack: dict[str, dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store = RegistrationStore(stack["RegistrationsTable"]["Ref"])
    base = 4791000000 + uuid.uuid4().int % 10**6 * 100
    numbers = [f"+{base + n}" for n in range(60)]
    overdue: dict[str, str] = {}  # one per shard, so even a bounded run sees them all first
    for msisdn in numbers:
        overdue.setdefault(refresh_shard(msisdn), msisdn)
    overdue_numbers = list(overdue.values())[:5]
    for msisdn in overdue_numbers:
        store.save(record(msisdn, expires_in=-120), read_version=None)  # the core has dropped them
    for msisdn in [n for n in numbers if n not in overdue_numbers][:25]:
        store.save(record(msisdn, expires_in=300), read_version=None)
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "sipreg")
    app = load_function("refresher")
    answer = app.lambda_handler({}, LambdaContext(60), refresher=refresher(stack, max_items=20, page_size=5))
    assert answer == {"enqueued": 20, "not_accepted": 0, "overdue": 5, "complete": False}
    emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    metrics = {m["Name"] for doc in emitted for d in doc["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}
    assert {"OverdueRegistrations", "RefreshesEnqueued"} <= metrics
    assert emitted[-1]["OverdueRegistrations"] == [5.0]
