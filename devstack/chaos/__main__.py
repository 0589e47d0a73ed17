"""`python -m devstack.chaos` (`make chaos`): the run, its table, chart and verdict."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import devstack.chaos
from devstack.chaos.plan import ChaosConfig
from devstack.chaos.report import plot
from devstack.chaos.run import run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.chaos",
        description=devstack.chaos.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--events", type=int, default=ChaosConfig.events)
    parser.add_argument("--numbers", type=int, default=ChaosConfig.numbers)
    parser.add_argument("--producers", type=int, default=ChaosConfig.producers)
    parser.add_argument("--kills", type=int, default=ChaosConfig.kills)
    parser.add_argument("--storm-seconds", type=float, default=ChaosConfig.storm_seconds)
    parser.add_argument("--identity-outage", type=float, default=ChaosConfig.identity_outage_seconds)
    parser.add_argument("--seed", type=int, default=ChaosConfig.seed)
    parser.add_argument("--plot", type=Path, default=Path("bench/out/chaos.png"))
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    config = ChaosConfig(
        events=args.events,
        numbers=args.numbers,
        producers=args.producers,
        kills=args.kills,
        storm_seconds=args.storm_seconds,
        identity_outage_seconds=args.identity_outage,
        seed=args.seed,
    )
    print(
        f"chaos: {config.events:,} events over {config.numbers:,} numbers from {config.producers} producers"
    )
    report = run(config)
    print(report.table())
    if plot(report, args.plot):
        print(f"  convergence over time: {args.plot}")
    else:
        print("  (no plot: matplotlib is not installed; `make chaos` installs it)")
    if args.json:
        args.json.write_text(
            json.dumps({k: v for k, v in report.__dict__.items() if k != "timeline"}, default=str, indent=2)
        )
    for problem in report.problems[:20]:
        print(f"  ! {problem}")
    print("OK: nothing lost, every number converged" if report.ok else "FAILED: loss or divergence")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
