"""The channel to the core: TLS (plaintext only to loopback), gRPC's retry policy, keep-alive."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any

import grpc

from sipreg.config import ConfigError, CoreSettings
from sipreg.core.requests import APIS

# --- channel ------------------------------------------------------------------------------------

_RETRY_POLICY = {
    # Upsert is "add or replace" and delete names a registration: both are safe to repeat, and
    # UNAVAILABLE means the core did not take the call. gRPC stops early when the deadline passes.
    "maxAttempts": 4,
    "initialBackoff": "0.1s",
    "maxBackoff": "1s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}

SERVICE_CONFIG: dict[str, Any] = {
    "methodConfig": [
        {"name": [{"service": api.service} for api in APIS.values()], "retryPolicy": _RETRY_POLICY}
    ],
    # During an outage, stop retrying once failures outweigh successes (counted per channel: one
    # per warm function), so a fleet of warm functions does not multiply the load on a struggling
    # core. tests/integration/test_core_client_faults.py checks the counting against gRFC A6.
    "retryThrottling": {"maxTokens": 50, "tokenRatio": 0.5},
}

CHANNEL_OPTIONS: tuple[tuple[str, int | str], ...] = (
    ("grpc.enable_retries", 1),
    ("grpc.service_config", json.dumps(SERVICE_CONFIG)),
    # Our retry policy holds even if the target's DNS publishes a service config of its own.
    ("grpc.service_config_disable_resolution", 1),
    # Pings only while calls are open: servers punish idle pings (GOAWAY too_many_pings).
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 0),
    # Drop the connection after 4 idle minutes, before NAT gateways (350 s) forget it silently:
    # a frozen Lambda thawed later reconnects instead of writing into a dead connection.
    ("grpc.client_idle_timeout_ms", 240_000),
)

_LOOPBACK_NAMES = frozenset({"localhost", "localhost."})


def endpoint_host(endpoint: str) -> str:
    """The host part of a gRPC target such as `host:443`, `[::1]:50051` or `dns:///host:443`."""
    target = endpoint
    for scheme in ("dns:///", "dns:", "ipv4:", "ipv6:"):
        if target.startswith(scheme):
            target = target[len(scheme) :]
            break
    if target.startswith("["):
        return target[1 : target.find("]")] if "]" in target else target[1:]
    if target.count(":") > 1:  # a bare IPv6 address without port
        return target
    return target.partition(":")[0]


def is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def build_channel(settings: CoreSettings) -> grpc.Channel:
    """TLS unless plaintext is asked for AND the target is loopback; anything else is refused."""
    options = list(CHANNEL_OPTIONS)
    if settings.plaintext:
        host = endpoint_host(settings.endpoint)
        if not is_loopback(host):
            raise ConfigError(
                f"CORE_PLAINTEXT: plaintext is allowed only for loopback endpoints "
                f"(127.0.0.0/8, ::1, localhost), not '{host}'; unset it to use TLS"
            )
        return grpc.insecure_channel(settings.endpoint, options=options)
    root_certificates = None
    if settings.ca_file:
        try:
            root_certificates = Path(settings.ca_file).read_bytes()
        except OSError as error:
            raise ConfigError(f"CORE_CA_FILE: cannot read '{settings.ca_file}': {error.strerror}") from None
    credentials = grpc.ssl_channel_credentials(root_certificates=root_certificates)
    return grpc.secure_channel(settings.endpoint, credentials, options=options)
