"""The registration worker (SQS FIFO event source, ReportBatchItemFailures).

Thin on purpose: the batch is read with powertools' SQS record models, applied by
`sipreg.worker` (groups of MSISDNs at once, order kept in each group; see `sipreg.worker.batch`
for why not powertools' sequential `SqsFifoPartialProcessor`), and answered with the records
that must come back.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser.models import SqsModel, SqsRecordModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from sipreg.observability import logger, metrics
from sipreg.worker import QueuedMessage, Worker, process_worker


def queued(record: SqsRecordModel) -> QueuedMessage:
    attributes = record.attributes
    return QueuedMessage(
        message_id=record.messageId,
        receipt_handle=record.receiptHandle,
        body=record.body if isinstance(record.body, str) else str(record.body),
        group=attributes.MessageGroupId or record.messageId,
        receive_count=int(attributes.ApproximateReceiveCount or 1),
    )


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(
    event: dict[str, Any], context: LambdaContext, worker: Worker | None = None
) -> dict[str, Any]:
    batch = SqsModel.model_validate(event)
    report = (worker or process_worker()).process(
        [queued(record) for record in batch.Records],
        remaining_seconds=lambda: context.get_remaining_time_in_millis() / 1000,
    )
    for outcome, count in report.outcomes.items():
        metrics.add_metric(name=f"Events_{outcome}", unit=MetricUnit.Count, value=count)
    metrics.add_metric(name="RecordsFailed", unit=MetricUnit.Count, value=len(report.failed))
    return report.response()
