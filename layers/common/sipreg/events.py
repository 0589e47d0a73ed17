"""The event model: one JSON envelope for everything that changes a registration.

External producers (CRM, billing, the events API) may send only `registration.upsert` and
`registration.delete`. The internal types share the envelope and travel on the same queue, but
only sipreg's own code creates them: `parse_events(..., allow_internal=False)` and the API refuse
them. They are the refresher's `registration.refresh`, the consent callback's
`subscriber.consented`, the operator's `subscriber.revoke`, `registration.disable`, `.enable` and
`.force_refresh`, and the endpoint health check's `registration.suspend` and `.resume`.

Field paths in errors are dotted with list indexes as numbers, e.g. `events.3.registration.sip_uri`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from functools import cache
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
)

from sipreg.models import (
    E164_PATTERN,
    SIPREG_ID_PREFIX,
    ApiVersion,
    FieldError,
    Msisdn,
    OptionalPrefix,
    RouteSpec,
    RouteType,
    SipUri,
)

MAX_SOURCE_LENGTH = 64


class EventType(StrEnum):
    REGISTRATION_UPSERT = "registration.upsert"
    REGISTRATION_DELETE = "registration.delete"
    # Internal: made by sipreg itself (refresher, consent callback, revoke route).
    REGISTRATION_REFRESH = "registration.refresh"
    SUBSCRIBER_CONSENTED = "subscriber.consented"
    SUBSCRIBER_REVOKE = "subscriber.revoke"
    # Internal: an operator's controls of one registration (operator routes, `sipreg` commands).
    REGISTRATION_DISABLE = "registration.disable"
    REGISTRATION_ENABLE = "registration.enable"
    REGISTRATION_FORCE_REFRESH = "registration.force_refresh"
    # Internal: the endpoint health check, while a PBX endpoint does not answer OPTIONS.
    REGISTRATION_SUSPEND = "registration.suspend"
    REGISTRATION_RESUME = "registration.resume"

    @property
    def external(self) -> bool:
        return self in EXTERNAL_TYPES


EXTERNAL_TYPES = frozenset({EventType.REGISTRATION_UPSERT, EventType.REGISTRATION_DELETE})


# --- field types --------------------------------------------------------------------------------

_EVENT_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def check_event_id(value: str) -> str:
    if not _EVENT_ID.fullmatch(value):
        raise ValueError("must be 1 to 128 characters of A-Z, a-z, 0-9, '.', '_', ':' and '-'")
    return value


EventId = Annotated[
    str,
    AfterValidator(check_event_id),
    Field(json_schema_extra={"pattern": "^[A-Za-z0-9._:-]{1,128}$", "minLength": 1, "maxLength": 128}),
]


def _check_producer_event_id(value: str) -> str:
    if value.startswith(SIPREG_ID_PREFIX):
        raise ValueError(f"must not begin with '{SIPREG_ID_PREFIX}': those ids are sipreg's own")
    return value


ProducerEventId = Annotated[
    str,
    AfterValidator(check_event_id),
    AfterValidator(_check_producer_event_id),
    Field(
        description=(
            "Producer-chosen and unique per event; resending it is safe. Ids beginning `sipreg:` "
            "are sipreg's own."
        ),
        json_schema_extra={
            "pattern": f"^(?!{SIPREG_ID_PREFIX})[A-Za-z0-9._:-]{{1,128}}$",
            "minLength": 1,
            "maxLength": 128,
        },
    ),
]

# RFC 3339 date-time: 'T' between date and time, and an offset (Z or +hh:mm) always.
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})")


def _rfc3339_text(value: Any) -> Any:
    if isinstance(value, datetime):  # built in code, not parsed: pydantic checks it has an offset
        return value
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise ValueError("must be an RFC 3339 date-time with offset, e.g. 2025-01-31T12:00:00Z")
    return value


# The earliest occurred_at: every instant from here on has a UTC date (the event log keys on it),
# and no producer's change happened before it. The latest is the receiver's clock plus its skew
# (`MAX_CLOCK_SKEW_SECONDS`, 5 minutes): the events API and the worker check that against their
# own clocks; here only that the instant has a UTC date at all (year 9999 at most).
EARLIEST_OCCURRED_AT = datetime(1970, 1, 1, tzinfo=UTC)


def _check_instant(value: datetime) -> datetime:
    # Aware datetimes compare by instant without converting either: this never overflows.
    if value < EARLIEST_OCCURRED_AT:
        raise ValueError("must be 1970-01-01T00:00:00Z or later (in UTC)")
    try:
        value.astimezone(UTC)
    except OverflowError:  # e.g. 9999-12-31T23:59:59-23:59, after year 9999 in UTC
        raise ValueError("is too far in the future: send the time the change happened") from None
    return value


OccurredAt = Annotated[AwareDatetime, BeforeValidator(_rfc3339_text), AfterValidator(_check_instant)]


def _check_source(value: str) -> str:
    if not 1 <= len(value) <= MAX_SOURCE_LENGTH or not value.isprintable():
        raise ValueError(f"must be 1 to {MAX_SOURCE_LENGTH} printable characters")
    return value


Source = Annotated[
    str, AfterValidator(_check_source), Field(json_schema_extra={"minLength": 1, "maxLength": 64})
]

MsisdnField = Annotated[
    Msisdn,
    Field(json_schema_extra={"pattern": f"^{E164_PATTERN}$", "examples": ["+4799990000"]}),
]
SipUriField = Annotated[
    SipUri,
    Field(
        description="`sips:` host [`:` port]; no user part, parameters or headers",
        json_schema_extra={"pattern": "^[sS][iI][pP][sS]:", "examples": ["sips:pbx.example.com:5061"]},
    ),
]
PrefixField = Annotated[
    OptionalPrefix,
    Field(
        description="1 to 8 digits; empty, null or left out: no prefix",
        json_schema_extra={"pattern": "^[0-9]{0,8}$"},
    ),
]


def _any_case(word: str) -> str:
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in word)


_V1_ONLY = [route.value for route in RouteType if not route.available_in(ApiVersion.V0)]
# A producer's route type is a name in any case ("FORK" is fork); JSON Schema has no
# case-insensitive enum, so the published schema spells that as a pattern.
RouteTypeField = Annotated[
    RouteType,
    WithJsonSchema(
        {
            "type": "string",
            "pattern": "^(?:" + "|".join(_any_case(route.value) for route in RouteType) + ")$",
            "description": (
                f"One of {', '.join(RouteType)}, in any case; {', '.join(_V1_ONLY)} need "
                "SipBreakoutService v1 (the stack's ApiVersion)"
            ),
            "examples": ["fork"],
        }
    ),
]

MAX_REASON_LENGTH = 200


def _check_reason(value: str) -> str:
    if not 1 <= len(value) <= MAX_REASON_LENGTH or not value.isprintable():
        raise ValueError(f"must be 1 to {MAX_REASON_LENGTH} printable characters")
    return value


Reason = Annotated[
    str, AfterValidator(_check_reason), Field(json_schema_extra={"minLength": 1, "maxLength": 200})
]


# --- registration parts -------------------------------------------------------------------------

# The event models build their own validators and serializers on first use (pydantic's
# `defer_build`): events are read through `_ANY` below, which has its own, and the registration
# worker (cold start, issue 13) never validates or dumps an event model by itself.
_EVENT_MODEL = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class RegistrationSpec(RouteSpec):
    """What an upsert asks for: the registration of the event's MSISDN at `sip_uri`."""

    model_config = _EVENT_MODEL

    route_type: RouteTypeField  # as RouteSpec's, documented for producers
    sip_uri: SipUriField
    mobile_originating_prefix: PrefixField = None
    mobile_terminating_prefix: PrefixField = None


