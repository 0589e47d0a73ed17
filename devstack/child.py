"""Child processes that announce readiness with one JSON line on stdout (moto, wg2sim, the host,
`sipreg devstack up`), and stopping them politely; and the start/stop life cycle that they and
the stacks built of them share (`Stoppable`, `start_or_stop`)."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

Child = subprocess.Popen[bytes] | subprocess.Popen[str]


class ChildStartError(RuntimeError):
    """The child printed no JSON ready line in time (it has been killed)."""


def wait_for_ready_line(process: Child, timeout: float, *, rest: list[Any] | None = None) -> dict[str, Any]:
    """The child's first stdout line as a JSON object.

    A thread reads it, so a silent child cannot block us past `timeout`. With `rest`, every later
    line is appended there, so the pipe never fills up and blocks the child.
    """
    stdout = process.stdout
    assert stdout is not None, "start the child with stdout=subprocess.PIPE"
    lines: queue.Queue[Any] = queue.Queue()

    def read() -> None:
        lines.put(stdout.readline())
        if rest is not None:
            rest.extend(stdout)

    threading.Thread(target=read, daemon=True).start()
    try:
        line = lines.get(timeout=timeout)
        ready = json.loads(line)
        if not isinstance(ready, dict):
            raise ValueError(line)
    except queue.Empty:
        stop_child(process, timeout=0)
        raise ChildStartError(f"no ready line within {timeout} s") from None
    except ValueError:
        stop_child(process, timeout=0)
        raise ChildStartError(f"expected a JSON ready line, got {line!r}") from None
    return ready


def stop_child(process: Child, timeout: float, signum: int = signal.SIGTERM) -> int:
    """`signum`, then up to `timeout` seconds to exit, then SIGKILL. Returns the exit code."""
    if process.poll() is None:
        if timeout > 0:
            process.send_signal(signum)
            try:
                return process.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        process.kill()
    return process.wait()


def stop_and_close(process: Child, timeout: float, log: IO[bytes]) -> int:
    """`stop_child`, then closes the child's stdout pipe (if any) and its log file; the exit code."""
    stop_child(process, timeout)
    if process.stdout:
        process.stdout.close()
    log.close()
    return process.returncode


def open_child_log(log_file: Path | None) -> IO[bytes]:
    """Where a child's stderr goes: `log_file` (appended) when given, else a temporary file; never
    an unread pipe that could fill up and block the child. The caller closes it."""
    return log_file.open("a+b") if log_file else tempfile.TemporaryFile()


def read_child_log(log: IO[bytes]) -> str:
    """All that `log` (from `open_child_log`) holds, from its start."""
    log.seek(0)
    return log.read().decode(errors="replace")


def start_or_stop(start: Callable[[], object], stop: Callable[[], object]) -> None:
    """Runs `start`; if it fails (Ctrl-C too), `stop` ends what it had started, then the error goes on."""
    try:
        start()
    except BaseException:
        stop()
        raise


class Stoppable:
    """What its `start()` hands back running: a `with` block around it ends with `stop()`."""

    def stop(self) -> object:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
