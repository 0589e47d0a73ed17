"""PBX endpoint health: is every SIP endpoint that registrations point at answering?

    report = sipreg.wiring.endpoint_health.from_env().run()   # on a schedule, every minute

Each run lists the distinct endpoints in use (the `ByEndpoint` index of the Registrations
table), sends each one SIP OPTIONS over TLS (`sipreg.sip.probe_all`: bounded concurrency and
timeout; an endpoint that fails is probed once more before it counts as down, so one lost
packet is not an outage), and records up/down with the time and the reason in the Endpoints
table. It probes in waves, those checked longest ago first, as long as the invocation's time
holds another wave: what a run does not reach, the next one starts with. A change is
published on the status bus (`EndpointHealthChanged`) and counted; the `EndpointsDown` metric
feeds an alarm.

With `ENDPOINT_DOWN_ACTION=suspend`, a down endpoint's registrations get `registration.suspend`
events through the events queue (so each number's order holds): the worker takes LOOP, FORK,
LOOP_MO and LOOP_MT registrations off the core, so subscribers' calls go the normal way, and
keeps Fallback and Ingress. Every run while it is down suspends what is not yet suspended (a
registration created meanwhile, a send that failed). When it answers again,
`registration.resume` events put them back; the endpoint is recorded as up only once every
resume was queued, so a run that could not send them all is repeated by the next one. Every run
while it answers resumes what is still suspended there (the sparse `Suspended` index): a suspend
applied after the endpoint came back (its number's events were held behind a retrying one, or
the index had not caught up) would otherwise keep its registration off the core until the next
outage. Event ids come from the endpoint, the time it went down (or up) and the number: a
repeated send is absorbed as a duplicate.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from sipreg.config import DownAction
from sipreg.events import MAX_REASON_LENGTH, AnyEvent, parse_event
from sipreg.models import sipreg_event_id
from sipreg.notify import EndpointChange, StatusPublisher
from sipreg.queue import SendResult
from sipreg.sip import ProbeResult
from sipreg.store import ConcurrentUpdateError
from sipreg.store.endpoints import EndpointHealth

logger = logging.getLogger(__name__)

SOURCE = "sipreg-health"
DEFAULT_MAX_EVENTS = 5000  # suspend/resume events per run; the next run continues
# What a run keeps for its end after the last wave: the status events, the report, the metrics.
FINISH_SECONDS = 5.0
_NEVER = datetime.min.replace(tzinfo=UTC)  # an endpoint never checked comes first


class EndpointDirectory(Protocol):
    def endpoints_in_use(self) -> list[str]: ...

    def registrations_at(self, sip_uri: str) -> Iterable[tuple[str, bool]]: ...

    def suspended_registrations(self) -> Mapping[str, Sequence[str]]:
        """The MSISDNs of the suspended registrations, by sip_uri."""


class HealthRecords(Protocol):
    def get_many(self, sip_uris: Sequence[str]) -> Mapping[str, EndpointHealth | None]:
        """None for an endpoint never checked; one whose health could not be read is left out."""

    def save(self, health: EndpointHealth, *, previous: EndpointHealth | None) -> None:
        """Raises ConcurrentUpdateError when the stored health is no longer `previous`."""


class EventSink(Protocol):
    def send(self, events: Sequence[AnyEvent]) -> SendResult: ...


Prober = Callable[[Sequence[str]], Mapping[str, ProbeResult]]


@dataclass(frozen=True)
class HealthReport:
    endpoints: int  # probed
    down: int
    changed: int  # went up or down this run (a new endpoint that is up is no change)
    suspends: int  # registration.suspend events queued
    resumes: int  # registration.resume events queued
    not_accepted: int  # events the queue did not take: the next run sends them again
    not_probed: int = 0  # endpoints this run had no time for: the next run starts with them

    def as_dict(self) -> dict[str, Any]:
        return {
            "endpoints": self.endpoints,
            "down": self.down,
            "changed": self.changed,
            "suspends": self.suspends,
            "resumes": self.resumes,
            "not_accepted": self.not_accepted,
            "not_probed": self.not_probed,
        }


@dataclass
class _Tally:
    """What one run has done so far."""

    budget: int  # suspend/resume events it may still send
    down: int = 0
    suspends: int = 0
    resumes: int = 0
    not_accepted: int = 0
    changes: list[EndpointChange] = field(default_factory=list)


def control_event_id(kind: str, sip_uri: str, down_since: datetime, msisdn: str) -> str:
    key = f"{sip_uri}|{down_since.astimezone(UTC).isoformat()}|{msisdn}"
    return sipreg_event_id(kind, hashlib.sha256(key.encode()).hexdigest()[:40])


def _printable(reason: str) -> str:
    cleaned = "".join(ch if ch.isprintable() else " " for ch in reason)
    return cleaned[:MAX_REASON_LENGTH]


class HealthCheck:
    def __init__(  # the ports, then the policy
        self,
        directory: EndpointDirectory,
        records: HealthRecords,
        prober: Prober,
        queue: EventSink,
        publisher: StatusPublisher,
        *,
        action: DownAction = DownAction.ALARM,
        max_events: int = DEFAULT_MAX_EVENTS,
        wave_size: int = 8,
        wave_seconds: float = 10.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """`wave_size`: endpoints probed at once (the prober's concurrency); `wave_seconds`: the
        longest a wave takes (a probe and its retry, each up to the probe timeout)."""
        self._directory = directory
        self._records = records
        self._prober = prober
        self._queue = queue
        self._publisher = publisher
        self._action = action
        self._max_events = max_events
        self._wave_size = wave_size
        self._wave_seconds = wave_seconds
        self._clock = clock

    def run(self, remaining_seconds: Callable[[], float] = lambda: math.inf) -> HealthReport:
        """Probes the endpoints in waves of `wave_size`, those checked longest ago first, while
        `remaining_seconds()` (the invocation's time left) holds another wave and the finish:
        an endpoint not reached keeps its record, and the next run starts with it."""
        now = self._clock()
        uris = self._directory.endpoints_in_use()
        known = self._records.get_many(uris)
        suspended = self._directory.suspended_registrations() if self._action is DownAction.SUSPEND else {}
        readable = [uri for uri in uris if uri in known]
        if len(readable) < len(uris):
            # Taken for new, a PBX recorded down would never see its registrations resumed.
            logger.warning(
                "health check: %d endpoint(s) whose last health stayed unread are not probed",
                len(uris) - len(readable),
            )
        oldest_first = sorted(
            readable, key=lambda uri: health.checked_at if (health := known[uri]) else _NEVER
        )
        tally, probed = _Tally(budget=self._max_events), 0
        for start in range(0, len(oldest_first), self._wave_size):
            if remaining_seconds() < self._wave_seconds + FINISH_SECONDS:
                logger.warning(
                    "health check: %d of %d endpoint(s) not probed in this run's time; the next run "
                    "starts with them",
                    len(uris) - probed,
                    len(uris),
                )
                break
            wave = oldest_first[start : start + self._wave_size]
            results = self._probe(wave)
            for uri in wave:
                self._record(tally, uri, results[uri], known.get(uri), now, suspended.get(uri, ()))
            probed += len(wave)
        self._publisher.publish(tally.changes)
        report = HealthReport(
            probed,
            tally.down,
            len(tally.changes),
            tally.suspends,
            tally.resumes,
            tally.not_accepted,
            not_probed=len(uris) - probed,
        )
        logger.info(
            "health check: %d endpoint(s), %d down, %d changed", probed, tally.down, len(tally.changes),
            extra=report.as_dict(),
        )  # fmt: skip
        return report

    def _record(  # noqa: PLR0917  # one endpoint's result, what was known of it, and the run's own
        self,
        tally: _Tally,
        uri: str,
        result: ProbeResult,
        before: EndpointHealth | None,
        now: datetime,
        suspended: Sequence[str],
    ) -> None:
        changed = before is None or before.up != result.up
        since = now if changed or before is None else before.since
        health = EndpointHealth(
            sip_uri=uri,
            up=result.up,
            since=since,
            checked_at=now,
            reason=_printable(result.reason),
            status_code=result.status_code,
        )
        complete = True
        if not result.up:
            tally.down += 1
            # Recorded first: of two runs side by side only the one that records it suspends (each
            # would name its events by its own `since`) and tells; what a failed send leaves is
            # suspended by the next run, which finds the endpoint down.
            if not self._recorded(health, before):
                return
            if self._action is DownAction.SUSPEND:
                not_yet = [msisdn for msisdn, held in self._directory.registrations_at(uri) if not held]
                sent = self._send(uri, since, health.reason, tally.budget, not_yet, suspend=True)
                tally.suspends, tally.budget = tally.suspends + sent.accepted, tally.budget - sent.accepted
                tally.not_accepted += sent.not_accepted
        elif self._action is DownAction.SUSPEND:
            came_back = before is not None and not before.up
            held = set(suspended)
            if came_back:  # as listed by ByEndpoint too: one suspended before `Suspended` existed
                held |= {msisdn for msisdn, flag in self._directory.registrations_at(uri) if flag}
            if held:
                sent = self._send(
                    uri,
                    before.since if before else since,
                    health.reason,
                    tally.budget,
                    sorted(held),
                    suspend=False,
                )
                tally.resumes, tally.budget = tally.resumes + sent.accepted, tally.budget - sent.accepted
                tally.not_accepted += sent.not_accepted
                complete = sent.complete
        if not complete:  # still recorded as down: the next run sends the rest
            logger.warning("endpoint %s answers again; not every resume was queued yet", uri)
            return
        if result.up and not self._recorded(health, before):
            return  # (its resumes, named by the same `since`, were absorbed as duplicates)
        if changed and (before is not None or not result.up):
            tally.changes.append(_change(health, self._action))
            logger.warning(
                "endpoint %s is %s: %s",
                uri,
                "up" if result.up else "down",
                health.reason,
                extra={"sip_uri": uri, "up": result.up, "status_code": result.status_code},
            )

    def _recorded(self, health: EndpointHealth, before: EndpointHealth | None) -> bool:
        """Saves `health` unless another run recorded the endpoint since `before` was read."""
        try:
            self._records.save(health, previous=before)
        except ConcurrentUpdateError:
            logger.info(
                "endpoint %s was recorded by another run meanwhile; this one leaves it", health.sip_uri
            )
            return False
        return True

    def _probe(self, uris: Sequence[str]) -> dict[str, ProbeResult]:
        results = dict(self._prober(uris))
        again = [uri for uri in uris if not results[uri].up]
        if again:  # one more try before an endpoint counts as down
            results.update(self._prober(again))
        return results

    def _send(  # what, where, since when, why, how many at most
        self, uri: str, since: datetime, reason: str, budget: int, msisdns: Sequence[str], *, suspend: bool
    ) -> _Sent:
        """Suspends or resumes the registrations of `msisdns` at `uri`; at most `budget` events."""
        now = self._clock()
        kind = "suspend" if suspend else "resume"
        events: list[AnyEvent] = []
        for msisdn in msisdns:
            if len(events) >= budget:
                return _Sent.of(self._queue.send(events) if events else None, left_over=True)
            fields: dict[str, Any] = {
                "id": control_event_id(kind, uri, since, msisdn),
                "type": f"registration.{kind}",
                "msisdn": msisdn,
                "occurred_at": now.isoformat(),
                "source": SOURCE,
                "registration": {"sip_uri": uri},
            }
            if suspend:
                fields["reason"] = _printable(f"endpoint down: {reason}")
            events.append(parse_event(fields, allow_internal=True))
        return _Sent.of(self._queue.send(events) if events else None, left_over=False)


@dataclass(frozen=True)
class _Sent:
    accepted: int
    not_accepted: int
    complete: bool

    @classmethod
    def of(cls, result: SendResult | None, *, left_over: bool) -> _Sent:
        if result is None:
            return cls(0, 0, not left_over)
        return cls(len(result.accepted), len(result.not_accepted), result.complete and not left_over)


def _change(health: EndpointHealth, action: DownAction) -> EndpointChange:
    return EndpointChange(
        sip_uri=health.sip_uri,
        up=health.up,
        reason=health.reason,
        status_code=health.status_code,
        since=health.since,
        checked_at=health.checked_at,
        action=action.value,
    )
