"""Running a function's invocations in its own worker processes (execution environments).

Why processes: each function gets exactly the environment the template gives it (no swapping of
one shared os.environ), a timeout is enforced the way Lambda does it (the sandbox is killed and
the next invocation starts cold), and module-level state (clients, caches) lives as long as the
worker, so warm starts reuse it. A function runs at most `concurrency` invocations at once, each in
its own worker; idle workers are reused, new ones are started only when all are busy.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any
from uuid import uuid4

from devstack.host.functions import FunctionSpec

log = logging.getLogger("devstack.host.invocations")

_WORKER_SCRIPT = Path(__file__).with_name("worker.py")
_RESPONSE_GRACE_S = 0.25  # the worker's answer may arrive just after its deadline
# A synchronous invocation's request and response: 6 MB each, as Lambda counts them (JSON bytes).
MAX_PAYLOAD_BYTES = 6_291_556
Output = int | IO[Any] | None


class InvocationError(Exception):
    """The function failed: an unhandled error, an init failure, a crash, a throttle."""

    def __init__(self, function: str, request_id: str, error_type: str, message: str) -> None:
        super().__init__(f"{function} ({request_id}): {error_type}: {message}")
        self.function = function
        self.request_id = request_id
        self.error_type = error_type
        self.error_message = message


class InvocationTimeoutError(InvocationError):
    """The function ran past its Timeout; its worker was killed."""


class _Sandbox:
    """One worker process and the socket the host talks to it over."""

    def __init__(self, spec: FunctionSpec, output: Output) -> None:
        host_end, worker_end = socket.socketpair()
        env = dict(spec.env)
        # The execution role's session, as Lambda hands it to each execution environment.
        self.credentials_expire = float("inf")
        if spec.credentials is not None:
            role_env, self.credentials_expire = spec.credentials()
            env.update(role_env)
        env["AWS_LAMBDA_LOG_STREAM_NAME"] = f"{datetime.now(UTC):%Y/%m/%d}/[$LATEST]{uuid4().hex}"
        args = [sys.executable, "-P", str(_WORKER_SCRIPT), "--fd", str(worker_end.fileno())]
        args += ["--handler", spec.handler]
        for path in spec.python_paths:
            args += ["--path", str(path)]
        self.process = subprocess.Popen(  # noqa: S603  # our own interpreter and script
            args,
            env=env,
            cwd=spec.code_dir,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=output,
            pass_fds=(worker_end.fileno(),),
            start_new_session=True,  # Ctrl-C reaches the host, which stops workers itself
        )
        worker_end.close()
        self._socket = host_end
        self._reader = host_end.makefile("rb")

    def send(self, message: dict[str, Any]) -> None:
        self._socket.sendall(json.dumps(message).encode() + b"\n")

    def receive(self, timeout: float) -> dict[str, Any] | None:
        """The next message; None when none came in time; EOFError when the worker is gone."""
        self._socket.settimeout(max(timeout, 0.001))
        try:
            line = self._reader.readline()
        except TimeoutError:
            return None
        except OSError as exc:
            raise EOFError from exc
        if not line:
            raise EOFError
        message: dict[str, Any] = json.loads(line)
        return message

    def exit_status(self) -> int | None:
        try:
            return self.process.wait(timeout=1)
        except subprocess.TimeoutExpired:
            return None

    def close(self, grace: float = 1.0) -> None:
        """Ends the worker: it exits when its socket closes; killed if it does not in time."""
        with contextlib.suppress(OSError):
            self._socket.shutdown(socket.SHUT_RDWR)  # EOF for the worker, even while we hold a file
        self._reader.close()
        self._socket.close()
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def kill(self) -> None:
        self.close(grace=0)

    def credentials_last(self, seconds: float) -> bool:
        """Whether its role credentials are still good `seconds` from now."""
        return self.credentials_expire - time.time() > seconds


class FunctionRuntime:
    """Invokes one function; at most `spec.concurrency` invocations run at once."""

    def __init__(self, spec: FunctionSpec, output: Output = None, init_timeout: float = 30.0) -> None:
        self.spec = spec
        self._output = output
        self._init_timeout = init_timeout
        self._slots = threading.Semaphore(max(spec.concurrency, 0))
        self._idle: list[_Sandbox] = []
        self._busy: set[_Sandbox] = set()
        self._lock = threading.Lock()
        self._closed = False

    def invoke(self, event: Any, trigger: str = "invoke") -> Any:
        """Runs the handler on `event` (JSON-able) and returns its JSON result, or raises."""
        request_id = str(uuid4())
        started = time.monotonic()
        cold = False
        outcome, error_type = "ok", ""
        try:
            if (size := _payload_bytes(event)) > MAX_PAYLOAD_BYTES:  # refused before any sandbox
                raise self._error(
                    request_id,
                    "RequestEntityTooLargeException",
                    f"{size} byte payload is too large for the RequestResponse invocation type "
                    f"(limit {MAX_PAYLOAD_BYTES} bytes)",
                )
            with self._slot(request_id) as (sandbox, cold):
                return self._run(sandbox, request_id, event, cold)
        except InvocationError as exc:
            outcome = "timeout" if isinstance(exc, InvocationTimeoutError) else "error"
            error_type = exc.error_type
            raise
        finally:
            line = {
                "function": self.spec.logical_id,
                "request_id": request_id,
                "trigger": trigger,
                "cold_start": cold,
                "duration_ms": round((time.monotonic() - started) * 1000, 1),
                "outcome": outcome,
            }
            if error_type:
                line["error_type"] = error_type
            log.info(json.dumps(line))

    def prewarm(self) -> None:
        """Starts one worker ahead of the first invocation (like provisioned concurrency)."""
        sandbox = _Sandbox(self.spec, self._output)
        self._await_ready(sandbox, "prewarm")
        with self._lock:
            self._idle.append(sandbox)

    def kill_busy(self) -> bool:
        """Kills one execution environment in the middle of an invocation, as Lambda may lose one
        (for chaos runs): its invocation fails as a crash. False when none was busy."""
        with self._lock:
            sandbox = next(iter(self._busy), None)
        if sandbox is None:
            return False
        sandbox.process.kill()
        return True

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, busy = self._idle, list(self._busy)
            self._idle = []
        for sandbox in busy:
            sandbox.kill()
        for sandbox in idle:
            sandbox.close()

    @contextmanager
    def _slot(self, request_id: str) -> Iterator[tuple[_Sandbox, bool]]:
        if self.spec.concurrency < 1:
            raise self._error(request_id, "TooManyRequestsException", "Rate Exceeded.")
        while not self._slots.acquire(timeout=0.2):
            if self._closed:
                raise self._error(request_id, "HostStopped", "the local host is stopping")
        sandbox: _Sandbox | None = None
        retired: list[_Sandbox] = []
        try:
            with self._lock:
                if self._closed:
                    raise self._error(request_id, "HostStopped", "the local host is stopping")
                # A sandbox whose credentials could run out during this invocation is retired (its
                # successor gets a fresh session), as Lambda recycles execution environments.
                retired = [s for s in self._idle if not s.credentials_last(self.spec.timeout + 60)]
                self._idle = [s for s in self._idle if s not in retired]
                cold = not self._idle
                sandbox = self._idle.pop() if self._idle else _Sandbox(self.spec, self._output)
                self._busy.add(sandbox)
            for stale in retired:
                stale.close()
            if cold:
                self._await_ready(sandbox, request_id)
            yield sandbox, cold
        finally:
            if sandbox is not None:
                with self._lock:
                    self._busy.discard(sandbox)
                    if sandbox.process.poll() is None and not self._closed:
                        self._idle.append(sandbox)
            self._slots.release()

    def _await_ready(self, sandbox: _Sandbox, request_id: str) -> None:
        try:
            message = sandbox.receive(self._init_timeout)
        except EOFError:
            message = {"type": "init_error", "error": self._exit_error(sandbox)}
        if message is None:
            sandbox.kill()
            raise self._error(request_id, "Runtime.InitTimeout", f"init took over {self._init_timeout:.0f} s")
        if message["type"] != "ready":
            sandbox.kill()
            error = message["error"]
            raise self._error(request_id, error["errorType"], error["errorMessage"])

    def _run(self, sandbox: _Sandbox, request_id: str, event: Any, cold: bool) -> Any:
        deadline = time.time() + self.spec.timeout
        sandbox.send(
            {
                "request_id": request_id,
                "event": event,
                "deadline_ms": int(deadline * 1000),
                "invoked_function_arn": self.spec.arn,
                # Sampled when the function is traced: its segments go to the host's X-Ray stand-in.
                "trace_id": f"Root=1-{int(time.time()):08x}-{uuid4().hex[:24]};Parent={uuid4().hex[:16]};"
                f"Sampled={int(self.spec.traced)}",
            }
        )
        try:
            message = sandbox.receive(deadline - time.time() + _RESPONSE_GRACE_S)
        except EOFError:
            error = self._exit_error(sandbox)
            raise self._error(request_id, error["errorType"], error["errorMessage"]) from None
        if message is None:
            sandbox.kill()
            raise InvocationTimeoutError(
                self.spec.logical_id,
                request_id,
                "Sandbox.Timedout",
                f"Task timed out after {self.spec.timeout:.2f} seconds",
            )
        if message["type"] == "error":
            error = message["error"]
            raise self._error(request_id, error["errorType"], error["errorMessage"])
        if (size := _payload_bytes(message["payload"])) > MAX_PAYLOAD_BYTES:
            raise self._error(
                request_id,
                "Function.ResponseSizeTooLarge",
                f"Response payload size ({size} bytes) exceeded maximum allowed payload size "
                f"({MAX_PAYLOAD_BYTES} bytes).",
            )
        return message["payload"]

    def _exit_error(self, sandbox: _Sandbox) -> dict[str, str]:
        status = sandbox.exit_status()
        sandbox.kill()
        return {"errorType": "Runtime.ExitError", "errorMessage": f"Runtime exited with status {status}"}

    def _error(self, request_id: str, error_type: str, message: str) -> InvocationError:
        return InvocationError(self.spec.logical_id, request_id, error_type, message)


def _payload_bytes(payload: Any) -> int:
    return len(json.dumps(payload, separators=(",", ":")).encode())
