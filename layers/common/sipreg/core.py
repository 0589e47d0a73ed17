"""The gRPC client of WG2's `SipBreakoutService`, v0 and v1 behind one interface.

I/O only: it builds the request for the configured API version and auth mode, makes the call
with a bearer token, a deadline and gRPC's own retry policy, and turns every answer into a
typed `CoreOutcome`. It never raises for a gRPC status and never decides what an outcome means
for a registration: that is the worker's business.

Use `sipreg.wiring.parts.core_client(settings)` (one channel per process, reused across warm
invocations) and call `upsert`, `delete`, or `apply_many` for several calls at once (about one
round trip for all).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol, Self

import grpc
from google.protobuf.duration_pb2 import Duration

from sipreg.config import AuthMode, ConfigError, CoreSettings
from sipreg.models import ApiVersion, Registration, mask_msisdn
from sipreg.proto.wgtwo.common.v0 import phonenumber_pb2 as phonenumber_v0
from sipreg.proto.wgtwo.common.v1 import phonenumber_pb2 as phonenumber_v1
from sipreg.proto.wgtwo.sipbreakout.v0 import sipbreakout_pb2 as sipbreakout_v0
from sipreg.proto.wgtwo.sipbreakout.v0 import sipbreakout_pb2_grpc as sipbreakout_v0_grpc
from sipreg.proto.wgtwo.sipbreakout.v1 import sipbreakout_pb2 as sipbreakout_v1
from sipreg.proto.wgtwo.sipbreakout.v1 import sipbreakout_pb2_grpc as sipbreakout_v1_grpc

logger = logging.getLogger(__name__)

# --- outcomes -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Applied:
    """The core holds the registration; it lives `ttl_seconds` (None: the core did not say)."""

    ttl_seconds: float | None


@dataclass(frozen=True)
class Deleted:
    """The core no longer holds the registration."""


@dataclass(frozen=True)
class Rejected:
    """The registration as asked can never be applied: the same request will fail again.

    `by_core` is False when this client refused it before calling (a route type the configured
    API version lacks); otherwise the core answered STATUS_CODE_NOT_ACCEPTABLE (or
    INVALID_ARGUMENT) and `message` is its reason.
    """

    message: str
    by_core: bool = True


@dataclass(frozen=True)
class Unauthenticated:
    """The core refused the token (unknown, expired, revoked) or it could not be sent."""

    detail: str


@dataclass(frozen=True)
class PermissionDenied:
    """The token is valid but lacks the version's scope, or may not act for this number."""

    detail: str


@dataclass(frozen=True)
class Transient:
    """No definite answer: the same call may succeed later.

    `code` is the gRPC status name (UNAVAILABLE after gRPC's own retries ran out,
    DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, INTERNAL, ...) or, for an OK call whose answer
    carries no usable status, `STATUS_CODE_UNSPECIFIED` / `STATUS_CODE_<n>`. The core always
    sets OK or NOT_ACCEPTABLE, so those mean a broken or newer core: we cannot tell whether the
    change was applied, and upsert and delete are safe to repeat, so the caller retries and a
    persistent one ends in the DLQ where an operator sees it, instead of being recorded as the
    subscriber's fault.
    """

    code: str
    detail: str


CoreOutcome = Applied | Deleted | Rejected | Unauthenticated | PermissionDenied | Transient


def outcome_name(outcome: CoreOutcome) -> str:
    """A short label for logs and metrics, e.g. `applied` or `transient:UNAVAILABLE`."""
    match outcome:
        case Transient(code=code):
            return f"transient:{code}"
        case _:
            return type(outcome).__name__.lower()


# --- the port -----------------------------------------------------------------------------------


class Operation(StrEnum):
    UPSERT = "upsert"
    DELETE = "delete"


@dataclass(frozen=True)
class CoreCall:
    """One call to make; the token never shows in its repr."""

    operation: Operation
    registration: Registration
    token: str = field(repr=False)


