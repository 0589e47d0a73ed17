"""The emulated core's gRPC side: `SipBreakoutService` v0 and v1 on one server.

Every call goes: fault injection -> bearer token -> scope -> subscriber (MSISDN) -> validation
-> store. Auth failures and injected faults end the call with a gRPC status; a request the
core understands but refuses is *answered* with `STATUS_CODE_NOT_ACCEPTABLE` and a message.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import grpc
from google.protobuf import duration_pb2

from devstack.wg2sim.state import Wg2Sim
from devstack.wg2sim.tokens import SCOPE_V0, SCOPE_V1, Token
from devstack.wg2sim.validation import e164_problem, prefix_problem, sip_uri_problem
from sipreg.proto.wgtwo.sipbreakout.v0 import sipbreakout_pb2 as v0_pb2
from sipreg.proto.wgtwo.sipbreakout.v0 import sipbreakout_pb2_grpc as v0_grpc
from sipreg.proto.wgtwo.sipbreakout.v1 import sipbreakout_pb2 as v1_pb2
from sipreg.proto.wgtwo.sipbreakout.v1 import sipbreakout_pb2_grpc as v1_grpc

log = logging.getLogger(__name__)

# Stalled calls hold a worker thread until their deadline (or this limit) passes, so the pool
# is sized for many of them at once; the limit also bounds calls sent without any deadline.
WORKER_THREADS = 128
STALL_LIMIT_SECONDS = 30.0


@dataclass(frozen=True)
class ApiVersion:
    name: str
    scope: str
    pb2: ModuleType
    pb2_grpc: ModuleType

    @property
    def service(self) -> str:
        return f"wgtwo.sipbreakout.{self.name}.SipBreakoutService"


V0 = ApiVersion("v0", SCOPE_V0, v0_pb2, v0_grpc)
V1 = ApiVersion("v1", SCOPE_V1, v1_pb2, v1_grpc)


class GrpcStatusError(Exception):
    """End the call with this gRPC status (auth failure or injected fault)."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


class NotAcceptableError(Exception):
    """Answer the call with STATUS_CODE_NOT_ACCEPTABLE and this human-readable message."""


