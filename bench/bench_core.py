"""How much faster `apply_many` is than one call after another, against wg2sim with added latency.

    .venv/bin/python bench/bench_core.py [--latency-ms 50] [--calls 10] [--rounds 5] [--version v1]

Starts its own wg2sim (plaintext, loopback), sets a fixed latency for every call, then for each
round times `--calls` upserts for different MSISDNs made one by one and the same calls made at
once with `GrpcCoreClient.apply_many`, and prints the medians and their ratio. The worker relies
on the ratio: a batch of 10 SQS records should cost about one round trip to the core.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path[:0] = [
    str(Path(__file__).resolve().parents[1]),
    str(Path(__file__).resolve().parents[1] / "layers/common"),
]

from devstack.wg2sim.process import Wg2simProcess  # noqa: E402
from sipreg.config import CoreSettings  # noqa: E402
from sipreg.core.client import GrpcCoreClient  # noqa: E402
from sipreg.core.port import Applied, CoreCall, Operation  # noqa: E402
from sipreg.models import Registration, RouteType  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--version", choices=["v0", "v1"], default="v1")
    args = parser.parse_args()

    with Wg2simProcess.start() as sim:
        numbers = [f"+4795{n:06d}" for n in range(args.calls)]
        calls = [
            CoreCall(
                Operation.UPSERT,
                Registration(msisdn=msisdn, sip_uri="sips:pbx.bench.example", route_type=RouteType.FORK),
                sim.mint_token(msisdn=msisdn),
            )
            for msisdn in numbers
        ]
        settings = CoreSettings.from_env(
            {"CORE_ENDPOINT": sim.grpc_target, "CORE_PLAINTEXT": "true", "API_VERSION": args.version}
        )
        with GrpcCoreClient.from_settings(settings) as client:
            client.apply_many(calls)  # connect and warm up before any latency
            sim.set_faults(latency_ms=args.latency_ms)
            sequential, concurrent = [], []
            for _ in range(args.rounds):
                started = time.perf_counter()
                one_by_one = [client.upsert(call.registration, call.token) for call in calls]
                sequential.append(time.perf_counter() - started)
                started = time.perf_counter()
                together = client.apply_many(calls)
                concurrent.append(time.perf_counter() - started)
                if not all(isinstance(outcome, Applied) for outcome in one_by_one + together):
                    print(f"not every call was applied: {one_by_one + together}", file=sys.stderr)
                    return 1

    seq_ms = statistics.median(sequential) * 1000
    con_ms = statistics.median(concurrent) * 1000
    print(f"wg2sim latency {args.latency_ms} ms, {args.calls} upserts ({args.version}), ", end="")
    print(f"median of {args.rounds} rounds")
    print(f"  one by one : {seq_ms:8.1f} ms")
    print(f"  apply_many : {con_ms:8.1f} ms")
    print(f"  ratio      : {con_ms / seq_ms:8.3f}  (1/{args.calls} = {1 / args.calls:.3f} is ideal)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
