"""A function's load runs with no garbage collection, and leaves what it made frozen
(sipreg.cold_start): measured in a fresh interpreter, as Lambda's init would be."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = sorted(path.parent.name for path in (ROOT / "functions").glob("*/app.py"))


def fresh_interpreter(function: str, code: str) -> dict[str, object]:
    """`code` run in a new interpreter from the function's folder, the layer's sources on its
    path (as /opt/python is on Lambda's); what it prints is JSON."""
    result = subprocess.run(  # this interpreter, fixed code
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT / "functions" / function,
        env={
            "PYTHONPATH": f"{ROOT / 'functions' / function}:{ROOT / 'layers' / 'common'}",
            "PATH": "/usr/bin:/bin",
            "AWS_DEFAULT_REGION": "eu-west-1",
        },
        check=False,
    )
    assert result.returncode == 0, result.stderr
    answer: dict[str, object] = json.loads(result.stdout)
    return answer


def test_the_workers_load_runs_no_collection_and_leaves_its_objects_frozen() -> None:
    # Given a fresh interpreter counting each collection, when the worker's app.py is imported
    answer = fresh_interpreter(
        "registration_worker",
        """
        import gc, importlib.util, json
        # app.py compiled (and cached) first: what compiling it collects precedes its first line.
        importlib.util.find_spec("app").loader.get_code("app")
        gc.collect()  # a clean start: the counts from the interpreter's own start-up zeroed
        collections = []
        gc.callbacks.append(lambda phase, info: phase == "start" and collections.append(info["generation"]))
        import app
        print(json.dumps({
            "collections": collections,
            "enabled": gc.isenabled(),
            "frozen": gc.get_freeze_count(),
            "tracked": len(gc.get_objects()),
        }))
        """,
    )
    # Then nothing was collected while it loaded (a load makes tens of thousands of objects:
    # several collections, a full one among them, without sipreg.cold_start), what it made is
    # in the permanent generation, and collection is on again for the invocations.
    assert answer["collections"] == []
    assert answer["enabled"] is True
    assert isinstance(answer["frozen"], int) and answer["frozen"] > 20_000
    assert isinstance(answer["tracked"], int) and answer["tracked"] < 1_000


def test_a_process_that_had_collection_off_keeps_it_off() -> None:
    # Given a host that turned collection off itself, when a function is loaded in it
    answer = fresh_interpreter(
        "refresher",
        """
        import gc, json
        gc.disable()
        import app
        print(json.dumps({"enabled": gc.isenabled()}))
        """,
    )
    # Then the load does not turn it on behind the host's back
    assert answer == {"enabled": False}


def _module_statements(function: str) -> list[ast.stmt]:
    tree = ast.parse((ROOT / "functions" / function / "app.py").read_text())
    return [
        statement
        for statement in tree.body
        if not (isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant))  # docstring
        and not (isinstance(statement, ast.ImportFrom) and statement.module == "__future__")
        and not (isinstance(statement, ast.If) and ast.unparse(statement.test) == "__name__ == '__main__'")
    ]


@pytest.mark.parametrize("function", FUNCTIONS)
def test_every_function_imports_cold_start_first_and_says_loaded_last(function: str) -> None:
    statements = _module_statements(function)
    # Anything imported before it would load with collection on; anything after `loaded()` would
    # be made after the freeze.
    assert ast.unparse(statements[0]) == "from sipreg import cold_start"
    assert ast.unparse(statements[-1]) == "cold_start.loaded()"
