"""One attempt at an event: what its delivery brought, what the attempt keeps track of, and what
became of the event."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sipreg.events import ONE_REGISTRATION, AnyEvent
from sipreg.notify import StatusChange
from sipreg.store.event_log import EventLogEntry, Outcome, sort_key


@dataclass(frozen=True)
class Delivery:
    """What the worker knows of this delivery of the event."""

    tries_before: int = 0  # attempts started on it in earlier deliveries (from its log item)
    redelivered: bool = False  # SQS has handed it out before


@dataclass(frozen=True)
class EventResult:
    """What became of one event: its outcome, and whether the message must come back or go to the DLQ."""

    outcome: Outcome
    reason: str | None = None
    retry: bool = False
    dead_letter: bool = False  # the worker moves the message to the dead-letter queue
    changes: tuple[StatusChange, ...] = ()


def sip_uri_of(event: AnyEvent) -> str | None:
    """The registration an event is about; None for one about the whole subscriber."""
    return event.registration.sip_uri if isinstance(event, ONE_REGISTRATION) else None


def tries_key(event: AnyEvent) -> tuple[str, str]:
    """The log item whose `tries` counts the event's attempts: its registration's, or its own."""
    return (event.msisdn, sort_key(event.type.value, event.occurred_at, event.id, sip_uri_of(event)))


def log_entry(
    event: AnyEvent, sip_uri: str | None, outcome: Outcome, reason: str | None, recorded_at: datetime
) -> EventLogEntry:
    """The event's log item for `sip_uri` (None: the event's own), saying `outcome`."""
    return EventLogEntry(
        msisdn=event.msisdn,
        event_id=event.id,
        event_type=event.type.value,
        outcome=outcome,
        reason=reason,
        sip_uri=sip_uri,
        occurred_at=event.occurred_at,
        recorded_at=recorded_at,
        source=event.source,
    )


@dataclass
class Run:
    """One attempt at the event: what the delivery brought, and which registrations it called."""

    delivery: Delivery
    unconfirmed: frozenset[str]  # registrations an earlier attempt called and could not save
    called: set[str] = field(default_factory=set)
    tries: int = 0  # attempts including this one, once it claimed (or failed a refresh)

    def must_converge(self, sip_uri: str) -> bool:
        return sip_uri in self.unconfirmed or self.delivery.redelivered
