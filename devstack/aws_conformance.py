"""Does a local AWS engine keep the rules sipreg relies on? Four checks, over real sockets.

    report = fifo_groups(endpoint)      # SQS FIFO under concurrent pollers, with crashes
    report = fifo_rules(endpoint)       # FIFO receipt handles and deduplication
    report = transactions(endpoint)     # DynamoDB TransactWriteItems under concurrency
    report = iam_policies(endpoint)     # a role's session refused what its policies do not allow
    report = via_service_kms(endpoint)  # callers of encrypted queues, secrets, tables need the key

Each returns a report whose `violations` lists every broken rule it could prove; the suite runs
them all against the local stack's engine (tests/integration/test_local_aws_conformance.py) and
`bench/aws_engines.py` runs them against every candidate engine to pick one by measurement.

The rules are AWS's:

- FIFO: while any message of a group is in flight (received, not deleted, visibility not yet
  over), no other receive gets a message of that group; a group's messages come out in the order
  they were sent, also after a consumer died and its messages came back; a deleted message never
  comes back; nothing is lost.
- Transactions: all or nothing and isolated. A cancelled transaction writes none of its items;
  a committed one writes all; nothing else's committed write is ever undone; concurrent
  transactions never answer HTTP 500.

The checks only report what they can prove from the client's side: a violation is counted when
the times measured around each request leave no other explanation (e.g. a second receive that
started after the first one answered and itself answered before the first one's delete was sent).
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from devstack.aws_engine import ROOT

REGION = "eu-west-1"


def _client(endpoint: str, service: str, *, pool: int = 10, credentials: dict[str, str] | None = None) -> Any:
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        **(credentials or ROOT.as_client_kwargs()),
        # No retries: a 500 must be seen, not hidden by botocore's retry of it.
        config=Config(retries={"max_attempts": 1, "mode": "standard"}, max_pool_connections=pool),
    )


# --- SQS FIFO ------------------------------------------------------------------------------------


@dataclass
class _Receive:
    poller: int
    sent: float  # request sent (monotonic)
    answered: float  # response read
    messages: list[tuple[str, int]]  # (group, sequence) in the order returned
    released: float | None = None  # delete request sent; None: abandoned (the poller "crashed")


@dataclass
class FifoReport:
    groups: int
    messages: int
    receives: int = 0
    abandoned: int = 0  # receives whose poller "crashed" (no delete: visibility timeout)
    deleted: int = 0
    seconds: float = 0.0
    violations: list[str] = field(default_factory=list)


def fifo_groups(
    endpoint: str,
    *,
    groups: int = 8,
    per_group: int = 12,
    pollers: int = 5,
    crash_rate: float = 0.1,
    visibility_seconds: int = 2,
    time_limit: float = 60.0,
    seed: int = 7,
) -> FifoReport:
    """Several pollers drain a FIFO queue; some "crash" (leave their batch to the visibility timeout)."""
    sqs = _client(endpoint, "sqs", pool=pollers + 2)
    url = sqs.create_queue(
        QueueName=f"conformance-{uuid.uuid4().hex[:12]}.fifo",
        Attributes={
            "FifoQueue": "true",
            "VisibilityTimeout": str(visibility_seconds),
            "DeduplicationScope": "messageGroup",
            "FifoThroughputLimit": "perMessageGroupId",
        },
    )["QueueUrl"]
    run = _FifoRun(endpoint, url, [(f"g{g}", seq) for seq in range(per_group) for g in range(groups)])
    threads = [
        threading.Thread(target=run.poll, args=(random.Random(seed * 100 + n), n, crash_rate, time_limit))
        for n in range(pollers)
    ]
    for thread in threads:
        thread.start()
    time.sleep(0.2)  # the pollers are waiting
    run.produce()
    for thread in threads:
        thread.join(time_limit + 5)
    sqs.delete_queue(QueueUrl=url)
    return FifoReport(
        groups=groups,
        messages=len(run.sent),
        receives=len(run.receives),
        abandoned=sum(1 for r in run.receives if r.released is None),
        deleted=len(run.deletes),
        seconds=time.monotonic() - run.started,
        violations=sorted(
            {
                *run.lost(),
                *run.groups_in_flight_twice(visibility_seconds),
                *run.out_of_order(),
                *run.resurrected(),
            }
        ),
    )


class _FifoRun:
    """One queue drained by several pollers, and what the client side can prove from their timings."""

    def __init__(self, endpoint: str, url: str, sent: list[tuple[str, int]]) -> None:
        self.endpoint, self.url, self.sent = endpoint, url, sent
        self.receives: list[_Receive] = []
        self.deletes: dict[tuple[str, int], tuple[float, float]] = {}  # message -> (delete sent, answered)
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._done = threading.Event()

    def produce(self) -> None:
        """In bursts while the pollers wait: every waiting receive wakes up at once, as in Lambda."""
        client = _client(self.endpoint, "sqs")
        for start in range(0, len(self.sent), 10):
            entries = [
                {
                    "Id": str(i),
                    "MessageBody": f"{group}:{seq}",
                    "MessageGroupId": group,
                    "MessageDeduplicationId": f"{group}-{seq}",
                }
                for i, (group, seq) in enumerate(self.sent[start : start + 10])
            ]
            client.send_message_batch(QueueUrl=self.url, Entries=entries)
            time.sleep(0.02)

    def poll(self, rng: random.Random, number: int, crash_rate: float, time_limit: float) -> None:
        client = _client(self.endpoint, "sqs")
        while not self._done.is_set() and time.monotonic() - self.started < time_limit:
            sent = time.monotonic()
            messages = client.receive_message(
                QueueUrl=self.url, MaxNumberOfMessages=10, WaitTimeSeconds=1
            ).get("Messages", [])
            if not messages:
                with self._lock:
                    if len(self.deletes) >= len(self.sent):
                        self._done.set()
                continue
            parsed = [(m["Body"].split(":")[0], int(m["Body"].split(":")[1])) for m in messages]
            receive = _Receive(number, sent, time.monotonic(), parsed)
            with self._lock:
                self.receives.append(receive)
            time.sleep(rng.uniform(0, 0.03))  # "processing"
            if rng.random() < crash_rate:
                continue  # crashed: the batch comes back after the visibility timeout
            receive.released = time.monotonic()
            result = client.delete_message_batch(
                QueueUrl=self.url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
            )
            finished = time.monotonic()
            with self._lock:
                for item in result.get("Successful", []):
                    self.deletes.setdefault(parsed[int(item["Id"])], (receive.released, finished))

    def lost(self) -> list[str]:
        missing = [m for m in self.sent if m not in self.deletes]
        return (
            [f"{len(missing)} messages were never delivered and deleted (first: {missing[0]})"]
            if missing
            else []
        )

    def groups_in_flight_twice(self, visibility: float) -> list[str]:
        by_group: dict[str, list[_Receive]] = defaultdict(list)
        for receive in self.receives:
            for group in dict.fromkeys(g for g, _ in receive.messages):
                by_group[group].append(receive)
        found = []
        for group, held in by_group.items():
            for first in held:
                # Until when `first` certainly still held the group: its delete was not yet sent and
                # its visibility timeout (counted from when it asked: a lower bound) had not run out.
                expires = first.sent + visibility - 0.05
                holds_until = expires if first.released is None else min(first.released, expires)
                found += [
                    f"group {group} was in flight in two receives at once "
                    f"(pollers {first.poller} and {second.poller})"
                    for second in held
                    if second is not first and second.sent > first.answered and second.answered < holds_until
                ]
        return found

    def out_of_order(self) -> list[str]:
        found = []
        for receive in self.receives:
            returned = set(receive.messages)
            for group in dict.fromkeys(g for g, _ in receive.messages):
                seqs = [s for g, s in receive.messages if g == group]
                if seqs != sorted(seqs):
                    found.append(f"group {group} came out of order within one receive: {seqs}")
                # An earlier message of the group still in the queue (deleted only later) and not
                # in this receive: delivered out of order, or the group was in flight twice.
                earlier = [
                    n
                    for n in range(max(seqs))
                    if (group, n) not in returned
                    and ((done := self.deletes.get((group, n))) is None or done[0] > receive.answered)
                ]
                if earlier:
                    found.append(
                        f"group {group}: {group}:{max(seqs)} was delivered before {group}:{earlier[0]}"
                    )
        return found

    def resurrected(self) -> list[str]:
        return [
            f"{group}:{seq} came back after it was deleted"
            for receive in self.receives
            for group, seq in receive.messages
            if (done := self.deletes.get((group, seq))) is not None and done[1] < receive.sent
        ]


@dataclass
class RulesReport:
    """Single-request rules, each checked once."""

    checked: int = 0
    seconds: float = 0.0
    violations: list[str] = field(default_factory=list)


def fifo_rules(endpoint: str) -> RulesReport:
    """Receipt handles and deduplication as AWS FIFO keeps them.

    - a receipt handle whose visibility timeout ran out can no longer delete the message;
    - with `DeduplicationScope: messageGroup`, the same deduplication id in two groups is two
      messages; in one group within 5 minutes it is one, even after the first was deleted, and
      the duplicate send answers with the first one's MessageId.
    """
    started = time.monotonic()
    sqs = _client(endpoint, "sqs")
    report = RulesReport()
    url = sqs.create_queue(
        QueueName=f"conformance-{uuid.uuid4().hex[:12]}.fifo",
        Attributes={
            "FifoQueue": "true",
            "VisibilityTimeout": "1",
            "DeduplicationScope": "messageGroup",
            "FifoThroughputLimit": "perMessageGroupId",
        },
    )["QueueUrl"]

    def rule(holds: bool, broken: str) -> None:
        report.checked += 1
        if not holds:
            report.violations.append(broken)

    first = sqs.send_message(QueueUrl=url, MessageBody="a", MessageGroupId="g1", MessageDeduplicationId="d")
    other = sqs.send_message(QueueUrl=url, MessageBody="b", MessageGroupId="g2", MessageDeduplicationId="d")
    received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
        "Messages", []
    )
    rule(
        sorted(m["Body"] for m in received) == ["a", "b"],
        "one deduplication id in two groups (scope messageGroup) did not give two messages",
    )
    time.sleep(1.5)  # every visibility timeout has run out
    stale = {m["Body"]: m["ReceiptHandle"] for m in received}
    again = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
    answer = sqs.delete_message_batch(
        QueueUrl=url, Entries=[{"Id": body, "ReceiptHandle": handle} for body, handle in stale.items()]
    )
    rule(
        not answer.get("Successful"),
        "a receipt handle from an earlier receive still deleted the message",
    )
    fresh = sqs.delete_message_batch(
        QueueUrl=url,
        Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(again)],
    )
    rule(len(fresh.get("Successful", [])) == 2, "the newest receipt handles did not delete the messages")
    duplicate = sqs.send_message(
        QueueUrl=url, MessageBody="a2", MessageGroupId="g1", MessageDeduplicationId="d"
    )
    rule(
        duplicate["MessageId"] == first["MessageId"],
        "a duplicate send did not answer with the original MessageId",
    )
    late = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
    rule(not late, "a duplicate sent after the first was deleted (within 5 minutes) was delivered")
    del other
    sqs.delete_queue(QueueUrl=url)
    report.seconds = time.monotonic() - started
    return report


def iam_policies(endpoint: str) -> RulesReport:
    """A role's session may do what its policies allow and nothing else, as AWS evaluates them:
    resource-scoped DynamoDB, SQS and KMS statements; BatchGetItem as an action of its own; each
    item of a TransactWriteItems checked as the single-item action it is; KMS conditions on the
    encryption context."""
    started = time.monotonic()
    report = RulesReport()
    suffix = uuid.uuid4().hex[:10]
    iam, sts = _client(endpoint, "iam"), _client(endpoint, "sts")
    dynamodb, sqs, kms = _client(endpoint, "dynamodb"), _client(endpoint, "sqs"), _client(endpoint, "kms")
    account = sts.get_caller_identity()["Account"]
    tables = [f"conformance-{suffix}-{name}" for name in ("mine", "other")]
    for table in tables:
        dynamodb.create_table(
            TableName=table,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        )
    queues = [
        sqs.create_queue(QueueName=f"conformance-{suffix}-{name}")["QueueUrl"] for name in ("mine", "other")
    ]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queues[0], AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    key = kms.create_key()["KeyMetadata"]["Arn"]
    table_arn = f"arn:aws:dynamodb:{REGION}:{account}:table/{tables[0]}"
    role = f"conformance-{suffix}"
    trust = {
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
        "Action": "sts:AssumeRole",
    }
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=_policy(trust))
    allowed = [
        {"Effect": "Allow", "Action": ["dynamodb:GetItem", "dynamodb:PutItem"], "Resource": table_arn},
        {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": queue_arn},
        {
            "Effect": "Allow",
            "Action": ["kms:Encrypt"],
            "Resource": key,
            "Condition": {"StringEquals": {"kms:EncryptionContext:purpose": "tokens"}},
        },
    ]
    iam.put_role_policy(RoleName=role, PolicyName="scoped", PolicyDocument=_policy(*allowed))
    session = sts.assume_role(RoleArn=f"arn:aws:iam::{account}:role/{role}", RoleSessionName="conformance")
    credentials = session["Credentials"]
    as_role = {
        "aws_access_key_id": credentials["AccessKeyId"],
        "aws_secret_access_key": credentials["SecretAccessKey"],
        "aws_session_token": credentials["SessionToken"],
    }
    role_dynamodb = _client(endpoint, "dynamodb", credentials=as_role)
    role_sqs, role_kms = (
        _client(endpoint, "sqs", credentials=as_role),
        _client(endpoint, "kms", credentials=as_role),
    )
    item = {"pk": {"S": "x"}}
    cases: list[tuple[str, bool, Callable[[], Any]]] = [
        ("PutItem on its table", True, lambda: role_dynamodb.put_item(TableName=tables[0], Item=item)),
        ("GetItem on another table", False, lambda: role_dynamodb.get_item(TableName=tables[1], Key=item)),
        (
            "BatchGetItem without its permission",
            False,
            lambda: role_dynamodb.batch_get_item(RequestItems={tables[0]: {"Keys": [item]}}),
        ),
        (
            "TransactWriteItems Put on its table",
            True,
            lambda: role_dynamodb.transact_write_items(
                TransactItems=[{"Put": {"TableName": tables[0], "Item": item}}]
            ),
        ),
        (
            "TransactWriteItems Put on another table",
            False,
            lambda: role_dynamodb.transact_write_items(
                TransactItems=[{"Put": {"TableName": tables[1], "Item": item}}]
            ),
        ),
        (
            "SendMessage to its queue",
            True,
            lambda: role_sqs.send_message(QueueUrl=queues[0], MessageBody="x"),
        ),
        (
            "SendMessage to another queue",
            False,
            lambda: role_sqs.send_message(QueueUrl=queues[1], MessageBody="x"),
        ),
        (
            "Encrypt with the allowed context",
            True,
            lambda: role_kms.encrypt(KeyId=key, Plaintext=b"x", EncryptionContext={"purpose": "tokens"}),
        ),
        (
            "Encrypt with another context",
            False,
            lambda: role_kms.encrypt(KeyId=key, Plaintext=b"x", EncryptionContext={"purpose": "other"}),
        ),
    ]
    for name, should_pass, call in cases:
        report.checked += 1
        try:
            call()
            passed = True
        except ClientError as error:
            passed = error.response["Error"]["Code"] not in _DENIED
        if passed != should_pass:
            report.violations.append(f"{name}: {'refused' if should_pass else 'allowed'}")
    report.seconds = time.monotonic() - started
    return report


def via_service_kms(endpoint: str) -> RulesReport:
    """A caller of an SQS queue, a secret or a table encrypted with a customer managed key needs
    that key's permissions too, through the service and for that resource's encryption context
    (SQS `aws:sqs:arn`, Secrets Manager `SecretARN`, DynamoDB `aws:dynamodb:tableName`), as AWS
    requires; SQS's batch send is authorized as sqs:SendMessage."""
    started = time.monotonic()
    report = RulesReport()
    suffix = uuid.uuid4().hex[:10]
    iam, sts, kms = _client(endpoint, "iam"), _client(endpoint, "sts"), _client(endpoint, "kms")
    sqs, secrets, dynamodb = (_client(endpoint, s) for s in ("sqs", "secretsmanager", "dynamodb"))
    account = sts.get_caller_identity()["Account"]
    key = kms.create_key()["KeyMetadata"]
    url = sqs.create_queue(QueueName=f"conformance-{suffix}", Attributes={"KmsMasterKeyId": key["KeyId"]})[
        "QueueUrl"
    ]
    queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    secret = secrets.create_secret(Name=f"conformance-{suffix}", SecretString="x", KmsKeyId=key["KeyId"])[
        "ARN"
    ]
    table = f"conformance-{suffix}"
    dynamodb.create_table(
        TableName=table,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        SSESpecification={"Enabled": True, "SSEType": "KMS", "KMSMasterKeyId": key["KeyId"]},
    )
    table_arn = f"arn:aws:dynamodb:{REGION}:{account}:table/{table}"
    role = f"conformance-kms-{suffix}"
    trust = {
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
        "Action": "sts:AssumeRole",
    }
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=_policy(trust))
    resources = [
        {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": queue_arn},
        {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": secret},
        {"Effect": "Allow", "Action": "dynamodb:PutItem", "Resource": table_arn},
    ]

    def via(service: str, actions: list[str], context: dict[str, str]) -> dict[str, Any]:
        keys = {"kms:ViaService": f"{service}.{REGION}.amazonaws.com"}
        keys.update({f"kms:EncryptionContext:{name}": value for name, value in context.items()})
        return {
            "Effect": "Allow",
            "Action": actions,
            "Resource": key["Arn"],
            "Condition": {"StringEquals": keys},
        }

    key_grants = [
        via("sqs", ["kms:GenerateDataKey", "kms:Decrypt"], {"aws:sqs:arn": queue_arn}),
        via("secretsmanager", ["kms:Decrypt"], {"SecretARN": secret}),
        via("dynamodb", ["kms:Decrypt"], {"aws:dynamodb:tableName": table}),
    ]

    def session(*statements: dict[str, Any]) -> dict[str, str]:
        iam.put_role_policy(RoleName=role, PolicyName="scoped", PolicyDocument=_policy(*statements))
        credentials = sts.assume_role(RoleArn=f"arn:aws:iam::{account}:role/{role}", RoleSessionName="kms")[
            "Credentials"
        ]
        return {
            "aws_access_key_id": credentials["AccessKeyId"],
            "aws_secret_access_key": credentials["SecretAccessKey"],
            "aws_session_token": credentials["SessionToken"],
        }

    def calls(credentials: dict[str, str]) -> list[tuple[str, Callable[[], Any]]]:
        role_sqs = _client(endpoint, "sqs", credentials=credentials)
        role_secrets = _client(endpoint, "secretsmanager", credentials=credentials)
        role_dynamodb = _client(endpoint, "dynamodb", credentials=credentials)
        return [
            ("SendMessage", lambda: role_sqs.send_message(QueueUrl=url, MessageBody="x")),
            (
                "SendMessageBatch",
                lambda: role_sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": "1", "MessageBody": "x"}]),
            ),
            ("GetSecretValue", lambda: role_secrets.get_secret_value(SecretId=secret)),
            ("PutItem", lambda: role_dynamodb.put_item(TableName=table, Item={"pk": {"S": "x"}})),
        ]

    for name, call in calls(session(*resources)):
        report.checked += 1
        if _passes(call):
            report.violations.append(f"{name} on an encrypted resource: allowed without the key's permission")
    for name, call in calls(session(*resources, *key_grants)):
        report.checked += 1
        if not _passes(call):
            report.violations.append(f"{name} with the key's permission for its context: refused")
    report.seconds = time.monotonic() - started
    return report


def _passes(call: Callable[[], Any]) -> bool:
    try:
        call()
    except ClientError as error:
        return error.response["Error"]["Code"] not in _DENIED
    return True


_DENIED = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"})


def _policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


# --- DynamoDB transactions -------------------------------------------------------------------------


@dataclass
class TransactionReport:
    committed: int = 0
    cancelled: int = 0
    server_errors: int = 0  # HTTP 5xx answers to a transaction
    seconds: float = 0.0
    violations: list[str] = field(default_factory=list)


def transactions(
    endpoint: str,
    *,
    workers: int = 6,
    rounds: int = 25,
    counters: int = 3,
    filler: int = 2000,
    seed: int = 11,
) -> TransactionReport:
    """Workers race to bump shared counters, each bump a transaction with a log line of its own;
    meanwhile they write items of their own outside transactions. Then every write is accounted for."""
    dynamodb = _client(endpoint, "dynamodb", pool=workers + 2)
    table = f"conformance-{uuid.uuid4().hex[:12]}"
    dynamodb.create_table(
        TableName=table,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
    )
    names = [f"counter-{n}" for n in range(counters)] + [f"filler-{n}" for n in range(filler)]
    # The counters at version 0, and a table of some size: an engine that copies tables around
    # transactions shows it here.
    for start in range(0, len(names), 25):
        requests = [
            {"PutRequest": {"Item": {"pk": {"S": name}, "version": {"N": "0"}}}}
            for name in names[start : start + 25]
        ]
        dynamodb.batch_write_item(RequestItems={table: requests})
    race = _TransactionRace(endpoint, table, counters)
    started = time.monotonic()
    threads = [
        threading.Thread(target=race.work, args=(random.Random(seed * 100 + n), n, rounds), daemon=True)
        for n in range(workers)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    report = race.account(_scan(dynamodb, table))
    report.seconds = time.monotonic() - started
    dynamodb.delete_table(TableName=table)
    return report


class _TransactionRace:
    def __init__(self, endpoint: str, table: str, counters: int) -> None:
        self.endpoint, self.table, self.counters = endpoint, table, counters
        self.outcomes: list[tuple[str, bool]] = []  # (log line key, committed?)
        self.own_items: list[str] = []
        self.server_errors = 0
        self._lock = threading.Lock()

    def work(self, rng: random.Random, number: int, rounds: int) -> None:
        client = _client(self.endpoint, "dynamodb")
        for round_ in range(rounds):
            counter = f"counter-{rng.randrange(self.counters)}"
            read = client.get_item(TableName=self.table, Key={"pk": {"S": counter}}, ConsistentRead=True)
            version = int(read["Item"]["version"]["N"])
            line = f"line-{number}-{round_}"
            committed = self._bump(client, counter, version, line)
            own = f"own-{number}-{round_}"
            client.put_item(TableName=self.table, Item={"pk": {"S": own}})
            with self._lock:
                self.outcomes.append((line, committed))
                self.own_items.append(own)

    def _bump(self, client: Any, counter: str, version: int, line: str) -> bool:
        try:
            client.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self.table,
                            "Item": {"pk": {"S": counter}, "version": {"N": str(version + 1)}},
                            "ConditionExpression": "version = :read",
                            "ExpressionAttributeValues": {":read": {"N": str(version)}},
                        }
                    },
                    {
                        "Put": {
                            "TableName": self.table,
                            "Item": {"pk": {"S": line}, "counter": {"S": counter}},
                        }
                    },
                ]
            )
            return True
        except ClientError as error:
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if status >= 500:
                with self._lock:
                    self.server_errors += 1
            elif error.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            return False

    def account(self, items: dict[str, dict[str, str]]) -> TransactionReport:
        committed = sum(1 for _, ok in self.outcomes if ok)
        found = [
            f"committed transaction's {line} is missing"
            if ok
            else f"cancelled transaction's {line} was written"
            for line, ok in self.outcomes
            if ok != (line in items)
        ]
        lost = [own for own in self.own_items if own not in items]
        if lost:
            found.append(f"{len(lost)} plain writes vanished (first: {lost[0]})")
        for number in range(self.counters):
            counter = f"counter-{number}"
            bumps = sum(
                1 for line, ok in self.outcomes if ok and items.get(line, {}).get("counter") == counter
            )
            version = int(items.get(counter, {}).get("version", -1))
            if version != bumps:
                found.append(f"{counter} is at version {version} after {bumps} committed bumps")
        if self.server_errors:
            found.append(f"{self.server_errors} transactions answered HTTP 5xx")
        return TransactionReport(
            committed=committed,
            cancelled=len(self.outcomes) - committed,
            server_errors=self.server_errors,
            violations=sorted(set(found)),
        )


def _scan(dynamodb: Any, table: str) -> dict[str, dict[str, str]]:
    items: dict[str, dict[str, str]] = {}
    scan: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    while True:
        page = dynamodb.scan(**scan)
        for item in page["Items"]:
            items[item["pk"]["S"]] = {k: next(iter(v.values())) for k, v in item.items()}
        if "LastEvaluatedKey" not in page:
            return items
        scan["ExclusiveStartKey"] = page["LastEvaluatedKey"]


Check = Callable[[str], FifoReport | RulesReport | TransactionReport]
CHECKS: dict[str, Check] = {
    "fifo_groups": fifo_groups,
    "fifo_rules": fifo_rules,
    "transactions": transactions,
    "iam_policies": iam_policies,
}
