"""The chaos run, small (`make chaos` is the full one): 300 events over 30 numbers from four producers
(API and queue), a fifth of the core's calls UNAVAILABLE and 5 % stalled, the identity server down
for a while, duplicates and out-of-order sends, worker sandboxes killed mid-batch. Afterwards
every number holds exactly its newest desired state, on the core and in sipreg, and every event
has exactly one final outcome."""

from __future__ import annotations

from pathlib import Path

from devstack.chaos.plan import ChaosConfig
from devstack.chaos.run import run


def test_a_small_storm_loses_nothing_and_every_number_converges(tmp_path: Path) -> None:
    config = ChaosConfig(
        events=300,
        numbers=30,
        storm_seconds=20,
        identity_outage_seconds=12,
        kills=2,
        settle_timeout=120,
        log_dir=tmp_path / "logs",
    )
    report = run(config)
    # The faults really happened
    assert report.faults["unavailable"] > 0 and report.faults["stall"] > 0
    assert report.faults["identity_down"] > 0
    assert report.killed == 2
    assert report.sent_messages > report.events  # duplicates were sent
    # And nothing was lost, every number converged, every event decided once
    assert report.problems == []
    assert (report.converged, report.numbers) == (30, 30)
    assert (report.one_final_outcome, report.lost) == (300, 0)
    assert report.outcomes["superseded"] > 0  # out-of-order sends met the stale guard
