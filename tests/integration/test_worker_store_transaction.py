"""The worker's one write per event: record and event-log line in ONE DynamoDB transaction, all or
nothing, guarded by the record's version (moto server, the template's tables)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sipreg.aws import dynamodb_table
from sipreg.store import ConcurrentUpdateError
from sipreg.store.event_log import EventLog, EventLogEntry
from sipreg.store.registrations import RegistrationRecord, RegistrationStatus
from sipreg.worker import DynamoJournal
from tests.worker_support import provision

NOW = datetime.now(UTC)  # the log hides lines past its 30-day retention
MSISDN = "+4799990042"


def line(event_id: str, sip_uri: str) -> EventLogEntry:
    return EventLogEntry(
        msisdn=MSISDN,
        event_id=event_id,
        event_type="registration.upsert",
        outcome="active",
        sip_uri=sip_uri,
        recorded_at=NOW,
    )


@pytest.fixture
def tables(aws: str) -> tuple[str, str]:
    stack = provision(aws)
    return stack["RegistrationsTable"]["Ref"], stack["EventLogTable"]["Ref"]


@pytest.fixture
def journal(tables: tuple[str, str]) -> DynamoJournal:
    return DynamoJournal(*tables)


def logged(tables: tuple[str, str]) -> list[tuple[str, str | None]]:
    return sorted((e.event_id, e.sip_uri) for e in EventLog(tables[1]).recent(MSISDN))


def test_record_and_line_are_written_together_and_a_stale_version_writes_neither(
    journal: DynamoJournal, tables: tuple[str, str]
) -> None:
    first = RegistrationRecord(
        msisdn=MSISDN, sip_uri="sips:a.example", status=RegistrationStatus.PENDING, updated_at=NOW
    )
    journal.commit([(first, None)], [line("e1", "sips:a.example")])
    stored = journal.get(MSISDN, "sips:a.example")
    assert stored is not None and stored.version == 1
    # When a second writer saves from the version it read, and a third from the same old version
    journal.commit(
        [(stored.model_copy(update={"status": RegistrationStatus.ACTIVE}), 1)], [line("e2", "sips:a.example")]
    )
    with pytest.raises(ConcurrentUpdateError):
        journal.commit(
            [(stored.model_copy(update={"status": RegistrationStatus.REJECTED}), 1)],
            [line("e3", "sips:a.example")],
        )
    # Then the late writer changed nothing: neither the record nor the log
    latest = journal.get(MSISDN, "sips:a.example")
    assert latest is not None and latest.status is RegistrationStatus.ACTIVE and latest.version == 2
    assert logged(tables) == [("e1", "sips:a.example"), ("e2", "sips:a.example")]


def test_lines_of_one_event_for_two_registrations_do_not_overwrite_each_other(
    journal: DynamoJournal, tables: tuple[str, str]
) -> None:
    records = [
        RegistrationRecord(msisdn=MSISDN, sip_uri=uri, status=RegistrationStatus.ACTIVE, updated_at=NOW)
        for uri in ("sips:a.example", "sips:b.example")
    ]
    journal.commit([(r, None) for r in records], [line("consent-1", r.sip_uri) for r in records])
    assert [r.version for r in journal.list_for(MSISDN)] == [1, 1]
    assert logged(tables) == [("consent-1", "sips:a.example"), ("consent-1", "sips:b.example")]


def test_many_records_are_read_in_batches_of_a_hundred_and_missing_ones_map_to_none(
    journal: DynamoJournal, tables: tuple[str, str]
) -> None:
    # Given three registrations among 150 keys asked for (one asked twice)
    uris = [f"sips:pbx{n}.example" for n in range(150)]
    saved = [
        RegistrationRecord(msisdn=MSISDN, sip_uri=uri, status=RegistrationStatus.ACTIVE, updated_at=NOW)
        for uri in (uris[0], uris[99], uris[149])
    ]
    journal.commit([(r, None) for r in saved], [])
    requests: list[str] = []
    client = dynamodb_table(tables[0]).meta.client
    client.meta.events.register("before-call.dynamodb", lambda model, **_: requests.append(model.name))
    # When they are read at once
    found = journal.get_many([(MSISDN, uri) for uri in [*uris, uris[0]]])
    # Then two BatchGetItem requests answered every key: the three records, None for the rest
    assert requests == ["BatchGetItem", "BatchGetItem"]
    assert len(found) == 150
    present = {key[1]: record.version for key, record in found.items() if record is not None}
    assert present == {uris[0]: 1, uris[99]: 1, uris[149]: 1}
