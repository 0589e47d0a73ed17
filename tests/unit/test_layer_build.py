"""The layer keeps botocore's API models only for the services sipreg calls (layers/common/Makefile):
every service the package's code reaches must be on that list, or Lambda would fail at the call."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "layers" / "common" / "sipreg"


def kept_services() -> set[str]:
    makefile = (ROOT / "layers" / "common" / "Makefile").read_text()
    match = re.search(r"^AWS_SERVICES := (.+)$", makefile, re.MULTILINE)
    assert match, "AWS_SERVICES missing from layers/common/Makefile"
    return set(match.group(1).split())


def services_the_code_calls() -> set[str]:
    found: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        if "proto" in path.parts:
            continue
        text = path.read_text()
        found |= set(re.findall(r"""(?:aws_client|\.client|\.resource)\(\s*["']([a-z0-9-]+)["']""", text))
        if "dynamodb_table(" in text:
            found.add("dynamodb")
        if "parameters.get_secret(" in text:
            found.add("secretsmanager")
        if "Tracer(" in text:  # aws_xray_sdk builds an xray client (sampling rules) when it loads
            found.add("xray")
    return found


def test_every_service_the_code_calls_keeps_its_api_model_in_the_layer() -> None:
    called = services_the_code_calls()
    assert {"dynamodb", "sqs", "kms", "secretsmanager", "events", "xray"} <= called  # the scan sees them
    assert called <= kept_services()
