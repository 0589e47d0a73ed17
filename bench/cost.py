"""Monthly AWS cost for 10k, 100k and 1M subscribers, from the requests this run's benches counted.

    .venv/bin/python bench/cost.py        # after bench_worker.py and bench_refresher.py

Reads bench/out/worker.json (the worker's requests per change, per refresh, per cold-cache event,
its batch time, the items' sizes) and bench/out/refresher.json (items read per due registration),
puts them in place of sipreg_cli.cost's defaults, and prints the cost by service and by kind of
work for both auth modes, then what the refresh margin and schedule do to it at 100k. Writes
bench/out/cost.json and cost_per_subscriber.png. Prices: docs/cost.md.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "layers/common")]

from bench.common import OUT, pyplot, save_chart, write_json  # noqa: E402
from sipreg_cli.cost import Counts, Scenario, monthly_cost, render  # noqa: E402

SCALES = (10_000, 100_000, 1_000_000)


def measured_counts() -> tuple[Counts, list[str]]:
    """Counts with this run's figures where the benches wrote them; notes say which are defaults."""
    counts, notes = Counts(), []
    worker = _load("worker")
    if worker:
        per_change = worker["requests_per_change"]
        per_refresh = worker["requests_per_refresh"]
        counts = replace(
            counts,
            worker_ms_per_batch=worker["batch_ms"]["together"],
            change_transactions=per_change.get("dynamodb:TransactWriteItems", 0.0),
            refresh_transactions=per_refresh.get("dynamodb:TransactWriteItems", 0.0),
            registration_kb=worker["registration_kb"],
            event_log_kb=worker["event_log_kb"],
        )
        notes.append(
            f"worker: {worker['batch_ms']['together']:.0f} ms per batch of 10 at {worker['latency_ms']} ms "
            f"core latency, {counts.change_transactions:.2f} / {counts.refresh_transactions:.2f} "
            "transactions per change / refresh, item sizes of this run"
        )
        cold = worker["requests_per_event_cold_tokens"]
        notes.append(
            f"cold token cache: {cold.get('kms:Decrypt', 0):.2f} KMS Decrypt and "
            f"{cold.get('dynamodb:GetItem', 0):.2f} GetItem per event (the model's token_read)"
        )
    else:
        notes.append("worker: defaults (run bench/bench_worker.py first)")
    refresher = _load("refresher")
    if refresher:
        counts = replace(counts, refresher_items_read_per_due=refresher["items_read_per_due_at_stored"])
        notes.append(f"refresher: {counts.refresher_items_read_per_due:.3f} items read per due registration")
    else:
        notes.append("refresher: defaults (run bench/bench_refresher.py first)")
    notes.append(
        f"estimated, not measured: subscriber item {counts.subscriber_kb} KB (real tokens), events API "
        f"{counts.api_ms:.0f} ms, consent {counts.consent_ms:.0f} ms, log bytes per invocation"
    )
    return counts, notes


def _load(name: str) -> dict[str, Any] | None:
    path = OUT / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def main() -> int:
    counts, notes = measured_counts()
    print("cost model (sipreg_cli/cost.py, prices docs/cost.md), counts from this run:")
    for note in notes:
        print(f"  {note}")
    results: dict[str, Any] = {"counts": asdict(counts), "scales": {}, "margins": {}}
    # Refresh-driven: the refreshes, and in user mode the token work each refresh needs.
    print(
        f"  {'subscribers':>12} {'user mode':>12} {'client mode':>12}   refresh-driven share (user / client)"
    )
    for n in SCALES:
        user = monthly_cost(Scenario(subscribers=n), counts)
        client = monthly_cost(Scenario(subscribers=n, auth_mode="client"), counts)
        results["scales"][n] = {"user": user.as_dict(), "client": client.as_dict()}
        driven = sum(user.by_work[k] for k in ("refresh", "token_renewal", "token_read")) / user.total
        share = client.by_work["refresh"] / client.total
        print(
            f"  {n:>12,} {f'${user.total:,.0f}':>12} {f'${client.total:,.0f}':>12}"
            f"   {driven:.0%} / {share:.0%}"
        )
    print()
    print(render(monthly_cost(Scenario(subscribers=100_000), counts)))
    print("what the refresh margin and schedule do at 100,000 subscribers (client mode / user mode):")
    for margin, minutes in ((600, 5), (1200, 5), (2400, 5), (1200, 1), (1200, 10)):
        scenario = Scenario(subscribers=100_000, refresh_margin_seconds=margin, schedule_seconds=minutes * 60)
        client = monthly_cost(replace(scenario, auth_mode="client"), counts)
        user = monthly_cost(scenario, counts)
        key = f"margin {margin} s, every {minutes} min"
        results["margins"][key] = {"client": client.total, "user": user.total}
        print(
            f"  {key:<26} a refresh every {scenario.refresh_interval_seconds:>5.0f} s: "
            f"${client.total:>9,.0f} / ${user.total:>9,.0f}"
        )
    write_json("cost", results)
    chart(results["scales"])
    return 0


def chart(scales: dict[int, dict[str, Any]]) -> None:
    plt = pyplot()
    if plt is None:
        print("  (no chart: matplotlib is not installed; `make bench` installs it)")
        return
    figure, axes = plt.subplots(figsize=(6, 3.5))
    for mode in ("user", "client"):
        axes.plot(
            list(scales),
            [scales[n][mode]["per_subscriber"] * 100 for n in scales],
            marker="o",
            label=f"{mode} mode",
        )
    axes.set_xscale("log")
    axes.set_xlabel("subscribers")
    axes.set_ylabel("US cents per subscriber a month")
    axes.set_ylim(bottom=0)
    axes.set_title("sipreg on AWS (eu-west-1), monthly cost per subscriber")
    axes.legend()
    print(f"  chart: {save_chart(figure, 'cost_per_subscriber')}")


if __name__ == "__main__":
    sys.exit(main())
