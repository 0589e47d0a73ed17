"""Given a client over a fake channel (the gRPC port's boundary), calls go out and come back as expected.

The fake records what the stub sends and answers like grpc's futures (and blocking calls) do;
the real wire is in tests/integration/test_core_client_*.py.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, cast

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration

from sipreg.config import AuthMode, CoreSettings
from sipreg.core.client import GrpcCoreClient
from sipreg.core.port import (
    Applied,
    CoreCall,
    Deleted,
    Operation,
    PermissionDenied,
    Rejected,
    Transient,
    Unauthenticated,
)
from sipreg.models import ApiVersion, Registration, RouteType
from sipreg.proto.wgtwo.sipbreakout.v0 import sipbreakout_pb2 as v0
from sipreg.proto.wgtwo.sipbreakout.v1 import sipbreakout_pb2 as v1
from sipreg.text import PEER_TEXT_LIMIT
from sipreg.wiring.parts import core_client

TOKEN = "tok-5ecret.value"
Metadata = tuple[tuple[str, str], ...]
FORK = Registration(msisdn="+4799990000", sip_uri="sips:pbx.acme.example", route_type=RouteType.FORK)


class FakeRpcError(grpc.RpcError, grpc.Call):  # type: ignore[misc]
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


class FakeFuture:
    def __init__(self, log: list[str], answer: Any) -> None:
        self._log, self._answer = log, answer

    def add_done_callback(self, callback: Callable[[Any], None]) -> None:
        callback(self)

    def result(self) -> Any:
        self._log.append("result")
        if isinstance(self._answer, BaseException):
            raise self._answer
        return self._answer


class FakeChannel:
    """Answers every call with `answer`; records (method, request, timeout, metadata)."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.sent: list[tuple[str, Any, float, Metadata]] = []
        self.log: list[str] = []

    def unary_unary(self, method: str, **_: Any) -> Any:
        channel = self

        class Method:
            def future(
                self, request: Any, timeout: float, metadata: tuple[tuple[str, str], ...]
            ) -> FakeFuture:
                channel.sent.append((method, request, timeout, metadata))
                channel.log.append("start")
                return FakeFuture(channel.log, channel.answer)

            def __call__(self, request: Any, timeout: float, metadata: tuple[tuple[str, str], ...]) -> Any:
                channel.sent.append((method, request, timeout, metadata))
                channel.log.append("call")  # the blocking path: sent and waited for at once
                if isinstance(channel.answer, BaseException):
                    raise channel.answer
                return channel.answer

        return Method()

    def close(self) -> None:
        pass


def client(
    answer: Any, version: ApiVersion = ApiVersion.V1, deadline: float = 2.5
) -> tuple[GrpcCoreClient, FakeChannel]:
    channel = FakeChannel(answer)
    return GrpcCoreClient(channel, version, AuthMode.USER, deadline), channel  # type: ignore[arg-type]


def test_upsert_sends_one_bearer_header_and_the_deadline_and_returns_the_ttl() -> None:
    core, channel = client(
        v1.UpsertRegistrationResponse(status_code="STATUS_CODE_OK", time_to_live=Duration(seconds=3600))
    )

    outcome = core.upsert(FORK, TOKEN)

    assert outcome == Applied(ttl_seconds=3600.0)
    [(method, request, timeout, metadata)] = channel.sent
    assert method == "/wgtwo.sipbreakout.v1.SipBreakoutService/UpsertRegistration"
    assert request.registration.sip_uri == "sips:pbx.acme.example"
    assert timeout == 2.5
    assert [value for key, value in metadata if key == "authorization"] == [f"Bearer {TOKEN}"]


def test_delete_calls_the_v0_delete_method_when_configured_for_v0() -> None:
    core, channel = client(v0.DeleteRegistrationResponse(status_code="STATUS_CODE_OK"), version=ApiVersion.V0)

    assert core.delete(FORK, TOKEN) == Deleted()
    assert channel.sent[0][0] == "/wgtwo.sipbreakout.v0.SipBreakoutService/DeleteRegistration"


