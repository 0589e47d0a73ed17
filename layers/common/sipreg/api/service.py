"""What the events API's routes do, with every outside system behind a small port.

`sipreg.wiring.events_api` wires the real ones (SQS, Secrets Manager, DynamoDB); tests pass
their own at the same boundaries.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sipreg.api import gate
from sipreg.api.models import (
    Accepted,
    ConsentView,
    ControlAction,
    ControlRequest,
    EventBatch,
    EventLogView,
    RegistrationView,
    SubscriberStatus,
)
from sipreg.api.problems import (
    InvalidRequestError,
    NotAcceptedError,
    SecretsUnavailableError,
    UnknownMsisdnError,
    UnknownRegistrationError,
)
from sipreg.events import (
    AnyEvent,
    DeleteEvent,
    EventType,
    InvalidEventsError,
    RevokeEvent,
    UpsertEvent,
    parse_event,
    repeated_ids,
)
from sipreg.models import ApiVersion, FieldError, mask_msisdn, sipreg_event_id
from sipreg.queue import SendResult
from sipreg.signing import SecretFormatError, parse_secret
from sipreg.store.event_log import EventKind, EventLogEntry, InvalidCursorError, Outcome, kind_of
from sipreg.store.registrations import RegistrationRecord, RegistrationStatus
from sipreg.store.request_ids import RequestIds
from sipreg.store.subscribers import SubscriberRecord
from sipreg.telemetry import correlated, count

logger = logging.getLogger(__name__)

SOURCE = "events-api"
EVENT_LOG_LIMIT = 50
# Deleted registrations a status shows, the latest first: their number has no bound (each sip_uri
# ever deleted stays, so an older event cannot bring it back), and their events are in the log.
DELETED_SHOWN = 20


class EventSink(Protocol):
    def send(self, events: Sequence[AnyEvent]) -> SendResult: ...


class RegistrationReader(Protocol):
    def list_for(self, msisdn: str) -> list[RegistrationRecord]: ...


class ConsentReader(Protocol):
    def consent_of(self, msisdn: str) -> SubscriberRecord | None: ...


class EventLogReader(Protocol):
    def page(
        self,
        msisdn: str,
        *,
        kind: EventKind = ...,
        limit: int = ...,
        cursor: str | None = ...,
        event_type: str | None = ...,
        outcome: Outcome | None = ...,
    ) -> tuple[list[EventLogEntry], str | None]: ...


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
        from aws_lambda_powertools.utilities.parameters.exceptions import (  # noqa: PLC0415  # when used
            GetParameterError,
        )

        from sipreg.aws import secrets  # noqa: PLC0415  # boto3 only when used

        try:
            return parse_secret(secrets().get(self._secret_id, max_age=self._max_age))
        except SecretFormatError as error:
            logger.error("webhook signing secret unusable: %s", error)
            raise SecretsUnavailableError() from None
        except GetParameterError as error:
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
        request_ids: RequestIds,
        consents: ConsentReader | None = None,
        api_version: ApiVersion = ApiVersion.V0,
        max_clock_skew: timedelta = timedelta(minutes=5),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._queue = queue
        self._request_ids = request_ids
        self._api_version = api_version
        self._secrets = secrets
        self._registrations = registrations
        self._event_log = event_log
        self._consents = consents
        self._max_clock_skew = max_clock_skew
        self._clock = clock

    def admit(self, event: dict[str, Any]) -> tuple[dict[str, Any], gate.Caller | None]:
        """The raw-request checks (size, who sent it, request id, content type): the request to
        route and its caller, or raises."""
        return gate.admit(event, self._secrets, self._request_ids)

    def accept(self, request: UpsertEvent | DeleteEvent | EventBatch) -> Accepted:
        """Queues every event or raises `InvalidEventsError` (nothing queued) / `NotAcceptedError`."""
        if isinstance(request, EventBatch):
            events: list[AnyEvent] = list(request.events)
            problems = (
                repeated_ids(events, prefix="events")
                + self._from_the_future(events, prefix="events.")
                + self._unavailable_routes(events, prefix="events.")
            )
        else:
            events = [request]
            problems = self._from_the_future(events, prefix="") + self._unavailable_routes(events, prefix="")
        if problems:
            raise InvalidEventsError(problems)
        return self._enqueue(events)

    def _from_the_future(self, events: Sequence[AnyEvent], *, prefix: str) -> list[FieldError]:
        """A wrong clock at a producer would freeze the registration (every later event looks stale)."""
        latest = self._clock() + self._max_clock_skew
        skew = int(self._max_clock_skew.total_seconds())
        return [
            FieldError(
                f"{prefix}{index}.occurred_at" if prefix else "occurred_at",
                f"is more than {skew} s ahead of our clock; send the time the change happened",
            )
            for index, event in enumerate(events)
            if event.occurred_at > latest
        ]

    def _unavailable_routes(self, events: Sequence[AnyEvent], *, prefix: str) -> list[FieldError]:
        """A route type the stack's SipBreakoutService version lacks would only be rejected later
        (an upsert), or names a registration this stack cannot have made (a delete that gives one:
        the producer has the stack wrong; a delete needs only `sip_uri`)."""
        version = self._api_version
        return [
            FieldError(
                f"{prefix}{index}.registration.route_type" if prefix else "registration.route_type",
                f"{route_type.value} needs SipBreakoutService v1; this stack calls "
                f"{version.value} (loop, fork or fallback only)",
            )
            for index, event in enumerate(events)
            if isinstance(event, UpsertEvent | DeleteEvent)
            and (route_type := event.registration.route_type) is not None
            and not route_type.available_in(version)
        ]

    def revoke(self, msisdn: str, *, by: str = "") -> Accepted:
        event = RevokeEvent(
            id=sipreg_event_id("revoke", uuid.uuid4().hex),
            type=EventType.SUBSCRIBER_REVOKE,
            msisdn=msisdn,
            occurred_at=self._clock(),
            source=SOURCE,
        )
        logger.info("revoke requested for %s by %s", mask_msisdn(msisdn), by or "(unknown)")
        return self._enqueue([event])

    def control(
        self, msisdn: str, action: ControlAction, request: ControlRequest, *, by: str = ""
    ) -> Accepted:
        """Queues an operator's disable / enable / refresh of one registration (in the number's
        order, behind what is queued already); 404 when there is no such registration."""
        if not any(r.sip_uri == request.sip_uri for r in self._registrations.list_for(msisdn)):
            raise UnknownRegistrationError()
        kind = action.event_type.value.removeprefix("registration.")
        event = parse_event(
            {
                "id": sipreg_event_id(kind, uuid.uuid4().hex),
                "type": action.event_type.value,
                "msisdn": msisdn,
                "occurred_at": self._clock().isoformat(),
                "source": SOURCE,
                "registration": {"sip_uri": request.sip_uri},
                **({"reason": request.reason} if request.reason else {}),
            },
            allow_internal=True,
        )
        with correlated(event.id):
            logger.info(
                "%s of %s %s requested by %s",
                action.value,
                mask_msisdn(msisdn),
                request.sip_uri,
                by or "(unknown)",
            )
        return self._enqueue([event])

    def status(
        self,
        msisdn: str,
        *,
        limit: int = EVENT_LOG_LIMIT,
        cursor: str | None = None,
        event_type: EventType | None = None,
        outcome: Outcome | None = None,
    ) -> SubscriberStatus:
        """The registrations and one page of the number's events, newest first. Refreshes page on
        their own (`event_type=registration.refresh`); every other type is in the default history."""
        records = self._registrations.list_for(msisdn)
        kind = kind_of(event_type.value) if event_type else EventKind.CHANGES
        try:
            entries, next_cursor = self._event_log.page(
                msisdn,
                kind=kind,
                limit=limit,
                cursor=cursor,
                event_type=event_type.value if event_type and kind is EventKind.CHANGES else None,
                outcome=outcome,
            )
        except InvalidCursorError as error:
            raise InvalidRequestError([FieldError("cursor", str(error))]) from None
        consent = self._consents.consent_of(msisdn) if self._consents else None
        if not records and not entries and consent is None and not cursor and self._unknown(msisdn):
            raise UnknownMsisdnError()
        deleted = sorted(
            (r for r in records if r.status is RegistrationStatus.DELETED),
            key=lambda r: r.updated_at,
            reverse=True,
        )
        shown = [r for r in records if r.status is not RegistrationStatus.DELETED] + deleted[:DELETED_SHOWN]
        return SubscriberStatus(
            msisdn=msisdn,
            consent=ConsentView.of(consent) if consent else None,
            registrations=[RegistrationView.of(record) for record in sorted(shown, key=lambda r: r.sip_uri)],
            deleted_not_shown=max(0, len(deleted) - DELETED_SHOWN),
            events=[EventLogView.of(entry) for entry in entries],
            next_cursor=next_cursor,
        )

    def _unknown(self, msisdn: str) -> bool:
        return not any(self._event_log.page(msisdn, kind=kind, limit=1)[0] for kind in EventKind)

    def _enqueue(self, events: Sequence[AnyEvent]) -> Accepted:
        result = self._queue.send(events)
        taken = set(result.accepted)
        for event in events:  # one line per event: the start of its trail (correlation id = its id)
            with correlated(event.id):
                logger.info(
                    "%s %s for %s %s",
                    event.type,
                    event.id,
                    mask_msisdn(event.msisdn),
                    "queued" if event.id in taken else "not accepted by the queue",
                    extra={"event_type": event.type.value, "source": event.source},
                )
        count("EventsAccepted", len(result.accepted))
        if not result.complete:
            count("EventsNotAccepted", len(result.not_accepted))
            logger.warning("%d of %d events not accepted by SQS", len(result.not_accepted), len(events))
            raise NotAcceptedError(result.accepted, result.not_accepted)
        return Accepted(accepted=list(result.accepted))
