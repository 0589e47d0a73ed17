"""Settings from the environment, in one place.

Each function reads the group it needs once, at cold start: a missing or malformed variable
fails loudly there, naming the variable, instead of at the first event.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, ValidationError

from sipreg.models import ApiVersion


class AuthMode(StrEnum):
    USER = "user"  # authorization-code tokens, one per subscriber; the core takes the MSISDN from it
    CLIENT = "client"  # one client-credentials token for the deployment; phone_number in each request


class ConfigError(RuntimeError):
    """The environment does not describe a runnable configuration."""


class _FromEnv(BaseModel):
    # Environment variable names (aliases) from `from_env`; field names from code and tests.
    model_config = ConfigDict(frozen=True, extra="ignore", validate_by_name=True, validate_by_alias=True)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Self:
        source = os.environ if environ is None else environ
        values = {
            name: source[field.alias]
            for name, field in cls.model_fields.items()
            if field.alias and field.alias in source and source[field.alias] != ""
        }
        try:
            return cls.model_validate(values, by_name=True)
        except ValidationError as error:
            aliases = {name: field.alias for name, field in cls.model_fields.items()}
            problems = "; ".join(
                f"{aliases.get(str(e['loc'][0]), e['loc'][0])}: {e['msg']}"
                for e in error.errors(include_input=False)
            )
            raise ConfigError(f"bad configuration: {problems}") from None


class CoreSettings(_FromEnv):
    """How to reach the operator's core (`SipBreakoutService`)."""

    endpoint: str = Field(alias="CORE_ENDPOINT", min_length=3)
    api_version: ApiVersion = Field(ApiVersion.V0, alias="API_VERSION")
    auth_mode: AuthMode = Field(AuthMode.USER, alias="AUTH_MODE")
    # TLS unless the endpoint is loopback and plaintext is asked for explicitly.
    plaintext: bool = Field(False, alias="CORE_PLAINTEXT")
    ca_file: str | None = Field(None, alias="CORE_CA_FILE")
    deadline_seconds: float = Field(5.0, alias="CORE_DEADLINE_SECONDS", gt=0, le=60)


class EventsApiSettings(_FromEnv):
    """The events API: where events go, where the signing secrets live, what the status route reads."""

    events_queue_url: str = Field(alias="EVENTS_QUEUE_URL", min_length=1)
    # Secrets Manager id (ARN or name) of the webhook signing secrets; JSON shape in sipreg.signing.
    webhook_secret_arn: str = Field(alias="WEBHOOK_SECRET_ARN", min_length=1)
    # How long a read secret is reused before Secrets Manager is asked again (rotation delay).
    webhook_secret_max_age: int = Field(300, alias="WEBHOOK_SECRET_MAX_AGE", ge=0, le=3600)
    registrations_table: str = Field(alias="REGISTRATIONS_TABLE", min_length=3)
    event_log_table: str = Field(alias="EVENT_LOG_TABLE", min_length=3)
    # The consent of each number (the status API shows it; tokens are never read).
    subscribers_table: str = Field(alias="SUBSCRIBERS_TABLE", min_length=3)
    # An event dated further than this in the future is refused with 400 (see WorkerSettings).
    max_clock_skew_seconds: int = Field(300, alias="MAX_CLOCK_SKEW_SECONDS", ge=0, le=86_400)
    # Signed state-changing requests' ids, each used once (replay protection; sipreg.store.request_ids).
    request_ids_table: str = Field(alias="REQUEST_IDS_TABLE", min_length=3)
    # The core's SipBreakoutService version: route types it lacks are refused at the API (400).
    api_version: ApiVersion = Field(ApiVersion.V0, alias="API_VERSION")


def _split(separator: str | None) -> Callable[[Any], Any]:
    def split(value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part for part in (p.strip() for p in value.split(separator)) if part)
        return value

    return split