def test_a_grpc_error_status_comes_back_as_an_outcome_not_an_exception() -> None:
    core, _ = client(FakeRpcError(grpc.StatusCode.UNAVAILABLE, "connection refused"))

    assert core.upsert(FORK, TOKEN) == Transient(code="UNAVAILABLE", detail="connection refused")


def test_a_cancelled_call_is_transient() -> None:
    core, _ = client(grpc.FutureCancelledError())

    assert core.upsert(FORK, TOKEN) == Transient(code="CANCELLED", detail="the call was cancelled")


@pytest.mark.parametrize("route_type", [RouteType.LOOP_MO, RouteType.LOOP_MT, RouteType.INGRESS])
@pytest.mark.parametrize("operation", list(Operation))
def test_v0_refuses_route_types_it_lacks_before_any_call(route_type, operation) -> None:
    core, channel = client(v0.UpsertRegistrationResponse(status_code="STATUS_CODE_OK"), version=ApiVersion.V0)
    registration = FORK.model_copy(update={"route_type": route_type})

    outcome = core.apply_many([CoreCall(operation, registration, TOKEN)])[0]

    assert isinstance(outcome, Rejected)
    assert not outcome.by_core
    assert outcome.message.startswith("route_type:")
    assert route_type.proto_name in outcome.message
    assert channel.sent == []


@pytest.mark.parametrize("route_type", [RouteType.LOOP_MO, RouteType.LOOP_MT, RouteType.INGRESS])
def test_v1_sends_the_route_types_v0_lacks(route_type) -> None:
    core, channel = client(v1.UpsertRegistrationResponse(status_code="STATUS_CODE_OK"))

    assert isinstance(core.upsert(FORK.model_copy(update={"route_type": route_type}), TOKEN), Applied)
    assert len(channel.sent) == 1


@pytest.mark.parametrize("token", ["", "has space", "line\nbreak", "nön-ascii"])
def test_a_token_no_header_can_carry_is_unauthenticated_without_a_call(token) -> None:
    core, channel = client(v1.UpsertRegistrationResponse(status_code="STATUS_CODE_OK"))

    assert isinstance(core.upsert(FORK, token), Unauthenticated)
    assert channel.sent == []


def test_apply_many_starts_every_call_before_waiting_and_keeps_the_order() -> None:
    core, channel = client(
        v0.UpsertRegistrationResponse(status_code="STATUS_CODE_OK", time_to_live=Duration(seconds=60)),
        version=ApiVersion.V0,
    )
    others = [FORK.model_copy(update={"msisdn": f"+479999000{n}"}) for n in range(5)]
    calls = [CoreCall(Operation.UPSERT, registration, TOKEN) for registration in others]
    calls.insert(
        2, CoreCall(Operation.UPSERT, FORK.model_copy(update={"route_type": RouteType.INGRESS}), TOKEN)
    )

    outcomes = core.apply_many(calls)

    assert channel.log == ["start"] * 5 + ["result"] * 5
    assert [type(outcome) for outcome in outcomes] == [Applied, Applied, Rejected, Applied, Applied, Applied]


def test_a_single_call_takes_grpcs_blocking_path_and_several_go_out_as_futures() -> None:
    core, channel = client(v1.UpsertRegistrationResponse(status_code="STATUS_CODE_OK"))

    core.apply_many([CoreCall(Operation.UPSERT, FORK, TOKEN)])
    core.upsert(FORK, TOKEN)
    assert channel.log == ["call", "call"]

    channel.log.clear()
    core.apply_many([CoreCall(Operation.UPSERT, FORK, TOKEN)] * 2)
    assert channel.log == ["start", "start", "result", "result"]


def test_the_token_never_reaches_an_outcome_or_a_log_line(caplog) -> None:
    echoing = FakeRpcError(grpc.StatusCode.UNAUTHENTICATED, f"unknown token {TOKEN}")
    core, _ = client(echoing)
    caplog.set_level(logging.DEBUG, logger="sipreg.core.client")

    outcome = core.upsert(FORK, TOKEN)

    assert outcome == Unauthenticated(detail="unknown token [redacted]")
    assert TOKEN not in repr(CoreCall(Operation.UPSERT, FORK, TOKEN))
    assert caplog.records
    assert all(
        TOKEN not in record.getMessage() and TOKEN not in str(record.__dict__) for record in caplog.records
    )


