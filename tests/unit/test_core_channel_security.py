"""Given the core's settings, the channel is TLS unless plaintext is asked for a loopback target."""

from __future__ import annotations

import pytest

from sipreg.config import ConfigError, CoreSettings
from sipreg.core.channel import build_channel, endpoint_host, is_loopback


def settings(**values: str) -> CoreSettings:
    return CoreSettings.from_env(values)


@pytest.mark.parametrize(
    ("endpoint", "host"),
    [
        ("api.wgtwo.com:443", "api.wgtwo.com"),
        ("api.wgtwo.com", "api.wgtwo.com"),
        ("127.0.0.1:50051", "127.0.0.1"),
        ("[::1]:50051", "::1"),
        ("::1", "::1"),
        ("dns:///localhost:50051", "localhost"),
        ("ipv4:127.0.0.2:50051", "127.0.0.2"),
    ],
)
def test_endpoint_host_is_found_in_every_target_form(endpoint, host) -> None:
    assert endpoint_host(endpoint) == host


@pytest.mark.parametrize("host", ["127.0.0.1", "127.255.0.9", "::1", "localhost", "LOCALHOST"])
def test_loopback_hosts_are_recognised(host) -> None:
    assert is_loopback(host)


NOT_LOOPBACK = ["10.0.0.1", "0.0.0.0", "api.wgtwo.com", "localhost.evil.example", "::"]  # noqa: S104


@pytest.mark.parametrize("host", NOT_LOOPBACK)
def test_other_hosts_are_not_loopback(host) -> None:
    assert not is_loopback(host)


@pytest.mark.parametrize(
    "endpoint", ["api.wgtwo.com:443", "10.1.2.3:50051", "[2001:db8::1]:443", "0.0.0.0:1"]
)
def test_plaintext_to_a_non_loopback_target_is_refused_naming_the_setting(endpoint) -> None:
    with pytest.raises(ConfigError, match="CORE_PLAINTEXT") as refused:
        build_channel(settings(CORE_ENDPOINT=endpoint, CORE_PLAINTEXT="true"))

    assert "loopback" in str(refused.value)


@pytest.mark.parametrize("endpoint", ["127.0.0.1:50051", "localhost:50051", "[::1]:50051"])
def test_plaintext_to_a_loopback_target_is_allowed(endpoint) -> None:
    channel = build_channel(settings(CORE_ENDPOINT=endpoint, CORE_PLAINTEXT="true"))

    channel.close()


def test_tls_is_the_default_for_any_target() -> None:
    channel = build_channel(settings(CORE_ENDPOINT="api.wgtwo.com:443"))

    channel.close()


def test_unreadable_ca_file_is_refused_naming_the_setting(tmp_path) -> None:
    missing = tmp_path / "nope.pem"

    with pytest.raises(ConfigError, match="CORE_CA_FILE"):
        build_channel(settings(CORE_ENDPOINT="127.0.0.1:1", CORE_CA_FILE=str(missing)))