class SipBreakoutServicer:
    """Duck-typed servicer for one API version (the generated base class adds nothing)."""

    def __init__(self, sim: Wg2Sim, version: ApiVersion) -> None:
        self._sim = sim
        self._version = version

    def UpsertRegistration(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return self._serve("UpsertRegistration", request, context, self._upsert)

    def DeleteRegistration(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return self._serve("DeleteRegistration", request, context, self._delete)

    def _serve(
        self,
        method: str,
        request: Any,
        context: grpc.ServicerContext,
        handle: Callable[[Any, str], Any],
    ) -> Any:
        path = f"/{self._version.service}/{method}"
        pb2 = self._version.pb2
        try:
            token, auth_problem = _bearer_token(self._sim, context)
            self._inject_faults(method, request, token, context)
            if token is None:
                raise GrpcStatusError(grpc.StatusCode.UNAUTHENTICATED, auth_problem)
            if self._version.scope not in token.scopes:
                raise GrpcStatusError(
                    grpc.StatusCode.PERMISSION_DENIED,
                    f"the access token lacks the scope {self._version.scope!r}",
                )
            try:
                response = handle(request, _subscriber(token, request))
            except NotAcceptableError as refusal:
                response = getattr(pb2, f"{method}Response")(
                    status_code=pb2.STATUS_CODE_NOT_ACCEPTABLE, error_message=str(refusal)
                )
        except GrpcStatusError as ended:
            self._sim.stats.record_call(path, ended.code.name)
            context.abort(ended.code, ended.details)
        except Exception:
            log.exception("%s failed", path)
            self._sim.stats.record_call(path, grpc.StatusCode.INTERNAL.name)
            context.abort(grpc.StatusCode.INTERNAL, "the emulator failed; see its stderr")
        outcome = pb2.StatusCode.Name(response.status_code).removeprefix("STATUS_CODE_")
        self._sim.stats.record_call(path, outcome)
        return response

    def _inject_faults(
        self, method: str, request: Any, token: Token | None, context: grpc.ServicerContext
    ) -> None:
        faults = self._sim.faults
        msisdn = token.msisdn if token and token.msisdn else _phone_number(request)
        if not faults.applies_to(msisdn, method):
            return
        draw = faults.draw(self._sim.rng, attempt=_attempt(context))
        call_ended = threading.Event()
        # Fires when the call ends (deadline passed, client cancelled, server stopping), so
        # sleeping workers wake up at once and never hold up a shutdown.
        context.add_callback(call_ended.set)
        if draw.latency_seconds > 0:
            self._sim.stats.record_fault("latency")
            call_ended.wait(draw.latency_seconds)
        if draw.action == "unavailable":
            self._sim.stats.record_fault("unavailable")
            raise GrpcStatusError(grpc.StatusCode.UNAVAILABLE, "injected fault: the core is unavailable")
        if draw.action == "stall":
            self._sim.stats.record_fault("stall")
            remaining = context.time_remaining()
            limit = STALL_LIMIT_SECONDS if remaining is None else remaining + 0.05
            call_ended.wait(min(limit, STALL_LIMIT_SECONDS))
            raise GrpcStatusError(grpc.StatusCode.DEADLINE_EXCEEDED, "injected fault: the call stalled")

    def _upsert(self, request: Any, msisdn: str) -> Any:
        pb2 = self._version.pb2
        registration = _registration(request)
        problems = [
            sip_uri_problem(registration.sip_uri),
            _route_type_problem(self._version, registration.route_type),
            prefix_problem(registration.mobile_originating_prefix, "mobile_originating_prefix"),
            prefix_problem(registration.mobile_terminating_prefix, "mobile_terminating_prefix"),
        ]
        _refuse_if_any(problems)
        self._sim.registrations.upsert(
            msisdn=msisdn,
            sip_uri=registration.sip_uri,
            route_type=pb2.RouteType.Name(registration.route_type),
            mobile_originating_prefix=registration.mobile_originating_prefix,
            mobile_terminating_prefix=registration.mobile_terminating_prefix,
            api_version=self._version.name,
        )
        return pb2.UpsertRegistrationResponse(
            status_code=pb2.STATUS_CODE_OK,
            time_to_live=_duration(self._sim.clock.real_seconds(self._sim.registrations.ttl_seconds)),
        )

    def _delete(self, request: Any, msisdn: str) -> Any:
        # A delete names the registration by MSISDN and sip_uri only, so only those are checked:
        # route type and prefixes may be left empty.
        registration = _registration(request)
        _refuse_if_any([sip_uri_problem(registration.sip_uri)])
        pb2 = self._version.pb2
        # WG2's documents do not say what a delete of a registration the core does not hold
        # answers (never made, expired, deleted already: a retry whose first answer was lost).
        # The strict reading: it is refused, so a client must not take a refusal of a delete for
        # a reason to keep the registration.
        if not self._sim.registrations.delete(msisdn, registration.sip_uri):
            return pb2.DeleteRegistrationResponse(
                status_code=pb2.STATUS_CODE_NOT_ACCEPTABLE,
                error_message=f"no registration of {registration.sip_uri} for this number",
            )
        return pb2.DeleteRegistrationResponse(status_code=pb2.STATUS_CODE_OK)


def _bearer_token(sim: Wg2Sim, context: grpc.ServicerContext) -> tuple[Token | None, str]:
    """The live token of the call, or None and why (never echoing the token itself)."""
    values = [value for key, value in context.invocation_metadata() if key == "authorization"]
    if not values:
        return None, "missing 'authorization: Bearer <token>' metadata"
    if len(values) > 1:
        return None, "more than one 'authorization' metadata entry"
    scheme, _, access_token = str(values[0]).partition(" ")
    if scheme.lower() != "bearer" or not access_token.strip():
        return None, "the 'authorization' metadata must be 'Bearer <token>'"
    token = sim.tokens.lookup(access_token.strip())
    if token is None:
        return None, "unknown, expired or revoked access token"
    return token, ""


def _attempt(context: grpc.ServicerContext) -> int:
    """Which attempt of its call this is: gRPC sends `grpc-previous-rpc-attempts` on a retry."""
    for key, value in context.invocation_metadata():
        if key == "grpc-previous-rpc-attempts" and str(value).isdigit():
            return int(value) + 1
    return 1


def _registration(request: Any) -> Any:
    if not request.HasField("registration"):
        raise NotAcceptableError("registration is required")
    return request.registration


def _phone_number(request: Any) -> str:
    registration = request.registration
    return str(registration.phone_number.e164) if registration.HasField("phone_number") else ""


def _subscriber(token: Token, request: Any) -> str:
    """The MSISDN the call acts on: a user token's own, or a client token's `phone_number`."""
    phone_number = _phone_number(request)
    if token.msisdn is None:
        if not phone_number:
            raise NotAcceptableError(
                "phone_number is required with a client token (client credentials grant)"
            )
        problem = e164_problem(phone_number, "phone_number.e164")
        if problem:
            raise NotAcceptableError(problem)
        return phone_number
    if phone_number and phone_number != token.msisdn:
        raise NotAcceptableError("phone_number does not match the subscriber the access token belongs to")
    return token.msisdn


def _route_type_problem(version: ApiVersion, value: int) -> str | None:
    # proto3 enums are open: an unknown number arrives intact and must be refused here.
    if value not in version.pb2.RouteType.values():
        return f"route_type {value} is not a RouteType of the {version.name} API"
    if value == 0:
        return "route_type is required (ROUTE_TYPE_UNSPECIFIED is not a route)"
    return None


def _refuse_if_any(problems: list[str | None]) -> None:
    found = [problem for problem in problems if problem]
    if found:
        raise NotAcceptableError("; ".join(found))


def create_grpc_server(sim: Wg2Sim) -> grpc.Server:
    """Both API versions on one server; the caller adds the port (plain or TLS) and starts it."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=WORKER_THREADS, thread_name_prefix="wg2sim-grpc"),
        # gRPC sets SO_REUSEPORT by default: a second emulator could then share a fixed port.
        options=[("grpc.so_reuseport", 0)],
    )
    for version in (V0, V1):
        version.pb2_grpc.add_SipBreakoutServiceServicer_to_server(SipBreakoutServicer(sim, version), server)
    return server


def _duration(seconds: float) -> duration_pb2.Duration:
    """The TTL in real seconds (see EmulatorClock): 3600 at time scale 1."""
    whole = int(seconds)
    return duration_pb2.Duration(seconds=whole, nanos=round((seconds - whole) * 1e9))