@pytest.mark.parametrize(
    "answer",
    [
        v1.UpsertRegistrationResponse(
            status_code="STATUS_CODE_NOT_ACCEPTABLE", error_message="no " * 100_000
        ),
        v1.UpsertRegistrationResponse(status_code=cast(Any, 7), error_message="no " * 100_000),
        FakeRpcError(grpc.StatusCode.INVALID_ARGUMENT, "no " * 100_000),
        FakeRpcError(grpc.StatusCode.UNAVAILABLE, "no " * 100_000),
        FakeRpcError(grpc.StatusCode.PERMISSION_DENIED, "no " * 100_000),
    ],
    ids=["not acceptable", "unknown status code", "invalid argument", "unavailable", "permission denied"],
)
def test_the_cores_text_is_kept_to_a_thousand_characters(answer) -> None:
    # Given a core answering with 300 KB of text (a DynamoDB item holds 400 KB, a PutEvents 256 KB)
    core, _ = client(answer)
    outcome = core.upsert(FORK, TOKEN)
    # Then the outcome keeps its first lines, marked as clipped
    assert isinstance(outcome, Rejected | Transient | PermissionDenied)
    text = outcome.message if isinstance(outcome, Rejected) else outcome.detail
    assert len(text) == PEER_TEXT_LIMIT and text.endswith(("no …", "no…"))


def test_a_token_echoed_where_the_text_is_clipped_is_redacted_whole() -> None:
    # Given an echo of the token that the clip at 1000 characters would cut in two
    core, _ = client(FakeRpcError(grpc.StatusCode.UNAVAILABLE, "x" * (PEER_TEXT_LIMIT - 8) + TOKEN))
    outcome = core.upsert(FORK, TOKEN)
    assert isinstance(outcome, Transient)
    # Then no part of the token is left: it was redacted before the clip
    assert TOKEN[:7] not in outcome.detail and outcome.detail.endswith("x[redact…")


def test_each_call_logs_one_line_with_method_masked_number_outcome_and_time(caplog) -> None:
    core, _ = client(
        v1.UpsertRegistrationResponse(
            status_code="STATUS_CODE_NOT_ACCEPTABLE", error_message="+4799990000 is barred"
        )
    )
    caplog.set_level(logging.INFO, logger="sipreg.core.client")

    core.upsert(FORK, TOKEN)

    [record] = caplog.records
    assert record.method == "upsert"
    assert record.msisdn == "+47******00"
    assert record.outcome == "rejected"
    assert record.ms >= 0
    assert "+4799990000" not in record.getMessage()


def test_the_cached_factory_builds_one_client_per_settings_and_reuses_it() -> None:
    core_client.cache_clear()
    first = CoreSettings.from_env({"CORE_ENDPOINT": "127.0.0.1:50051", "CORE_PLAINTEXT": "1"})
    other = CoreSettings.from_env({"CORE_ENDPOINT": "127.0.0.1:50052", "CORE_PLAINTEXT": "1"})
    try:
        assert core_client(first) is core_client(first.model_copy())
        assert core_client(other) is not core_client(first)
    finally:
        for built in (core_client(first), core_client(other)):
            built.close()
        core_client.cache_clear()


def test_a_transient_outcome_logs_a_warning_a_refusal_info_and_a_success_debug(caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="sipreg.core.client")
    failing, _ = client(FakeRpcError(grpc.StatusCode.RESOURCE_EXHAUSTED, "slow down"))
    refused, _ = client(
        v1.UpsertRegistrationResponse(status_code="STATUS_CODE_NOT_ACCEPTABLE", error_message="no")
    )
    working, _ = client(v1.UpsertRegistrationResponse(status_code="STATUS_CODE_OK"))

    failing.upsert(FORK, TOKEN)
    refused.upsert(FORK, TOKEN)
    working.upsert(FORK, TOKEN)

    # (a success is the normal course, at one keep-alive per registration every 40 minutes)
    assert [(r.levelno, r.outcome) for r in caplog.records] == [
        (logging.WARNING, "transient:RESOURCE_EXHAUSTED"),
        (logging.INFO, "rejected"),
        (logging.DEBUG, "applied"),
    ]
