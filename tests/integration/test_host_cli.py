"""`python -m devstack.host` starts the host as a program: one JSON line when ready, clean stop on
SIGTERM, and a clear error (no traceback) for a bad template or parameter."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from devstack.child import wait_for_ready_line
from tests.support.host import TEMPLATE, client

REPO = Path(__file__).resolve().parents[2]


def run_host(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "devstack.host", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def test_program_prints_where_it_serves_and_stops_on_sigterm(aws_endpoint: str, tmp_path: Path) -> None:
    # Given the host started as a program
    process = run_host(
        "--template", str(TEMPLATE), "--aws-endpoint", aws_endpoint, "--param", "Stage=dev",
        "--stack-name", "cli-test", "--region", "eu-west-1", "--log-dir", str(tmp_path),
        "--override", "PlainQueue.VisibilityTimeout=7",
    )  # fmt: skip
    try:
        # When it is ready, Then its one JSON line names the API and the resources
        ready = wait_for_ready_line(process, timeout=30)
        assert ready["api"].startswith("http://127.0.0.1:")
        assert ready["resources"]["WorkQueue"]["QueueUrl"].startswith(aws_endpoint)
        assert ready["resources"]["DataKeyAlias"]["Ref"] == "alias/cli-test-data"
        # with the local property override applied
        plain = client(aws_endpoint, "sqs").get_queue_attributes(
            QueueUrl=ready["resources"]["PlainQueue"]["QueueUrl"], AttributeNames=["VisibilityTimeout"]
        )
        assert plain["Attributes"]["VisibilityTimeout"] == "7"
        # and the API answers
        assert httpx.get(f"{ready['api']}/bare", timeout=10).json()["bare"] is True
        # and function output went to the function's log file
        httpx.get(f"{ready['api']}/boom", timeout=10)
        assert "RuntimeError: boom" in (tmp_path / "EchoFunction.log").read_text()
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=15)
    # And it stopped cleanly, logging one line per invocation (never the event)
    assert process.returncode == 0
    invocations = [line for line in stderr.splitlines() if "devstack.host.invocations" in line]
    assert len(invocations) == 2
    assert '"outcome": "ok"' in invocations[0] and '"outcome": "error"' in invocations[1]
    assert "python-httpx" not in stderr and "shared-layer" not in stderr  # no event, no result


def test_bad_parameter_is_refused_clearly(aws_endpoint: str) -> None:
    process = run_host("--template", str(TEMPLATE), "--aws-endpoint", aws_endpoint, "--param", "Stage=qa")
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 2
    assert "Parameters.Stage: 'qa' is not one of" in stderr
    assert "Traceback" not in stderr
