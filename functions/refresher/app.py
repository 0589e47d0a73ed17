"""The refresher (EventBridge schedule): enqueues refreshes for registrations about to expire.

Thin on purpose: one call into `sipreg.refresher`, then its figures as metrics.
`OverdueRegistrations` (active registrations the core has already dropped) feeds an alarm.
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from sipreg.refresher import Refresher, process_refresher

logger = Logger()
# The template sets POWERTOOLS_METRICS_NAMESPACE; the same default serves a local run.
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "sipreg")
if "AWS_LAMBDA_FUNCTION_NAME" in os.environ:  # in Lambda (not when a test imports this module)
    copy_config_to_registered_loggers(source_logger=logger, include={"sipreg"})


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(
    event: dict[str, Any], context: LambdaContext, refresher: Refresher | None = None
) -> dict[str, Any]:
    report = (refresher or process_refresher()).run(
        remaining_seconds=lambda: context.get_remaining_time_in_millis() / 1000
    )
    metrics.add_metric(name="RefreshesEnqueued", unit=MetricUnit.Count, value=report.enqueued)
    metrics.add_metric(name="RefreshesNotAccepted", unit=MetricUnit.Count, value=report.not_accepted)
    metrics.add_metric(name="OverdueRegistrations", unit=MetricUnit.Count, value=report.overdue)
    metrics.add_metric(name="RefreshBacklog", unit=MetricUnit.Count, value=0 if report.complete else 1)
    return report.as_dict()
