"""EventsApiFunction: the events service over the events queue, the signing secrets, the
Registrations, EventLog, Subscribers and RequestIds tables."""

from __future__ import annotations

from datetime import timedelta
from functools import cache

from sipreg.api.service import EventsService, SecretsManagerSigningSecrets
from sipreg.config import EventsApiSettings
from sipreg.queue import EventQueue
from sipreg.store.event_log import EventLog
from sipreg.store.registrations import RegistrationStore
from sipreg.store.request_ids import RequestIdStore
from sipreg.store.subscribers import SubscriberStore


def build(settings: EventsApiSettings) -> EventsService:
    return EventsService(
        queue=EventQueue(settings.events_queue_url),
        secrets=SecretsManagerSigningSecrets(
            settings.webhook_secret_arn, max_age=settings.webhook_secret_max_age
        ),
        registrations=RegistrationStore(settings.registrations_table),
        event_log=EventLog(settings.event_log_table),
        consents=SubscriberStore(settings.subscribers_table),
        request_ids=RequestIdStore(settings.request_ids_table),
        api_version=settings.api_version,
        max_clock_skew=timedelta(seconds=settings.max_clock_skew_seconds),
    )


@cache
def from_env() -> EventsService:
    # Once per process: settings, SQS client and the secrets cache live across warm invocations.
    return build(EventsApiSettings.from_env())
