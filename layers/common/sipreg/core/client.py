"""`GrpcCoreClient`: the `CoreClient` over one gRPC channel; calls on the wire, one log line each."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Self

import grpc

from sipreg.config import AuthMode, CoreSettings
from sipreg.core.answers import outcome_from_response, outcome_from_rpc_error
from sipreg.core.channel import build_channel
from sipreg.core.port import (
    Applied,
    CoreCall,
    CoreOutcome,
    Deleted,
    Operation,
    PendingOutcome,
    PermissionDenied,
    Rejected,
    Transient,
    Unauthenticated,
    outcome_name,
)
from sipreg.core.requests import APIS, build_delete_request, build_upsert_request, unsupported_route_type
from sipreg.models import ApiVersion, Registration, mask_msisdn
from sipreg.text import kept

logger = logging.getLogger(__name__)

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
        return _answer(self._call, self._future.result)


def _answer(call: CoreCall, wait: Callable[[], Any]) -> CoreOutcome:
    """What the core's answer to `call` means; `wait` returns the response or raises its failure."""
    try:
        response = wait()
    except grpc.FutureCancelledError:
        return Transient(code=grpc.StatusCode.CANCELLED.name, detail="the call was cancelled")
    except grpc.RpcError as error:
        ended: grpc.Call = error  # type: ignore[assignment]  # a failed call's error is its Call
        return _kept(outcome_from_rpc_error(call.operation, ended.code(), ended.details() or ""), call.token)
    return _kept(outcome_from_response(call.operation, response), call.token)


def _kept(outcome: CoreOutcome, token: str) -> CoreOutcome:
    """The core's text as sipreg keeps it (`sipreg.text.kept`): never the token, which a server may
    echo into a log from there, and short enough for an item and a status event."""
    match outcome:
        case Rejected(message=text):
            return Rejected(message=kept(text, secrets=[token]), by_core=outcome.by_core)
        case Deleted(note=str(text)):
            return Deleted(note=kept(text, secrets=[token]))
        case Unauthenticated(detail=text) | PermissionDenied(detail=text):
            return type(outcome)(detail=kept(text, secrets=[token]))
        case Transient(code=code, detail=text):
            return Transient(code=code, detail=kept(text, secrets=[token]))
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
        self._stub = APIS[api_version].stub(channel)

    @classmethod
    def from_settings(cls, settings: CoreSettings) -> Self:
        return cls(
            build_channel(settings), settings.api_version, settings.auth_mode, settings.deadline_seconds
        )

    @property
    def api_version(self) -> ApiVersion:
        return self._api_version

    def upsert(self, registration: Registration, token: str) -> CoreOutcome:
        return self._call_now(CoreCall(Operation.UPSERT, registration, token))

    def delete(self, registration: Registration, token: str) -> CoreOutcome:
        return self._call_now(CoreCall(Operation.DELETE, registration, token))

    def apply_many(self, calls: Sequence[CoreCall]) -> list[CoreOutcome]:
        if len(calls) == 1:  # the worker's usual case: one registration per subscriber
            return [self._call_now(calls[0])]
        pending = [self._start(call) for call in calls]
        return [each.result() for each in pending]

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _start(self, call: CoreCall) -> PendingOutcome:
        """Starts the call and returns at once; `.result()` waits for its outcome."""
        prepared = self._prepare(call)
        if isinstance(prepared, _KnownOutcome):
            return prepared
        method, request, metadata = prepared
        started = time.perf_counter()
        future = method.future(request, timeout=self._deadline, metadata=metadata)
        return _InFlight(future, call, self._api_version, started)

    def _call_now(self, call: CoreCall) -> CoreOutcome:
        """One call, waited for. gRPC's blocking path gives it a completion queue of its own; a
        future shares the channel's queue and its polling thread with every other call, which
        the worker's ten group threads calling at once contend for (bench/bench_worker.py)."""
        prepared = self._prepare(call)
        if isinstance(prepared, _KnownOutcome):
            return prepared.outcome
        method, request, metadata = prepared
        started = time.perf_counter()
        outcome = _answer(call, lambda: method(request, timeout=self._deadline, metadata=metadata))
        _log_call(self._api_version, call, outcome, time.perf_counter() - started)
        return outcome

    def _prepare(self, call: CoreCall) -> _KnownOutcome | tuple[Any, Any, tuple[tuple[str, str], ...]]:
        """The stub method, request and metadata of `call`, or its outcome if it cannot be sent."""
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
        return method, request, (("authorization", f"Bearer {call.token}"),)
