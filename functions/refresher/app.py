"""The refresher (EventBridge schedule): enqueues refreshes for registrations about to expire.

Thin on purpose: one call into `sipreg.refresher` (built in `sipreg.wiring.refresher`), then its
figures as metrics.
`OverdueRegistrations` (active registrations the core has already dropped) feeds an alarm.
"""

from __future__ import annotations

from sipreg import cold_start  # first: nothing is collected while the function loads

# isort: split
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from sipreg.observability import entry_point, metrics
from sipreg.refresher import Refresher
from sipreg.wiring import refresher as wiring


@entry_point
def lambda_handler(
    event: dict[str, Any], context: LambdaContext, refresher: Refresher | None = None
) -> dict[str, Any]:
    report = (refresher or wiring.from_env()).run(
        remaining_seconds=lambda: context.get_remaining_time_in_millis() / 1000
    )
    metrics.add_metric(name="RefreshesEnqueued", unit=MetricUnit.Count, value=report.enqueued)
    metrics.add_metric(name="RefreshesNotAccepted", unit=MetricUnit.Count, value=report.not_accepted)
    metrics.add_metric(name="OverdueRegistrations", unit=MetricUnit.Count, value=report.overdue)
    metrics.add_metric(name="RefreshBacklog", unit=MetricUnit.Count, value=0 if report.complete else 1)
    return report.as_dict()


cold_start.loaded()  # last: what the load made is frozen, collection is back on