class RegistrationRef(BaseModel):
    """Names one registration of the event's MSISDN; (MSISDN, sip_uri) identifies it.

    A delete needs only `sip_uri`; the other fields are accepted (and checked) so a producer may
    send the same registration object it upserted, but they change nothing.
    """

    model_config = _EVENT_MODEL

    sip_uri: SipUriField
    route_type: RouteTypeField | None = None
    mobile_originating_prefix: PrefixField = None
    mobile_terminating_prefix: PrefixField = None


# --- events -------------------------------------------------------------------------------------


class _Envelope(BaseModel):
    model_config = _EVENT_MODEL

    id: EventId = Field(description="Producer-chosen and unique per event; resending it is safe.")
    msisdn: MsisdnField
    occurred_at: OccurredAt = Field(
        description=(
            "When the change happened at the producer: RFC 3339 with an offset, no leap second "
            "(:60); in UTC from 1970-01-01T00:00:00Z to 5 minutes ahead of our clock."
        )
    )
    source: Source | None = Field(default=None, description="Who sent it, e.g. `crm`; for the event log.")


class UpsertEvent(_Envelope):
    """Add or replace the MSISDN's registration at `registration.sip_uri`."""

    id: ProducerEventId
    type: Literal[EventType.REGISTRATION_UPSERT]
    registration: RegistrationSpec