class PendingOutcome(Protocol):
    def result(self) -> CoreOutcome: ...


class CoreClient(Protocol):
    """What the rest of sipreg needs from the core. Injected; tests use a fake."""

    @property
    def api_version(self) -> ApiVersion: ...

    def upsert(self, registration: Registration, token: str) -> CoreOutcome: ...

    def delete(self, registration: Registration, token: str) -> CoreOutcome: ...

    def apply_many(self, calls: Sequence[CoreCall]) -> list[CoreOutcome]:
        """All calls at once (one channel, HTTP/2 streams); outcomes in the order of `calls`."""
        ...


# --- request building, per API version ----------------------------------------------------------


@dataclass(frozen=True)
class _Api:
    pb2: ModuleType
    stub: Callable[[grpc.Channel], Any]
    phone_number: Callable[[str], Any]

    @property
    def service(self) -> str:
        full_name: str = self.pb2.DESCRIPTOR.services_by_name["SipBreakoutService"].full_name
        return full_name


_APIS = {
    ApiVersion.V0: _Api(
        sipbreakout_v0,
        sipbreakout_v0_grpc.SipBreakoutServiceStub,
        lambda e164: phonenumber_v0.PhoneNumber(e164=e164),
    ),
    ApiVersion.V1: _Api(
        sipbreakout_v1,
        sipbreakout_v1_grpc.SipBreakoutServiceStub,
        lambda e164: phonenumber_v1.E164(e164=e164),
    ),
}


def _registration_message(version: ApiVersion, auth_mode: AuthMode, registration: Registration) -> Any:
    api = _APIS[version]
    message = api.pb2.Registration(
        sip_uri=registration.sip_uri,
        route_type=api.pb2.RouteType.Value(registration.route_type.proto_name),
        mobile_originating_prefix=registration.mobile_originating_prefix or "",
        mobile_terminating_prefix=registration.mobile_terminating_prefix or "",
    )
    # A user token names its MSISDN itself; a client token acts for any, so the request names it.
    if auth_mode == AuthMode.CLIENT:
        message.phone_number.CopyFrom(api.phone_number(registration.msisdn))
    return message


def build_upsert_request(version: ApiVersion, auth_mode: AuthMode, registration: Registration) -> Any:
    return _APIS[version].pb2.UpsertRegistrationRequest(
        registration=_registration_message(version, auth_mode, registration)
    )


def build_delete_request(version: ApiVersion, auth_mode: AuthMode, registration: Registration) -> Any:
    # The core names a registration by MSISDN and sip_uri; the route type goes along as it was made.
    return _APIS[version].pb2.DeleteRegistrationRequest(
        registration=_registration_message(version, auth_mode, registration)
    )


def unsupported_route_type(version: ApiVersion, registration: Registration) -> Rejected | None:
    """A local rejection when the configured API version has no such route type, else None."""
    if registration.route_type.available_in(version):
        return None
    return Rejected(
        message=f"route_type: {registration.route_type.proto_name} is not available in API {version}",
        by_core=False,
    )


# --- answers to outcomes ------------------------------------------------------------------------

# The core refuses a registration with NOT_ACCEPTABLE in the answer; INVALID_ARGUMENT says the same
# of the request, so it is a rejection too. Every status not handled in `outcome_from_rpc_error`
# is Transient: retried, and if it persists it ends in the DLQ for an operator instead of being
# recorded as the subscriber's fault.
_PERMANENT_REJECTIONS = frozenset({grpc.StatusCode.INVALID_ARGUMENT})