class TokenSettings(_FromEnv):
    """The OAuth 2.0 client and the token store: what every function that needs a token reads."""

    identity_server_url: str = Field(alias="IDENTITY_SERVER_URL", pattern=r"^https?://[^/?#]+(/[^?#]*)?$")
    # The ID token's `iss`; the identity server's base URL unless it says otherwise.
    issuer: str | None = Field(None, alias="OIDC_ISSUER", min_length=1)
    client_id: str = Field(alias="CLIENT_ID", min_length=1)
    # Secrets Manager id (ARN or name) of the client secret: never the secret itself.
    client_secret_arn: str = Field(alias="CLIENT_SECRET_ARN", min_length=1)
    subscribers_table: str = Field(alias="SUBSCRIBERS_TABLE", min_length=3)
    data_key_id: str = Field(alias="DATA_KEY_ID", min_length=1)
    api_version: ApiVersion = Field(ApiVersion.V0, alias="API_VERSION")
    auth_mode: AuthMode = Field(AuthMode.USER, alias="AUTH_MODE")
    # Refresh when less than this is left of an access token's life.
    refresh_margin_seconds: int = Field(120, alias="TOKEN_REFRESH_MARGIN_SECONDS", ge=0, le=3000)
    http_timeout_seconds: float = Field(5.0, alias="IDENTITY_SERVER_TIMEOUT_SECONDS", gt=0, le=30)
    secret_max_age_seconds: int = Field(300, alias="CLIENT_SECRET_MAX_AGE_SECONDS", ge=0)

    @property
    def oidc_issuer(self) -> str:
        return self.issuer or self.identity_server_url.rstrip("/")


class ConsentSettings(TokenSettings):
    """The two consent functions: what `/oauth/start` and `/oauth/callback` need besides tokens."""

    callback_url: str = Field(alias="CALLBACK_URL", pattern=r"^https?://[^/?#]+/[^?#]*$")
    oauth_states_table: str = Field(alias="OAUTH_STATES_TABLE", min_length=3)
    # Comma-separated URLs: a `return_to` must have one's scheme, host and port and start with its path.
    return_to_allowlist: Annotated[tuple[str, ...], BeforeValidator(_split(","))] = Field(
        (), alias="RETURN_TO_ALLOWLIST"
    )
    # Space-separated; empty means the default for the API version (see sipreg.tokens).
    scopes: Annotated[tuple[str, ...], BeforeValidator(_split(None))] = Field((), alias="SCOPES")
    events_queue_url: str | None = Field(None, alias="EVENTS_QUEUE_URL", min_length=1)


# The longest retry delay SQS takes: 12 h in flight less Lambda's longest invocation (WorkerSettings).
RETRY_DELAY_LIMIT_SECONDS = 43_200 - 900


class WorkerSettings(_FromEnv):
    """The registration worker: where records, the event log, the queue and the status bus are."""

    registrations_table: str = Field(alias="REGISTRATIONS_TABLE", min_length=3)
    event_log_table: str = Field(alias="EVENT_LOG_TABLE", min_length=3)
    # The queue the worker consumes: failed records get their visibility set on it (growing delay).
    events_queue_url: str = Field(alias="EVENTS_QUEUE_URL", min_length=1)
    # Where the worker moves an event after its last try (the events queue's RedrivePolicy target).
    dead_letter_queue_url: str = Field(alias="DEAD_LETTER_QUEUE_URL", min_length=1)
    # Attempts an event gets before it is dead-lettered (holding back behind another is no attempt).
    max_tries: int = Field(8, alias="MAX_TRIES", ge=1, le=100)
    # An upsert or delete dated further than this in the future is rejected (a wrong clock would
    # otherwise freeze its registration: every later event would look stale).
    max_clock_skew_seconds: int = Field(300, alias="MAX_CLOCK_SKEW_SECONDS", ge=0, le=86_400)
    # EventBridge bus for RegistrationStatusChanged; empty: status changes are only logged.
    status_bus_name: str | None = Field(None, alias="STATUS_BUS_NAME", min_length=1)
    api_version: ApiVersion = Field(ApiVersion.V0, alias="API_VERSION")
    auth_mode: AuthMode = Field(AuthMode.USER, alias="AUTH_MODE")
    # Retry delay of a failed record: base * 2^(receives - 1), at most max. SQS keeps a message in
    # flight at most 12 h from its receive and refuses a visibility beyond that; the delay is set
    # up to one invocation after the receive (900 s at Lambda's longest), so 12 h less that.
    retry_base_seconds: int = Field(30, alias="RETRY_BASE_SECONDS", ge=0, le=RETRY_DELAY_LIMIT_SECONDS)
    retry_max_seconds: int = Field(900, alias="RETRY_MAX_SECONDS", ge=0, le=RETRY_DELAY_LIMIT_SECONDS)
    # Comma-separated RoleIds (AROA...) of the function roles that send sipreg's internal event
    # types (the template's `!GetAtt <Function>Role.RoleId`): SQS's SenderId names the sender.
    sipreg_role_ids: Annotated[
        tuple[Annotated[str, StringConstraints(pattern=r"^AROA[A-Z0-9]{1,124}$")], ...],
        BeforeValidator(_split(",")),
    ] = Field(alias="SIPREG_ROLE_IDS", min_length=1)
    # MSISDN groups of one batch applied at once (threads; one core round trip for all of them).
    group_concurrency: int = Field(10, alias="WORKER_GROUP_CONCURRENCY", ge=1, le=64)
    # No record is started with less than this left of the invocation (core deadline + writes).
    time_reserve_seconds: float = Field(8.0, alias="WORKER_TIME_RESERVE_SECONDS", ge=0, le=900)


