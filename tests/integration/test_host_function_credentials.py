"""The credentials the local host gives a function's sandboxes: its role's session, never the host's
own, renewed before they run out; a sandbox whose credentials would expire during an invocation is
retired (as Lambda recycles execution environments), so a long `sipreg devstack up` keeps working."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace

import pytest

from devstack.aws_engine import ROOT
from devstack.host import InvocationError, LocalHost, iam
from tests.support.host import client, start_host


@pytest.fixture(scope="module")
def host(aws_endpoint: str) -> Iterator[LocalHost]:
    running = start_host(aws_endpoint)
    yield running
    running.stop()


def test_a_sandbox_signs_as_its_functions_role_session(host: LocalHost) -> None:
    env = host.invoke("ProbeFunction", {})["env"]

    assert env["AWS_ACCESS_KEY_ID"] != ROOT.access_key_id
    assert env["AWS_SESSION_TOKEN"]
    identity = client(host.aws_endpoint, "sts").get_caller_identity()
    assert identity["Arn"].endswith(":root")  # the host itself still provisions as the root
    assert (
        host.roles["ProbeFunction"]
        .role_arn.split("/")[-1]
        .startswith(f"{host.stack_name}-ProbeFunctionRole-")
    )


def test_a_sandbox_whose_credentials_would_expire_is_retired_and_its_successor_renewed(
    host: LocalHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    sessions = host.roles["ProbeFunction"]
    # Given the role's session running out in 30 s (less than the function's timeout + a minute)
    monkeypatch.setattr(iam, "RENEW_BEFORE_SECONDS", 0)
    sessions._current = replace(sessions.current(), expires_at=time.time() + 30)
    with pytest.raises(InvocationError):
        host.invoke("ProbeFunction", {"exit": True})  # the warm sandbox ends: the next one gets those
    first = host.invoke("ProbeFunction", {})
    assert first["invocations"] == 1
    # When it is invoked again
    second = host.invoke("ProbeFunction", {})
    # Then the sandbox holding the old credentials was not reused
    assert second["pid"] != first["pid"] and second["invocations"] == 1
    # When renewal is due again (the host renews an hour ahead)
    monkeypatch.setattr(iam, "RENEW_BEFORE_SECONDS", 3600)
    renewed = host.invoke("ProbeFunction", {})
    warm = host.invoke("ProbeFunction", {})
    # Then a new session was assumed, good for hours, and its sandbox stays warm
    assert renewed["env"]["AWS_ACCESS_KEY_ID"] != first["env"]["AWS_ACCESS_KEY_ID"]
    assert sessions.current().expires_at - time.time() > 11 * 3600
    assert warm["pid"] == renewed["pid"]
    # And the renewed credentials work: the function writes its table
    host.invoke("ProbeFunction", {"write": "after-renewal"})
