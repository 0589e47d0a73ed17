"""The worker's writes: record and event-log items in ONE DynamoDB transaction, all or nothing,
guarded by the record's version; items overwritten as an event moves on, their tries and
decisions counted (the local AWS engine, the template's tables)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sipreg.aws import dynamodb_table
from sipreg.store import ConcurrentUpdateError
from sipreg.store.event_log import EventKind, EventLog, EventLogEntry, Outcome
from sipreg.store.registrations import RegistrationRecord, RegistrationStatus
from sipreg.worker import DynamoJournal
from tests.support.worker import provision

NOW = datetime.now(UTC)  # the log hides lines past its 30-day retention
MSISDN = "+4799990042"


def line(
    event_id: str, sip_uri: str | None, outcome: Outcome = Outcome.ACTIVE, **fields: object
) -> EventLogEntry:
    values: dict[str, object] = {
        "msisdn": MSISDN,
        "event_id": event_id,
        "event_type": "registration.upsert",
        "outcome": outcome,
        "sip_uri": sip_uri,
        "occurred_at": NOW,
        "recorded_at": NOW,
        **fields,
    }
    return EventLogEntry.model_validate(values)


@pytest.fixture
def tables(aws: str) -> tuple[str, str]:
    stack = provision(aws)
    return stack["RegistrationsTable"]["Ref"], stack["EventLogTable"]["Ref"]


@pytest.fixture
def journal(tables: tuple[str, str]) -> DynamoJournal:
    return DynamoJournal(*tables)


def logged(tables: tuple[str, str]) -> list[tuple[str, str | None]]:
    return sorted((e.event_id, e.sip_uri) for e in EventLog(tables[1]).page(MSISDN, limit=100)[0])


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


def test_an_events_item_moves_on_counting_its_tries_and_one_final_decision(
    journal: DynamoJournal, tables: tuple[str, str]
) -> None:
    log = EventLog(tables[1])
    # Given an event claimed twice (two attempts), retried in between, then decided
    journal.commit([], [line("e1", "sips:a.example", Outcome.APPLYING)], count_try=True)
    journal.commit([], [line("e1", "sips:a.example", Outcome.RETRYING, reason="UNAVAILABLE: down")])
    journal.commit([], [line("e1", "sips:a.example", Outcome.APPLYING)], count_try=True)
    journal.commit([], [line("e1", "sips:a.example", Outcome.ACTIVE)])
    # Then one item holds it: the final outcome, no stale reason, two tries, one decision
    [item] = log.page(MSISDN)[0]
    assert (item.outcome, item.reason, item.tries, item.decisions) == (Outcome.ACTIVE, None, 2, 1)
    assert journal.tries_of([(MSISDN, item.key["sk"])]) == {(MSISDN, item.key["sk"]): 2}


def test_the_log_pages_newest_first_by_kind_with_filters_and_a_cursor(tables: tuple[str, str]) -> None:
    log = EventLog(tables[1])
    msisdn = "+4799990043"
    for n in range(7):
        log.write(
            EventLogEntry(
                msisdn=msisdn,
                event_id=f"crm-{n}",
                event_type="registration.upsert" if n % 2 else "registration.delete",
                outcome=Outcome.REJECTED if n == 3 else Outcome.ACTIVE,
                occurred_at=NOW.replace(microsecond=0) - timedelta(minutes=10 - n),
                recorded_at=NOW,
            )
        )
        log.write(
            EventLogEntry(
                msisdn=msisdn,
                event_id=f"refresh-{n}",
                event_type="registration.refresh",
                outcome=Outcome.REFRESHED,
                occurred_at=NOW - timedelta(minutes=5 - n),
                recorded_at=NOW,
            )
        )
    first, cursor = log.page(msisdn, limit=3)
    second, cursor2 = log.page(msisdn, limit=3, cursor=cursor)
    third, end = log.page(msisdn, limit=3, cursor=cursor2)
    assert [e.event_id for e in first + second + third] == [f"crm-{n}" for n in range(6, -1, -1)]
    assert end is None
    refreshes, _ = log.page(msisdn, kind=EventKind.REFRESHES, limit=2)
    assert [e.event_id for e in refreshes] == ["refresh-6", "refresh-5"]
    assert [e.event_id for e in log.page(msisdn, outcome=Outcome.REJECTED)[0]] == ["crm-3"]
    deletes = log.page(msisdn, event_type="registration.delete", limit=2)
    assert [e.event_id for e in deletes[0]] == ["crm-6", "crm-4"] and deletes[1] is not None


def test_a_redrive_marks_only_a_waiting_item_of_the_events_own_type_pending(tables: tuple[str, str]) -> None:
    log = EventLog(tables[1])
    waiting = line("dl-1", "sips:a.example", Outcome.DEAD_LETTERED, tries=8)
    done = line("done-1", "sips:a.example", Outcome.ACTIVE)
    log.write(waiting)
    log.write(done)
    at = NOW + timedelta(seconds=1)

    assert not log.mark_pending(waiting.key, "registration.suspend", "redriven", at)  # another type's
    assert not log.mark_pending(done.key, "registration.upsert", "redriven", at)  # final already
    assert not log.mark_pending(line("none-1", None).key, "registration.upsert", "redriven", at)
    assert log.mark_pending(waiting.key, "registration.upsert", "redriven", at)

    items = {e.event_id: e for e in log.page(MSISDN, limit=10)[0]}
    assert (items["dl-1"].outcome, items["dl-1"].tries, items["dl-1"].reason) == ("pending", 0, "redriven")
    assert items["done-1"].outcome == "active"
    assert "none-1" not in items


def test_a_redrive_adds_a_pending_item_only_where_there_is_none(tables: tuple[str, str]) -> None:
    log = EventLog(tables[1])
    done = line("done-2", "sips:a.example", Outcome.ACTIVE)
    log.write(done)

    assert log.add_pending(line("new-2", "sips:a.example", Outcome.PENDING, reason="redriven"))
    assert not log.add_pending(done.model_copy(update={"outcome": Outcome.PENDING}))

    items = {e.event_id: e for e in log.page(MSISDN, limit=10)[0]}
    assert (items["new-2"].outcome, items["new-2"].reason) == ("pending", "redriven")
    assert items["done-2"].outcome == "active"
