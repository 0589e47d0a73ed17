"""The registration worker (SQS FIFO event source, ReportBatchItemFailures).

Thin on purpose: the batch is read with powertools' SQS record models, applied by
`sipreg.worker` (groups of MSISDNs at once, order kept in each group; see `sipreg.worker.batch`
for why not powertools' sequential `SqsFifoPartialProcessor`), and answered with the records
that must come back.
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser.models import SqsModel, SqsRecordModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from sipreg.worker import QueuedMessage, Worker, process_worker

logger = Logger()
# The template sets POWERTOOLS_METRICS_NAMESPACE; the same default serves a local run.
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "sipreg")
if "AWS_LAMBDA_FUNCTION_NAME" in os.environ:  # in Lambda (not when a test imports this module)
    # sipreg's own modules log through the standard library: same JSON lines as this logger.
    copy_config_to_registered_loggers(source_logger=logger, include={"sipreg"})


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