def outcome_from_status(
    operation: Operation, status_code: int, error_message: str, ttl: Duration | None
) -> CoreOutcome:
    """The outcome of a call the core answered with gRPC OK and a `StatusCode` in the body."""
    # The StatusCode enum has the same numbers in v0 and v1.
    if status_code == sipbreakout_v1.STATUS_CODE_OK:
        if operation is Operation.DELETE:
            return Deleted()
        return Applied(ttl_seconds=ttl.ToTimedelta().total_seconds() if ttl is not None else None)
    if status_code == sipbreakout_v1.STATUS_CODE_NOT_ACCEPTABLE:
        return Rejected(message=error_message or "not acceptable (the core gave no reason)")
    name = sipbreakout_v1.StatusCode.Name(status_code) if status_code == 0 else f"STATUS_CODE_{status_code}"
    return Transient(code=name, detail=error_message or "the core answered without a usable status code")


def outcome_from_rpc_error(code: grpc.StatusCode, details: str) -> CoreOutcome:
    """The outcome of a call that ended with a gRPC status other than OK."""
    details = details or code.name
    if code is grpc.StatusCode.UNAUTHENTICATED:
        return Unauthenticated(detail=details)
    if code is grpc.StatusCode.PERMISSION_DENIED:
        return PermissionDenied(detail=details)
    if code in _PERMANENT_REJECTIONS:
        return Rejected(message=f"{code.name}: {details}")
    return Transient(code=code.name, detail=details)


def _outcome_from_response(operation: Operation, response: Any) -> CoreOutcome:
    # Only the upsert response has a TTL field.
    has_ttl = "time_to_live" in response.DESCRIPTOR.fields_by_name and response.HasField("time_to_live")
    ttl = response.time_to_live if has_ttl else None
    return outcome_from_status(operation, response.status_code, response.error_message, ttl)


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
        {"name": [{"service": api.service} for api in _APIS.values()], "retryPolicy": _RETRY_POLICY}
    ],
    # During an outage, stop retrying once failures outweigh successes (per target, per process),
    # so a fleet of warm functions does not multiply the load on a struggling core.
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


# --- the client ---------------------------------------------------------------------------------


def _sendable_token(token: str) -> bool:
    # Header values must be visible ASCII; anything else would fail inside gRPC, maybe echoing it.
    return bool(token) and token.isascii() and token.isprintable() and " " not in token


@dataclass(frozen=True)
class _KnownOutcome:
    """An outcome known without a call (refused locally)."""

    outcome: CoreOutcome

    def result(self) -> CoreOutcome:
        return self.outcome


class _InFlight:
    """A call on the wire; `result()` waits for it, maps the answer, logs one line, once."""

    def __init__(self, future: grpc.Future[Any], call: CoreCall, api: ApiVersion, started: float) -> None:
        self._future = future
        self._call = call
        self._api = api
        self._started = started
        self._finished: float | None = None
        self._outcome: CoreOutcome | None = None
        future.add_done_callback(self._mark_finished)

    def _mark_finished(self, _: grpc.Future[Any]) -> None:
        self._finished = time.perf_counter()

    def result(self) -> CoreOutcome:
        if self._outcome is None:
            outcome = self._resolve()
            finished = self._finished or time.perf_counter()
            _log_call(self._api, self._call, outcome, finished - self._started)
            self._outcome = outcome
        return self._outcome

    def _resolve(self) -> CoreOutcome:
        try:
            response = self._future.result()
        except grpc.FutureCancelledError:
            return Transient(code=grpc.StatusCode.CANCELLED.name, detail="the call was cancelled")
        except grpc.RpcError as error:
            ended: grpc.Call = error  # type: ignore[assignment]  # a failed future's error is its Call
            outcome = outcome_from_rpc_error(ended.code(), ended.details() or "")
            return _without_token(outcome, self._call.token)
        return _without_token(_outcome_from_response(self._call.operation, response), self._call.token)


def _without_token(outcome: CoreOutcome, token: str) -> CoreOutcome:
    """Never let a server that echoes the token put it into an outcome (and from there, a log)."""
    match outcome:
        case Rejected(message=text) if token in text:
            return Rejected(message=text.replace(token, "[token]"), by_core=outcome.by_core)
        case Unauthenticated(detail=text) | PermissionDenied(detail=text) if token in text:
            return type(outcome)(detail=text.replace(token, "[token]"))
        case Transient(code=code, detail=text) if token in text:
            return Transient(code=code, detail=text.replace(token, "[token]"))
    return outcome


