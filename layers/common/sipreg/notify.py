"""Publishing status changes to EventBridge, so CRM, billing and operators need not poll.

Each change is one event on the stack's bus, source `sipreg`:

    detail-type: RegistrationStatusChanged (the worker)
    detail: {"msisdn", "sip_uri", "old_status", "new_status", "reason", "event_id", "event_type",
             "changed_at", "correlation_id"}
    detail-type: EndpointHealthChanged (the endpoint health check)
    detail: {"sip_uri", "up", "reason", "status_code", "since", "checked_at", "action"}

`correlation_id` is the event id, as on every log line about the event (API, worker).

The MSISDN is in clear: it is the CRM's key, and the bus is the provider's own. The worker
collects the changes of one invocation and publishes them together (10 per PutEvents request).
Publishing never fails the batch: the registration change already happened and is in the table
and the event log; entries EventBridge keeps refusing are logged (count and error codes).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from sipreg.models import mask_msisdn

logger = logging.getLogger(__name__)

SOURCE = "sipreg"
DETAIL_TYPE = "RegistrationStatusChanged"
ENDPOINT_DETAIL_TYPE = "EndpointHealthChanged"
PUT_EVENTS_LIMIT = 10  # entries per PutEvents request


@dataclass(frozen=True)
class StatusChange:
    """One registration went from `old_status` (None: it is new) to `new_status`."""

    msisdn: str
    sip_uri: str
    old_status: str | None
    new_status: str
    reason: str | None
    event_id: str
    event_type: str
    changed_at: datetime
    detail_type = DETAIL_TYPE

    def detail(self) -> dict[str, Any]:
        return {
            "msisdn": self.msisdn,
            "sip_uri": self.sip_uri,
            "old_status": self.old_status,
            "new_status": self.new_status,
            "reason": self.reason,
            "event_id": self.event_id,
            "event_type": self.event_type,
            "changed_at": self.changed_at.isoformat(),
            "correlation_id": self.event_id,
        }


@dataclass(frozen=True)
class EndpointChange:
    """A PBX endpoint started or stopped answering SIP OPTIONS."""

    sip_uri: str
    up: bool
    reason: str
    status_code: int | None
    since: datetime
    checked_at: datetime
    action: str  # what a down endpoint does to its registrations: "alarm" or "suspend"
    detail_type = ENDPOINT_DETAIL_TYPE

    @property
    def changed_at(self) -> datetime:
        return self.since

    def detail(self) -> dict[str, Any]:
        return {
            "sip_uri": self.sip_uri,
            "up": self.up,
            "reason": self.reason,
            "status_code": self.status_code,
            "since": self.since.isoformat(),
            "checked_at": self.checked_at.isoformat(),
            "action": self.action,
        }


Change = StatusChange | EndpointChange


class StatusPublisher(Protocol):
    def publish(self, changes: Sequence[Change]) -> None: ...


class LogOnlyPublisher:
    """No bus configured: the changes are only logged (masked)."""

    def publish(self, changes: Sequence[Change]) -> None:
        for change in changes:
            if isinstance(change, EndpointChange):
                state = "up" if change.up else "down"
                logger.info("endpoint %s: %s (%s)", change.sip_uri, state, change.reason)
                continue
            logger.info(
                "status of %s %s: %s -> %s",
                mask_msisdn(change.msisdn),
                change.sip_uri,
                change.old_status,
                change.new_status,
            )


class EventBridgePublisher:
    """PutEvents on `bus_name`, 10 entries per request; failed entries are tried once more."""

    def __init__(self, bus_name: str, *, client: Any = None, attempts: int = 2) -> None:
        if client is None:
            from sipreg.aws import client as aws_client  # noqa: PLC0415  # boto3 only when used

            client = aws_client("events")
        self._bus = bus_name
        self._client = client
        self._attempts = attempts

    def publish(self, changes: Sequence[Change]) -> None:
        for start in range(0, len(changes), PUT_EVENTS_LIMIT):
            self._publish_chunk(changes[start : start + PUT_EVENTS_LIMIT])

    def _publish_chunk(self, chunk: Sequence[Change]) -> None:
        pending = [self._entry(change) for change in chunk]
        codes: set[str] = set()
        for _ in range(self._attempts):
            try:
                answer = self._client.put_events(Entries=pending)
            except (BotoCoreError, ClientError) as error:
                codes = {type(error).__name__}
                continue
            results = answer.get("Entries", [])
            failed = [entry for entry, result in zip(pending, results, strict=False) if "ErrorCode" in result]
            codes = {str(result["ErrorCode"]) for result in results if "ErrorCode" in result}
            pending = failed
            if not pending:
                return
        logger.error(
            "%d status change(s) not published to %s (%s)", len(pending), self._bus, ", ".join(sorted(codes))
        )

    def _entry(self, change: Change) -> dict[str, Any]:
        return {
            "Source": SOURCE,
            "DetailType": change.detail_type,
            "Detail": json.dumps(change.detail()),
            "EventBusName": self._bus,
            "Time": change.changed_at,
        }
