"""The endpoint health check (EventBridge schedule): SIP OPTIONS to every PBX endpoint in use.

Thin on purpose: one call into `sipreg.health`, then its figures as metrics. `EndpointsDown`
(endpoints that answered no OPTIONS, twice) feeds an alarm.
"""

from __future__ import annotations

from sipreg import cold_start  # first: nothing is collected while the function loads

# isort: split
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from sipreg.health import HealthCheck
from sipreg.observability import entry_point, metrics
from sipreg.wiring import endpoint_health as wiring


@entry_point
def lambda_handler(
    event: dict[str, Any], context: LambdaContext, health_check: HealthCheck | None = None
) -> dict[str, Any]:
    report = (health_check or wiring.from_env()).run(
        remaining_seconds=lambda: context.get_remaining_time_in_millis() / 1000
    )
    metrics.add_metric(name="EndpointsProbed", unit=MetricUnit.Count, value=report.endpoints)
    metrics.add_metric(name="EndpointsDown", unit=MetricUnit.Count, value=report.down)
    metrics.add_metric(name="EndpointHealthChanges", unit=MetricUnit.Count, value=report.changed)
    metrics.add_metric(name="RegistrationsSuspended", unit=MetricUnit.Count, value=report.suspends)
    metrics.add_metric(name="RegistrationsResumed", unit=MetricUnit.Count, value=report.resumes)
    metrics.add_metric(name="EndpointsNotProbed", unit=MetricUnit.Count, value=report.not_probed)
    return report.as_dict()


cold_start.loaded()  # last: what the load made is frozen, collection is back on
