"""What sipreg's code reports while it works, kept free of Lambda: correlation ids, spans, counts.

    with correlated(event.id):          # every log line inside carries correlation_id=<event id>
        with span("core call", msisdn=mask_msisdn(m)) as annotate:
            ...
            annotate("outcome", "applied")
    count("TokenRefreshes")             # drained into the function's metrics once per invocation
    observe("CoreLatency", 53.1)

- The correlation id is the event id, from the events API through the queue to the worker and
  the status bus; a `logging.Filter` (`CorrelationFilter`, installed by `sipreg.observability` in
  functions) puts it on every record logged inside `correlated`. It lives in a ContextVar, so each
  of the worker's group threads has its own.
- Spans are X-Ray subsegments through powertools' Tracer when tracing is on in a function; else
  they cost nothing. Annotations are indexed by X-Ray: keep them few (no PII: mask MSISDNs).
- Counts and observations collect here until the handler drains them into its EMF metrics
  (`sipreg.observability.flush_telemetry`): the layer's logic never touches the metrics object.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

_correlation: ContextVar[str | None] = ContextVar("sipreg_correlation_id", default=None)

Annotate = Callable[[str, str | int | float | bool], None]


@contextmanager
def correlated(correlation_id: str) -> Iterator[None]:
    token = _correlation.set(correlation_id)
    try:
        yield
    finally:
        _correlation.reset(token)


def correlation_id() -> str | None:
    return _correlation.get()


class CorrelationFilter(logging.Filter):
    """Adds `correlation_id` to every record logged inside `correlated` (unless it names its own)."""

    def filter(self, record: logging.LogRecord) -> bool:
        current = _correlation.get()
        if current is not None and not hasattr(record, "correlation_id"):
            record.correlation_id = current
        return True


# --- spans -------------------------------------------------------------------------------------------

_tracer: Any = None
_tracer_lock = threading.Lock()


def _active_tracer() -> Any:
    """powertools' Tracer in a function with tracing on; None elsewhere (tests, tools, disabled)."""
    global _tracer  # noqa: PLW0603  # built once per process, at the first span
    if _tracer is None:
        with _tracer_lock:
            if _tracer is None:
                disabled = os.environ.get("POWERTOOLS_TRACE_DISABLED", "").lower() in ("1", "true")
                if disabled or "AWS_LAMBDA_FUNCTION_NAME" not in os.environ:
                    _tracer = False
                else:
                    from aws_lambda_powertools import Tracer  # noqa: PLC0415  # only where it traces

                    _tracer = Tracer()
    return _tracer or None


def _no_annotation(key: str, value: str | int | float | bool) -> None:
    return None


@contextmanager
def span(name: str, **annotations: str | int | float | bool | None) -> Iterator[Annotate]:
    """A subsegment `## <name>` with these annotations; yields a function adding more."""
    tracer = _active_tracer()
    if tracer is None:
        yield _no_annotation
        return
    with tracer.provider.in_subsegment(name=f"## {name}") as subsegment:
        for key, value in annotations.items():
            if value is not None:
                subsegment.put_annotation(key, value)
        yield subsegment.put_annotation


# --- counts and observations -------------------------------------------------------------------------

_lock = threading.Lock()
_counts: dict[str, float] = {}
_observations: dict[str, list[float]] = {}


def count(name: str, value: float = 1) -> None:
    with _lock:
        _counts[name] = _counts.get(name, 0) + value


def observe(name: str, value: float) -> None:
    with _lock:
        _observations.setdefault(name, []).append(value)


def drain() -> tuple[dict[str, float], dict[str, list[float]]]:
    """Everything counted and observed since the last drain, and a clean slate."""
    with _lock:
        counts, observations = dict(_counts), {name: list(values) for name, values in _observations.items()}
        _counts.clear()
        _observations.clear()
    return counts, observations
