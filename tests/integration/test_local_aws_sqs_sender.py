"""The local AWS records in each SQS message's `SenderId` who sent it, as SQS does: a role's session
`<RoleId>:<session name>` (STS GetCallerIdentity's UserId), an IAM user its user id (`AIDA...`),
the account's root the account id. Both protocols (JSON and Query), SendMessage and
SendMessageBatch alike; a message the redrive policy moves to its DLQ keeps its sender."""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import urlencode

import httpx
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from devstack.aws_conformance.clients import client, fifo_queue
from devstack.aws_engine import REGION, ROOT

SESSION_NAME = "billing-job"


def queue_arn(endpoint: str, url: str) -> str:
    attributes = client(endpoint, "sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    return str(attributes["Attributes"]["QueueArn"])


def may_send_to(queue: str) -> str:
    statement = {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": queue}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def role_session(endpoint: str, allowed_queue_arn: str) -> tuple[Credentials, str]:
    """A session named SESSION_NAME of a new role that may send to the queue; and the role's RoleId."""
    iam, sts = client(endpoint, "iam"), client(endpoint, "sts")
    account = sts.get_caller_identity()["Account"]
    trust = {
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
        "Action": "sts:AssumeRole",
    }
    name = f"sender-{uuid.uuid4().hex[:10]}"
    role = iam.create_role(
        RoleName=name, AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [trust]})
    )["Role"]
    iam.put_role_policy(RoleName=name, PolicyName="send", PolicyDocument=may_send_to(allowed_queue_arn))
    issued = sts.assume_role(RoleArn=role["Arn"], RoleSessionName=SESSION_NAME)["Credentials"]
    session = Credentials(issued["AccessKeyId"], issued["SecretAccessKey"], issued["SessionToken"])
    return session, str(role["RoleId"])


def as_client_kwargs(credentials: Credentials) -> dict[str, str]:
    kwargs = {"aws_access_key_id": credentials.access_key, "aws_secret_access_key": credentials.secret_key}
    if credentials.token:
        kwargs["aws_session_token"] = credentials.token
    return kwargs


def fifo_entry(body: str) -> dict[str, str]:
    return {"MessageBody": body, "MessageGroupId": "g", "MessageDeduplicationId": body}


def send_json(endpoint: str, credentials: Credentials, url: str, tag: str) -> None:
    """One message with SendMessage and one with SendMessageBatch, over boto3's (JSON) protocol."""
    sqs = client(endpoint, "sqs", credentials=as_client_kwargs(credentials))
    sqs.send_message(QueueUrl=url, **fifo_entry(f"{tag}-single"))
    answer = sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": "b", **fifo_entry(f"{tag}-batch")}])
    assert answer.get("Failed", []) == []


def send_query(credentials: Credentials, url: str, tag: str) -> None:
    """The same two sends over SQS's Query protocol (form-encoded, XML answers), SigV4-signed."""
    batch_entry = {"Id": "b", **fifo_entry(f"{tag}-batch")}
    for form in (
        {"Action": "SendMessage", **fifo_entry(f"{tag}-single")},
        {
            "Action": "SendMessageBatch",
            **{f"SendMessageBatchRequestEntry.1.{k}": v for k, v in batch_entry.items()},
        },
    ):
        request = AWSRequest(
            method="POST",
            url=url,
            data=urlencode({**form, "QueueUrl": url, "Version": "2012-11-05"}).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        SigV4Auth(credentials, "sqs", REGION).add_auth(request)
        answer = httpx.post(url, content=request.body, headers=dict(request.headers.items()))
        assert answer.status_code == 200, answer.text
        assert "BatchResultErrorEntry" not in answer.text, answer.text


def sender_ids(endpoint: str, url: str) -> dict[str, str]:
    """Each queued message's body and SenderId, read (and deleted) by the root."""
    sqs = client(endpoint, "sqs")
    found: dict[str, str] = {}
    while messages := sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["SenderId"]
    ).get("Messages", []):
        for message in messages:
            found[message["Body"]] = message["Attributes"]["SenderId"]
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return found


def test_a_role_sessions_messages_carry_its_role_id_and_session_name_as_sender_id(aws_endpoint: str) -> None:
    # Given a session "billing-job" of a role that may send to a FIFO queue
    url = fifo_queue(client(aws_endpoint, "sqs"), "sender")
    session, role_id = role_session(aws_endpoint, queue_arn(aws_endpoint, url))
    assert (
        client(aws_endpoint, "sts", credentials=as_client_kwargs(session)).get_caller_identity()["UserId"]
        == f"{role_id}:{SESSION_NAME}"
    )
    # When it sends with SendMessage and SendMessageBatch over both protocols
    send_json(aws_endpoint, session, url, "json")
    send_query(session, url, "query")
    # Then each message's SenderId is the session's UserId, as SQS records it
    expected = f"{role_id}:{SESSION_NAME}"
    assert sender_ids(aws_endpoint, url) == {
        "json-single": expected,
        "json-batch": expected,
        "query-single": expected,
        "query-batch": expected,
    }


def test_an_iam_users_messages_carry_its_user_id_and_the_roots_the_account_id(aws_endpoint: str) -> None:
    # Given an IAM user that may send to a FIFO queue, and the account's root
    url = fifo_queue(client(aws_endpoint, "sqs"), "sender")
    iam = client(aws_endpoint, "iam")
    name = f"sender-{uuid.uuid4().hex[:10]}"
    user_id = iam.create_user(UserName=name)["User"]["UserId"]
    iam.put_user_policy(
        UserName=name, PolicyName="send", PolicyDocument=may_send_to(queue_arn(aws_endpoint, url))
    )
    key = iam.create_access_key(UserName=name)["AccessKey"]
    # When each sends
    send_json(aws_endpoint, Credentials(key["AccessKeyId"], key["SecretAccessKey"]), url, "user")
    send_json(aws_endpoint, Credentials(ROOT.access_key_id, ROOT.secret_access_key), url, "root")
    # Then the user's messages carry its user id, the root's the account id
    account = client(aws_endpoint, "sts").get_caller_identity()["Account"]
    assert user_id.startswith("AIDA")
    assert sender_ids(aws_endpoint, url) == {
        "user-single": user_id,
        "user-batch": user_id,
        "root-single": account,
        "root-batch": account,
    }


def test_a_message_moved_to_its_dead_letter_queue_keeps_its_sender_id(aws_endpoint: str) -> None:
    # Given a FIFO queue whose messages go to its DLQ after one receive, and a role's session sending to it
    sqs = client(aws_endpoint, "sqs")
    dlq = fifo_queue(sqs, "sender-dlq")
    redrive: dict[str, Any] = {"deadLetterTargetArn": queue_arn(aws_endpoint, dlq), "maxReceiveCount": 1}
    url = fifo_queue(sqs, "sender", RedrivePolicy=json.dumps(redrive))
    session, role_id = role_session(aws_endpoint, queue_arn(aws_endpoint, url))
    send_json(aws_endpoint, session, url, "moved")
    # When its messages are received once and given back, then received again (which moves them)
    assert (
        len(sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)["Messages"]) == 2
    )
    assert sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []) == []
    # Then in the DLQ they still name the session as their sender
    expected = f"{role_id}:{SESSION_NAME}"
    assert sender_ids(aws_endpoint, dlq) == {"moved-single": expected, "moved-batch": expected}
