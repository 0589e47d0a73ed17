"""What the chaos run looks at afterwards: which numbers hold their newest desired state on the
core and in sipreg's records, how many final outcomes each event's log item holds, whether the
queue is empty."""

from __future__ import annotations

from typing import Any

import boto3

from devstack.aws_engine import REGION, ROOT, root_client
from devstack.chaos.plan import PBX, VOICEMAIL, Plan
from devstack.chaos.producers import sqs_client
from devstack.chaos.report import ChaosReport
from devstack.stack import LocalStack
from sipreg.events import parse_event
from sipreg.store.event_log import EventLog, Outcome
from sipreg.worker.attempt import tries_key


class Observer:
    """What the core holds, what sipreg's records say, and which numbers agree with the plan."""

    def __init__(self, stack: LocalStack, plan: Plan) -> None:
        self.stack = stack
        self.plan = plan
        info = stack.ready_info()
        self.table = info["resources"]["RegistrationsTable"]
        self.dynamodb = root_client("dynamodb", info["aws_endpoint"])

    def converged(self) -> tuple[int, list[str]]:
        core = {
            (r["msisdn"], r["sip_uri"]): r["route_type"].removeprefix("ROUTE_TYPE_").lower()
            for r in self.stack.sim.registrations()
        }
        records = self._records()
        problems: list[str] = []
        good = 0
        for msisdn in self.plan.events:
            number_ok = True
            for sip_uri in (PBX, VOICEMAIL):
                key = (msisdn, sip_uri)
                if key not in self.plan.expected:
                    continue
                want, held = self.plan.expected[key], core.get(key)
                record = records.get(key)
                says = record.get("applied") if record and record.get("status") == "active" else None
                if held != want or says != want:
                    number_ok = False
                    status = record.get("status") if record else "no record"
                    problems.append(
                        f"{msisdn} {sip_uri}: newest {want}, core {held}, record {says} ({status})"
                    )
            good += number_ok
        return good, problems

    def _records(self) -> dict[tuple[str, str], dict[str, Any]]:
        found: dict[tuple[str, str], dict[str, Any]] = {}
        scan: dict[str, Any] = {"TableName": self.table, "ConsistentRead": True}
        while True:
            page = self.dynamodb.scan(**scan)
            for item in page["Items"]:
                applied = item.get("applied", {}).get("M", {}).get("route_type", {}).get("S")
                found[(item["msisdn"]["S"], item["sip_uri"]["S"])] = {
                    "status": item["status"]["S"],
                    "applied": applied,
                }
            if "LastEvaluatedKey" not in page:
                return found
            scan["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def outcomes(stack: LocalStack, events: list[dict[str, Any]], report: ChaosReport) -> None:
    table = stack.ready_info()["resources"]["EventLogTable"]
    resource = boto3.resource(
        "dynamodb", endpoint_url=stack.aws_endpoint, region_name=REGION, **ROOT.as_client_kwargs()
    )
    keys = {tries_key(event): event for event in (parse_event(e) for e in events)}
    found = EventLog(table, table=resource.Table(table)).get_many(keys)
    report.events = len(keys)
    for key, event in keys.items():
        item = found.get(key)
        if item is None:
            report.lost += 1
            report.problems.append(f"no outcome for {event.id}")
            continue
        report.outcomes[item.outcome.value] += 1
        report.dead_lettered += item.outcome is Outcome.DEAD_LETTERED
        if item.outcome.final and item.decisions == 1:
            report.one_final_outcome += 1
        else:
            report.problems.append(f"{event.id}: {item.outcome.value}, {item.decisions} final decisions")


def queue_empty(stack: LocalStack) -> bool:
    info = stack.ready_info()
    attributes = sqs_client(info).get_queue_attributes(
        QueueUrl=info["queues"]["EventsQueue"],
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return (
        int(attributes["ApproximateNumberOfMessages"])
        + int(attributes["ApproximateNumberOfMessagesNotVisible"])
        == 0
    )
