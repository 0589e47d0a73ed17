"""moto in server mode as a child process on a free loopback port: the local stack's AWS.

    with MotoProcess.start(log_file=Path("moto.log")) as moto:
        boto3.client("sqs", endpoint_url=moto.endpoint, ...)

As a program, `python -m devstack.moto_process` serves on 127.0.0.1 (a free port unless
`--port`), prints one JSON line `{"port": N}` when ready and stops on SIGTERM or SIGINT. A process
of its own (not a thread of the caller) keeps moto's request handling off the caller's GIL.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import subprocess
import sys
import threading
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from moto.server import ThreadedMotoServer

from devstack.child import ChildStartError, stop_child, wait_for_ready_line

STARTUP_TIMEOUT_SECONDS = 20.0
STOP_TIMEOUT_SECONDS = 5.0


class MotoStartError(ChildStartError):
    """moto did not announce itself; the message says where its output went."""


class MotoProcess:
    def __init__(self, process: subprocess.Popen[bytes], port: int, log: IO[bytes]) -> None:
        self.process = process
        self.port = port
        self._log = log

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def start(cls, *, log_file: Path, timeout: float = STARTUP_TIMEOUT_SECONDS) -> Self:
        log = log_file.open("ab")
        process = subprocess.Popen(
            [sys.executable, "-m", "devstack.moto_process"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            start_new_session=True,  # Ctrl-C reaches the caller, which stops moto last, in order
        )
        try:
            port = int(wait_for_ready_line(process, timeout)["port"])
        except (ChildStartError, KeyError, ValueError, TypeError):
            stop_child(process, timeout=0)
            log.close()
            raise MotoStartError(f"moto server did not start within {timeout} s; see {log_file}") from None
        return cls(process, port, log)

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> int:
        """SIGTERM, then wait; killed if it does not stop in time. Returns the exit code."""
        stop_child(self.process, timeout)
        if self.process.stdout:
            self.process.stdout.close()
        self._log.close()
        return self.process.returncode

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.moto_process", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per request otherwise
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=args.port, verbose=False)
    server.start()
    try:
        print(json.dumps({"port": server.get_host_and_port()[1]}), flush=True)
        stopping.wait()
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
