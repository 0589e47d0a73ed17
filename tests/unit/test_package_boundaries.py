"""Which top-level package may import which (issue 12: packages that say what they are).

    sipreg       the runtime (the Lambda layer): imports none of ours
    sipreg_cli   the `sipreg` command: sipreg only; devstack only inside `sipreg devstack up`
    devstack     the local stack: sipreg (its clients: sipreg.client), never sipreg_cli
    tests, bench anything

Read from the source (every import, at module level or inside a function), so a lazy import
counts too: the graph must have no cycle even then. A second check imports every module of
sipreg and sipreg_cli with devstack made unimportable, as in a `pip install .` without extras.
"""

from __future__ import annotations

import ast
import graphlib
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sipreg_cli.devstack import EXTRA_HINT, missing_extra

ROOT = Path(__file__).resolve().parents[2]
# Top-level package -> its folder. functions/ and tools/ are scripts, but their imports count.
PACKAGES = {
    "sipreg": ROOT / "layers" / "common" / "sipreg",
    "sipreg_cli": ROOT / "sipreg_cli",
    "devstack": ROOT / "devstack",
    "functions": ROOT / "functions",
    "tools": ROOT / "tools",
    "bench": ROOT / "bench",
    "tests": ROOT / "tests",
}
GENERATED = PACKAGES["sipreg"] / "proto"


@dataclass(frozen=True)
class Import:
    source: str  # the importing package
    target: str  # the imported top-level package
    path: Path
    line: int
    lazy: bool  # inside a function or method, so it runs only when that is called


def _imported_names(node: ast.Import | ast.ImportFrom, module: list[str]) -> Iterator[str]:
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
    elif node.level:  # relative: resolved against the importing module's package
        yield ".".join([*module[: len(module) - node.level], *([node.module] if node.module else [])])
    elif node.module:
        yield node.module


def imports() -> Iterator[Import]:
    for source, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            if GENERATED in path.parents or "node_modules" in path.parts:
                continue
            module = [source, *path.relative_to(folder).with_suffix("").parts]
            tree = ast.parse(path.read_text(), filename=str(path))
            lazy_lines = {
                inner.lineno
                for function in ast.walk(tree)
                if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef)
                for inner in ast.walk(function)
                if isinstance(inner, ast.Import | ast.ImportFrom)
            }
            for node in ast.walk(tree):
                if isinstance(node, ast.Import | ast.ImportFrom):
                    for name in _imported_names(node, module):
                        target = name.split(".")[0]
                        if target in PACKAGES and target != source:
                            yield Import(source, target, path, node.lineno, node.lineno in lazy_lines)


IMPORTS = list(imports())


def where(found: list[Import]) -> list[str]:
    return [f"{i.path.relative_to(ROOT)}:{i.line} imports {i.target}" for i in found]


def test_the_scan_sees_the_imports_it_judges() -> None:
    # Given the scan works, it finds the edges known to exist (so an empty result means something)
    edges = {(i.source, i.target, i.lazy) for i in IMPORTS}
    assert {("sipreg_cli", "sipreg", False), ("devstack", "sipreg", False)} <= edges
    assert ("sipreg_cli", "devstack", True) in edges
    assert ("tests", "devstack", False) in edges


def test_the_runtime_imports_none_of_our_other_packages() -> None:
    # The layer ships the sipreg folder alone: any other import would fail on Lambda
    assert where([i for i in IMPORTS if i.source == "sipreg"]) == []
    assert where([i for i in IMPORTS if i.source == "functions" and i.target != "sipreg"]) == []


def test_the_cli_imports_the_runtime_and_devstack_only_when_devstack_up_runs() -> None:
    cli = [i for i in IMPORTS if i.source == "sipreg_cli"]
    assert {i.target for i in cli} <= {"sipreg", "devstack"}
    devstack = [i for i in cli if i.target == "devstack"]
    assert where([i for i in devstack if i.lazy is False]) == []
    assert {i.path.name for i in devstack} == {"devstack.py"}


