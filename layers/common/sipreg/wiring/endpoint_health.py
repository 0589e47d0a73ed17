"""EndpointHealthFunction: the health check, its SIP OPTIONS prober, the Endpoints table, the
status bus and the events queue (for suspend/resume)."""

from __future__ import annotations

import ssl
from functools import cache, partial

from sipreg.config import ConfigError, HealthSettings
from sipreg.health import HealthCheck
from sipreg.notify import EventBridgePublisher, LogOnlyPublisher, StatusPublisher
from sipreg.queue import EventQueue
from sipreg.sip import probe_all, tls_context
from sipreg.store.endpoints import EndpointHealthStore
from sipreg.store.registrations import RegistrationStore


def build(settings: HealthSettings) -> HealthCheck:
    publisher: StatusPublisher = (
        EventBridgePublisher(settings.status_bus_name) if settings.status_bus_name else LogOnlyPublisher()
    )
    try:  # at cold start: a CA bundle that cannot be read fails here, naming the variable
        context = tls_context(settings.ca_file)
    except (OSError, ssl.SSLError) as error:
        raise ConfigError(f"bad configuration: SIP_CA_FILE: {error}") from None
    prober = partial(
        probe_all,
        timeout=settings.probe_timeout_seconds,
        concurrency=settings.probe_concurrency,
        ssl_context=context,
    )
    return HealthCheck(
        RegistrationStore(settings.registrations_table),
        EndpointHealthStore(settings.endpoints_table),
        prober,
        EventQueue(settings.events_queue_url),
        publisher,
        action=settings.down_action,
        max_events=settings.max_events,
        wave_size=settings.probe_concurrency,
        wave_seconds=2 * settings.probe_timeout_seconds,  # a probe, and the retry of a failed one
    )


@cache
def from_env() -> HealthCheck:
    return build(HealthSettings.from_env())
