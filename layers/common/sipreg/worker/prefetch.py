"""The records of one MSISDN group as this batch last read or wrote them.

The worker reads every record the batch's events name in one BatchGetItem before the groups run,
and gives each group a `PrefetchedJournal` over its share. FIFO delivers one batch at a time per
MSISDN, so within the batch the group is the only writer of its records: what it read or last
committed is the freshest state, and its next event on the same key needs no GetItem. The
optimistic version check of every commit still guards this; a conflict (or any failed commit)
forgets everything known, so the applier's re-read goes to DynamoDB.

One instance per group and batch, used by that group's thread only: no shared mutable cache.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from sipreg.events import ONE_REGISTRATION, AnyEvent
from sipreg.store.event_log import EventLogEntry
from sipreg.store.registrations import RecordKey, RegistrationRecord
from sipreg.worker.attempt import tries_key
from sipreg.worker.journal import Journal


def record_key(event: AnyEvent) -> RecordKey | None:
    """The one registration an event about one registration reads; None for subscriber-wide events."""
    if isinstance(event, ONE_REGISTRATION):
        return (event.msisdn, event.registration.sip_uri)
    return None


class PrefetchedJournal:
    """A `Journal` that answers `get` from records known in this batch, and otherwise passes through;
    it also knows the tries earlier deliveries started on this batch's redelivered events."""

    def __init__(
        self,
        journal: Journal,
        known: Mapping[RecordKey, RegistrationRecord | None],
        tries: Mapping[tuple[str, str], int] | None = None,
    ) -> None:
        self._journal = journal
        self._known: dict[RecordKey, RegistrationRecord | None] = dict(known)
        self._tries = dict(tries or {})

    def tries_before(self, event: AnyEvent) -> int:
        return self._tries.get(tries_key(event), 0)

    def get(self, msisdn: str, sip_uri: str) -> RegistrationRecord | None:
        key = (msisdn, sip_uri)
        if key not in self._known:
            self._known[key] = self._journal.get(msisdn, sip_uri)
        return self._known[key]

    def get_many(self, keys: Collection[RecordKey]) -> dict[RecordKey, RegistrationRecord | None]:
        return self._journal.get_many(keys)

    def list_for(self, msisdn: str) -> list[RegistrationRecord]:
        return self._journal.list_for(msisdn)

    def commit(
        self,
        saves: Sequence[tuple[RegistrationRecord, int | None]],
        entries: Sequence[EventLogEntry],
        *,
        count_try: bool = False,
    ) -> list[RegistrationRecord]:
        try:
            saved = self._journal.commit(saves, entries, count_try=count_try)
        except Exception:
            self._known.clear()  # changed under us, or unknown whether written: read again
            raise
        self._known.update({(record.msisdn, record.sip_uri): record for record in saved})
        return saved

    def write(self, entry: EventLogEntry, *, count_try: bool = False) -> None:
        self._journal.write(entry, count_try=count_try)

    def tries_of(self, keys: Collection[tuple[str, str]]) -> dict[tuple[str, str], int]:
        return self._journal.tries_of(keys)

    def log_item(self, key: tuple[str, str]) -> EventLogEntry | None:
        return self._journal.log_item(key)
