"""The registration worker's integration rig: template.yaml's tables, queues, key and bus in the local AWS
server, a wg2sim process as core and identity server, and the worker's handler driven with real
SQS messages received from the events queue, as Lambda's event source mapping does it (receive a
batch, invoke, delete what was not reported failed).

The handler runs in the test's process with the real adapters (DynamoDB, SQS, KMS, EventBridge,
gRPC, the OAuth client), so a test can change a fault and look at every side at once.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import boto3
import httpx

from devstack import TEMPLATE
from devstack.consent_walk import walk_consent
from devstack.host.aws import Clients
from devstack.host.resources import provision_template
from devstack.wg2sim.oidc.config import DEV_CLIENT
from devstack.wg2sim.process import Wg2simProcess
from sipreg.config import AuthMode, CoreSettings
from sipreg.core.client import GrpcCoreClient
from sipreg.events import AnyEvent, to_json
from sipreg.models import ApiVersion
from sipreg.notify import EventBridgePublisher
from sipreg.queue import deduplication_id
from sipreg.store.event_log import EventKind, EventLog, EventLogEntry
from sipreg.store.registrations import RegistrationRecord, RegistrationStore
from sipreg.store.subscribers import SubscriberRecord, SubscriberStore
from sipreg.tokens import (
    SERVICE_SCOPES,
    KmsCipher,
    OAuthClient,
    TokenService,
    default_user_scopes,
)
from sipreg.worker import DynamoJournal, EventApplier, Worker
from sipreg.worker.sqs import SqsDeadLetters, SqsVisibility
from tests.support.consent import query_of
from tests.support.lambda_context import LambdaContext, load_function

REGION = "eu-west-1"


def load_worker_app() -> ModuleType:
    return load_function("registration_worker")


def provision(endpoint: str, **property_overrides: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """template.yaml's resources (tables, queues, key, secrets, bus) made in the local AWS: Ref/attributes."""
    return provision_template(
        TEMPLATE,
        endpoint,
        region=REGION,
        stack_name=f"wk{uuid.uuid4().hex[:8]}",
        secret_values={"OAuthClientSecret": DEV_CLIENT.client_secret},
        property_overrides=property_overrides,
    )


@dataclass
class Delivery:
    """One invocation: the messages handed over, and the ids the handler reported failed."""

    message_ids: list[str]
    bodies: list[str]
    failed: list[str]


