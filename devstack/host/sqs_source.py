"""An SQS event source mapping, run as the Lambda service runs one (and refused where it refuses one).

Pollers long-poll the queue for up to BatchSize records (at most 10, what one receive gives),
invoke the function, and delete what succeeded: everything on success, nothing on an error, and
with ReportBatchItemFailures all records but the reported ones. Failed records stay in the queue,
come back after the visibility timeout, and the queue's redrive policy moves them to the
dead-letter queue. MaximumConcurrency pollers run at once.
"""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from devstack.host.aws import Clients
from devstack.host.invoker import FunctionRuntime, InvocationError
from devstack.host.resources import ProvisioningError
from devstack.host.template import TemplateError

log = logging.getLogger(__name__)

_MAX_RECEIVE = 10  # SQS hands out at most 10 messages per ReceiveMessage
EVENT_PROPERTIES = frozenset({"Queue", "BatchSize", "FunctionResponseTypes", "ScalingConfig"})


class SqsEventSource:
    def __init__(
        self,
        function: FunctionRuntime,
        event_name: str,
        properties: Mapping[str, Any],
        clients: Clients,
        wait_seconds: int = 1,
    ) -> None:
        self.function = function
        self.name = f"{function.spec.logical_id}.{event_name}"
        if not str(properties.get("Queue", "")).startswith("arn:"):
            raise TemplateError(f"{self.name}: Queue must be a queue ARN (e.g. !GetAtt MyQueue.Arn)")
        self.queue_arn = str(properties["Queue"])
        self.batch_size = int(properties.get("BatchSize", 10))
        # Lambda takes more than 10 only with a batching window, which no mapping here has
        # (MaximumBatchingWindowInSeconds is not among EVENT_PROPERTIES), and never from a FIFO queue.
        if not 1 <= self.batch_size <= _MAX_RECEIVE:
            raise TemplateError(
                f"{self.name}: BatchSize {self.batch_size} is not within 1-10 "
                "(more needs MaximumBatchingWindowInSeconds, which FIFO queues do not take)"
            )
        self.reports_failures = "ReportBatchItemFailures" in (properties.get("FunctionResponseTypes") or [])
        scaling = properties.get("ScalingConfig") or {}
        if "MaximumConcurrency" in scaling and not 2 <= int(scaling["MaximumConcurrency"]) <= 1000:
            raise TemplateError(
                f"{self.name}: ScalingConfig.MaximumConcurrency {scaling['MaximumConcurrency']} "
                "is not within 2-1000"
            )
        # Pollers beyond the function's own concurrency would only hold messages while waiting.
        limit = max(function.spec.concurrency, 1)
        self.concurrency = min(int(scaling.get("MaximumConcurrency", limit)), limit)
        self.wait_seconds = max(0, min(int(wait_seconds), 20))
        _, _, _, self.region, account, queue_name = self.queue_arn.split(":", 5)
        setup = clients.new_client("sqs", connections=2)
        # Lambda polls with the function's execution role (its own policies, and the managed policy
        # SAM attaches for an SQS event: devstack.host.iam): a queue it may not read, or whose key
        # it may not decrypt with, stalls the mapping. Without roles, with the host's credentials.
        role = function.spec.credentials
        connections = self.concurrency + 2
        self._sqs = (
            clients.role_client("sqs", role, connections) if role else clients.new_client("sqs", connections)
        )
        try:
            found = setup.get_queue_url(QueueName=queue_name, QueueOwnerAWSAccountId=account)
        except ClientError as exc:
            raise ProvisioningError(f"{self.name}: no queue {self.queue_arn} at the endpoint") from exc
        self.queue_url = found["QueueUrl"]
        visibility = setup.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["VisibilityTimeout"])
        visibility_seconds = int(visibility["Attributes"]["VisibilityTimeout"])
        if visibility_seconds < function.spec.timeout:
            # Lambda refuses the mapping (CreateEventSourceMapping): records would come back while
            # still being processed.
            raise TemplateError(
                f"{self.name}: Queue visibility timeout: {visibility_seconds} seconds is less than "
                f"Function timeout: {function.spec.timeout:g} seconds"
            )
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for number in range(self.concurrency):
            thread = threading.Thread(target=self._run, name=f"sqs-{self.name}-{number}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout=self.wait_seconds + 5)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                messages = self._gather()
                if messages:
                    self._deliver(messages)
            except ClientError as refused:  # e.g. the role may not read the queue: Lambda's PROBLEM
                if self._stopping.is_set():
                    return
                log.error("%s: polling refused (%s); retrying in 1 s", self.name, refused)
                self._stopping.wait(1)
            except Exception:
                if self._stopping.is_set():
                    return
                log.exception("%s: polling failed; retrying in 1 s", self.name)
                self._stopping.wait(1)

    def _gather(self) -> list[dict[str, Any]]:
        """One long poll: what it brings is the batch (none until something arrives)."""
        received: list[dict[str, Any]] = self._sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=min(_MAX_RECEIVE, self.batch_size),
            WaitTimeSeconds=self.wait_seconds,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        return received

    def _deliver(self, messages: list[dict[str, Any]]) -> None:
        records = [self.record(m) for m in messages]
        try:
            result = self.function.invoke({"Records": records}, trigger=f"sqs:{self.name}")
        except InvocationError:
            return  # the whole batch comes back after the visibility timeout
        failed = (
            self._failed_ids(result, {r["messageId"] for r in records}) if self.reports_failures else set()
        )
        self._delete([m for m in messages if m["MessageId"] not in failed])

    def _delete(self, messages: list[dict[str, Any]]) -> None:
        for start in range(0, len(messages), _MAX_RECEIVE):
            chunk = messages[start : start + _MAX_RECEIVE]
            entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)]
            response = self._sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)
            if response.get("Failed"):
                log.warning("%s: %d deletes failed", self.name, len(response["Failed"]))

    def _failed_ids(self, result: Any, batch_ids: set[str]) -> set[str]:
        """Records the function reported; an answer Lambda cannot read fails the whole batch."""
        if result is None or result == "":
            return set()
        failures = result.get("batchItemFailures") if isinstance(result, dict) else None
        if failures is None:
            return set() if isinstance(result, dict) else batch_ids
        ids = {f.get("itemIdentifier") if isinstance(f, dict) else None for f in failures}
        if not ids <= batch_ids:
            log.warning("%s: batchItemFailures names unknown records; the whole batch fails", self.name)
            return batch_ids
        return {i for i in ids if i is not None}

    def record(self, message: Mapping[str, Any]) -> dict[str, Any]:
        """The record shape Lambda builds from one received message."""
        record: dict[str, Any] = {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": {k: str(v) for k, v in (message.get("Attributes") or {}).items()},
            "messageAttributes": {
                name: _message_attribute(value)
                for name, value in (message.get("MessageAttributes") or {}).items()
            },
            "md5OfBody": message["MD5OfBody"],
            "eventSource": "aws:sqs",
            "eventSourceARN": self.queue_arn,
            "awsRegion": self.region,
        }
        if "MD5OfMessageAttributes" in message:
            record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
        return record


def _message_attribute(value: Mapping[str, Any]) -> dict[str, Any]:
    converted: dict[str, Any] = {
        "stringListValues": list(value.get("StringListValues", [])),
        "binaryListValues": [base64.b64encode(v).decode() for v in value.get("BinaryListValues", [])],
        "dataType": value["DataType"],
    }
    if "StringValue" in value:
        converted["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        converted["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode()
    return converted
