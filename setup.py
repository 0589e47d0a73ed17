"""Generates the gRPC code before setuptools looks for packages, so a wheel built from a clone
(`pip install .`) holds sipreg.proto.wgtwo as `make proto` makes it. Everything else about the
package is in pyproject.toml."""

from __future__ import annotations

import runpy
from pathlib import Path

from setuptools import setup

HERE = Path(__file__).resolve().parent
generator = runpy.run_path(str(HERE / "tools" / "generate_protos.py"))
stamp: Path = generator["STAMP"]
sources = list((HERE / "protos").rglob("*.proto"))
if not stamp.exists() or any(p.stat().st_mtime > stamp.stat().st_mtime for p in sources):
    generator["generate"]()

setup()