class DeleteEvent(_Envelope):
    """Remove the MSISDN's registration at `registration.sip_uri`."""

    id: ProducerEventId
    type: Literal[EventType.REGISTRATION_DELETE]
    registration: RegistrationRef


class RefreshEvent(_Envelope):
    """Internal: re-upsert an active registration before its TTL on the core runs out."""

    type: Literal[EventType.REGISTRATION_REFRESH]
    registration: RegistrationRef


class ConsentedEvent(_Envelope):
    """Internal: the subscriber granted consent; apply what waits for it."""

    type: Literal[EventType.SUBSCRIBER_CONSENTED]


class RevokeEvent(_Envelope):
    """Internal: delete every registration of the MSISDN and revoke its tokens."""

    type: Literal[EventType.SUBSCRIBER_REVOKE]


class ControlEvent(_Envelope):
    """Internal: an operator's or the health check's control of one registration. It changes
    whether the desired state is on the core, never the desired state itself."""

    registration: RegistrationRef
    reason: Reason | None = Field(default=None, description="Why, for the event log and status.")


class DisableEvent(ControlEvent):
    """Delete the registration from the core and keep its desired state; nothing applies it
    (refreshes, upserts, consent) until it is enabled."""

    type: Literal[EventType.REGISTRATION_DISABLE]


class EnableEvent(ControlEvent):
    """Apply the desired state of a disabled registration again."""

    type: Literal[EventType.REGISTRATION_ENABLE]


class ForceRefreshEvent(ControlEvent):
    """Re-send the desired state to the core now, whatever the registration's status."""

    type: Literal[EventType.REGISTRATION_FORCE_REFRESH]


class SuspendEvent(ControlEvent):
    """Its PBX endpoint is down: a LOOP or FORK registration leaves the core until it is back."""

    type: Literal[EventType.REGISTRATION_SUSPEND]


class ResumeEvent(ControlEvent):
    """Its PBX endpoint answers again: what was suspended goes back on the core."""

    type: Literal[EventType.REGISTRATION_RESUME]


ExternalEvent = Annotated[UpsertEvent | DeleteEvent, Field(discriminator="type")]
AnyControlEvent = DisableEvent | EnableEvent | ForceRefreshEvent | SuspendEvent | ResumeEvent
AnyEvent = UpsertEvent | DeleteEvent | RefreshEvent | ConsentedEvent | RevokeEvent | AnyControlEvent
Event = Annotated[AnyEvent, Field(discriminator="type")]
# Events about one registration (MSISDN, `registration.sip_uri`), for isinstance.
ONE_REGISTRATION = (UpsertEvent, DeleteEvent, RefreshEvent, ControlEvent)

# Every function that reads events reads them through `_ANY`; producers' events only the CLI and
# the local stack parse (the events API validates its body model), so that adapter waits for them.
_ANY: TypeAdapter[AnyEvent] = TypeAdapter(Event)


@cache
def _external() -> TypeAdapter[UpsertEvent | DeleteEvent]:
    return TypeAdapter(ExternalEvent)


# --- parsing and errors -------------------------------------------------------------------------


class InvalidEventsError(ValueError):
    """One or more events were refused; `errors` names each field and why."""

    def __init__(self, errors: Sequence[FieldError]) -> None:
        self.errors = tuple(errors)
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in self.errors))


_TAGS = frozenset(EventType)
_ALLOWED = {
    False: ", ".join(sorted(EXTERNAL_TYPES)),
    True: ", ".join(sorted(EventType)),
}

