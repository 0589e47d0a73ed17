"""The layer keeps botocore's API models only for the services sipreg calls (layers/common/Makefile):
every service the package's code reaches must be on that list, or Lambda would fail at the call.
Likewise for what the layer prunes of powertools: nothing sipreg imports may be on that list."""

from __future__ import annotations

import re
from importlib.metadata import distribution
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "layers" / "common" / "sipreg"


def makefile_list(name: str) -> set[str]:
    makefile = (ROOT / "layers" / "common" / "Makefile").read_text()
    match = re.search(rf"^{name} := (.+)$", makefile, re.MULTILINE)
    assert match, f"{name} missing from layers/common/Makefile"
    return set(match.group(1).split())


def kept_services() -> set[str]:
    return makefile_list("AWS_SERVICES")


def sources() -> list[Path]:
    """The layer's own code and every function's."""
    paths = [p for p in PACKAGE.rglob("*.py") if "proto" not in p.parts]
    return paths + sorted((ROOT / "functions").rglob("*.py"))


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


def test_a_traced_layer_keeps_the_xray_model_its_sampler_builds_a_client_for() -> None:
    traced = any("Tracer(" in path.read_text() for path in sources())
    connector = distribution("aws-xray-sdk").locate_file("aws_xray_sdk/core/sampling/connector.py")
    assert "create_client('xray'" in Path(str(connector)).read_text()  # the SDK still needs the model
    assert traced  # sipreg.observability builds one
    assert "xray" in kept_services()


def test_no_powertools_utility_the_layer_prunes_is_imported() -> None:
    imported: set[str] = set()
    for path in sources():
        text = path.read_text()
        imported |= set(re.findall(r"aws_lambda_powertools\.utilities\.([a-z_]+)", text))
        imported |= {
            name.strip()
            for names in re.findall(r"from aws_lambda_powertools\.utilities import ([a-z_, ]+)", text)
            for name in names.split(",")
        }
    assert {"typing", "parameters"} <= imported  # the scan sees what the functions use
    assert not imported & makefile_list("POWERTOOLS_UNUSED")
