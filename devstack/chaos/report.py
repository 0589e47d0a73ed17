"""The chaos run's figures: the report, its table and its chart of convergence over time."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class ChaosReport:
    numbers: int
    converged: int = 0
    events: int = 0
    sent_messages: int = 0
    one_final_outcome: int = 0
    lost: int = 0
    dead_lettered: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    core_calls: int = 0
    faults: Counter[str] = field(default_factory=Counter)  # injected by wg2sim, by kind
    killed: int = 0
    storm_seconds: float = 0.0
    settle_seconds: float = 0.0
    timeline: list[tuple[float, float]] = field(default_factory=list)  # (seconds, converged share)
    faults_stopped_at: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.converged == self.numbers and self.one_final_outcome == self.events and self.lost == 0

    def table(self) -> str:
        rows = [
            ("numbers converged", f"{self.converged:,} / {self.numbers:,}"),
            ("events with exactly one final outcome", f"{self.one_final_outcome:,} / {self.events:,}"),
            ("events lost (no outcome at all)", f"{self.lost:,}"),
            ("events dead-lettered", f"{self.dead_lettered:,}"),
            ("messages sent (duplicates included)", f"{self.sent_messages:,}"),
            ("core calls per event", f"{self.core_calls / max(self.events, 1):.2f}"),
            (
                "core calls failed UNAVAILABLE / stalled",
                f"{self.faults['unavailable']:,} / {self.faults['stall']:,}",
            ),
            ("identity server requests refused (outage)", f"{self.faults['identity_down']:,}"),
            ("worker sandboxes killed mid-batch", f"{self.killed}"),
            ("storm (sending, faults on)", f"{self.storm_seconds:.0f} s"),
            ("time to converge after faults stopped", f"{self.settle_seconds:.0f} s"),
        ]
        width = max(len(name) for name, _ in rows)
        lines = [f"  {name:<{width}}  {value}" for name, value in rows]
        lines.append("  final outcomes: " + ", ".join(f"{k} {v:,}" for k, v in sorted(self.outcomes.items())))
        return "\n".join(lines)


def plot(report: ChaosReport, path: Path) -> bool:
    try:
        import matplotlib  # noqa: PLC0415

        matplotlib.use("Agg")
        from matplotlib import pyplot  # noqa: PLC0415
    except ImportError:
        return False
    figure, axes = pyplot.subplots(figsize=(8, 4))
    axes.plot(
        [t for t, _ in report.timeline], [100 * share for _, share in report.timeline], color="tab:blue"
    )
    axes.axvline(report.faults_stopped_at, color="tab:red", linestyle="--", label="faults stop")
    axes.set_xlabel("seconds since the storm began")
    axes.set_ylabel("numbers converged (%)")
    axes.set_ylim(0, 105)
    axes.set_title(f"chaos: {report.events:,} events over {report.numbers:,} numbers")
    axes.legend(loc="lower right")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100, bbox_inches="tight")
    return True
