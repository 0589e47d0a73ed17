"""The two handlers take the sample events in events/ (the shapes AWS sends) and answer as Lambda
expects: the worker with `batchItemFailures`, the refresher with its figures."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from sipreg.core.port import CoreCall, CoreOutcome, Transient
from sipreg.store.registrations import RegistrationStatus
from tests.support.lambda_context import LambdaContext, load_function
from tests.support.worker_fakes import default_answer, world
from tests.unit.test_refresher_runs import FakeIndex, FakeQueue, active, refresher

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"


@pytest.fixture
def worker_app(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "sipreg")
    return load_function("registration_worker")


def sample(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return document


def test_a_batch_of_upserts_and_a_delete_is_applied_in_order_per_msisdn(worker_app: ModuleType) -> None:
    w = world()
    answer = worker_app.lambda_handler(
        sample("registration_worker_batch.json"), LambdaContext(), worker=w.worker
    )
    assert answer == {"batchItemFailures": []}
    operations = w.core.operations()
    assert sorted(operations) == sorted(
        [
            ("upsert", "+4799990000", "sips:pbx.acme.example:5061"),
            ("upsert", "+4799990001", "sips:voicemail.acme.example"),
            ("delete", "+4799990000", "sips:pbx.acme.example:5061"),
        ]
    )
    assert [op for op, msisdn, _ in operations if msisdn == "+4799990000"] == ["upsert", "delete"]
    assert w.journal.record("+4799990000", "sips:pbx.acme.example:5061").status is RegistrationStatus.DELETED
    voicemail = w.journal.record("+4799990001", "sips:voicemail.acme.example")
    assert voicemail.applied is not None and voicemail.applied.mobile_terminating_prefix == "00"


def test_a_failed_record_is_reported_by_its_message_id_with_the_later_ones_of_its_group(
    worker_app: ModuleType,
) -> None:
    def down_for_first(call: CoreCall) -> CoreOutcome:
        if call.registration.msisdn == "+4799990000":
            return Transient(code="UNAVAILABLE", detail="down")
        return default_answer(call)

    w = world(down_for_first)
    event = sample("registration_worker_batch.json")
    answer = worker_app.lambda_handler(event, LambdaContext(), worker=w.worker)
    ids = [r["messageId"] for r in event["Records"]]
    assert answer == {"batchItemFailures": [{"itemIdentifier": ids[0]}, {"itemIdentifier": ids[2]}]}
    assert [handle for handle, _ in w.visibility.delays] == [
        event["Records"][0]["receiptHandle"],
        event["Records"][2]["receiptHandle"],
    ]


@pytest.mark.parametrize(
    "name",
    [
        "registration_worker_refresh.json",
        "registration_worker_consent_and_revoke.json",
        "registration_worker_unparseable.json",
    ],
)
def test_every_sample_is_answered_without_failures(worker_app: ModuleType, name: str) -> None:
    answer = worker_app.lambda_handler(sample(name), LambdaContext(), worker=world().worker)
    assert answer == {"batchItemFailures": []}


def test_the_events_own_tries_set_the_retry_delay_not_its_receive_count(worker_app: ModuleType) -> None:
    w = world()
    worker_app.lambda_handler(sample("registration_worker_batch.json"), LambdaContext(), worker=w.worker)
    w.core.script = lambda call: Transient(code="UNAVAILABLE", detail="down")
    # Given the revoke received twice before, but never tried (it was held back behind another)
    event = sample("registration_worker_consent_and_revoke.json")
    answer = worker_app.lambda_handler(event, LambdaContext(), worker=w.worker)
    revoke = event["Records"][1]
    assert answer == {"batchItemFailures": [{"itemIdentifier": revoke["messageId"]}]}
    assert w.visibility.delays == [(revoke["receiptHandle"], 30)]  # its first try: the base delay
    # When it fails again on its next delivery, Then the delay doubles (30 s * 2^(2 - 1))
    revoke["attributes"]["ApproximateReceiveCount"] = "3"
    worker_app.lambda_handler({"Records": [revoke]}, LambdaContext(), worker=w.worker)
    assert w.visibility.delays[-1] == (revoke["receiptHandle"], 60)


def test_the_refresher_handler_answers_its_figures_for_the_schedule_event(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "sipreg")
    app = load_function("refresher")
    queue = FakeQueue()
    answer = app.lambda_handler(
        sample("refresher_schedule.json"),
        LambdaContext(),
        refresher=refresher(FakeIndex([active(1, 60)]), queue),
    )
    assert answer == {"enqueued": 1, "not_accepted": 0, "overdue": 0, "complete": True}
