"""DynamoDB answers a BatchGetItem in part when a table is throttled or the answer would pass 16 MB,
and names the rest in UnprocessedKeys; the local engine does both (ministack answered everything,
so no reader's handling of it ever ran). A key left unread is never taken for one without an item:
the registration store hands it back, the event log refuses to answer, and the endpoint health
check leaves that endpoint for its next run."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from devstack.aws_conformance.clients import client, pk_table
from devstack.aws_engine import throttle_batch_get
from devstack.wg2sim.process import Wg2simProcess
from sipreg.config import DownAction
from sipreg.health import HealthCheck
from sipreg.models import RouteSpec
from sipreg.notify import EventBridgePublisher
from sipreg.queue import EventQueue
from sipreg.sip import ProbeResult
from sipreg.store import batch_read
from sipreg.store.batch_read import UnreadKeysError
from sipreg.store.endpoints import EndpointHealth, EndpointHealthStore
from sipreg.store.event_log import EventLog, Outcome
from sipreg.store.registrations import RegistrationRecord, RegistrationStatus, RegistrationStore
from sipreg.worker.attempt import log_entry, tries_key
from tests.support.worker import Rig, build_rig
from tests.support.worker_events import upsert


@pytest.fixture
def rig(aws: str, wg2sim: Wg2simProcess) -> Iterator[Rig]:
    yield build_rig(aws, wg2sim)


@pytest.fixture(autouse=True)
def no_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batch_read, "PAUSE_SECONDS", 0.0)


def now() -> datetime:
    return datetime.now(UTC)


# --- the engine --------------------------------------------------------------------------------


@pytest.fixture
def table(aws_endpoint: str) -> tuple[Any, str]:
    dynamodb = client(aws_endpoint, "dynamodb")
    name = f"batch-{uuid.uuid4().hex[:10]}"
    pk_table(dynamodb, name)
    return dynamodb, name


def keys(*names: str) -> list[dict[str, Any]]:
    return [{"pk": {"S": name}} for name in names]


def test_a_throttled_table_serves_its_allowance_and_hands_back_the_rest(
    aws_endpoint: str, table: tuple[Any, str]
) -> None:
    dynamodb, name = table
    for pk in "abc":
        dynamodb.put_item(TableName=name, Item={"pk": {"S": pk}, "n": {"N": "1"}})
    throttle_batch_get(aws_endpoint, name, keys_per_call=2, calls=1)
    request = {name: {"Keys": keys("a", "b", "c", "missing"), "ConsistentRead": True}}
    first = dynamodb.batch_get_item(RequestItems=request)
    assert sorted(item["pk"]["S"] for item in first["Responses"][name]) == ["a", "b"]
    assert first["UnprocessedKeys"] == {name: {"Keys": keys("c", "missing"), "ConsistentRead": True}}
    # The throttle was for one request: the keys handed back are answered in full
    second = dynamodb.batch_get_item(RequestItems=first["UnprocessedKeys"])
    assert [item["pk"]["S"] for item in second["Responses"][name]] == ["c"]
    assert second["UnprocessedKeys"] == {}


def test_a_table_that_serves_nothing_fails_the_request(aws_endpoint: str, table: tuple[Any, str]) -> None:
    dynamodb, name = table
    throttle_batch_get(aws_endpoint, name, keys_per_call=0, calls=5)  # botocore's retry meets it too
    with pytest.raises(ClientError) as refused:
        dynamodb.batch_get_item(RequestItems={name: {"Keys": keys("a")}})
    assert refused.value.response["Error"]["Code"] == "ProvisionedThroughputExceededException"
    throttle_batch_get(aws_endpoint, name, keys_per_call=0, calls=0)  # over
    assert dynamodb.batch_get_item(RequestItems={name: {"Keys": keys("a")}})["UnprocessedKeys"] == {}


def test_an_answer_past_16_mb_is_cut_and_the_rest_handed_back(table: tuple[Any, str]) -> None:
    dynamodb, name = table
    names = [f"k{index:02}" for index in range(45)]
    for pk in names:  # 45 items of 390 KB: 17.6 MB
        dynamodb.put_item(TableName=name, Item={"pk": {"S": pk}, "blob": {"S": "x" * 390_000}})
    answer = dynamodb.batch_get_item(RequestItems={name: {"Keys": keys(*names)}})
    served = [item["pk"]["S"] for item in answer["Responses"][name]]
    left = [key["pk"]["S"] for key in answer["UnprocessedKeys"][name]["Keys"]]
    assert len(served) == 43 and sorted(served + left) == names
    # Projected, the same items are small: all of them in one answer
    small = dynamodb.batch_get_item(RequestItems={name: {"Keys": keys(*names), "ProjectionExpression": "pk"}})
    assert len(small["Responses"][name]) == 45 and small["UnprocessedKeys"] == {}


# --- sipreg's readers ----------------------------------------------------------------------------


def test_registrations_still_unread_are_handed_back_not_taken_for_missing(
    rig: Rig, new_msisdn: Callable[[], str]
) -> None:
    store = RegistrationStore(rig.ref("RegistrationsTable"))
    msisdn = new_msisdn()
    uris = [f"sips:pbx-{letter}.example" for letter in "abcdef"]
    for uri in uris[:3]:
        store.save(registration(msisdn, uri), read_version=None)
    throttle_batch_get(
        rig.endpoint, rig.ref("RegistrationsTable"), keys_per_call=1, calls=batch_read.ATTEMPTS
    )
    found = store.get_many([(msisdn, uri) for uri in uris])
    # Four rounds of one key each: a, b and c found, d known missing, e and f unread
    assert {key[1]: record is not None for key, record in found.items()} == {
        uris[0]: True,
        uris[1]: True,
        uris[2]: True,
        uris[3]: False,
    }


def test_the_event_log_refuses_to_answer_in_part(rig: Rig, new_msisdn: Callable[[], str]) -> None:
    log = EventLog(rig.ref("EventLogTable"))
    msisdn = new_msisdn()
    events = [
        upsert(f"crm-{index}", msisdn=msisdn, sip_uri="sips:pbx.example", at=now()) for index in range(6)
    ]
    entries = [log_entry(event, "sips:pbx.example", Outcome.ACTIVE, "applied", now()) for event in events]
    for entry in entries:
        log.write(entry)
    wanted = [tries_key(event) for event in events]
    assert len(log.get_many(wanted)) == 6
    throttle_batch_get(rig.endpoint, rig.ref("EventLogTable"), keys_per_call=1, calls=batch_read.ATTEMPTS)
    # Four of six read: not "two events have no item" (the chaos check would call them lost)
    with pytest.raises(UnreadKeysError, match="2 key"):
        log.get_many(wanted)


def registration(msisdn: str, sip_uri: str, *, suspended: bool = False) -> RegistrationRecord:
    return RegistrationRecord(
        msisdn=msisdn,
        sip_uri=sip_uri,
        status=RegistrationStatus.SUSPENDED if suspended else RegistrationStatus.ACTIVE,
        desired=RouteSpec(route_type="fork"),  # type: ignore[arg-type]
        suspended=suspended,
        updated_at=now(),
    )


def test_an_endpoint_whose_health_stays_unread_waits_for_the_next_run(
    rig: Rig, new_msisdn: Callable[[], str]
) -> None:
    # Five PBXs in use; the last (in the order the check reads them) was down, and its FORK is
    # suspended. It answers again now.
    registrations, endpoints = RegistrationStore(rig.ref("RegistrationsTable")), rig.ref("EndpointsTable")
    uris = [f"sips:pbx-{letter}.example" for letter in "abcde"]
    for uri in uris:
        registrations.save(registration(new_msisdn(), uri, suspended=uri == uris[-1]), read_version=None)
    assert registrations.endpoints_in_use() == uris
    down_since = now() - timedelta(hours=1)
    health = EndpointHealthStore(endpoints)
    health.save(
        EndpointHealth(sip_uri=uris[-1], up=False, since=down_since, checked_at=down_since, reason="timeout"),
        previous=None,
    )
    check = HealthCheck(
        registrations,
        health,
        all_up,
        EventQueue(rig.queue_url),
        EventBridgePublisher(rig.ref("StatusBus"), client=rig.aws("events")),
        action=DownAction.SUSPEND,
    )
    # When DynamoDB serves one endpoint per round, for one run's reads
    throttle_batch_get(rig.endpoint, endpoints, keys_per_call=1, calls=batch_read.ATTEMPTS)
    first = check.run()
    # Then the unread one is not taken for new (up, nothing to resume) but left as it was
    assert (first.endpoints, first.not_probed, first.resumes) == (4, 1, 0)
    kept = health.get_many([uris[-1]])[uris[-1]]
    assert kept is not None and not kept.up and kept.checked_at == down_since
    # And the next run resumes its registration
    second = check.run()
    assert (second.endpoints, second.not_probed, second.resumes) == (5, 0, 1)
    recovered = health.get_many([uris[-1]])[uris[-1]]
    assert recovered is not None and recovered.up


def all_up(uris: Sequence[str]) -> dict[str, ProbeResult]:
    return {
        uri: ProbeResult(uri=uri, up=True, status_code=200, reason="200 OK", elapsed_seconds=0.01)
        for uri in uris
    }
