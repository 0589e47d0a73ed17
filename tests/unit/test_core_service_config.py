"""Given the channel options, gRPC itself retries UNAVAILABLE with backoff on both versions' services."""

from __future__ import annotations

import json
from typing import Any

from sipreg.core.channel import CHANNEL_OPTIONS
from sipreg.proto.wgtwo.sipbreakout.v0 import sipbreakout_pb2 as v0
from sipreg.proto.wgtwo.sipbreakout.v1 import sipbreakout_pb2 as v1

OPTIONS = dict(CHANNEL_OPTIONS)


def service_config() -> dict[str, Any]:
    raw = OPTIONS["grpc.service_config"]
    assert isinstance(raw, str)
    parsed: dict[str, Any] = json.loads(raw)
    return parsed


def test_retries_are_enabled() -> None:
    assert OPTIONS["grpc.enable_retries"] == 1


def test_service_config_names_both_versions_services_exactly_as_the_protos_do() -> None:
    names = service_config()["methodConfig"][0]["name"]

    assert (
        {name["service"] for name in names}
        == {
            v0.DESCRIPTOR.services_by_name["SipBreakoutService"].full_name,
            v1.DESCRIPTOR.services_by_name["SipBreakoutService"].full_name,
        }
        == {"wgtwo.sipbreakout.v0.SipBreakoutService", "wgtwo.sipbreakout.v1.SipBreakoutService"}
    )
    assert all(set(name) == {"service"} for name in names)  # every method of the service


def test_retry_policy_retries_only_unavailable_with_exponential_backoff() -> None:
    policy = service_config()["methodConfig"][0]["retryPolicy"]

    assert policy["retryableStatusCodes"] == ["UNAVAILABLE"]
    assert 2 <= policy["maxAttempts"] <= 5  # gRPC caps attempts at 5
    assert policy["backoffMultiplier"] > 1
    initial, maximum = (float(policy[key].removesuffix("s")) for key in ("initialBackoff", "maxBackoff"))
    assert 0 < initial <= maximum < 5  # the whole retry budget fits in the default deadline


def test_retry_throttling_is_within_grpcs_limits() -> None:
    throttling = service_config()["retryThrottling"]

    assert 0 < throttling["maxTokens"] <= 1000
    assert throttling["tokenRatio"] > 0


def test_keepalive_pings_only_while_calls_are_open() -> None:
    assert int(OPTIONS["grpc.keepalive_time_ms"]) >= 10_000
    assert OPTIONS["grpc.keepalive_permit_without_calls"] == 0
