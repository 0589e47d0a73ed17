"""After `sam build`: every built function imports on Python 3.12 with only its code and the built layer.

    python tools/check_built_functions.py PYTHON312 [.aws-sam/build]

Reads the built template (`.aws-sam/build/template.yaml`) and, for each function, starts the given
Python 3.12 isolated from everything on this machine (`-I -S`: no site-packages, no environment,
no working directory), with `sys.path` = the function's built folder + the built layer's `python/`,
as the Lambda runtime lays them out; then imports the Handler's module and checks the handler is
callable. A dependency missing from the layer, a wheel built for another platform or Python, or a
function importing something of the repository that is not in the layer fails here, before a
deploy would. Exit status 0 when every function imports, 1 otherwise (each failure printed).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

IMPORT_HANDLER = """
import importlib, sys
assert sys.version_info[:2] == (3, 12), sys.version
sys.path[:0] = sys.argv[1:3]
module, _, name = sys.argv[3].rpartition(".")
handler = getattr(importlib.import_module(module), name)
assert callable(handler), sys.argv[3]
leaked = [p for p in sys.path if "site-packages" in p]
assert not leaked, leaked
"""


class _Tags(yaml.SafeLoader):
    """Reads the built template's plain values; CloudFormation tags become None."""


_Tags.add_multi_constructor("!", lambda loader, suffix, node: None)


def functions(build_dir: Path) -> dict[str, dict[str, Any]]:
    template = yaml.load((build_dir / "template.yaml").read_text(), Loader=_Tags)  # noqa: S506  # SafeLoader
    resources: dict[str, dict[str, Any]] = template["Resources"]
    return {
        logical_id: resource["Properties"]
        for logical_id, resource in resources.items()
        if resource["Type"] == "AWS::Serverless::Function"
    }


def layer_dir(build_dir: Path) -> Path:
    template = yaml.load((build_dir / "template.yaml").read_text(), Loader=_Tags)  # noqa: S506  # SafeLoader
    (layer,) = [
        r["Properties"]["ContentUri"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::Serverless::LayerVersion"
    ]
    return build_dir / layer / "python"


def main(argv: list[str]) -> int:
    python = argv[1]
    build_dir = Path(argv[2] if len(argv) > 2 else ".aws-sam/build")
    layer = layer_dir(build_dir)
    failures = 0
    for logical_id, props in sorted(functions(build_dir).items()):
        code = build_dir / props["CodeUri"]
        run = subprocess.run(  # noqa: S603  # the interpreter we were given, our own snippet
            [python, "-I", "-S", "-c", IMPORT_HANDLER, str(code), str(layer), props["Handler"]],
            capture_output=True,
            text=True,
            timeout=60,
            env={"AWS_DEFAULT_REGION": "eu-west-1", "POWERTOOLS_TRACE_DISABLED": "true"},
            check=False,
        )
        if run.returncode:
            failures += 1
            print(f"{logical_id}: does not import with only the built layer:\n{run.stderr}", file=sys.stderr)
        else:
            print(f"{logical_id}: {props['Handler']} imports with only the built layer")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
