"""What the people around sipreg do, against a running local stack: the demo's and the e2e tests'
actions. Everything goes through the stack's public doors (HTTP API, consent pages, the queue for
AWS-native producers, wg2sim's admin API), described by `sipreg devstack up`'s JSON line.

    scenario = Scenario(ready_info)                  # the JSON line (or LocalStack.ready_info())
    scenario.consent("+4799990001").granted           # through the real sign-in and consent pages
    scenario.send([upsert(...)])                     # signed POST /v1/events, as `sipreg send`
    scenario.send_to_queue([upsert(...)])            # straight to SQS, as billing may (IAM)
    scenario.core()                                  # what the core holds now
    scenario.status("+4799990001")                   # GET /v1/registrations/{msisdn}, as an operator
    scenario.revoke("+4799990001")                   # POST .../revoke, as an operator (SigV4)
    scenario.control("disable", "+4799990001", "sips:pbx.example")   # ... or enable, refresh
    scenario.call("+4799990009", "+4799990001", "busy")   # a call on the core, leg by leg

Producers sign with the webhook secret (HMAC); operators with the local operator's AWS
credentials (`operator` in the JSON line: an IAM user holding the stack's OperatorPolicy); the
queue is sent to as the local AWS-native producer (`producer`: ProducerPolicy).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import boto3
import httpx
from botocore.credentials import Credentials

from devstack.aws_engine import ROOT
from devstack.consent_walk import Walk, walk_consent
from sipreg.client import EventsApi, OperatorApi, Outcome
from sipreg.events import parse_events
from sipreg.queue import EventQueue, SendResult
from sipreg.signing import signed_headers


class ScenarioTimeoutError(AssertionError):
    """Something did not happen in time; the message says what, and what was seen last."""


def upsert(event_id: str, msisdn: str, route_type: str, sip_uri: str, *, source: str) -> dict[str, Any]:
    return {
        "id": event_id,
        "type": "registration.upsert",
        "msisdn": msisdn,
        "registration": {"route_type": route_type, "sip_uri": sip_uri},
        "occurred_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "source": source,
    }


def wait_for[T](what: str, probe: Callable[[], T], *, timeout: float, interval: float = 0.25) -> T:
    """The first truthy answer of `probe` within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        answer = probe()
        if answer:
            return answer
        if time.monotonic() > deadline:
            raise ScenarioTimeoutError(f"{what}: not within {timeout:g} s (last seen: {answer!r})")
        time.sleep(interval)


