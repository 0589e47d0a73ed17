"""RegistrationWorkerFunction: the worker, its journal (Registrations + EventLog tables), the core
client, the token service, the status bus and the queues it returns or dead-letters events to."""

from __future__ import annotations

from datetime import timedelta
from functools import cache

from sipreg.config import CoreSettings, TokenSettings, WorkerSettings
from sipreg.notify import EventBridgePublisher, LogOnlyPublisher, StatusPublisher
from sipreg.wiring import parts
from sipreg.worker.apply import EventApplier
from sipreg.worker.batch import Worker
from sipreg.worker.journal import DynamoJournal
from sipreg.worker.sqs import SqsDeadLetters, SqsVisibility


def build(settings: WorkerSettings, core: CoreSettings, tokens: TokenSettings) -> Worker:
    journal = DynamoJournal(settings.registrations_table, settings.event_log_table)
    applier = EventApplier(
        journal=journal,
        core=parts.core_client(core),
        tokens=parts.token_service(tokens),
        auth_mode=settings.auth_mode,
        api_version=settings.api_version,
        max_tries=settings.max_tries,
        max_future_skew=timedelta(seconds=settings.max_clock_skew_seconds),
    )
    publisher: StatusPublisher = (
        EventBridgePublisher(settings.status_bus_name) if settings.status_bus_name else LogOnlyPublisher()
    )
    return Worker(
        applier,
        journal,
        SqsVisibility(settings.events_queue_url),
        publisher,
        SqsDeadLetters(settings.dead_letter_queue_url),
        sipreg_roles=settings.sipreg_role_ids,
        concurrency=settings.group_concurrency,
        retry_base_seconds=settings.retry_base_seconds,
        retry_max_seconds=settings.retry_max_seconds,
        time_reserve_seconds=settings.time_reserve_seconds,
    )


@cache
def from_env() -> Worker:
    return build(WorkerSettings.from_env(), CoreSettings.from_env(), TokenSettings.from_env())
