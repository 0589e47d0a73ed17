"""The registration worker: applies queued events to the core, exactly once in effect.

    worker = process_worker()                              # once per process (cold start)
    report = worker.process(messages, remaining_seconds)   # one SQS batch
    return report.response()                               # {"batchItemFailures": [...]}

`apply` holds the rules for one event, `batch` the grouping, concurrency, retry delays and
notification of one batch, `prefetch` what one group knows of its records within a batch.
Duplicates are absorbed by the registration record itself (it keeps its recent event ids).

DynamoDB requests on the warm path: before the groups run, ONE BatchGetItem (consistent; per 100
keys) reads the record of every registration the batch's upserts, deletes and refreshes name;
then each applied event costs one TransactWriteItems (record + event-log line). A group's later
event on the same registration uses the record its earlier event saved (FIFO: the group is the
only writer in the batch; the version check still guards every write, and a conflict reads from
DynamoDB again). So a batch of ten upserts costs 1 + 10 requests, i.e. 1.1 per event, and no
KMS call (tokens are cached in memory). Consent and revoke events read with a Query, as before.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import timedelta
from functools import cache

from sipreg.config import CoreSettings, WorkerSettings
from sipreg.core import core_client
from sipreg.notify import EventBridgePublisher, LogOnlyPublisher, StatusPublisher
from sipreg.store.event_log import EventLog, EventLogEntry
from sipreg.store.registrations import RecordKey, RegistrationRecord, RegistrationStore
from sipreg.telemetry import span
from sipreg.tokens import token_service
from sipreg.worker.apply import EventApplier, EventResult, Journal
from sipreg.worker.batch import BatchReport, QueuedMessage, SqsDeadLetters, SqsVisibility, Worker

__all__ = [
    "BatchReport",
    "DynamoJournal",
    "EventApplier",
    "EventResult",
    "Journal",
    "QueuedMessage",
    "Worker",
    "build_worker",
    "process_worker",
]


class DynamoJournal:
    """`Journal` over the Registrations and EventLog tables."""

    def __init__(self, registrations_table: str, event_log_table: str) -> None:
        self._store = RegistrationStore(registrations_table)
        self._log = EventLog(event_log_table)

    def get(self, msisdn: str, sip_uri: str) -> RegistrationRecord | None:
        return self._store.get(msisdn, sip_uri)

    def get_many(self, keys: Collection[RecordKey]) -> dict[RecordKey, RegistrationRecord | None]:
        return self._store.get_many(keys)

    def list_for(self, msisdn: str) -> list[RegistrationRecord]:
        return self._store.list_for(msisdn)

    def commit(
        self,
        saves: Sequence[tuple[RegistrationRecord, int | None]],
        entries: Sequence[EventLogEntry],
        *,
        count_try: bool = False,
    ) -> list[RegistrationRecord]:
        with span("store commit", records=len(saves), log_items=len(entries)):
            return self._store.save_with_log(
                saves, entries, event_log_table=self._log.table_name, count_try=count_try
            )

    def write(self, entry: EventLogEntry, *, count_try: bool = False) -> None:
        self._log.write(entry, count_try=count_try)

    def tries_of(self, keys: Collection[tuple[str, str]]) -> dict[tuple[str, str], int]:
        return self._log.tries_of(keys)


def build_worker(settings: WorkerSettings | None = None) -> Worker:
    """A worker wired from the environment: the core client, token service and AWS clients of
    this process (each built once and reused)."""
    worker_settings = settings or WorkerSettings.from_env()
    journal = DynamoJournal(worker_settings.registrations_table, worker_settings.event_log_table)
    applier = EventApplier(
        journal=journal,
        core=core_client(CoreSettings.from_env()),
        tokens=token_service(),
        auth_mode=worker_settings.auth_mode,
        api_version=worker_settings.api_version,
        max_tries=worker_settings.max_tries,
        max_future_skew=timedelta(seconds=worker_settings.max_clock_skew_seconds),
    )
    publisher: StatusPublisher = (
        EventBridgePublisher(worker_settings.status_bus_name)
        if worker_settings.status_bus_name
        else LogOnlyPublisher()
    )
    return Worker(
        applier,
        journal,
        SqsVisibility(worker_settings.events_queue_url),
        publisher,
        SqsDeadLetters(worker_settings.dead_letter_queue_url),
        concurrency=worker_settings.group_concurrency,
        retry_base_seconds=worker_settings.retry_base_seconds,
        retry_max_seconds=worker_settings.retry_max_seconds,
        time_reserve_seconds=worker_settings.time_reserve_seconds,
    )


@cache
def process_worker() -> Worker:
    """The process's worker, configured from the environment at the first call (cold start)."""
    return build_worker()
