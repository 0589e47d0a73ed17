"""What the local stack is started with (`StackOptions`), and the settings its time factor scales:
the function variables counting real seconds until something on the core runs out, and the
endpoint health check's schedule (which probes real servers, so it stays in real seconds)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devstack import TEMPLATE
from sipreg.config import TokenSettings

API_VERSIONS = ("v0", "v1")
AUTH_MODES = ("user", "client")
DOWN_ACTIONS = ("alarm", "suspend")
HEALTH_PERIOD_SECONDS = 2.0  # real seconds between health checks on a sped-up stack


@dataclass(frozen=True)
class StackOptions:
    api_version: str = "v0"
    auth_mode: str = "user"
    time_factor: float = 1.0
    log_dir: Path | None = None  # default: devstack-logs/<timestamp> under the working directory
    api_port: int = 0
    log_level: str = "INFO"  # the functions' LogLevel parameter
    template: Path = TEMPLATE
    # Local-only template property values, e.g. {"EventsQueue": {"VisibilityTimeout": 5}}.
    property_overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # Template parameter values beyond the stack's own, e.g. {"RetryBaseSeconds": "1"}.
    parameter_overrides: Mapping[str, str] = field(default_factory=dict)
    token_ttl: int | None = None  # the identity server's access-token lifetime (emulator seconds)
    prewarm: bool = True  # start every function's sandbox before answering (no cold start later)
    pbx: bool = True  # run the local PBX (Kamailio) for the call path
    # What a PBX endpoint that stops answering OPTIONS does to its registrations (alarm, suspend).
    endpoint_down_action: str = "alarm"

    def __post_init__(self) -> None:
        if self.api_version not in API_VERSIONS:
            raise ValueError(f"api_version: expected one of {API_VERSIONS}, got {self.api_version!r}")
        if self.auth_mode not in AUTH_MODES:
            raise ValueError(f"auth_mode: expected one of {AUTH_MODES}, got {self.auth_mode!r}")
        if self.endpoint_down_action not in DOWN_ACTIONS:
            raise ValueError(
                f"endpoint_down_action: expected one of {DOWN_ACTIONS}, got {self.endpoint_down_action!r}"
            )
        if not 1 <= self.time_factor <= 3600:
            raise ValueError(f"time_factor: expected 1 to 3600, got {self.time_factor}")


def scaled_function_settings(
    time_factor: float,
    refresh_margin_seconds: int,
    retry_base_seconds: int = 30,
    retry_max_seconds: int = 900,
) -> dict[str, str]:
    """Function variables counting real seconds until something on the core runs out, shortened
    as the emulator's clock is sped up (nothing changes at factor 1). Retries keep at least a
    second between tries, so an event's tries still span a few seconds of real faults."""
    if time_factor == 1:
        return {}

    def scaled(seconds: float, minimum: int) -> str:
        return str(max(minimum, round(seconds / time_factor)))

    token_margin = TokenSettings.model_fields["refresh_margin_seconds"].default
    return {
        "REFRESH_MARGIN_SECONDS": scaled(refresh_margin_seconds, 1),
        "TOKEN_REFRESH_MARGIN_SECONDS": scaled(token_margin, 1),
        "RETRY_BASE_SECONDS": scaled(retry_base_seconds, 1),
        "RETRY_MAX_SECONDS": scaled(retry_max_seconds, 2),
    }


def health_check_schedule(time_factor: float) -> str:
    """The endpoint health check probes real servers, so its period stays in real seconds: about
    HEALTH_PERIOD_SECONDS on a sped-up stack (the host divides schedules by the time factor)."""
    minutes = max(1, round(HEALTH_PERIOD_SECONDS * time_factor / 60))
    return f"rate({minutes} minute{'s' if minutes > 1 else ''})"