class Scenario:
    def __init__(self, info: dict[str, Any], *, timeout: float = 10.0) -> None:
        self.info = info
        self.api: str = info["api"]
        self.secret: str = info["webhook_secret"]
        self._timeout = timeout
        self._admin = httpx.Client(base_url=info["wg2sim_http"], timeout=timeout)
        self._events = EventsApi(self.api, self.secret, timeout=timeout)
        self.operator = Credentials(info["operator"]["access_key_id"], info["operator"]["secret_access_key"])
        self._operator_api = OperatorApi(
            self.api, region=info["region"], credentials=self.operator, timeout=timeout
        )
        self._sqs = self._aws("sqs", info["producer"])  # billing's view: the queue, nothing else
        self._operator_sqs = self._aws("sqs", info["operator"])  # the DLQ, as `sipreg redrive` reads it

    def _aws(self, service: str, who: dict[str, str]) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.info["aws_endpoint"],
            region_name=self.info["region"],
            aws_access_key_id=who["access_key_id"],
            aws_secret_access_key=who["secret_access_key"],
        )

    def close(self) -> None:
        self._admin.close()
        self._events.close()
        self._operator_api.close()

    @property
    def ttl_seconds(self) -> float:
        """A registration's 3600 s on the core, in real seconds at the stack's time factor."""
        return 3600 / float(self.info["time_factor"])

    # --- subscribers ------------------------------------------------------------------------------

    def consent_link(self, msisdn: str) -> str:
        return f"{self.api}/oauth/start?{urlencode({'msisdn': msisdn})}"

    def consent(self, msisdn: str, *, decision: str = "allow") -> Walk:
        """A subscriber opens the link in a fresh browser and walks the pages."""
        with httpx.Client(timeout=self._timeout) as browser:
            return walk_consent(browser, self.consent_link(msisdn), msisdn, decision=decision)

    # --- producers --------------------------------------------------------------------------------

    def send(self, events: Sequence[dict[str, Any]]) -> Outcome:
        """A signed POST /v1/events of one batch (no local checks: the API's answer is the point)."""
        return self._events.send(events)

    def send_to_queue(self, events: Sequence[dict[str, Any]]) -> SendResult:
        """An AWS-native producer: the same validation, then straight onto the events queue."""
        queue = EventQueue(self.info["queues"]["EventsQueue"], client=self._sqs)
        return queue.send(parse_events(events))

    def post_signed(self, path: str, body: bytes = b"") -> httpx.Response:
        """A POST signed with the webhook secret, as a producer signs it."""
        return httpx.post(
            self.api + path,
            content=body,
            headers={**signed_headers(self.secret, "POST", path, body), "Content-Type": "application/json"},
            timeout=self._timeout,
        )

    def revoke(self, msisdn: str) -> tuple[int, dict[str, Any]]:
        """An operator's revoke (SigV4 with the local operator's credentials): (status, body)."""
        return self._operator_api.revoke(msisdn)

    def control(
        self, action: str, msisdn: str, sip_uri: str, reason: str | None = None
    ) -> tuple[int, dict[str, Any]]:
        """An operator's disable / enable / refresh of one registration (SigV4): (status, body)."""
        return self._operator_api.control(action, msisdn, sip_uri, reason=reason)

    # --- what is known ----------------------------------------------------------------------------

    def status(self, msisdn: str, **query: str) -> dict[str, Any] | None:
        """The status API's view of a number (`query`: type, outcome, limit, cursor); None when
        sipreg knows nothing of it (404)."""
        code, body = self._operator_api.status(msisdn, query=query)
        if code == 404:
            return None
        if code != 200:
            raise AssertionError(f"GET /v1/registrations/{msisdn} answered {code}: {body}")
        return body

    def registration(self, msisdn: str, sip_uri: str) -> dict[str, Any] | None:
        found = self.status(msisdn)
        return next((r for r in (found or {}).get("registrations", []) if r["sip_uri"] == sip_uri), None)

    def core(self) -> list[dict[str, Any]]:
        """What the core holds now (wg2sim's admin API; expired registrations are gone)."""
        answer = self._admin.get("/_admin/registrations")
        answer.raise_for_status()
        return list(answer.json()["registrations"])

    def core_keys(self) -> set[tuple[str, str, str]]:
        """(msisdn, route type without its prefix, sip_uri) of each registration the core holds."""
        return {(r["msisdn"], r["route_type"].removeprefix("ROUTE_TYPE_"), r["sip_uri"]) for r in self.core()}

    def core_calls(self, method: str) -> dict[str, int]:
        """Status code -> count of the core's calls to `method` (e.g. "UpsertRegistration")."""
        answer = self._admin.get("/_admin/stats")
        answer.raise_for_status()
        calls: dict[str, dict[str, int]] = answer.json()["calls"]
        totals: dict[str, int] = {}
        for path, codes in calls.items():
            if path.endswith(f"/{method}"):
                for code, count in codes.items():
                    totals[code] = totals.get(code, 0) + count
        return totals

    def call(self, caller: str, callee: str, behaviour: str = "answer") -> dict[str, Any]:
        """A call on the core (wg2sim's POST /_admin/calls): its outcome and legs, once it is over."""
        answer = self._admin.post(
            "/_admin/calls", json={"from": caller, "to": callee, "callee": behaviour}, timeout=60
        )
        answer.raise_for_status()
        return dict(answer.json())

    def set_core_faults(self, **faults: Any) -> None:
        self._admin.post("/_admin/faults", json=faults).raise_for_status()

    def clear_core_faults(self) -> None:
        self._admin.delete("/_admin/faults").raise_for_status()

    def dead_letters(self) -> list[dict[str, Any]]:
        """The messages on the DLQ now (a peek: received with visibility 0, so they stay there)."""
        answer = self._operator_sqs.receive_message(
            QueueUrl=self.info["queues"]["EventsDeadLetterQueue"],
            MaxNumberOfMessages=10,
            VisibilityTimeout=0,
            AttributeNames=["All"],
        )
        return list(answer.get("Messages", []))

    def watch_status_bus(self, detail_type: str) -> Callable[[], list[dict[str, Any]]]:
        """What the status bus publishes of `detail_type` from now on, as a subscriber sees it: a
        rule sending it to an SQS queue of its own (made with the local account's root
        credentials, as the provider's own consumer would be). Each call returns the details
        received so far, oldest first."""
        root = {"access_key_id": ROOT.access_key_id, "secret_access_key": ROOT.secret_access_key}
        sqs, events = self._aws("sqs", root), self._aws("events", root)
        name = f"watch-{uuid.uuid4().hex[:10]}"
        url = sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        bus = self.info["resources"]["StatusBus"]
        pattern = {"source": ["sipreg"], "detail-type": [detail_type]}
        events.put_rule(Name=name, EventBusName=bus, EventPattern=json.dumps(pattern))
        events.put_targets(Rule=name, EventBusName=bus, Targets=[{"Id": name, "Arn": arn}])
        seen: list[dict[str, Any]] = []

        def received() -> list[dict[str, Any]]:
            answer = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
            for message in answer.get("Messages", []):
                seen.append(json.loads(message["Body"])["detail"])
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            return list(seen)

        return received

    def wait_for[T](self, what: str, probe: Callable[[], T], timeout: float | None = None) -> T:
        return wait_for(what, probe, timeout=timeout or self._timeout)
