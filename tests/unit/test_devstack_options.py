"""The local stack's options: bad values are refused naming the option, and a time factor shortens
every function setting that counts real seconds until something on the core runs out."""

from __future__ import annotations

import pytest

from devstack.stack_options import StackOptions, scaled_function_settings


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"api_version": "v2"}, "api_version"),
        ({"auth_mode": "machine"}, "auth_mode"),
        ({"time_factor": 0.5}, "time_factor"),
        ({"time_factor": 7200}, "time_factor"),
    ],
)
def test_bad_option_is_refused_naming_it(options: dict[str, object], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        StackOptions(**options)  # type: ignore[arg-type]


def test_real_time_changes_no_function_setting() -> None:
    assert scaled_function_settings(1, refresh_margin_seconds=1200) == {}


def test_time_factor_shortens_margins_and_retry_delays_in_step_with_the_core_clock() -> None:
    # Given the core's clock 360 times faster (a 3600 s TTL lasts 10 s)
    settings = scaled_function_settings(360, refresh_margin_seconds=1200)
    # Then the refresh margin is the same share of the TTL (1200/3600 of 10 s)
    assert settings["REFRESH_MARGIN_SECONDS"] == "3"
    # And retries wait proportionally less, token refresh keeps at least a second of margin
    assert settings["RETRY_BASE_SECONDS"] == "1"
    assert settings["RETRY_MAX_SECONDS"] == "2"
    assert settings["TOKEN_REFRESH_MARGIN_SECONDS"] == "1"


def test_margin_never_drops_below_one_second() -> None:
    assert scaled_function_settings(3600, refresh_margin_seconds=60)["REFRESH_MARGIN_SECONDS"] == "1"