# Our wording for pydantic's generic errors; our own validators already say why.
_MESSAGES = {
    "missing": "is required",
    "extra_forbidden": "is not a known field",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "dict_type": "must be an object",
    "string_type": "must be a string",
    "list_type": "must be a list",
    "timezone_aware": "must have a UTC offset, e.g. 2025-01-31T12:00:00Z",
    "datetime_from_date_parsing": "must be a valid date and time",
    "datetime_parsing": "must be a valid date and time",
}


def event_path(loc: Sequence[str | int]) -> str:
    """A dotted field path from a pydantic location, without the union's type tags: the part that
    opens an event (first, or after its index in a list). A field that merely bears a type's name
    (an unknown `subscriber.consented`) keeps it."""
    return ".".join(
        str(part)
        for index, part in enumerate(loc)
        if not (part in _TAGS and (index == 0 or isinstance(loc[index - 1], int)))
    )


def describe(detail: Mapping[str, Any], *, allow_internal: bool = False) -> FieldError:
    """One pydantic error as a field-named reason in our words; never echoes the input."""
    loc = list(detail["loc"])
    kind = detail["type"]
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        loc.append("type")
        message = f"must be one of: {_ALLOWED[allow_internal]}"
        if kind == "union_tag_not_found":
            message = "is required; " + message
        elif not allow_internal and detail.get("ctx", {}).get("tag") in _TAGS:
            message += " (internal event types cannot be sent from outside)"
    elif kind == "enum" and loc and loc[-1] == "route_type":
        message = f"must be one of: {', '.join(RouteType)} (any case)"
    else:
        message = _MESSAGES.get(kind, detail["msg"].removeprefix("Value error, "))
    return FieldError(field=event_path(loc), message=message)


def describe_all(
    error: ValidationError, *, prefix: Sequence[str | int] = (), allow_internal: bool = False
) -> list[FieldError]:
    return [
        describe({**detail, "loc": (*prefix, *detail["loc"])}, allow_internal=allow_internal)
        for detail in error.errors(include_url=False, include_input=False)
    ]


def parse_event(data: Any, *, allow_internal: bool = False) -> AnyEvent:
    """One event from JSON-like data; raises `InvalidEventsError` naming each bad field."""
    return parse_events([data], allow_internal=allow_internal, prefix=None)[0]


def parse_events(
    items: Sequence[Any], *, allow_internal: bool = False, prefix: str | None = "events"
) -> list[AnyEvent]:
    """Every event or none: all problems of all events in one `InvalidEventsError`.

    Paths are `<prefix>.<index>.<field>` (just `<field>` when prefix is None: one event).
    """
    adapter = _ANY if allow_internal else _external()
    slots: list[AnyEvent | None] = []
    errors: list[FieldError] = []
    for index, item in enumerate(items):
        position: tuple[str | int, ...] = () if prefix is None else (prefix, index)
        try:
            slots.append(adapter.validate_python(item))
        except ValidationError as error:
            slots.append(None)
            errors.extend(describe_all(error, prefix=position, allow_internal=allow_internal))
    if prefix is not None:
        errors.extend(repeated_ids(slots, prefix=prefix))
    if errors:
        raise InvalidEventsError(errors)
    return [event for event in slots if event is not None]


def repeated_ids(events: Sequence[AnyEvent | None], *, prefix: str) -> list[FieldError]:
    """Ids must be distinct in one batch: the queue deduplicates on them, so a repeat would be lost.

    `None` stands for an event that did not validate (it keeps the others' indexes right).
    """
    first_seen: dict[str, int] = {}
    errors = []
    for index, event in enumerate(events):
        if event is None:
            continue
        if event.id in first_seen:
            errors.append(
                FieldError(f"{prefix}.{index}.id", f"repeats the id of {prefix}.{first_seen[event.id]}")
            )
        first_seen.setdefault(event.id, index)
    return errors


def to_json(event: AnyEvent) -> str:
    """The wire form (queue message body): compact JSON, absent optionals left out."""
    return event.model_dump_json(exclude_none=True)


def from_json(body: str | bytes) -> AnyEvent:
    """An event read back from the queue (internal types allowed)."""
    try:
        return _ANY.validate_json(body)
    except ValidationError as error:
        raise InvalidEventsError(describe_all(error, allow_internal=True)) from None
