"""The signing examples docs/events-api.md publishes, run as written against the local host: the
curl + openssl producer, the Node.js producer and the botocore SigV4 operator. A doc that drifts from
the scheme fails here."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from devstack.aws_engine import ROOT as ROOT_CREDENTIALS
from devstack.host import LocalHost
from tests.support.events_api import REGION, ROOT, SECRET, drain

DOC = (ROOT / "docs" / "events-api.md").read_text()


def example(marker: str) -> str:
    """The fenced code block whose first line is `marker`."""
    found = re.search(r"```[a-z]+\n" + re.escape(marker) + r"\n(.*?)```", DOC, re.S)
    assert found, f"docs/events-api.md has no example {marker!r}"
    return found.group(1)


def run(command: list[str], host: LocalHost, **env: str) -> subprocess.CompletedProcess[str]:
    assert host.api_url
    environment = {
        "PATH": os.environ["PATH"],
        "SIPREG_API": host.api_url,
        "SIPREG_WEBHOOK_SECRET": SECRET,
        **env,
    }
    return subprocess.run(command, capture_output=True, text=True, timeout=30, env=environment, check=False)


@pytest.mark.parametrize(("marker", "program", "event_id"), [
    ("# signs-with-openssl", "bash", "crm-1"),
    ("// signs-with-node", "node", "crm-2"),
])  # fmt: skip
def test_a_documented_producer_example_posts_an_event(
    host: LocalHost, queue_url: str, marker: str, program: str, event_id: str
) -> None:
    assert shutil.which(program), f"{program} is needed for the documented example"
    drain(host.aws_endpoint, queue_url)
    # When the example runs as published
    answer = run([program, "-e" if program == "node" else "-c", example(marker)], host)
    # Then the API accepted its event, and it is on the queue
    assert answer.returncode == 0, answer.stderr
    assert f'{{"accepted":["{event_id}"]}}' in answer.stdout, answer.stdout
    assert [json.loads(m["Body"])["id"] for m in drain(host.aws_endpoint, queue_url)] == [event_id]


def test_the_documented_operator_example_reads_status(host: LocalHost) -> None:
    # When the botocore SigV4 example runs with operator credentials (the local root here)
    answer = run(
        [sys.executable, "-c", example("# operator-with-botocore")],
        host,
        AWS_REGION=REGION,
        AWS_ACCESS_KEY_ID=ROOT_CREDENTIALS.access_key_id,
        AWS_SECRET_ACCESS_KEY=ROOT_CREDENTIALS.secret_access_key,
    )
    # Then API Gateway's check let it through and the function answered (the number is unknown)
    assert answer.returncode == 0, answer.stderr
    code, _, body = answer.stdout.partition(" ")
    assert (code, json.loads(body)["status"]) == ("404", 404), answer.stdout
