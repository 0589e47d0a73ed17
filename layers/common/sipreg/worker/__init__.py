"""The registration worker: applies queued events to the core, exactly once in effect.

    worker = sipreg.wiring.registration_worker.from_env()  # once per process (cold start)
    report = worker.process(messages, remaining_seconds)   # one SQS batch
    return report.response()                               # {"batchItemFailures": [...]}

`apply` holds the rules for one event (with `registration_steps`, `claims`, `core_call`,
`recording`, `control_events` and `consent_events`; its docstring says which holds what), `batch`
the grouping, concurrency, retry delays and notification of one batch, `messages` the records of
Lambda's SQS event, `sqs` the SQS adapters (a retry's delay, the move to the dead-letter queue),
`prefetch` what one group knows of its records within a batch, `journal` what the worker reads and
commits.
Duplicates are absorbed by the registration record itself (it keeps its recent event ids).

DynamoDB requests on the warm path: before the groups run, ONE BatchGetItem (consistent; per 100
keys) reads the record of every registration the batch's upserts, deletes and refreshes name;
then each applied event costs one TransactWriteItems (record + event-log line). A group's later
event on the same registration uses the record its earlier event saved (FIFO: the group is the
only writer in the batch; the version check still guards every write, and a conflict reads from
DynamoDB again). So a batch of ten upserts costs 1 + 10 requests, i.e. 1.1 per event, and no
KMS call (tokens are cached in memory). Consent and revoke events read with a Query, as before.
"""

from __future__ import annotations

from sipreg.worker.apply import EventApplier
from sipreg.worker.attempt import EventResult
from sipreg.worker.batch import BatchReport, Worker
from sipreg.worker.journal import DynamoJournal, Journal
from sipreg.worker.messages import QueuedMessage

__all__ = [
    "BatchReport",
    "DynamoJournal",
    "EventApplier",
    "EventResult",
    "Journal",
    "QueuedMessage",
    "Worker",
]