def test_nothing_but_tests_bench_and_devstack_up_imports_devstack() -> None:
    # Lazy imports count: only the CLI's `devstack up` (checked above) may reach it from outside
    outside = [i for i in IMPORTS if i.target == "devstack" and i.source not in {"tests", "bench"}]
    assert (
        where([i for i in outside if (i.source, i.path.name, i.lazy) != ("sipreg_cli", "devstack.py", True)])
        == []
    )


def test_the_local_stack_imports_the_runtime_only_and_nothing_but_bench_imports_the_tests() -> None:
    assert {i.target for i in IMPORTS if i.source == "devstack"} == {"sipreg"}
    assert where([i for i in IMPORTS if i.target == "tests" and i.source != "bench"]) == []


def test_no_import_cycle_between_top_level_packages_counting_lazy_imports() -> None:
    graph: dict[str, set[str]] = {name: set() for name in PACKAGES}
    for found in IMPORTS:
        graph[found.source].add(found.target)
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as cycle:
        pytest.fail(f"import cycle: {' -> '.join(cycle.args[1])}")


def run_blocked(blocked: str, code: str) -> subprocess.CompletedProcess[str]:
    """`code` in a fresh interpreter (this tree first on its path) where importing `blocked` or
    anything under it fails as an uninstalled module does."""
    prelude = textwrap.dedent(
        f"""
        import sys
        from importlib.abc import MetaPathFinder

        class Block(MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == {blocked!r} or name.startswith({blocked!r} + "."):
                    raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
                return None

        sys.meta_path.insert(0, Block())
        """
    )
    return subprocess.run(  # this interpreter, fixed code
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={
            "PYTHONPATH": f"{ROOT}:{ROOT / 'layers' / 'common'}",
            "PATH": "/usr/bin:/bin",
            # Should a blocked import ever stop failing, `devstack up` fails at once: nothing starts.
            "SIPREG_AWS_ENGINE_PYTHON": "/nonexistent/python",
        },
        check=False,
    )


def test_every_module_of_the_runtime_and_the_cli_imports_without_devstack() -> None:
    # Given devstack cannot be imported (as in `pip install .`), when every module of sipreg and
    # sipreg_cli is imported and the command's parser built and asked for help
    result = run_blocked(
        "devstack",
        """
        import contextlib, importlib, io, pkgutil
        import sipreg, sipreg_cli
        packages = (sipreg, sipreg_cli)
        names = [m.name for p in packages for m in pkgutil.walk_packages(p.__path__, p.__name__ + ".")]
        for name in names:
            importlib.import_module(name)
        from sipreg_cli import main
        for argv in (["--help"], ["send", "--help"], ["status", "--help"], ["devstack", "up", "--help"]):
            with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
                main(argv)
        assert not [m for m in sys.modules if m.split(".")[0] == "devstack"]
        print(len(names))
        """,
    )
    # Then all of them load, and devstack was never asked for
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) > 40  # the walk reached the modules (proto, worker, client, ...)


# flask is not in the list: it runs only in wg2sim's own process, not in `devstack up`'s
@pytest.mark.parametrize("missing", ["devstack", "yaml"])
def test_devstack_up_without_the_extra_names_the_extra_instead_of_a_traceback(missing: str) -> None:
    # Given devstack itself, or a package only its extra brings, is not installed
    result = run_blocked(missing, "from sipreg_cli import main; sys.exit(main(['devstack', 'up']))")
    # Then `sipreg devstack up` stops with exit status 2 and says what to install
    assert result.returncode == 2, result.stderr
    assert EXTRA_HINT in result.stderr
    assert "Traceback" not in result.stderr


def test_a_missing_module_of_our_own_is_a_bug_shown_as_it_is() -> None:
    assert missing_extra(ModuleNotFoundError(name="sipreg.client")) is None
    assert missing_extra(ModuleNotFoundError(name="devstack.stack")) is None
    assert missing_extra(ModuleNotFoundError(name="flask")) is not None
