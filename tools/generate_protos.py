"""Generates the gRPC code of protos/ into layers/common/sipreg/proto/wgtwo/ (never committed).

    .venv/bin/python tools/generate_protos.py        (`make proto`; setup.py, when a wheel is built)

The generated modules import each other by proto package path (`from wgtwo...`); they live inside
the sipreg package, so those imports are rewritten to `from sipreg.proto.wgtwo...`. One script for
both callers, so `pip install .` from a clone builds the same code `make proto` does.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
OUT = ROOT / "layers" / "common" / "sipreg" / "proto"
STAMP = OUT / "wgtwo" / ".generated"
_IMPORT = re.compile(r"^(\s*)from wgtwo\.", re.MULTILINE)


def generate() -> None:
    from grpc_tools import protoc  # noqa: PLC0415  # a build-time tool, absent at run time

    shutil.rmtree(OUT / "wgtwo", ignore_errors=True)
    sources = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    include = Path(protoc.__file__).parent / "_proto"  # the well-known types (duration.proto, ...)
    status = protoc.main(
        ["grpc_tools.protoc", f"-I{PROTOS}", f"-I{include}", f"--python_out={OUT}",
         f"--grpc_python_out={OUT}", f"--pyi_out={OUT}", *sources]
    )  # fmt: skip
    if status != 0:
        raise SystemExit(f"protoc failed ({status}) on {', '.join(sources)}")
    for path in (OUT / "wgtwo").rglob("*.py*"):
        path.write_text(_IMPORT.sub(r"\1from sipreg.proto.wgtwo.", path.read_text()))
    for folder in [OUT / "wgtwo", *(p for p in (OUT / "wgtwo").rglob("*") if p.is_dir())]:
        (folder / "__init__.py").touch()
    STAMP.touch()


if __name__ == "__main__":
    generate()
    sys.exit(0)
