"""The functions' observability, in one place: one powertools Logger, Metrics and Tracer, configured
by the environment the template sets (POWERTOOLS_SERVICE_NAME, POWERTOOLS_LOG_LEVEL,
POWERTOOLS_METRICS_NAMESPACE, and tracing by the functions' `Tracing: Active`).

sipreg's own modules log through the standard library (`logging.getLogger(__name__)`) and report
through `sipreg.telemetry`, so they stay free of Lambda concerns; in a function their lines come
out as the same JSON as `logger`'s, with the correlation id of the event they work on, and what
they counted becomes EMF metrics when the handler ends (`flush_telemetry`).
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from typing import Any, cast

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import MetricUnit

from sipreg import telemetry

logger = Logger()
# The template sets the namespace; the same default serves a local run.
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "sipreg")
# Only botocore is patched (a subsegment per AWS call); sipreg adds its own spans (`telemetry.span`).
# Handlers are traced with capture_response=False: their answers carry states, cookies and MSISDNs,
# and a trace is no place for those.
tracer = Tracer(patch_modules=("botocore",))

if "AWS_LAMBDA_FUNCTION_NAME" in os.environ:  # in a function, not when a test imports a handler
    # Configured on the "sipreg" logger itself: every sipreg.* module's logger propagates to it,
    # including modules imported after this one. The filter sits on the shared handler, so
    # `logger`'s lines and the sipreg modules' alike carry the correlation id.
    logger.registered_handler.addFilter(telemetry.CorrelationFilter())
    logging.getLogger("sipreg")
    copy_config_to_registered_loggers(source_logger=logger, include={"sipreg"})


def flush_telemetry() -> None:
    """What sipreg's code counted and observed, as this invocation's metrics (latencies in ms)."""
    counts, observations = telemetry.drain()
    for name, value in counts.items():
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    for name, values in observations.items():
        for value in values[:100]:  # EMF holds at most 100 values of one metric per document
            metrics.add_metric(name=name, unit=MetricUnit.Milliseconds, value=value)


def reports_telemetry[Handler: Callable[..., Any]](handler: Handler) -> Handler:
    """Drains `sipreg.telemetry` into the metrics when the handler ends (put it inside log_metrics)."""

    @functools.wraps(handler)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return handler(*args, **kwargs)
        finally:
            flush_telemetry()

    return wrapper  # type: ignore[return-value]


def entry_point[Handler: Callable[..., Any]](handler: Handler) -> Handler:
    """A function's handler, observed: traced (without its answer: answers carry states, cookies
    and MSISDNs), its log lines with the invocation's context, its metrics and sipreg's telemetry
    flushed when it ends. The same stack for every function, in powertools' documented order."""
    traced = tracer.capture_lambda_handler(capture_response=False)
    logged = logger.inject_lambda_context(clear_state=True)
    return cast(Handler, traced(metrics.log_metrics(logged(reports_telemetry(handler)))))
