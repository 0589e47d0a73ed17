"""In-memory fakes at the worker's ports (journal, core, tokens, visibility, status publisher).

Each keeps the contract the worker relies on: versioned all-or-nothing commits, outcomes in the
order of the calls, typed token errors. `world()` wires them to a real applier and worker; the
events and messages it runs come from `tests.support.worker_events`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sipreg.config import AuthMode
from sipreg.core.port import Applied, CoreCall, CoreOutcome, Deleted, Operation
from sipreg.models import ApiVersion, Registration
from sipreg.notify import Change, StatusChange
from sipreg.store import ConcurrentUpdateError
from sipreg.store.event_log import EventLogEntry
from sipreg.store.registrations import RecordKey, RegistrationRecord
from sipreg.tokens import TokenError
from sipreg.worker import EventApplier, QueuedMessage, Worker
from tests.support.worker_events import MSISDN, SIP_URI, SIPREG_ROLE, T0


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


DYNAMODB_ITEM_BYTES = 400 * 1024  # DynamoDB refuses a bigger item (ValidationException)


class FakeJournal:
    """Records and event-log items as the tables keep them: one item per event and registration,
    overwritten as the event moves on (`history` keeps every write, in order)."""

    def __init__(self) -> None:
        self.records: dict[tuple[str, str], RegistrationRecord] = {}
        self.items: dict[tuple[str, str], EventLogEntry] = {}
        self.history: list[EventLogEntry] = []
        self.gets = 0  # GetItem and Query requests
        self.batch_gets = 0  # BatchGetItem requests
        self.commits = 0
        self.conflicts_to_raise = 0
        self.before_commit: Callable[[], None] | None = None  # runs once at the next commit (races)
        self._lock = threading.RLock()

    def get(self, msisdn: str, sip_uri: str) -> RegistrationRecord | None:
        with self._lock:
            self.gets += 1
            return self.records.get((msisdn, sip_uri))

    def get_many(self, keys: Collection[RecordKey]) -> dict[RecordKey, RegistrationRecord | None]:
        with self._lock:
            self.batch_gets += 1
            return {key: self.records.get(key) for key in keys}

    def list_for(self, msisdn: str) -> list[RegistrationRecord]:
        with self._lock:
            self.gets += 1
            return [r for (m, _), r in sorted(self.records.items()) if m == msisdn]

    def commit(
        self,
        saves: Sequence[tuple[RegistrationRecord, int | None]],
        entries: Sequence[EventLogEntry],
        *,
        count_try: bool = False,
    ) -> list[RegistrationRecord]:
        hook, self.before_commit = self.before_commit, None
        if hook is not None:
            hook()
        with self._lock:
            if self.conflicts_to_raise:
                self.conflicts_to_raise -= 1
                raise ConcurrentUpdateError("changed meanwhile (test)")
            for record, read in saves:
                current = self.records.get((record.msisdn, record.sip_uri))
                if (current.version if current else None) != read:
                    raise ConcurrentUpdateError("changed meanwhile")
            saved = [record.model_copy(update={"version": (read or 0) + 1}) for record, read in saves]
            self.records.update({(record.msisdn, record.sip_uri): record for record in saved})
            for entry in entries:
                self._put(entry, count_try=count_try)
            self.commits += 1
            return saved

    def write(self, entry: EventLogEntry, *, count_try: bool = False) -> None:
        with self._lock:
            self._put(entry, count_try=count_try)

    def tries_of(self, keys: Collection[tuple[str, str]]) -> dict[tuple[str, str], int]:
        with self._lock:
            self.batch_gets += 1
            return {key: self.items[key].tries for key in keys if key in self.items}

    def log_item(self, key: tuple[str, str]) -> EventLogEntry | None:
        with self._lock:
            self.batch_gets += 1
            return self.items.get(key)

    def _put(self, entry: EventLogEntry, *, count_try: bool) -> None:
        if len(entry.model_dump_json()) > DYNAMODB_ITEM_BYTES:  # about the item's size, as DynamoDB counts it
            raise RuntimeError("ValidationException: Item size has exceeded the maximum allowed size")
        key = (entry.msisdn, entry.key["sk"])
        old = self.items.get(key)
        counted = entry.model_copy(
            update={
                "tries": (old.tries if old else 0) + count_try,
                "decisions": (old.decisions if old else 0) + entry.outcome.final,
            }
        )
        self.items[key] = counted
        self.history.append(counted)

    @property
    def entries(self) -> list[EventLogEntry]:
        """The items as they stand, in the order they were first written."""
        return list(self.items.values())

    def record(self, msisdn: str = MSISDN, sip_uri: str = SIP_URI) -> RegistrationRecord:
        return self.records[(msisdn, sip_uri)]

    def outcomes(self, msisdn: str = MSISDN) -> list[str]:
        """Each item's outcome as it stands."""
        return [e.outcome for e in self.entries if e.msisdn == msisdn]

    def outcome_history(self, msisdn: str = MSISDN) -> list[str]:
        """Every outcome written, in order (an event's `applying` before its final one)."""
        return [e.outcome for e in self.history if e.msisdn == msisdn]


Script = Callable[[CoreCall], CoreOutcome]


