"""Every function template.yaml declares runs on the stack `sipreg devstack up` started, and every
HTTP route of the template reaches the function the template names, as the host records it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from devstack.host.template import load_template
from sipreg import signing
from tests.e2e.conftest import REPO

TEMPLATE = load_template(REPO / "template.yaml")
FUNCTIONS = {
    logical_id: resource
    for logical_id, resource in TEMPLATE["Resources"].items()
    if resource["Type"] == "AWS::Serverless::Function"
}
ROUTES = [
    (logical_id, str(event["Properties"]["Method"]).upper(), event["Properties"]["Path"])
    for logical_id, resource in FUNCTIONS.items()
    for event in (resource["Properties"].get("Events") or {}).values()
    if event["Type"] == "HttpApi"
]
# Routes API Gateway authorizes with IAM (operators): only a SigV4-signed request reaches them.
IAM_ROUTES = {
    (str(event["Properties"]["Method"]).upper(), event["Properties"]["Path"])
    for resource in FUNCTIONS.values()
    for event in (resource["Properties"].get("Events") or {}).values()
    if event["Type"] == "HttpApi" and (event["Properties"].get("Auth") or {}).get("Authorizer") == "AWS_IAM"
}


def invocations(log_dir: str) -> list[dict[str, Any]]:
    """The host's invocation records (function, trigger, outcome) from the stack's log."""
    text = (Path(log_dir) / "stack.log").read_text()
    return [json.loads(m[1]) for m in re.finditer(r"devstack\.host\.invocations (\{.*\})$", text, re.M)]


def test_every_function_of_the_template_was_started_in_its_sandbox(devstack: dict[str, Any]) -> None:
    # Given the template's functions
    # Then the stack runs each of them: started ahead (prewarmed), i.e. its handler imported in a
    # sandbox with the template's environment, or the stack would not have come up
    assert devstack["functions"] == sorted(FUNCTIONS)
    assert {
        "OAuthStartFunction",
        "EventsApiFunction",
        "RegistrationWorkerFunction",
        "RefresherFunction",
    } <= set(FUNCTIONS)


IMPORT_HANDLER = """
import importlib, sys
sys.path[:0] = sys.argv[1:3]
module, _, name = sys.argv[3].rpartition(".")
assert callable(getattr(importlib.import_module(module), name)), sys.argv[3]
"""


def test_every_handler_imports_in_a_fresh_interpreter_with_only_its_code_and_the_layer() -> None:
    # Given each function's code folder and Handler, and the shared layer's folder
    layer = REPO / TEMPLATE["Resources"]["CommonLayer"]["Properties"]["ContentUri"]
    # When each handler is imported in an interpreter of its own, as a Lambda sandbox does
    runs = {
        logical_id: subprocess.Popen(
            [
                sys.executable,
                "-P",
                "-c",
                IMPORT_HANDLER,
                str(REPO / resource["Properties"]["CodeUri"]),
                str(layer),
                resource["Properties"]["Handler"],
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for logical_id, resource in FUNCTIONS.items()
    }
    # Then every one of them imports and names a callable
    failures = {logical_id: run.communicate(timeout=60)[0] for logical_id, run in runs.items()}
    assert {k: v for k, v in failures.items() if runs[k].returncode != 0} == {}


@pytest.mark.parametrize(("function", "method", "path"), ROUTES, ids=[f"{m} {p}" for _, m, p in ROUTES])
def test_every_route_reaches_the_function_the_template_names(
    devstack: dict[str, Any], function: str, method: str, path: str
) -> None:
    # Given the number of times the host has run this route so far
    trigger = f"http:{method} {path}"

    def runs() -> int:
        return sum(
            1
            for r in invocations(devstack["log_dir"])
            if r["function"] == function and r["trigger"] == trigger
        )

    before = runs()
    url = devstack["api"] + path.replace("{msisdn}", "%2B4790000001")
    headers = {"Content-Type": "application/json"}
    if (method, path) in IAM_ROUTES:
        # An operator route refuses the unsigned before any function runs (API Gateway's 403) ...
        assert httpx.request(method, url, timeout=10, content=b"{}", headers=headers).status_code == 403
        assert runs() == before
        # ... and takes the local operator's SigV4 signature (a request id on changes)
        signed = AWSRequest(method=method, url=url, data=b"{}", headers=headers)
        if method != "GET":
            signed.headers[signing.REQUEST_ID_HEADER] = signing.new_request_id()
        operator = Credentials(
            devstack["operator"]["access_key_id"], devstack["operator"]["secret_access_key"]
        )
        SigV4Auth(operator, "execute-api", devstack["region"]).add_auth(signed)
        headers = dict(signed.headers.items())
    # When the route is called (with a sample path parameter)
    answer = httpx.request(method, url, timeout=10, content=b"{}", headers=headers)
    # Then the template's function answered it (the host's own 404 would name no function)
    assert answer.status_code != 404 or answer.json() != {"message": "Not Found"}
    assert runs() == before + 1
    last = [r for r in invocations(devstack["log_dir"]) if r["trigger"] == trigger][-1]
    assert last["outcome"] == "ok"
