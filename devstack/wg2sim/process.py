"""Run wg2sim as a real subprocess (tests, demo, local stack) and drive its admin API.

with Wg2simProcess.start(time_scale=3600, tls=True) as sim:
    token = sim.mint_token(msisdn="+4799990000")
    ...  # gRPC to sim.grpc_target, trusting sim.ca_file
    assert sim.registrations() == [...]
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any, Self

import httpx

from devstack.child import (
    ChildStartError,
    Stoppable,
    open_child_log,
    read_child_log,
    stop_and_close,
    stop_child,
    wait_for_ready_line,
)
from devstack.wg2sim.tokens import SIP_BREAKOUT_SCOPES

STARTUP_TIMEOUT_SECONDS = 10.0
STOP_TIMEOUT_SECONDS = 10.0


class Wg2simStartError(ChildStartError):
    """The emulator did not announce itself; the message carries its stderr."""


class Wg2simAdminError(RuntimeError):
    """The admin API refused a request (e.g. 400 naming the bad field)."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(
            f"{response.request.method} {response.request.url.path}: {response.status_code} {response.text}"
        )
        self.status_code = response.status_code
        self.body = response.text


class Wg2simProcess(Stoppable):
    """A running `python -m devstack.wg2sim` child; build it with `start()`."""

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        stderr: IO[bytes],
        ready: dict[str, Any],
        time_scale: float = 1.0,
    ) -> None:
        self.process = process
        self.time_scale = time_scale
        self.grpc_port: int = ready["grpc"]
        self.http_port: int = ready["http"]
        self.ca_file: str | None = ready["ca_file"]
        self.sip_port: int | None = ready.get("sip")
        self.sip_ca_file: str | None = ready.get("sip_ca_file")
        self._stderr = stderr
        self._http = httpx.Client(base_url=self.http_url, timeout=5.0)

    @classmethod
    def start(
        cls,
        *,
        time_scale: float = 1.0,
        tls: bool = False,
        token_ttl: int | None = None,
        extra_args: Sequence[str] = (),
        startup_timeout: float = STARTUP_TIMEOUT_SECONDS,
        log_file: Path | None = None,
    ) -> Self:
        """Starts `python -m devstack.wg2sim` on free ports and waits for its ready line.

        Its stderr goes to `log_file` (appended) when given, else to a temporary file.
        """
        args = [sys.executable, "-m", "devstack.wg2sim", "--grpc-port", "0", "--http-port", "0"]
        args += ["--time-scale", str(time_scale)]
        args += ["--tls"] if tls else []
        args += ["--token-ttl", str(token_ttl)] if token_ttl is not None else []
        args += list(extra_args)
        stderr = open_child_log(log_file)  # closed in stop()
        process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr)  # noqa: S603
        try:
            ready = wait_for_ready_line(process, startup_timeout)
            if not {"grpc", "http", "ca_file"} <= ready.keys():
                stop_child(process, timeout=0)
                raise ChildStartError(f"the ready line lacks grpc, http or ca_file: {ready}")
        except ChildStartError as error:
            detail = read_child_log(stderr).strip()
            stderr.close()
            raise Wg2simStartError(f"{error}; exit code {process.returncode}; stderr:\n{detail}") from None
        return cls(process, stderr, ready, time_scale)

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    # --- admin API ----------------------------------------------------------------------------

    def mint_token(
        self,
        msisdn: str | None = None,
        scopes: Sequence[str] = SIP_BREAKOUT_SCOPES,
        ttl: int = 3600,
    ) -> str:
        """A user token for `msisdn`, or a client token without one; ttl in emulator seconds."""
        body = {"msisdn": msisdn, "scopes": list(scopes), "ttl": ttl}
        return str(self._admin("POST", "/_admin/tokens", json=body)["access_token"])

    def registrations(self) -> list[dict[str, Any]]:
        return list(self._admin("GET", "/_admin/registrations")["registrations"])

    def mark_unverified(self, msisdn: str) -> None:
        """The identity server answers phone_number_verified false for `msisdn` from now on."""
        self._admin("POST", "/_admin/oidc/unverified-numbers", json={"msisdn": msisdn})

    def set_faults(self, **faults: Any) -> dict[str, Any]:
        """Replaces the fault set, e.g. `set_faults(unavailable_rate=1.0, msisdns=["+47..."])`."""
        return dict(self._admin("POST", "/_admin/faults", json=faults)["faults"])

    def faults(self) -> dict[str, Any]:
        return dict(self._admin("GET", "/_admin/faults")["faults"])

    def clear_faults(self) -> None:
        self._admin("DELETE", "/_admin/faults")

    def stats(self) -> dict[str, Any]:
        return dict(self._admin("GET", "/_admin/stats"))

    def call(
        self, caller: str, callee: str, behaviour: str = "answer", timeout: float = 30.0
    ) -> dict[str, Any]:
        """POST /_admin/calls: the call's outcome and legs, once it is over."""
        body = {"from": caller, "to": callee, "callee": behaviour}
        return self._admin("POST", "/_admin/calls", json=body, timeout=timeout)

    def calls(self) -> list[dict[str, Any]]:
        return list(self._admin("GET", "/_admin/calls")["calls"])

    @property
    def sip_uri(self) -> str:
        """The core's own SIP port, as a TAS reaches it (Ingress)."""
        return f"sips:127.0.0.1:{self.sip_port}"

    def _admin(
        self, method: str, path: str, json: Any = None, timeout: float | None = None
    ) -> dict[str, Any]:
        response = self._http.request(method, path, json=json, timeout=timeout or self._http.timeout)
        if response.is_error:
            raise Wg2simAdminError(response)
        body: dict[str, Any] = response.json()
        return body

    # --- life cycle ---------------------------------------------------------------------------

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> int:
        """SIGTERM, then wait; kills it if it does not stop in time. Returns the exit code."""
        self._http.close()
        return stop_and_close(self.process, timeout, self._stderr)
