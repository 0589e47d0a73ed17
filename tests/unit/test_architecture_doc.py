"""docs/architecture.md stays true to the tree: every module it names exists, every module of the
sipreg package is named, every function of the template has its row."""

from __future__ import annotations

import re
from pathlib import Path

from devstack.host.template import load_template

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs/architecture.md").read_text()
PACKAGE = ROOT / "layers/common/sipreg"


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


def test_the_module_table_names_every_module_of_the_package_and_nothing_else() -> None:
    named = {
        name.strip().strip("`") for row in table_rows("## The `sipreg` package") for name in row[0].split(",")
    }
    present = {
        path.stem if path.is_file() else path.name
        for path in PACKAGE.iterdir()
        if (path.suffix == ".py" and path.stem != "__init__") or (path / "__init__.py").is_file()
    }
    assert named == present