@dataclass
class Rig:
    endpoint: str
    resources: dict[str, dict[str, Any]]
    sim: Wg2simProcess
    worker: Worker
    tokens: TokenService
    identity: OAuthClient
    deliveries: list[Delivery] = field(default_factory=list)

    def ref(self, logical_id: str, attribute: str = "Ref") -> str:
        return str(self.resources[logical_id][attribute])

    def aws(self, service: str) -> Any:
        return boto3.client(service, endpoint_url=self.endpoint, region_name=REGION)

    @property
    def queue_url(self) -> str:
        return self.ref("EventsQueue")

    @property
    def dlq_url(self) -> str:
        return self.ref("EventsDeadLetterQueue")

    # --- sending ------------------------------------------------------------------------------

    def send(self, *events: AnyEvent, resend: bool = False) -> None:
        """Events onto the events queue as `sipreg.queue` sends them (dedup id from the event id);
        `resend=True` sends with a new dedup id, as a producer resending after SQS's window would."""
        entries = [
            {
                "Id": str(index),
                "MessageBody": to_json(event),
                "MessageGroupId": event.msisdn,
                "MessageDeduplicationId": (
                    hashlib.sha256(secrets.token_bytes(16)).hexdigest()
                    if resend
                    else deduplication_id(event.id)
                ),
            }
            for index, event in enumerate(events)
        ]
        answer = self.aws("sqs").send_message_batch(QueueUrl=self.queue_url, Entries=entries)
        assert not answer.get("Failed"), answer["Failed"]

    def send_raw(self, body: str, group: str) -> None:
        self.aws("sqs").send_message(
            QueueUrl=self.queue_url,
            MessageBody=body,
            MessageGroupId=group,
            MessageDeduplicationId=hashlib.sha256(body.encode()).hexdigest(),
        )

    # --- the event source mapping -------------------------------------------------------------

    def deliver(self, *, wait_seconds: int = 1) -> Delivery | None:
        """One batch (up to 10) received from the queue, handed to the handler, the successes
        deleted. None when the queue had nothing to give."""
        sqs = self.aws("sqs")
        messages = sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=wait_seconds,
            MessageSystemAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            return None
        records = [lambda_record(m, self.ref("EventsQueue", "Arn")) for m in messages]
        answer = load_worker_app().lambda_handler({"Records": records}, LambdaContext(), worker=self.worker)
        failed = [f["itemIdentifier"] for f in answer["batchItemFailures"]]
        done = [m for m in messages if m["MessageId"] not in failed]
        if done:
            sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(done)],
            )
        delivery = Delivery([m["MessageId"] for m in messages], [m["Body"] for m in messages], failed)
        self.deliveries.append(delivery)
        return delivery

    def run_until(self, done: Callable[[], bool], *, timeout: float = 20.0) -> None:
        """Delivers batches until `done()` holds (checked after each poll)."""
        deadline = time.monotonic() + timeout
        while not done():
            assert time.monotonic() < deadline, f"not done within {timeout} s"
            if self.deliver(wait_seconds=0) is None:
                time.sleep(0.05)

    def drain(self, *, timeout: float = 20.0) -> None:
        """Delivers until a poll finds nothing and nothing is in flight."""
        deadline = time.monotonic() + timeout
        while True:
            assert time.monotonic() < deadline, f"queue not drained within {timeout} s"
            if self.deliver(wait_seconds=0) is None:
                if self.queue_depth() == 0:
                    return
                time.sleep(0.05)  # something is in flight or delayed: look again shortly

    def queue_depth(self, url: str | None = None) -> int:
        attributes = self.aws("sqs").get_queue_attributes(
            QueueUrl=url or self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(
            attributes["ApproximateNumberOfMessagesNotVisible"]
        )

    # --- looking ------------------------------------------------------------------------------

    def record(self, msisdn: str, sip_uri: str) -> RegistrationRecord | None:
        return RegistrationStore(self.ref("RegistrationsTable")).get(msisdn, sip_uri)

    def records(self, msisdn: str) -> list[RegistrationRecord]:
        return RegistrationStore(self.ref("RegistrationsTable")).list_for(msisdn)

    def log(self, msisdn: str, kind: EventKind = EventKind.CHANGES) -> list[EventLogEntry]:
        """The number's event-log items of one kind (changes, or refreshes), oldest first."""
        log, found, cursor = EventLog(self.ref("EventLogTable")), [], None
        while True:
            page, cursor = log.page(msisdn, kind=kind, limit=100, cursor=cursor)
            found += page
            if cursor is None:
                return list(reversed(found))

    def on_core(self, msisdn: str) -> list[dict[str, Any]]:
        return [r for r in self.sim.registrations() if r["msisdn"] == msisdn]

    def subscriber(self, msisdn: str) -> SubscriberRecord | None:
        return SubscriberStore(self.ref("SubscribersTable")).get(msisdn)

    # --- consent ------------------------------------------------------------------------------

    def consent(self, msisdn: str) -> None:
        """The subscriber consents at the identity server (login and consent pages walked by an
        HTTP client) and the tokens are stored as the consent callback stores them."""
        verifier = secrets.token_urlsafe(48)
        url = self.identity.authorization_url(
            state=secrets.token_urlsafe(16),
            code_verifier=verifier,
            nonce=secrets.token_urlsafe(16),
            scopes=default_user_scopes(ApiVersion.V0),
            login_hint=msisdn,
        )
        with httpx.Client(timeout=10) as http:
            walk = walk_consent(http, url, msisdn=msisdn, follow_callback=False)
        assert walk.callback_url
        code = query_of(walk.callback_url)["code"][0]
        answer = self.identity.exchange_code(code, code_verifier=verifier)
        self.tokens.record_consent(msisdn, answer, subject=None)

    def stored_access_token(self, msisdn: str) -> str:
        record = self.subscriber(msisdn)
        assert record is not None and record.access_token_ciphertext is not None
        cipher = KmsCipher(self.ref("DataKey", "Arn"), client=self.aws("kms"))
        return cipher.decrypt(record.access_token_ciphertext, msisdn=msisdn)


def lambda_record(message: dict[str, Any], queue_arn: str) -> dict[str, Any]:
    """The record Lambda's SQS event source builds from one received message."""
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": {k: str(v) for k, v in (message.get("Attributes") or {}).items()},
        "messageAttributes": {},
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    }


