"""A batch SQS takes only in part: 503 naming exactly the ids not accepted; resending is safe.

The handler runs in-process with its real adapters (SQS, Secrets Manager) against moto server.
The failure is forced at the SQS client's boundary with botocore event hooks: chosen entries are
taken out of the SendMessageBatch request before it is sent (so they really never reach the
queue) and reported back in `Failed`, exactly as SQS reports entries it could not store.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse

from sipreg.api.service import EventsService, SecretsManagerSigningSecrets
from sipreg.queue import EventQueue
from sipreg.store.event_log import EventLog
from sipreg.store.registrations import RegistrationStore
from sipreg.store.request_ids import RequestIdStore
from tests.support.events_api import (
    FakeEventLog,
    aws_client,
    drain,
    events_host,
    events_queue_like,
    http_event,
    load_app,
    operator_event,
    upsert,
)
from tests.support.lambda_context import LambdaContext

app = load_app()


class FailingEntries:
    """Makes SQS fail the entries of chosen event ids: every time (`always`) or only once (`once`)."""

    def __init__(self, client: Any, *, always: set[str], once: set[str]) -> None:
        self.always, self.once = always, set(once)
        self.dropped: list[str] = []
        self.kept = 0
        self._events = client.meta.events
        self._hooks: list[tuple[str, Callable[..., Any]]] = [
            ("before-parameter-build.sqs.SendMessageBatch", self._drop),
            ("before-call.sqs.SendMessageBatch", self._skip_empty),
            ("after-call.sqs.SendMessageBatch", self._report),
        ]
        for name, hook in self._hooks:
            self._events.register(name, hook)

    def remove(self) -> None:
        for name, hook in self._hooks:
            self._events.unregister(name, hook)

    def _drop(self, params: dict[str, Any], **_: Any) -> None:
        self.dropped, kept = [], []
        for entry in params["Entries"]:
            event_id = json.loads(entry["MessageBody"])["id"]
            if event_id in self.always or event_id in self.once:
                self.once.discard(event_id)
                self.dropped.append(entry["Id"])
            else:
                kept.append(entry)
        params["Entries"] = kept
        self.kept = len(kept)

    def _skip_empty(self, params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        # SQS refuses an empty batch outright; with every entry dropped, answer as SQS would have.
        if self.kept == 0:
            return AWSResponse("http://sqs.local", 200, {}, None), {"Successful": []}
        return None

    def _report(self, parsed: dict[str, Any], **_: Any) -> None:
        failed = parsed.setdefault("Failed", [])
        failed.extend(
            {"Id": entry_id, "Code": "InternalError", "SenderFault": False, "Message": "forced by the test"}
            for entry_id in self.dropped
        )


@pytest.fixture
def stack(aws: str) -> Iterator[dict[str, Any]]:
    with events_host(aws) as host:
        yield host.resources


@pytest.fixture
def queue_url(aws: str) -> str:
    return events_queue_like(aws)


@pytest.fixture
def sqs(aws: str) -> Any:
    return aws_client(aws, "sqs")


@pytest.fixture
def service(stack: dict[str, Any], queue_url: str, sqs: Any) -> EventsService:
    return EventsService(
        queue=EventQueue(queue_url, client=sqs, sleep=lambda _: None),
        secrets=SecretsManagerSigningSecrets(stack["WebhookSecret"]["Ref"], max_age=0),
        registrations=RegistrationStore(stack["RegistrationsTable"]["Ref"]),
        event_log=EventLog(stack["EventLogTable"]["Ref"]),
        request_ids=RequestIdStore(stack["RequestIdsTable"]["Ref"]),
    )


def post(service: EventsService, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    answer = app.lambda_handler(http_event("POST", "/v1/events", body), LambdaContext(), service=service)
    return answer["statusCode"], json.loads(answer["body"])


BATCH = {"events": [upsert(f"evt-{n:02}", msisdn=f"+47999901{n:02}") for n in range(15)]}
ALL_IDS = [f"evt-{n:02}" for n in range(15)]


def queued_ids(aws: str, queue_url: str) -> list[str]:
    return sorted(json.loads(message["Body"])["id"] for message in drain(aws, queue_url))


def test_entries_sqs_keeps_failing_are_named_in_a_503_and_only_the_rest_are_queued(
    aws: str, service: EventsService, queue_url: str, sqs: Any
) -> None:
    failures = FailingEntries(sqs, always={"evt-03", "evt-12"}, once={"evt-07"})

    status, body = post(service, BATCH)

    assert status == 503
    assert body["type"] == "urn:sipreg:problem:not-accepted"
    assert body["not_accepted"] == ["evt-03", "evt-12"]
    assert body["accepted"] == [i for i in ALL_IDS if i not in ("evt-03", "evt-12")]  # evt-07: retried, taken
    failures.remove()
    assert queued_ids(aws, queue_url) == body["accepted"]


def test_resending_the_whole_batch_after_a_503_queues_each_event_once(
    aws: str, service: EventsService, queue_url: str, sqs: Any
) -> None:
    failures = FailingEntries(sqs, always={"evt-05"}, once=set())
    assert post(service, BATCH)[0] == 503
    depth = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"])
    assert depth["Attributes"]["ApproximateNumberOfMessages"] == "14"
    failures.remove()

    status, body = post(service, BATCH)

    assert (status, body) == (202, {"accepted": ALL_IDS})
    assert queued_ids(aws, queue_url) == ALL_IDS


def test_a_whole_batch_sqs_never_takes_is_503_with_every_id(
    aws: str, service: EventsService, queue_url: str, sqs: Any
) -> None:
    FailingEntries(sqs, always=set(ALL_IDS[:10]), once=set())

    status, body = post(service, BATCH)

    assert status == 503
    assert body["not_accepted"] == ALL_IDS[:10]
    assert queued_ids(aws, queue_url) == ALL_IDS[10:]


def test_the_revoke_route_answers_503_when_sqs_does_not_take_it(
    stack: dict[str, Any], queue_url: str, sqs: Any
) -> None:
    class RefuseEverything(FailingEntries):
        def _drop(self, params: dict[str, Any], **_: Any) -> None:
            self.dropped, self.kept = [entry["Id"] for entry in params["Entries"]], 0
            params["Entries"] = []

    RefuseEverything(sqs, always=set(), once=set())
    service = EventsService(
        queue=EventQueue(queue_url, client=sqs, sleep=lambda _: None),
        secrets=SecretsManagerSigningSecrets(stack["WebhookSecret"]["Ref"], max_age=0),
        registrations=RegistrationStore(stack["RegistrationsTable"]["Ref"]),
        event_log=FakeEventLog(),
        request_ids=RequestIdStore(stack["RequestIdsTable"]["Ref"]),
    )
    event = operator_event("POST", "/v1/subscribers/+4799990000/revoke")

    answer = app.lambda_handler(event, LambdaContext(), service=service)

    assert answer["statusCode"] == 503
    assert len(json.loads(answer["body"])["not_accepted"]) == 1