class FakeCore:
    """Answers each call with `script(call)` (default: applied with 3600 s / deleted)."""

    def __init__(self, script: Script | None = None, latency: float = 0.0, together: int = 0) -> None:
        self.script = script or default_answer
        self.latency = latency
        self.calls: list[CoreCall] = []
        self._lock = threading.Lock()
        # `together` callers must be in `apply_many` at once before any is answered (or the
        # rendezvous breaks after 5 s and each raises): concurrency proven without timing it.
        self._rendezvous = threading.Barrier(together, timeout=5) if together else None

    @property
    def api_version(self) -> ApiVersion:
        return ApiVersion.V0

    def upsert(self, registration: Registration, token: str) -> CoreOutcome:
        return self.apply_many([CoreCall(Operation.UPSERT, registration, token)])[0]

    def delete(self, registration: Registration, token: str) -> CoreOutcome:
        return self.apply_many([CoreCall(Operation.DELETE, registration, token)])[0]

    def apply_many(self, calls: Sequence[CoreCall]) -> list[CoreOutcome]:
        if self._rendezvous:
            self._rendezvous.wait()
        if self.latency:
            time.sleep(self.latency)  # all calls at once: one round trip
        with self._lock:
            self.calls.extend(calls)
        return [self.script(call) for call in calls]

    def operations(self) -> list[tuple[str, str, str]]:
        return [(str(c.operation), c.registration.msisdn, c.registration.sip_uri) for c in self.calls]


def default_answer(call: CoreCall) -> CoreOutcome:
    return Applied(ttl_seconds=3600.0) if call.operation is Operation.UPSERT else Deleted()


def answers(*outcomes: CoreOutcome) -> Script:
    """Answers the calls with these outcomes in turn, then the default."""
    queue = list(outcomes)
    lock = threading.Lock()

    def script(call: CoreCall) -> CoreOutcome:
        with lock:
            return queue.pop(0) if queue else default_answer(call)

    return script


@dataclass
class FakeTokens:
    """Tokens `tok-<msisdn>-<n>`; n grows on each forced refresh. `errors` raise instead."""

    errors: dict[str, TokenError] = field(default_factory=dict)
    refresh_errors: dict[str, TokenError] = field(default_factory=dict)
    revoke_error: TokenError | None = None
    generation: dict[str, int] = field(default_factory=dict)
    forced: list[str] = field(default_factory=list)
    revoked: list[str] = field(default_factory=list)
    product_calls: int = 0
    consent_reads: int = 0

    def access_token_for(self, msisdn: str, *, force_refresh: bool = False) -> str:
        if msisdn in self.errors:
            raise self.errors[msisdn]
        if force_refresh:
            self.forced.append(msisdn)
            if msisdn in self.refresh_errors:
                raise self.refresh_errors[msisdn]
            self.generation[msisdn] = self.generation.get(msisdn, 0) + 1
        return f"tok-{msisdn}-{self.generation.get(msisdn, 0)}"

    def product_token(self, *, force_refresh: bool = False) -> str:
        self.product_calls += 1
        return "product-token"

    def revoke(self, msisdn: str) -> None:
        if self.revoke_error is not None:
            raise self.revoke_error
        self.revoked.append(msisdn)

    def consent_revoked(self, msisdn: str) -> bool:
        self.consent_reads += 1
        return msisdn in self.revoked


class FakeVisibility:
    def __init__(self) -> None:
        self.delays: list[tuple[str, int]] = []

    def delay(self, receipts: Sequence[tuple[str, int]]) -> None:
        self.delays.extend(receipts)


class FakeDeadLetters:
    def __init__(self) -> None:
        self.sent: list[QueuedMessage] = []
        self.fail = False

    def send(self, message: QueuedMessage) -> bool:
        if self.fail:
            return False
        self.sent.append(message)
        return True


class FakePublisher:
    def __init__(self) -> None:
        self.published: list[list[StatusChange]] = []

    def publish(self, changes: Sequence[Change]) -> None:
        # The worker publishes registration changes only (the health check, endpoint ones).
        self.published.append([c for c in changes if isinstance(c, StatusChange)])


@dataclass
class World:
    journal: FakeJournal
    core: FakeCore
    tokens: FakeTokens
    visibility: FakeVisibility
    publisher: FakePublisher
    dead_letters: FakeDeadLetters
    clock: Clock
    applier: EventApplier
    worker: Worker

    def run(self, *messages: QueuedMessage, remaining: float = 25.0) -> Any:
        return self.worker.process(list(messages), remaining_seconds=lambda: remaining)


def world(
    script: Script | None = None,
    *,
    latency: float = 0.0,
    together: int = 0,
    auth_mode: AuthMode = AuthMode.USER,
    concurrency: int = 10,
    max_tries: int = 8,
) -> World:
    journal, core, tokens = FakeJournal(), FakeCore(script, latency, together), FakeTokens()
    visibility, publisher, clock = FakeVisibility(), FakePublisher(), Clock()
    dead_letters = FakeDeadLetters()
    applier = EventApplier(
        journal=journal,
        core=core,
        tokens=tokens,
        auth_mode=auth_mode,
        api_version=ApiVersion.V0,
        max_tries=max_tries,
        clock=clock,
    )
    worker = Worker(
        applier,
        journal,
        visibility,
        publisher,
        dead_letters,
        sipreg_roles={SIPREG_ROLE},
        concurrency=concurrency,
        retry_base_seconds=30,
        retry_max_seconds=300,
        time_reserve_seconds=5.0,
        clock=clock,
    )
    return World(journal, core, tokens, visibility, publisher, dead_letters, clock, applier, worker)