def build_rig(
    endpoint: str,
    sim: Wg2simProcess,
    *,
    retry_base_seconds: int = 0,
    auth_mode: AuthMode = AuthMode.USER,
    core_deadline_seconds: float = 2.0,
    max_tries: int = 8,
    core_endpoint: str | None = None,
    **property_overrides: dict[str, Any],
) -> Rig:
    """A fresh stack (own tables and queues) and a worker wired to it as
    `sipreg.wiring.registration_worker` wires one; its core is `sim`'s unless `core_endpoint`
    names another (plaintext gRPC), the identity server always `sim`'s."""
    resources = provision(endpoint, **property_overrides)
    rig_clients = Clients(endpoint, REGION)

    def ref(logical_id: str, attribute: str = "Ref") -> str:
        return str(resources[logical_id][attribute])

    identity = OAuthClient(
        sim.http_url,
        client_id=DEV_CLIENT.client_id,
        client_secret=lambda _force: DEV_CLIENT.client_secret,
        redirect_uri=DEV_CLIENT.redirect_uris[0],
    )
    tokens = TokenService(
        store=SubscriberStore(ref("SubscribersTable")),
        cipher=KmsCipher(ref("DataKey", "Arn"), client=rig_clients.client("kms")),
        identity=identity,
        service_scope=SERVICE_SCOPES[ApiVersion.V0],
    )
    settings = {"endpoint": core_endpoint or sim.grpc_target, "plaintext": True, "auth_mode": auth_mode}
    settings["deadline_seconds"] = core_deadline_seconds
    core = GrpcCoreClient.from_settings(CoreSettings.model_validate(settings, by_name=True))
    journal = DynamoJournal(ref("RegistrationsTable"), ref("EventLogTable"))
    applier = EventApplier(
        journal=journal,
        core=core,
        tokens=tokens,
        auth_mode=auth_mode,
        api_version=ApiVersion.V0,
        max_tries=max_tries,
    )
    worker = Worker(
        applier,
        journal,
        SqsVisibility(ref("EventsQueue"), client=rig_clients.client("sqs")),
        EventBridgePublisher(ref("StatusBus"), client=rig_clients.client("events")),
        SqsDeadLetters(ref("EventsDeadLetterQueue"), client=rig_clients.client("sqs")),
        # Here every part of sipreg runs as the account's root: SQS names it by the account's id.
        sipreg_roles={rig_clients.client("sts").get_caller_identity()["UserId"]},
        retry_base_seconds=retry_base_seconds,
        retry_max_seconds=retry_base_seconds * 8,
        time_reserve_seconds=3.0,
    )
    return Rig(endpoint, resources, sim, worker, tokens, identity)


def status_events_queue(rig: Rig) -> str:
    """An SQS queue that receives the status bus's RegistrationStatusChanged events (a rule)."""
    sqs, events = rig.aws("sqs"), rig.aws("events")
    url = sqs.create_queue(QueueName=f"status-{uuid.uuid4().hex[:10]}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    bus = rig.ref("StatusBus")
    events.put_rule(
        Name="crm-status",
        EventBusName=bus,
        EventPattern='{"source": ["sipreg"], "detail-type": ["RegistrationStatusChanged"]}',
    )
    events.put_targets(Rule="crm-status", EventBusName=bus, Targets=[{"Id": "crm", "Arn": arn}])
    return str(url)


def received(rig: Rig, queue_url: str, *, at_least: int, timeout: float = 5.0) -> list[dict[str, Any]]:
    import json  # noqa: PLC0415

    sqs = rig.aws("sqs")
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while len(found) < at_least and time.monotonic() < deadline:
        for message in sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
            "Messages", []
        ):
            found.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return found


def ids(entries: Sequence[EventLogEntry]) -> list[tuple[str, str]]:
    return [(entry.event_id, entry.outcome) for entry in entries]
