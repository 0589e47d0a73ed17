"""Call counters per gRPC method and outcome, and counts of injected faults."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any


class Stats:
    """Outcomes: a gRPC status code name (e.g. "UNAUTHENTICATED"), or for calls answered
    with a response message its `status_code` ("OK" or "NOT_ACCEPTABLE")."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[str, Counter[str]] = {}
        self._faults: Counter[str] = Counter()

    def record_call(self, method: str, outcome: str) -> None:
        with self._lock:
            self._calls.setdefault(method, Counter())[outcome] += 1

    def record_fault(self, kind: str) -> None:
        with self._lock:
            self._faults[kind] += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "calls": {method: dict(counts) for method, counts in sorted(self._calls.items())},
                "faults_injected": dict(self._faults),
            }