class RefresherSettings(_FromEnv):
    """The refresher: which registrations to refresh, how far ahead, how much per run."""

    registrations_table: str = Field(alias="REGISTRATIONS_TABLE", min_length=3)
    events_queue_url: str = Field(alias="EVENTS_QUEUE_URL", min_length=1)
    # Refresh what expires within this many seconds (the core's TTL is 3600 s).
    refresh_margin_seconds: int = Field(1200, alias="REFRESH_MARGIN_SECONDS", ge=1, le=3500)
    # Bounded work per run; what is left stays due and the next run takes it. The default covers
    # ~1.4 million registrations at one run per 5 minutes (each needs ~1.4 refreshes an hour).
    max_items: int = Field(200_000, alias="REFRESH_MAX_ITEMS", ge=1)
    page_size: int = Field(100, alias="REFRESH_PAGE_SIZE", ge=1, le=1000)
    # Threads reading the shards' pages and sending their refreshes in each round.
    parallelism: int = Field(16, alias="REFRESH_PARALLELISM", ge=1, le=64)
    time_reserve_seconds: float = Field(10.0, alias="REFRESH_TIME_RESERVE_SECONDS", ge=0, le=900)


class DownAction(StrEnum):
    ALARM = "alarm"  # an endpoint that stops answering is recorded, published and alarmed on
    SUSPEND = "suspend"  # ... and its LOOP and FORK registrations leave the core until it answers


class HealthSettings(_FromEnv):
    """The endpoint health check: what it probes, how, and what a down endpoint does."""

    registrations_table: str = Field(alias="REGISTRATIONS_TABLE", min_length=3)
    endpoints_table: str = Field(alias="ENDPOINTS_TABLE", min_length=3)
    events_queue_url: str = Field(alias="EVENTS_QUEUE_URL", min_length=1)
    status_bus_name: str | None = Field(None, alias="STATUS_BUS_NAME", min_length=1)
    down_action: DownAction = Field(DownAction.ALARM, alias="ENDPOINT_DOWN_ACTION")
    probe_timeout_seconds: float = Field(5.0, alias="PROBE_TIMEOUT_SECONDS", gt=0, le=30)
    probe_concurrency: int = Field(8, alias="PROBE_CONCURRENCY", ge=1, le=64)
    # registration.suspend / .resume events per run; the next run continues where it stopped.
    max_events: int = Field(5000, alias="HEALTH_MAX_EVENTS", ge=1)
    # The roots a PBX's certificate is checked against; empty: the system's (certifi on Lambda).
    ca_file: str | None = Field(None, alias="SIP_CA_FILE", min_length=1)
