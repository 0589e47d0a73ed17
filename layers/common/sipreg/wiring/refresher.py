"""RefresherFunction: the refresher over the RefreshDue index and the events queue."""

from __future__ import annotations

from functools import cache

from sipreg.config import RefresherSettings
from sipreg.queue import EventQueue
from sipreg.refresher import Refresher
from sipreg.store.registrations import RegistrationStore


def build(settings: RefresherSettings) -> Refresher:
    return Refresher(
        RegistrationStore(settings.registrations_table),
        EventQueue(settings.events_queue_url),
        margin_seconds=settings.refresh_margin_seconds,
        max_items=settings.max_items,
        page_size=settings.page_size,
        parallelism=settings.parallelism,
        time_reserve_seconds=settings.time_reserve_seconds,
    )


@cache
def from_env() -> Refresher:
    return build(RefresherSettings.from_env())
