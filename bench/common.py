"""What the benchmarks share: the template's resources on the local AWS, request counting, and
their output (one JSON file and PNG charts per bench in bench/out/)."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from devstack.host.resources import provision_template

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
REGION = "eu-west-1"


def provision(endpoint: str) -> dict[str, dict[str, Any]]:
    """template.yaml's tables, queues, key and bus under a new stack name: {logical id: description}."""
    return provision_template(
        ROOT / "template.yaml",
        endpoint,
        region=REGION,
        stack_name=f"bench{uuid.uuid4().hex[:6]}",
        secret_values={"OAuthClientSecret": "unused-in-bench"},
    )


class RequestCounter:
    """Counts AWS API calls (one per call, whatever botocore's retries) and the items DynamoDB
    queries read (`ScannedCount`: what a query is billed for, filtered or not)."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.items_read = 0

    def watch(self, client: Any) -> None:
        # Once per client: the stores share one DynamoDB client, and a hook registered again
        # without its unique id counted every call once per table (6.3 requests an event, not 2.1).
        client.meta.events.register("before-call", self._count, unique_id=f"bench-count-{id(self)}")
        client.meta.events.register(
            "after-call.dynamodb.Query", self._count_read, unique_id=f"bench-read-{id(self)}"
        )

    def clear(self) -> None:
        self.calls.clear()
        self.items_read = 0

    def _count(self, event_name: str, **_: Any) -> None:
        service, operation = event_name.split(".", 2)[1:]
        self.calls[f"{service}:{operation}"] += 1

    def _count_read(self, parsed: dict[str, Any], **_: Any) -> None:
        self.items_read += int(parsed.get("ScannedCount", 0))


def _value_bytes(value: dict[str, Any]) -> int:
    ((kind, body),) = value.items()
    if kind == "N":
        return (len(body.lstrip("-").replace(".", "").strip("0")) + 1) // 2 + 1
    if kind == "L":
        return 3 + sum(1 + _value_bytes(v) for v in body)
    if kind == "M":
        return 3 + sum(len(k.encode()) + 1 + _value_bytes(v) for k, v in body.items())
    if kind in ("BOOL", "NULL"):
        return 1
    return len(body.encode()) if kind == "S" else len(body)  # B; sipreg writes no sets


def item_kilobytes(item: dict[str, dict[str, Any]]) -> float:
    """A typed item's size as DynamoDB bills it: attribute names plus values (its documented rule)."""
    return sum(len(name.encode()) + _value_bytes(value) for name, value in item.items()) / 1024


def goal_line(label: str, value: str, goal: str, met: bool | None) -> str:
    """One figure with its goal beside it; `met=None`: a figure without a pass mark."""
    mark = "" if met is None else ("  met" if met else "  UNMET")
    return f"  {label:<44} {value:>14}   ({goal}){mark}"


def write_json(name: str, figures: dict[str, Any]) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.json"
    path.write_text(json.dumps(figures, indent=2, sort_keys=True, default=str) + "\n")
    return path


def pyplot() -> Any:
    """matplotlib's pyplot without a display, or None when the bench extra is not installed."""
    try:
        import matplotlib  # noqa: PLC0415  # only the charts need it
    except ImportError:
        return None
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt  # noqa: PLC0415

    return plt


def save_chart(figure: Any, name: str) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.png"
    figure.savefig(path, dpi=100, bbox_inches="tight")
    return path
