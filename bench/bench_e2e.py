"""End to end on the local stack: how long from a producer's POST until the core holds the registration.

    .venv/bin/python bench/bench_e2e.py [--rate 10] [--seconds 30] [--latency-ms 50]

The stack `make demo` runs (the template's functions on the local host, wg2sim as the core, the
local AWS), in client-credentials mode so no consent pages are needed, the PBX left out. The core
answers every call after `--latency-ms`. After a warm-up (the product token fetched, every
sandbox started), one signed POST /v1/events a 1/rate seconds, each an upsert for a new MSISDN;
the time of each POST is taken just before it is sent, and the core's own record of when it took
the upsert (wg2sim's `upserted_at`) ends it. Prints p50/p99 against the core's latency (the part
no deployment removes) and the local queue poller's long-poll wait (which returns as soon as a
message arrives, as Lambda's SQS poller does); writes bench/out/e2e.json and a histogram.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "layers/common")]

from bench.common import goal_line, pyplot, save_chart, write_json  # noqa: E402
from devstack.stack import LocalStack  # noqa: E402
from devstack.stack_options import StackOptions  # noqa: E402
from sipreg.client import EventsApi  # noqa: E402

POLL_WAIT_SECONDS = 1.0  # devstack/host/sqs_source.py's long-poll wait


def upsert(msisdn: str, n: int) -> dict[str, Any]:
    return {
        "id": f"e2e-{n}",
        "type": "registration.upsert",
        "msisdn": msisdn,
        "registration": {"route_type": "fork", "sip_uri": "sips:pbx.e2e.example"},
        "occurred_at": datetime.now(UTC).isoformat(),
        "source": "bench",
    }


def on_core(stack: LocalStack, wanted: set[str], timeout: float) -> dict[str, float]:
    """{msisdn: upserted_at (epoch s)} once every wanted number is on the core (or the timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        held = {
            r["msisdn"]: datetime.fromisoformat(r["upserted_at"]).timestamp()
            for r in stack.sim.registrations()
            if r["msisdn"] in wanted
        }
        if len(held) == len(wanted) or time.monotonic() > deadline:
            return held
        time.sleep(0.5)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=10.0, help="POSTs per second")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--latency-ms", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as logs:
        options = StackOptions(auth_mode="client", log_level="WARNING", pbx=False, log_dir=Path(logs))
        with LocalStack(options).start() as stack:
            return run(stack, args)


def run(stack: LocalStack, args: argparse.Namespace) -> int:
    info = stack.ready_info()
    stack.sim.set_faults(latency_ms=args.latency_ms)
    api = EventsApi(info["api"], info["webhook_secret"], timeout=30)
    try:
        warm = {f"+4795{n:06d}" for n in range(10)}
        for n, msisdn in enumerate(sorted(warm)):
            api.send([upsert(msisdn, n)])
        if len(on_core(stack, warm, timeout=120)) != len(warm):
            print("warm-up events never reached the core", file=sys.stderr)
            return 1
        posted: dict[str, float] = {}
        count = int(args.rate * args.seconds)
        started = time.monotonic()
        for n in range(count):
            time.sleep(max(0.0, started + n / args.rate - time.monotonic()))
            msisdn = f"+4794{n:06d}"
            posted[msisdn] = time.time()
            outcome = api.send([upsert(msisdn, 1000 + n)])
            if outcome.rejected or outcome.failed:
                print(f"{msisdn}: not accepted: {outcome.rejected or outcome.failed}", file=sys.stderr)
                return 1
        held = on_core(stack, set(posted), timeout=120)
    finally:
        api.close()
    if len(held) != len(posted):
        print(f"only {len(held)} of {len(posted)} registrations reached the core", file=sys.stderr)
        return 1
    latencies = [(held[m] - posted[m]) * 1000 for m in posted]
    p50, p99 = percentile(latencies, 0.50), percentile(latencies, 0.99)
    core_ms = float(args.latency_ms)
    figures = {
        "rate_per_second": args.rate,
        "events": len(latencies),
        "core_latency_ms": core_ms,
        "poll_wait_ms": POLL_WAIT_SECONDS * 1000,
        "p50_ms": p50,
        "p99_ms": p99,
        "mean_ms": statistics.fmean(latencies),
        "latencies_ms": sorted(latencies),
    }
    write_json("e2e", figures)
    print(
        f"end to end on the local stack: {len(latencies)} POSTs at {args.rate:g}/s, "
        f"core latency {core_ms:.0f} ms"
    )
    for name, value in (("p50", p50), ("p99", p99)):
        print(
            goal_line(
                f"POST to core, {name}",
                f"{value:.0f} ms",
                f"= {value / core_ms:.1f}x the core's latency, "
                f"{value / 1000 / POLL_WAIT_SECONDS:.2f}x the poll wait",
                None,
            )
        )
    chart(latencies, core_ms)
    return 0


def chart(latencies: list[float], core_ms: float) -> None:
    plt = pyplot()
    if plt is None:
        print("  (no chart: matplotlib is not installed; `make bench` installs it)")
        return
    figure, axes = plt.subplots(figsize=(6, 3.5))
    axes.hist(latencies, bins=40)
    axes.axvline(core_ms, color="grey", linestyle="--", label=f"core latency ({core_ms:.0f} ms)")
    axes.axvline(percentile(latencies, 0.5), color="green", label="p50")
    axes.axvline(percentile(latencies, 0.99), color="red", label="p99")
    axes.set_xlabel("POST to core (ms)")
    axes.set_ylabel("events")
    axes.set_title("End-to-end latency on the local stack")
    axes.legend()
    print(f"  chart: {save_chart(figure, 'e2e_latency')}")


if __name__ == "__main__":
    sys.exit(main())
