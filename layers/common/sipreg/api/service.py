"""What the events API's routes do, with every outside system behind a small port.

`EventsService.from_settings` wires the real ones (SQS, Secrets Manager, DynamoDB); tests pass
their own at the same boundaries.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from sipreg.api import gate
from sipreg.api.models import Accepted, EventBatch, EventLogView, RegistrationView, SubscriberStatus
from sipreg.api.problems import NotAcceptedError, SecretsUnavailableError, UnknownMsisdnError
from sipreg.config import EventsApiSettings
from sipreg.events import (
    AnyEvent,
    DeleteEvent,
    EventType,
    InvalidEventsError,
    RevokeEvent,
    UpsertEvent,
    repeated_ids,
)
from sipreg.models import mask_msisdn
from sipreg.queue import SendResult
from sipreg.signing import SecretFormatError, parse_secret
from sipreg.store.event_log import EventLogEntry
from sipreg.store.registrations import RegistrationRecord

logger = logging.getLogger(__name__)

SOURCE = "events-api"
EVENT_LOG_LIMIT = 50


class EventSink(Protocol):
    def send(self, events: Sequence[AnyEvent]) -> SendResult: ...


class RegistrationReader(Protocol):
    def list_for(self, msisdn: str) -> list[RegistrationRecord]: ...


class EventLogReader(Protocol):
    def recent(self, msisdn: str, *, limit: int = ...) -> list[EventLogEntry]: ...


SigningSecrets = Callable[[], Sequence[str]]


class SecretsManagerSigningSecrets:
    """The signing secrets from Secrets Manager, cached by powertools for `max_age` seconds.

    The secret's JSON shape is documented in `sipreg.signing`. A rotation is picked up within
    `max_age`; until then the previous value stays valid at the sender's side too.
    """

    def __init__(self, secret_id: str, *, max_age: int) -> None:
        self._secret_id = secret_id
        self._max_age = max_age

    def __call__(self) -> tuple[str, ...]:
        from aws_lambda_powertools.utilities import parameters  # noqa: PLC0415  # boto3 only when used

        try:
            return parse_secret(parameters.get_secret(self._secret_id, max_age=self._max_age))
        except SecretFormatError as error:
            logger.error("webhook signing secret unusable: %s", error)
            raise SecretsUnavailableError() from None
        except parameters.exceptions.GetParameterError as error:
            logger.error("webhook signing secret unreadable: %s", type(error.__cause__).__name__)
            raise SecretsUnavailableError() from None


class EventsService:
    def __init__(
        self,
        *,
        queue: EventSink,
        secrets: SigningSecrets,
        registrations: RegistrationReader,
        event_log: EventLogReader,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._queue = queue
        self._secrets = secrets
        self._registrations = registrations
        self._event_log = event_log
        self._clock = clock

    @classmethod
    def from_settings(cls, settings: EventsApiSettings) -> EventsService:
        from sipreg.queue import EventQueue  # noqa: PLC0415  # boto3 only when used
        from sipreg.store.event_log import EventLog  # noqa: PLC0415
        from sipreg.store.registrations import RegistrationStore  # noqa: PLC0415

        return cls(
            queue=EventQueue(settings.events_queue_url),
            secrets=SecretsManagerSigningSecrets(
                settings.webhook_secret_arn, max_age=settings.webhook_secret_max_age
            ),
            registrations=RegistrationStore(settings.registrations_table),
            event_log=EventLog(settings.event_log_table),
        )

    def admit(self, event: dict[str, Any]) -> dict[str, Any]:
        """The raw-request checks (size, signature, content type): the request to route, or raises."""
        return gate.admit(event, self._secrets)

    def accept(self, request: UpsertEvent | DeleteEvent | EventBatch) -> Accepted:
        """Queues every event or raises `InvalidEventsError` (nothing queued) / `NotAcceptedError`."""
        if isinstance(request, EventBatch):
            events: list[AnyEvent] = list(request.events)
            repeats = repeated_ids(events, prefix="events")
            if repeats:
                raise InvalidEventsError(repeats)
        else:
            events = [request]
        return self._enqueue(events)

    def revoke(self, msisdn: str) -> Accepted:
        event = RevokeEvent(
            id=f"revoke:{uuid.uuid4().hex}",
            type=EventType.SUBSCRIBER_REVOKE,
            msisdn=msisdn,
            occurred_at=self._clock(),
            source=SOURCE,
        )
        logger.info("revoke requested for %s", mask_msisdn(msisdn))
        return self._enqueue([event])

    def status(self, msisdn: str) -> SubscriberStatus:
        records = self._registrations.list_for(msisdn)
        entries = self._event_log.recent(msisdn, limit=EVENT_LOG_LIMIT)
        if not records and not entries:
            raise UnknownMsisdnError()
        return SubscriberStatus(
            msisdn=msisdn,
            registrations=[
                RegistrationView.of(record) for record in sorted(records, key=lambda r: r.sip_uri)
            ],
            events=[EventLogView.of(entry) for entry in entries],
        )

    def _enqueue(self, events: Sequence[AnyEvent]) -> Accepted:
        result = self._queue.send(events)
        if not result.complete:
            logger.warning("%d of %d events not accepted by SQS", len(result.not_accepted), len(events))
            raise NotAcceptedError(result.accepted, result.not_accepted)
        return Accepted(accepted=list(result.accepted))