def _log_call(api: ApiVersion, call: CoreCall, outcome: CoreOutcome, seconds: float) -> None:
    # Kind and code only: free-text answers may quote the full number; the caller stores them.
    name = outcome_name(outcome)
    masked = mask_msisdn(call.registration.msisdn)
    ms = round(seconds * 1000, 1)
    # Transient answers are worth a look when they pile up; a refusal is news; a success is the
    # normal course (its latency is the CoreLatency metric, its outcome the worker's own line),
    # and at a keep-alive per registration every 40 minutes an INFO line each would be most of
    # the stack's CloudWatch bill (docs/cost.md).
    if isinstance(outcome, Transient):
        level = logging.WARNING
    elif isinstance(outcome, Applied | Deleted):
        level = logging.DEBUG
    else:
        level = logging.INFO
    logger.log(
        level,
        "core %s %s %s -> %s in %.1f ms",
        api,
        call.operation,
        masked,
        name,
        ms,
        extra={
            "core_api": str(api),
            "method": str(call.operation),
            "msisdn": masked,
            "outcome": name,
            "ms": ms,
        },
    )


class GrpcCoreClient:
    """`CoreClient` over one gRPC channel. Thread-safe; build it once per process."""

    def __init__(
        self,
        channel: grpc.Channel,
        api_version: ApiVersion,
        auth_mode: AuthMode,
        deadline_seconds: float = 5.0,
    ) -> None:
        self._channel = channel
        self._api_version = api_version
        self._auth_mode = auth_mode
        self._deadline = deadline_seconds
        self._stub = _APIS[api_version].stub(channel)

    @classmethod
    def from_settings(cls, settings: CoreSettings) -> Self:
        return cls(
            build_channel(settings), settings.api_version, settings.auth_mode, settings.deadline_seconds
        )

    @property
    def api_version(self) -> ApiVersion:
        return self._api_version

    def upsert(self, registration: Registration, token: str) -> CoreOutcome:
        return self.upsert_future(registration, token).result()

    def delete(self, registration: Registration, token: str) -> CoreOutcome:
        return self.delete_future(registration, token).result()

    def upsert_future(self, registration: Registration, token: str) -> PendingOutcome:
        """Starts the call and returns at once; `.result()` waits for its outcome."""
        return self._start(CoreCall(Operation.UPSERT, registration, token))

    def delete_future(self, registration: Registration, token: str) -> PendingOutcome:
        return self._start(CoreCall(Operation.DELETE, registration, token))

    def apply_many(self, calls: Sequence[CoreCall]) -> list[CoreOutcome]:
        pending = [self._start(call) for call in calls]
        return [each.result() for each in pending]

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _start(self, call: CoreCall) -> PendingOutcome:
        refused: CoreOutcome | None = unsupported_route_type(self._api_version, call.registration)
        if refused is None and not _sendable_token(call.token):
            refused = Unauthenticated(detail="the token is empty or holds characters a header cannot carry")
        if refused is not None:
            _log_call(self._api_version, call, refused, 0.0)
            return _KnownOutcome(refused)
        if call.operation is Operation.UPSERT:
            request = build_upsert_request(self._api_version, self._auth_mode, call.registration)
            method = self._stub.UpsertRegistration
        else:
            request = build_delete_request(self._api_version, self._auth_mode, call.registration)
            method = self._stub.DeleteRegistration
        # Per-call metadata on TLS and plaintext alike (call credentials are refused on insecure
        # channels); the channel carries no credentials of its own, so exactly one header goes out.
        metadata = (("authorization", f"Bearer {call.token}"),)
        started = time.perf_counter()
        future = method.future(request, timeout=self._deadline, metadata=metadata)
        return _InFlight(future, call, self._api_version, started)
