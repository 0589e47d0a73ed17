"""Builders of the worker's inputs: events of each type and the queued messages carrying them,
about one number and registration unless told otherwise, at one moment (`T0`)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

from sipreg.events import (
    AnyControlEvent,
    AnyEvent,
    ConsentedEvent,
    DeleteEvent,
    EventType,
    RefreshEvent,
    RegistrationRef,
    RegistrationSpec,
    RevokeEvent,
    UpsertEvent,
    parse_event,
    to_json,
)
from sipreg.models import RouteType
from sipreg.worker import QueuedMessage

MSISDN = "+4799990000"
SIP_URI = "sips:pbx.example.com:5061"
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

_ids = itertools.count(1)


def upsert(
    event_id: str | None = None,
    *,
    msisdn: str = MSISDN,
    sip_uri: str = SIP_URI,
    route_type: str = "fork",
    at: datetime = T0,
) -> UpsertEvent:
    return UpsertEvent(
        id=event_id or f"evt-{next(_ids)}",
        type=EventType.REGISTRATION_UPSERT,
        msisdn=msisdn,
        occurred_at=at,
        registration=RegistrationSpec(route_type=RouteType(route_type), sip_uri=sip_uri),
    )


def delete(
    event_id: str | None = None, *, msisdn: str = MSISDN, sip_uri: str = SIP_URI, at: datetime = T0
) -> DeleteEvent:
    return DeleteEvent(
        id=event_id or f"evt-{next(_ids)}",
        type=EventType.REGISTRATION_DELETE,
        msisdn=msisdn,
        occurred_at=at,
        registration=RegistrationRef(sip_uri=sip_uri),
    )


def refresh(
    event_id: str | None = None, *, msisdn: str = MSISDN, sip_uri: str = SIP_URI, at: datetime = T0
) -> RefreshEvent:
    return RefreshEvent(
        id=event_id or f"refresh-{next(_ids)}",
        type=EventType.REGISTRATION_REFRESH,
        msisdn=msisdn,
        occurred_at=at,
        registration=RegistrationRef(sip_uri=sip_uri),
    )


def consented(msisdn: str = MSISDN, at: datetime = T0) -> ConsentedEvent:
    return ConsentedEvent(
        id=f"consent-{next(_ids)}", type=EventType.SUBSCRIBER_CONSENTED, msisdn=msisdn, occurred_at=at
    )


def revoke(msisdn: str = MSISDN, at: datetime = T0) -> RevokeEvent:
    return RevokeEvent(
        id=f"revoke-{next(_ids)}", type=EventType.SUBSCRIBER_REVOKE, msisdn=msisdn, occurred_at=at
    )


def control(
    kind: str,
    event_id: str | None = None,
    *,
    msisdn: str = MSISDN,
    sip_uri: str = SIP_URI,
    reason: str | None = None,
    at: datetime = T0,
) -> AnyControlEvent:
    """An operator's or the health check's `registration.<kind>` (disable, enable, force_refresh,
    suspend, resume)."""
    event: Any = parse_event(
        {
            "id": event_id or f"{kind}-{next(_ids)}",
            "type": f"registration.{kind}",
            "msisdn": msisdn,
            "occurred_at": at.isoformat(),
            "registration": {"sip_uri": sip_uri},
            **({"reason": reason} if reason else {}),
        },
        allow_internal=True,
    )
    return event  # type: ignore[no-any-return]


# SenderIds as SQS records them: a session of one of sipreg's own function roles (the worker's
# `sipreg_roles` in `world()`), an AWS-native producer's role session, an operator (an IAM user).
SIPREG_ROLE = "AROASIPREGFUNCTION001"
SIPREG_SENDER = f"{SIPREG_ROLE}:sipreg-RefresherFunction-abc123"
PRODUCER_SENDER = "AROABILLINGPRODUCER01:billing-step-function"
OPERATOR_SENDER = "AIDAOPERATORUSER00001"


def message(
    event: AnyEvent | str,
    *,
    group: str | None = None,
    receive_count: int = 1,
    sender: str = SIPREG_SENDER,
) -> QueuedMessage:
    """A queued SQS message carrying `event` (or a raw body), sent by `sender`."""
    number = next(_ids)
    body = event if isinstance(event, str) else to_json(event)
    return QueuedMessage(
        message_id=f"m-{number}",
        receipt_handle=f"rh-{number}",
        body=body,
        group=group or (MSISDN if isinstance(event, str) else event.msisdn),
        receive_count=receive_count,
        sender=sender,
    )
