"""Writes layers/common/constraints.txt: every pin of the layer's runtime closure, for Lambda.

    .venv/bin/python tools/layer_constraints.py        (`make layer-constraints`)

Resolves layers/common/requirements.txt under the root constraints.txt for the Lambda platform
(manylinux2014 x86_64, CPython 3.12, wheels only) without installing anything, and writes the
resolved pins inside the layer's folder: `sam build` hashes that folder for its cache, so the
layer is rebuilt whenever one of them changes. Run it after changing a runtime pin.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYER = ROOT / "layers" / "common"
HEADER = """\
# Every transitive pin of the layer's runtime dependencies (requirements.txt), inside the layer's
# own folder so that `sam build`'s cache (a hash of this folder) rebuilds the layer when one changes.
# Each line equals its pin in the root constraints.txt (a unit test checks it). Regenerate with
#   make layer-constraints
"""


def main() -> int:
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "report.json"
        subprocess.run(  # noqa: S603  # pip of this interpreter, fixed arguments
            [
                sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--disable-pip-version-check",
                "--ignore-installed", "--report", str(report), "--target", str(Path(scratch) / "target"),
                "--platform", "manylinux2014_x86_64", "--implementation", "cp", "--python-version", "3.12",
                "--only-binary=:all:", "-r", str(LAYER / "requirements.txt"),
                "-c", str(ROOT / "constraints.txt"),
            ],
            check=True,
        )  # fmt: skip
        installs = json.loads(report.read_text())["install"]
    pins = sorted((f"{i['metadata']['name']}=={i['metadata']['version']}" for i in installs), key=str.lower)
    (LAYER / "constraints.txt").write_text(HEADER + "\n".join(pins) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
