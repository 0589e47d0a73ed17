"""Everything that makes sipreg run on one machine; never deployed.

`devstack.wg2sim` stands in for the operator's side (WG2's core and its identity server).
Nothing in `sipreg` imports from here.
"""

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# The template the local stack and the tests run: the repository's, or a variant of it named by
# SIPREG_TEMPLATE (tests/permission_mutants.py), kept beside it so its CodeUri paths resolve alike.
TEMPLATE = Path(os.environ.get("SIPREG_TEMPLATE") or REPO / "template.yaml")
