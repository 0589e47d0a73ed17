"""Each function is one hop from the template: the template's comment names its composition module,
the handler builds its objects only through that module, and every composition module has the same
two entry points."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

from devstack.host.template import load_template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_TEXT = (ROOT / "template.yaml").read_text()
FUNCTIONS = {
    name: resource["Properties"]
    for name, resource in load_template(ROOT / "template.yaml")["Resources"].items()
    if resource["Type"] == "AWS::Serverless::Function"
}
# What a handler must not build or call itself: the adapters (AWS, the core, the identity server).
ADAPTERS = ("boto3", "sipreg.store", "sipreg.queue", "sipreg.core", "sipreg.oauth_client", "sipreg.cipher")


def comment_above(logical_id: str) -> str:
    lines = TEMPLATE_TEXT[: TEMPLATE_TEXT.index(f"\n  {logical_id}:\n")].splitlines()
    block = []
    for line in reversed(lines):
        if not line.strip().startswith("#"):
            break
        block.append(line)
    return "\n".join(reversed(block))


def imported_modules(tree: ast.Module) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def adapters_called(tree: ast.Module) -> list[str]:
    """Names imported from adapter modules that the handler calls (builds, or uses to do I/O);
    naming their error types in an `except` is fine."""
    from_adapters = {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(ADAPTERS)
        for alias in node.names
    } | {
        (alias.asname or alias.name).split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
        if alias.name.startswith(ADAPTERS)
    }
    called = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            target = node.func
            while isinstance(target, ast.Attribute):
                target = target.value
            if isinstance(target, ast.Name) and target.id in from_adapters:
                called.append(target.id)
    return sorted(called)


@pytest.mark.parametrize("logical_id", sorted(FUNCTIONS))
def test_the_template_names_the_composition_module_the_handler_uses(logical_id: str) -> None:
    named = re.findall(r"sipreg\.wiring\.(\w+)", comment_above(logical_id))
    assert len(named) == 1, f"{logical_id}: its comment must name one sipreg.wiring module"
    handler = ROOT / FUNCTIONS[logical_id]["CodeUri"] / "app.py"
    tree = ast.parse(handler.read_text())
    assert f"sipreg.wiring.{named[0]}" in imported_modules(tree)
    assert adapters_called(tree) == [], f"{handler.relative_to(ROOT)} builds or calls adapters itself"


def test_every_composition_module_has_build_and_from_env() -> None:
    modules = sorted(p.stem for p in (ROOT / "layers/common/sipreg/wiring").glob("*.py"))
    functions = {m for m in modules if m not in ("__init__", "parts")}
    named = {re.findall(r"sipreg\.wiring\.(\w+)", comment_above(f))[0] for f in FUNCTIONS}
    assert functions == named, "a composition module no function uses, or a function without one"
    for name in functions:
        module = importlib.import_module(f"sipreg.wiring.{name}")
        assert callable(module.build) and callable(module.from_env)
        assert hasattr(module.from_env, "cache_clear"), f"{name}.from_env must build once per process"


def test_the_check_sees_a_handler_that_builds_an_adapter() -> None:
    handler = ast.parse(
        "from sipreg.queue import EventQueue\nfrom sipreg.store.event_log import LogError\nimport boto3\n"
        "try:\n    EventQueue('url').send([])\n    boto3.client('sqs')\nexcept LogError:\n    pass\n"
    )
    assert adapters_called(handler) == ["EventQueue", "boto3"]
