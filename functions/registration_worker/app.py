"""The registration worker (SQS FIFO event source, ReportBatchItemFailures).

Thin on purpose: the batch's records are read (`sipreg.worker.messages.queued_messages`), applied by
`sipreg.worker` (groups of MSISDNs at once, order kept in each group; see `sipreg.worker.batch`
for why not powertools' sequential `SqsFifoPartialProcessor`), and answered with the records
that must come back.
"""

from __future__ import annotations

from sipreg import cold_start  # first: nothing is collected while the function loads

# isort: split
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from sipreg.observability import entry_point, metrics
from sipreg.wiring import registration_worker as wiring
from sipreg.worker import Worker
from sipreg.worker.messages import queued_messages


@entry_point
def lambda_handler(
    event: dict[str, Any], context: LambdaContext, worker: Worker | None = None
) -> dict[str, Any]:
    report = (worker or wiring.from_env()).process(
        queued_messages(event),
        remaining_seconds=lambda: context.get_remaining_time_in_millis() / 1000,
    )
    for outcome, count in report.outcomes.items():
        metrics.add_metric(name=f"Events_{outcome}", unit=MetricUnit.Count, value=count)
    metrics.add_metric(name="RecordsFailed", unit=MetricUnit.Count, value=len(report.failed))
    return report.response()


cold_start.loaded()  # last: what the load made is frozen, collection is back on
