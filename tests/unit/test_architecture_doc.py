"""docs/architecture.md stays true to the tree: every module it names exists, every module of the
sipreg package and of devstack is named, every function of the template has its row."""

from __future__ import annotations

import re
from pathlib import Path

from devstack.host.template import load_template

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs/architecture.md").read_text()
PACKAGE = ROOT / "layers/common/sipreg"
DEVSTACK = ROOT / "devstack"


def table_rows(heading: str) -> list[list[str]]:
    section = DOC[DOC.index(heading) :]
    rows = []
    for line in section.splitlines()[1:]:
        if line.startswith("#"):
            break
        if line.startswith("|") and not line.startswith("|---"):
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows[1:]  # without the header


def test_every_function_of_the_template_has_its_row_and_its_files_exist() -> None:
    functions = {
        name
        for name, resource in load_template(ROOT / "template.yaml")["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }
    rows = table_rows("# Architecture")
    assert {row[0].strip("`") for row in rows} == functions
    for _, handler, composition, _ in rows:
        assert (ROOT / re.findall(r"`([^`]+)`", handler)[0]).is_file(), handler
        module = composition.strip("`").removeprefix("sipreg.")
        assert (PACKAGE / (module.replace(".", "/") + ".py")).is_file(), composition


def modules_of(package: Path) -> set[str]:
    return {
        path.stem if path.is_file() else path.name
        for path in package.iterdir()
        if (path.suffix == ".py" and path.stem != "__init__") or (path / "__init__.py").is_file()
    }


def named_in(heading: str) -> set[str]:
    return {name.strip().strip("`") for row in table_rows(heading) for name in row[0].split(",")}


def test_the_module_table_names_every_module_of_the_package_and_nothing_else() -> None:
    assert named_in("## The `sipreg` package") == modules_of(PACKAGE)


def test_the_local_stack_table_names_every_module_of_devstack_and_nothing_else() -> None:
    assert named_in("## The local stack") == modules_of(DEVSTACK)


def test_the_readme_layout_table_names_every_top_level_directory_and_only_those_that_exist() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Layout") : readme.index("\n## ", readme.index("## Layout") + 1)]
    named = {
        path.split("/")[0]
        for cell in re.findall(r"^\| `([^`]+)`", section, re.MULTILINE)
        for path in [cell.split("{")[0]]
    }
    directories = (
        {
            path.name
            for path in ROOT.iterdir()
            if (path.is_dir() and not path.name.startswith(".")) or path.name == ".ci"
        }
        - {"node_modules", "devstack-logs", "artifacts"}
        - {p.name for p in ROOT.glob("*.egg-info")}
    )
    assert {name for name in named if (ROOT / name).is_dir()} == directories
    assert all((ROOT / name).exists() for name in named), named
