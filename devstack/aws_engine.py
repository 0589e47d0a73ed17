"""The local AWS: ministack (PyPI), in a virtual environment of its own, on a free loopback port.

    with LocalAws.start(log_file=Path("aws.log")) as aws:
        boto3.client("sqs", endpoint_url=aws.endpoint, **ROOT.as_client_kwargs())

Chosen by measurement (`bench/aws_engines.py`, figures in the README): it keeps SQS FIFO's group
and receipt-handle rules and DynamoDB's transaction atomicity and isolation under concurrency,
which moto 5.2 server does not, and it evaluates IAM policies (resources, conditions, assumed
roles, per-item transaction checks). With `enforce_iam` (the default) every request must be
SigV4-signed; the account's root credentials (`ROOT`) may do anything, a role's session only what
its policies allow. `devstack/aws_engine_server.py` is the program that runs inside the engine's
environment, with the few additions it makes to ministack's IAM checks.

ministack pins its own botocore, older than the one sipreg ships with, hence the separate
environment: `make aws-engine` builds `.venv-aws` from `tools/aws-engine-requirements.txt`.

By hand: `python -m devstack.aws_engine [--no-iam]` serves until Ctrl-C, after one JSON line
`{"endpoint": ..., "access_key_id": ..., "secret_access_key": ...}` (the local root's keys).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Self

import boto3

from devstack.child import ChildStartError, Stoppable, stop_and_close, stop_child, wait_for_ready_line

REPO_ROOT = Path(__file__).resolve().parent.parent
ENGINE_VENV = REPO_ROOT / ".venv-aws"
SERVER_SCRIPT = Path(__file__).resolve().parent / "aws_engine_server.py"
STARTUP_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 5.0
REGION = "eu-west-1"


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str
    session_token: str | None = None

    def as_client_kwargs(self) -> dict[str, str]:
        kwargs = {"aws_access_key_id": self.access_key_id, "aws_secret_access_key": self.secret_access_key}
        if self.session_token:
            kwargs["aws_session_token"] = self.session_token
        return kwargs

    def as_environment(self) -> dict[str, str]:
        env = {"AWS_ACCESS_KEY_ID": self.access_key_id, "AWS_SECRET_ACCESS_KEY": self.secret_access_key}
        if self.session_token:
            env["AWS_SESSION_TOKEN"] = self.session_token
        return env


# The local account's root: what tests, the demo and the host's provisioning sign with.
ROOT = Credentials("testing", "testing")  # a local stand-in, valid nowhere else


def root_client(service: str, endpoint: str) -> Any:
    """A boto3 client of the local engine at `endpoint`, signing as the account's root."""
    return boto3.client(service, endpoint_url=endpoint, region_name=REGION, **ROOT.as_client_kwargs())


class AwsEngineStartError(ChildStartError):
    """The engine did not announce itself; the message says where its output went."""


def engine_python() -> Path:
    """The engine environment's interpreter (`SIPREG_AWS_ENGINE_PYTHON` overrides it)."""
    configured = os.environ.get("SIPREG_AWS_ENGINE_PYTHON")
    python = Path(configured) if configured else ENGINE_VENV / "bin" / "python"
    if not python.exists():
        raise AwsEngineStartError(f"no AWS engine at {python}: run `make aws-engine` first")
    return python


class LocalAws(Stoppable):
    def __init__(
        self, process: subprocess.Popen[bytes], port: int, log: IO[bytes], *, enforce_iam: bool
    ) -> None:
        self.process = process
        self.port = port
        self.enforce_iam = enforce_iam
        self._log = log

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def start(
        cls, *, log_file: Path, enforce_iam: bool = True, timeout: float = STARTUP_TIMEOUT_SECONDS
    ) -> Self:
        log = log_file.open("ab")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/tmp"),  # noqa: S108  # only if the caller has none
            "TMPDIR": str(log_file.parent),
            "AUTH": "true" if enforce_iam else "false",
            "MINISTACK_REGION": REGION,
            **ROOT.as_environment(),
        }
        process = subprocess.Popen(  # noqa: S603  # our own program, in our own engine venv
            [str(engine_python()), str(SERVER_SCRIPT)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            env=env,
            cwd=log_file.parent,
            start_new_session=True,  # Ctrl-C reaches the caller, which stops the engine last, in order
        )
        try:
            port = int(wait_for_ready_line(process, timeout)["port"])
        except (ChildStartError, KeyError, ValueError, TypeError):
            stop_child(process, timeout=0)
            log.close()
            raise AwsEngineStartError(
                f"the AWS engine did not start within {timeout} s; see {log_file}"
            ) from None
        return cls(process, port, log, enforce_iam=enforce_iam)

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> int:
        """SIGTERM, then wait; killed if it does not stop in time. Returns the exit code."""
        return stop_and_close(self.process, timeout, self._log)


def throttle_batch_get(endpoint: str, table: str, *, keys_per_call: int, calls: int) -> None:
    """The engine's next `calls` BatchGetItem requests naming `table` read at most `keys_per_call`
    of its keys and hand the rest back in UnprocessedKeys, as a throttled DynamoDB table does."""
    _control(
        endpoint,
        "/_sipreg/dynamodb/throttle",
        {"table": table, "keys_per_call": keys_per_call, "calls": calls},
    )


def limit_in_flight(endpoint: str, queue_name: str, limit: int) -> None:
    """The FIFO queue hands out at most `limit` messages at once (SQS's quota: 120,000), as SQS
    does past its quota: a receive gets nothing, and no error."""
    _control(endpoint, "/_sipreg/sqs/in-flight-limit", {"queue": queue_name, "limit": limit})


def _control(endpoint: str, path: str, fields: dict[str, Any]) -> None:
    request = urllib.request.Request(  # noqa: S310  # the local engine, on loopback
        f"{endpoint}{path}", data=json.dumps(fields).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=5):  # noqa: S310
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.aws_engine", description=__doc__)
    parser.add_argument("--no-iam", action="store_true", help="accept any request (no IAM enforcement)")
    args = parser.parse_args(argv)
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    with (
        tempfile.TemporaryDirectory() as logs,
        LocalAws.start(log_file=Path(logs) / "aws.log", enforce_iam=not args.no_iam) as engine,
    ):
        ready = {"endpoint": engine.endpoint, "region": REGION, **ROOT.as_client_kwargs()}
        sys.stdout.write(json.dumps({k.removeprefix("aws_"): v for k, v in ready.items()}) + "\n")
        sys.stdout.flush()
        stopping.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
