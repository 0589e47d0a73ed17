"""IAM as AWS evaluates it: a role's session may do what its policies allow and nothing else, and
a caller of a resource encrypted with a customer managed key needs that key's permissions too."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from devstack.aws_conformance.clients import client, pk_table
from devstack.aws_conformance.rules import RulesReport
from devstack.aws_engine import REGION


def iam_policies(endpoint: str) -> RulesReport:
    """A role's session may do what its policies allow and nothing else, as AWS evaluates them:
    resource-scoped DynamoDB, SQS and KMS statements; BatchGetItem as an action of its own; each
    item of a TransactWriteItems checked as the single-item action it is; KMS conditions on the
    encryption context."""
    started = time.monotonic()
    report = RulesReport()
    suffix = uuid.uuid4().hex[:10]
    iam, sts = client(endpoint, "iam"), client(endpoint, "sts")
    dynamodb, sqs, kms = client(endpoint, "dynamodb"), client(endpoint, "sqs"), client(endpoint, "kms")
    account = sts.get_caller_identity()["Account"]
    tables = [f"conformance-{suffix}-{name}" for name in ("mine", "other")]
    for table in tables:
        pk_table(dynamodb, table)
    queues = [
        sqs.create_queue(QueueName=f"conformance-{suffix}-{name}")["QueueUrl"] for name in ("mine", "other")
    ]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queues[0], AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    key = kms.create_key()["KeyMetadata"]["Arn"]
    table_arn = f"arn:aws:dynamodb:{REGION}:{account}:table/{tables[0]}"
    role = _role(iam, account, f"conformance-{suffix}")
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
    as_role = _session(iam, sts, role, *allowed, name="conformance")
    role_dynamodb = client(endpoint, "dynamodb", credentials=as_role)
    role_sqs, role_kms = (
        client(endpoint, "sqs", credentials=as_role),
        client(endpoint, "kms", credentials=as_role),
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
        report.rule(_passes(call) == should_pass, f"{name}: {'refused' if should_pass else 'allowed'}")
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
    iam, sts, kms = client(endpoint, "iam"), client(endpoint, "sts"), client(endpoint, "kms")
    sqs, secrets, dynamodb = (client(endpoint, s) for s in ("sqs", "secretsmanager", "dynamodb"))
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
    pk_table(
        dynamodb, table, SSESpecification={"Enabled": True, "SSEType": "KMS", "KMSMasterKeyId": key["KeyId"]}
    )
    table_arn = f"arn:aws:dynamodb:{REGION}:{account}:table/{table}"
    role = _role(iam, account, f"conformance-kms-{suffix}")
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

    def calls(credentials: dict[str, str]) -> list[tuple[str, Callable[[], Any]]]:
        role_sqs = client(endpoint, "sqs", credentials=credentials)
        role_secrets = client(endpoint, "secretsmanager", credentials=credentials)
        role_dynamodb = client(endpoint, "dynamodb", credentials=credentials)
        return [
            ("SendMessage", lambda: role_sqs.send_message(QueueUrl=url, MessageBody="x")),
            (
                "SendMessageBatch",
                lambda: role_sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": "1", "MessageBody": "x"}]),
            ),
            ("GetSecretValue", lambda: role_secrets.get_secret_value(SecretId=secret)),
            ("PutItem", lambda: role_dynamodb.put_item(TableName=table, Item={"pk": {"S": "x"}})),
        ]

    for name, call in calls(_session(iam, sts, role, *resources, name="kms")):
        report.rule(
            not _passes(call), f"{name} on an encrypted resource: allowed without the key's permission"
        )
    for name, call in calls(_session(iam, sts, role, *resources, *key_grants, name="kms")):
        report.rule(_passes(call), f"{name} with the key's permission for its context: refused")
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


def _role(iam: Any, account: str, name: str) -> str:
    """A new role the account's root may assume; its ARN."""
    trust = {
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
        "Action": "sts:AssumeRole",
    }
    arn: str = iam.create_role(RoleName=name, AssumeRolePolicyDocument=_policy(trust))["Role"]["Arn"]
    return arn


def _session(iam: Any, sts: Any, role_arn: str, *statements: dict[str, Any], name: str) -> dict[str, str]:
    """The client credentials of a new session of the role, now holding only these statements."""
    role = role_arn.rpartition("/")[2]
    iam.put_role_policy(RoleName=role, PolicyName="scoped", PolicyDocument=_policy(*statements))
    credentials = sts.assume_role(RoleArn=role_arn, RoleSessionName=name)["Credentials"]
    return {
        "aws_access_key_id": credentials["AccessKeyId"],
        "aws_secret_access_key": credentials["SecretAccessKey"],
        "aws_session_token": credentials["SessionToken"],
    }
