"""Cold start: how long each function's `app` takes to import, against `import boto3` alone, and the
layer's size. Both from `make build`'s output (.build/), as Lambda would load them.

    .venv/bin/python bench/bench_cold_start.py [--rounds 15]

Each import runs in a fresh interpreter without site-packages (`python -S`), with only the built
layer (`.build/CommonLayer/python`, Lambda's /opt/python) and the function's own folder on the
path, the two kinds interleaved round by round so the machine's noise hits both alike. Prints the
median of each and the ratio (goal for the worker: at most 1.5x `import boto3`), and the layer's
unzipped size (goal: under 50 MB).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / ".build"
LAYER = BUILD / "CommonLayer" / "python"
FUNCTIONS = ("registration_worker", "refresher", "events_api", "oauth_start", "oauth_callback")
WORKER_GOAL = 1.5
LAYER_GOAL_MB = 50.0


def import_seconds(code: str, cwd: Path) -> float:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "POWERTOOLS_TRACE_DISABLED": "true",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }
    started = time.perf_counter()
    subprocess.run([sys.executable, "-S", "-B", "-c", code], cwd=cwd, env=env, check=True)
    return time.perf_counter() - started


def layer_megabytes() -> float:
    return sum(path.stat().st_size for path in LAYER.rglob("*") if path.is_file()) / 1e6


def measure(rounds: int) -> dict[str, float]:
    path = f"import sys; sys.path[:0] = [{str(LAYER)!r}, '.']; "
    baseline: list[float] = []
    timings: dict[str, list[float]] = {name: [] for name in FUNCTIONS}
    for _ in range(rounds):
        baseline.append(import_seconds(path + "import boto3", ROOT))
        for name in FUNCTIONS:
            timings[name].append(import_seconds(path + "import app", BUILD / "functions" / name))
    nothing = statistics.median(import_seconds("pass", ROOT) for _ in range(rounds))
    boto3 = statistics.median(baseline) - nothing
    return {"boto3": boto3, **{name: statistics.median(t) - nothing for name, t in timings.items()}}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    if not LAYER.is_dir():
        print("no .build/: run `make build` first", file=sys.stderr)
        return 2
    figures = measure(args.rounds)
    print(f"cold start: import time in a fresh interpreter, median of {args.rounds} (start-up removed)")
    print(f"  import boto3 alone          {figures['boto3'] * 1000:7.0f} ms   (baseline)")
    for name in FUNCTIONS:
        ratio = figures[name] / figures["boto3"]
        goal = f"   (goal: at most {WORKER_GOAL}x)" if name == "registration_worker" else ""
        print(f"  {name:<27} {figures[name] * 1000:7.0f} ms = {ratio:4.2f}x boto3{goal}")
    size = layer_megabytes()
    print(f"  layer unzipped              {size:7.1f} MB   (goal: under {LAYER_GOAL_MB:.0f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
