"""How a new consent is announced: `subscriber.consented` on the events queue, so registrations
waiting for consent get applied; the start function, which announces nothing, gets none."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol

from sipreg.config import ConfigError


class AnnouncementError(RuntimeError):
    """The announcement was not sent (the consent it announces is stored, though)."""


class ConsentEvents(Protocol):
    """Announces a new consent (the queue in production; a list in unit tests); raises
    AnnouncementError when it could not."""

    def consented(self, msisdn: str, *, event_id: str) -> None: ...


class QueueConsentEvents:
    """`subscriber.consented` on the events queue (FIFO group = the MSISDN)."""

    def __init__(self, queue_url: str, *, source: str = "oauth_callback") -> None:
        from sipreg.queue import EventQueue  # noqa: PLC0415  # boto3 only when used

        self._queue = EventQueue(queue_url)
        self._source = source

    def consented(self, msisdn: str, *, event_id: str) -> None:
        from sipreg.events import ConsentedEvent, EventType  # noqa: PLC0415

        event = ConsentedEvent(
            id=event_id,
            type=EventType.SUBSCRIBER_CONSENTED,
            msisdn=msisdn,
            occurred_at=datetime.now(UTC),
            source=self._source,
        )
        result = self._queue.send([event])
        if not result.complete:
            raise AnnouncementError("the events queue did not take subscriber.consented")


class NoAnnouncements:
    """For the start function, which never announces anything (and so needs no queue)."""

    def consented(self, msisdn: str, *, event_id: str) -> None:
        raise ConfigError("bad configuration: EVENTS_QUEUE_URL: required to announce consents")
