"""The events API's request and response shapes; the OpenAPI document is generated from these."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

from sipreg.events import EventType, ExternalEvent, Reason, SipUriField
from sipreg.models import RouteSpec
from sipreg.store.event_log import EventLogEntry, Outcome
from sipreg.store.registrations import RegistrationRecord, RegistrationStatus
from sipreg.store.subscribers import ConsentStatus, SubscriberRecord

MAX_BATCH = 100


class EventBatch(BaseModel):
    """Up to 100 events, accepted all together or not at all."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    events: list[ExternalEvent] = Field(min_length=1, max_length=MAX_BATCH)


def _body_shape(value: Any) -> str:
    return "batch" if isinstance(value, dict) and "events" in value else "event"


# The tags ("event", "batch") appear in validation error locations; `problems` removes them.
SHAPE_TAGS = frozenset({"event", "batch"})
EventsRequest = Annotated[
    Annotated[ExternalEvent, Tag("event")] | Annotated[EventBatch, Tag("batch")],
    Discriminator(_body_shape),
]


class Accepted(BaseModel):
    """The ids of the events now on the queue (in request order)."""

    accepted: list[str]


class FieldProblem(BaseModel):
    field: str = Field(description="Dotted path, e.g. `events.3.registration.sip_uri`.")
    message: str


class Problem(BaseModel):
    """An RFC 9457 problem document; `errors`, `accepted` and `not_accepted` appear where they apply."""

    model_config = ConfigDict(extra="allow")

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    errors: list[FieldProblem] | None = None
    accepted: list[str] | None = None
    not_accepted: list[str] | None = Field(
        None, description="Ids that did not reach the queue; sending them again is safe."
    )


class RegistrationView(BaseModel):
    sip_uri: str
    status: RegistrationStatus
    desired: RouteSpec | None = Field(default=None, description="What it should be; null: none.")
    applied: RouteSpec | None = Field(default=None, description="What the core holds as far as we know.")
    expires_at: datetime | None = None
    last_error: str | None = None
    last_event_id: str | None = None
    last_event_type: str | None = None
    last_event_at: datetime | None = None
    in_flight: InFlightView | None = Field(
        default=None, description="A core call claimed for this event whose outcome is not saved yet."
    )
    disabled: bool = Field(default=False, description="An operator keeps it off the core (enable undoes it).")
    suspended: bool = Field(
        default=False, description="Its PBX endpoint is down: a LOOP or FORK stays off the core meanwhile."
    )
    updated_at: datetime

    @classmethod
    def of(cls, record: RegistrationRecord) -> RegistrationView:
        return cls.model_validate(record.model_dump(include=set(cls.model_fields)))


class InFlightView(BaseModel):
    event_id: str
    since: datetime


class EventLogView(BaseModel):
    event_id: str
    event_type: str
    outcome: Outcome = Field(
        description="`applying` (a core call on its way, or cut short), `retrying`, `pending` (back "
        "from the dead-letter queue) or a final outcome such as `active`, `rejected`, `dead_lettered`."
    )
    reason: str | None = None
    sip_uri: str | None = Field(default=None, description="The registration; null: the event as a whole.")
    occurred_at: datetime
    recorded_at: datetime = Field(description="When this outcome was written.")
    source: str | None = None
    tries: int = Field(0, description="Attempts the worker started on the event.")

    @classmethod
    def of(cls, entry: EventLogEntry) -> EventLogView:
        return cls.model_validate(entry.model_dump(include=set(cls.model_fields)))


class ConsentView(BaseModel):
    """The subscriber's consent as sipreg holds it (never a token)."""

    status: ConsentStatus
    consented_at: datetime | None = None
    revoked_at: datetime | None = None
    revoked_reason: str | None = None
    refresh_token: bool = Field(
        description="False: the identity server granted no refresh token, so the consent ends with "
        "its access token (`access_expires_at`) and the subscriber must consent again."
    )
    access_expires_at: datetime | None = None
    scopes: list[str] = Field(default_factory=list)

    @classmethod
    def of(cls, record: SubscriberRecord) -> ConsentView:
        expires = record.access_expires_at
        return cls(
            status=record.status,
            consented_at=record.consented_at,
            revoked_at=record.revoked_at,
            revoked_reason=record.revoked_reason,
            refresh_token=not record.refresh_token_missing,
            access_expires_at=datetime.fromtimestamp(expires, UTC) if expires is not None else None,
            scopes=list(record.scopes),
        )


class SubscriberStatus(BaseModel):
    """The registrations of one MSISDN, its consent, and one page of what became of its events
    (newest first)."""

    msisdn: str
    consent: ConsentView | None = Field(default=None, description="null: no consent (or client mode).")
    registrations: list[RegistrationView] = Field(
        description="By sip_uri: every one not deleted, and the 20 deleted last."
    )
    deleted_not_shown: int = Field(
        default=0, description="Deleted registrations older than those shown (their events are in the log)."
    )
    events: list[EventLogView]
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` for the next page of events; null: no more."
    )


class ControlAction(StrEnum):
    """An operator's control of one registration (route `/v1/registrations/{msisdn}/<action>`)."""

    DISABLE = "disable"  # off the core, the desired state kept
    ENABLE = "enable"  # the desired state applied again
    REFRESH = "refresh"  # the desired state re-sent now

    @property
    def event_type(self) -> EventType:
        return _CONTROL_TYPES[self]


_CONTROL_TYPES = {
    ControlAction.DISABLE: EventType.REGISTRATION_DISABLE,
    ControlAction.ENABLE: EventType.REGISTRATION_ENABLE,
    ControlAction.REFRESH: EventType.REGISTRATION_FORCE_REFRESH,
}


class ControlRequest(BaseModel):
    """Which registration of the MSISDN, and why (the reason goes to the event log and status)."""

    model_config = ConfigDict(extra="forbid")

    sip_uri: SipUriField
    reason: Reason | None = None
