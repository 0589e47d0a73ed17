"""Child processes that announce readiness with one JSON line on stdout (moto, wg2sim, the host,
`sipreg devstack up`), and stopping them politely."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import threading
from typing import Any

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
