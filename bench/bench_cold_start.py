"""Cold start: how long each function's `app` takes to import, against `import boto3` alone, and the
layer's size. Both from `make build`'s output (.build/), as Lambda would load them.

    .venv/bin/python bench/bench_cold_start.py [--rounds 5]

Each import runs in a fresh interpreter without site-packages (`python -S`), with only the built
layer (`.build/CommonLayer/python`, Lambda's /opt/python) and the function's own folder on the
path, the two kinds interleaved round by round so the machine's noise hits both alike, and timed
in the interpreter around the import alone (start-up and shut-down are no part of Lambda's init).
The environment is Lambda's as far as an import sees it (tracing on, so powertools' Tracer loads the
X-Ray SDK and patches botocore), and a function's import includes the modules its first
invocation imports lazily (FIRST_USE: the OAuth client's authlib pieces, the secret fetch),
so none of its cold cost hides in the first request. Prints the median of each and the ratio
(goal for the worker: at most 1.5x `import boto3`); what the worker's first invocation then
spends building its parts (`wiring.from_env()`: no request is sent), and of that its AWS
clients, from one session and a session each; what a full garbage collection costs a warm
worker with its load frozen and without; and the layer's unzipped size (goal: under 50 MB), with
what the layer's biggest parts weigh.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from bench.common import goal_line, write_json  # noqa: E402

BUILD = ROOT / ".build"
LAYER = BUILD / "CommonLayer" / "python"
FUNCTIONS = (
    "registration_worker",
    "refresher",
    "events_api",
    "oauth_start",
    "oauth_callback",
    "endpoint_health",
)
# What a function's first invocation imports lazily (the `noqa: PLC0415` imports on its path).
# A token request: discovery and the request over urllib3 (botocore's, loaded already), built by
# authlib's OAuth 2.0 pieces, with the client secret from Secrets Manager (sipreg.oauth_client).
_HTTP = "sipreg.http"
_TOKEN = (
    f"{_HTTP}, authlib.oauth2.rfc6749.parameters, authlib.oauth2.auth, "
    "aws_lambda_powertools.utilities.parameters"
)
FIRST_USE = {
    "registration_worker": _TOKEN,  # a token renewal (user mode) or the product token (client mode)
    "events_api": "aws_lambda_powertools.utilities.parameters, sipreg.queue, sipreg.store.request_ids",
    # discovery and the authorization URL (its PKCE challenge), no secret
    "oauth_start": f"{_HTTP}, authlib.oauth2.rfc6749.parameters, authlib.oauth2.rfc7636",
    "oauth_callback": f"{_TOKEN}, joserfc.jwt, joserfc.jwk, sipreg.queue",
}
# What the worker cannot do without, and none of sipreg's code: boto3, powertools' Logger, Metrics
# and Tracer (tracing on: the X-Ray SDK, botocore patched), grpc and the generated WG2 stubs.
FLOOR = (
    "import boto3, grpc; from aws_lambda_powertools import Logger, Metrics, Tracer; "
    "Tracer(patch_modules=('botocore',)); "
    "import sipreg.proto.wgtwo.sipbreakout.v0.sipbreakout_pb2_grpc, "
    "sipreg.proto.wgtwo.sipbreakout.v1.sipbreakout_pb2_grpc"
)
WORKER_GOAL = 1.5
LAYER_GOAL_MB = 50.0
# A full collection in a warm worker, the load's objects frozen (sipreg.cold_start), then not:
# the pause a request meets whenever the collector decides on one. The load's own garbage is
# collected first each time, so each timed collection walks what lives.
FULL_COLLECTIONS = (
    "import app, gc; gc.collect(); started = time.perf_counter(); gc.collect(); "
    "print(time.perf_counter() - started); gc.unfreeze(); gc.collect(); "
    "started = time.perf_counter(); gc.collect(); print(time.perf_counter() - started)"
)

# The worker's first invocation builds its parts (`wiring.from_env()`): three tables, SQS,
# EventBridge and KMS (CLIENTS), and the core's channel. The clients as sipreg.aws makes them
# (one session), and made a session each, as sipreg.aws did before.
WORKER_ENVIRONMENT = {
    "REGISTRATIONS_TABLE": "sipreg-RegistrationsTable-0123456789AB",
    "EVENT_LOG_TABLE": "sipreg-EventLogTable-0123456789AB",
    "SUBSCRIBERS_TABLE": "sipreg-SubscribersTable-0123456789AB",
    "EVENTS_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/123456789012/sipreg-EventsQueue.fifo",
    "DEAD_LETTER_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/123456789012/sipreg-Dlq.fifo",
    "STATUS_BUS_NAME": "sipreg-status",
    "SIPREG_ROLE_IDS": "AROAEXAMPLEEVENTSAPI,AROAEXAMPLEREFRESHER",
    "CORE_ENDPOINT": "core.example.com:443",
    "IDENTITY_SERVER_URL": "https://id.example.com",
    "CLIENT_ID": "sipreg",
    "CLIENT_SECRET_ARN": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:sipreg-client",
    "DATA_KEY_ID": "arn:aws:kms:eu-west-1:123456789012:key/0123",
}
WIRING = "import app; from sipreg.wiring import registration_worker as wiring; wiring.from_env()"
CLIENTS = {
    "one session": (
        "import app; from sipreg import aws; "
        "[aws.dynamodb_table(n) for n in ('Registrations', 'EventLog', 'Subscribers')]; "
        "[aws.client(s) for s in ('sqs', 'events', 'kms')]"
    ),
    "a session each": (
        "import app, boto3; "
        "[boto3.session.Session().resource('dynamodb').Table(n) for n in ('Registrations', 'EventLog', "
        "'Subscribers')]; [boto3.session.Session().client(s) for s in ('sqs', 'events', 'kms')]"
    ),
}


def run_figures(code: str, cwd: Path) -> list[float]:
    """The numbers `code` prints, run in a fresh interpreter as Lambda's init would run
    (`time` imported, the layer and the function's folder on the path)."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_LAMBDA_FUNCTION_NAME": "bench",
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
        "LAMBDA_TASK_ROOT": str(cwd),
        # A sandbox's role credentials (no client looks further for any), and the worker's settings.
        "AWS_ACCESS_KEY_ID": "ASIAEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "example",
        "AWS_SESSION_TOKEN": "example",
        **WORKER_ENVIRONMENT,
    }
    prelude = f"import sys, time; sys.path[:0] = [{str(LAYER)!r}, '.']; "
    run = subprocess.run(
        [sys.executable, "-S", "-B", "-c", prelude + code],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if run.returncode:
        raise SystemExit(f"{cwd.name}: {code!r} failed:\n{run.stderr}")
    return [float(line) for line in run.stdout.split()]


def import_seconds(code: str, cwd: Path) -> float:
    timed = f"started = time.perf_counter(); {code}; print(time.perf_counter() - started)"
    return run_figures(timed, cwd)[-1]


def after_import_seconds(code: str, rounds: int) -> float:
    """Median time of what `code` does after its `import app`, in the worker's folder."""
    load, _, rest = code.partition("; ")
    timed = f"{load}; started = time.perf_counter(); {rest}; print(time.perf_counter() - started)"
    worker = BUILD / "functions" / "registration_worker"
    return statistics.median(run_figures(timed, worker)[-1] for _ in range(rounds))


def full_collection_seconds(rounds: int) -> tuple[float, float]:
    """(frozen, not frozen), medians."""
    runs = [run_figures(FULL_COLLECTIONS, BUILD / "functions" / "registration_worker") for _ in range(rounds)]
    return statistics.median(run[0] for run in runs), statistics.median(run[1] for run in runs)


def layer_megabytes() -> float:
    return sum(path.stat().st_size for path in LAYER.rglob("*") if path.is_file()) / 1e6


def layer_parts() -> dict[str, float]:
    """MB by kind: native libraries, sources, bytecode, the rest."""
    parts = {"native (.so)": 0.0, "sources (.py)": 0.0, "bytecode (.pyc)": 0.0, "other": 0.0}
    kinds = {".so": "native (.so)", ".py": "sources (.py)", ".pyc": "bytecode (.pyc)"}
    for path in LAYER.rglob("*"):
        if path.is_file():
            parts[kinds.get(path.suffix, "other")] += path.stat().st_size / 1e6
    return parts


def measure(rounds: int) -> dict[str, float]:
    baseline: list[float] = []
    floor: list[float] = []
    timings: dict[str, list[float]] = {name: [] for name in FUNCTIONS}
    for _ in range(rounds):
        baseline.append(import_seconds("import boto3", ROOT))
        floor.append(import_seconds(FLOOR, BUILD / "functions" / "registration_worker"))
        for name in FUNCTIONS:
            code = "import app" + (f"; import {FIRST_USE[name]}" if name in FIRST_USE else "")
            timings[name].append(import_seconds(code, BUILD / "functions" / name))
    return {
        "boto3": statistics.median(baseline),
        "floor": statistics.median(floor),
        **{name: statistics.median(t) for name, t in timings.items()},
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if not LAYER.is_dir():
        print("no .build/: run `make build` first", file=sys.stderr)
        return 2
    figures = measure(args.rounds)
    print(f"cold start: import time in a fresh interpreter, median of {args.rounds}")
    print(goal_line("import boto3 alone", f"{figures['boto3'] * 1000:.0f} ms", "baseline", None))
    floor = figures["floor"] / figures["boto3"]
    print(
        goal_line(
            "the worker's libraries, no sipreg code",
            f"{figures['floor'] * 1000:.0f} ms = {floor:4.2f}x",
            "powertools with tracing, grpc, WG2 stubs",
            None,
        )
    )
    for name in FUNCTIONS:
        ratio = figures[name] / figures["boto3"]
        label = f"{name}" + (" + first use" if name in FIRST_USE else "")
        value = f"{figures[name] * 1000:.0f} ms = {ratio:4.2f}x"
        if name == "registration_worker":
            print(goal_line(label, value, f"goal: at most {WORKER_GOAL}x boto3", ratio <= WORKER_GOAL))
        else:
            print(goal_line(label, value, "x boto3", None))
    wiring = after_import_seconds(WIRING, args.rounds)
    clients = {way: after_import_seconds(code, args.rounds) for way, code in CLIENTS.items()}
    print(
        goal_line(
            "the worker's parts, its first invocation",
            f"{wiring * 1000:.0f} ms = {wiring / figures['boto3']:4.2f}x",
            "x boto3: wiring.from_env(), beside the import",
            None,
        )
    )
    print(
        goal_line(
            "  of which its AWS clients",
            f"{clients['one session'] * 1000:.0f} ms",
            f"one session; {clients['a session each'] * 1000:.0f} ms a session each",
            None,
        )
    )
    frozen, walked = full_collection_seconds(args.rounds)
    print(
        goal_line(
            "a full collection in a warm worker",
            f"{frozen * 1000:.2f} ms",
            f"the load frozen; {walked * 1000:.1f} ms when it is not",
            None,
        )
    )
    size = layer_megabytes()
    print(
        goal_line(
            "layer unzipped", f"{size:.1f} MB", f"goal: under {LAYER_GOAL_MB:.0f} MB", size < LAYER_GOAL_MB
        )
    )
    parts = layer_parts()
    print("    " + ", ".join(f"{kind} {mb:.1f} MB" for kind, mb in parts.items()))
    write_json(
        "cold_start",
        {
            "seconds": figures,
            "full_collection_seconds": {"frozen": frozen, "not_frozen": walked},
            "worker_first_invocation_seconds": {"wiring": wiring, "aws_clients": clients},
            "layer_mb": size,
            "layer_parts_mb": parts,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
