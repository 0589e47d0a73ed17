"""What the worker reads and commits: the `Journal` it needs, and `DynamoJournal` over the
Registrations and EventLog tables."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Protocol

from sipreg.store.event_log import EventLog, EventLogEntry
from sipreg.store.registrations import RecordKey, RegistrationRecord, RegistrationStore
from sipreg.telemetry import span


class Journal(Protocol):
    """The registrations and their event log, as the worker needs them."""

    def get(self, msisdn: str, sip_uri: str) -> RegistrationRecord | None: ...

    def get_many(self, keys: Collection[RecordKey]) -> dict[RecordKey, RegistrationRecord | None]:
        """The records of these keys in one read, None where there is none; a key it could not
        read (e.g. throttled) is left out."""
        ...

    def list_for(self, msisdn: str) -> list[RegistrationRecord]: ...

    def commit(
        self,
        saves: Sequence[tuple[RegistrationRecord, int | None]],
        entries: Sequence[EventLogEntry],
        *,
        count_try: bool = False,
    ) -> list[RegistrationRecord]:
        """Saves the records (each expecting the version it was read at) and writes the log items,
        all or nothing; raises ConcurrentUpdateError when a record changed meanwhile. `count_try`:
        this write starts an attempt (the items' tries go up by one). Returns the records as saved
        (with their new versions)."""
        ...

    def write(self, entry: EventLogEntry, *, count_try: bool = False) -> None:
        """One log item on its own (no record involved)."""
        ...

    def tries_of(self, keys: Collection[tuple[str, str]]) -> dict[tuple[str, str], int]:
        """Attempts started so far per log item key (msisdn, sk); unknown keys left out."""
        ...

    def log_item(self, key: tuple[str, str]) -> EventLogEntry | None:
        """The log item of this key (msisdn, sk); None without one."""
        ...


class DynamoJournal:
    """`Journal` over the Registrations and EventLog tables."""

    def __init__(self, registrations_table: str, event_log_table: str) -> None:
        self._store = RegistrationStore(registrations_table)
        self._log = EventLog(event_log_table)

    def get(self, msisdn: str, sip_uri: str) -> RegistrationRecord | None:
        return self._store.get(msisdn, sip_uri)

    def get_many(self, keys: Collection[RecordKey]) -> dict[RecordKey, RegistrationRecord | None]:
        return self._store.get_many(keys)

    def list_for(self, msisdn: str) -> list[RegistrationRecord]:
        return self._store.list_for(msisdn)

    def commit(
        self,
        saves: Sequence[tuple[RegistrationRecord, int | None]],
        entries: Sequence[EventLogEntry],
        *,
        count_try: bool = False,
    ) -> list[RegistrationRecord]:
        with span("store commit", records=len(saves), log_items=len(entries)):
            return self._store.save_with_log(
                saves, entries, event_log_table=self._log.table_name, count_try=count_try
            )

    def write(self, entry: EventLogEntry, *, count_try: bool = False) -> None:
        self._log.write(entry, count_try=count_try)

    def tries_of(self, keys: Collection[tuple[str, str]]) -> dict[tuple[str, str], int]:
        return self._log.tries_of(keys)

    def log_item(self, key: tuple[str, str]) -> EventLogEntry | None:
        return self._log.get_many([key]).get(key)  # BatchGetItem: the role's one read of the log
