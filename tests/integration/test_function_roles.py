"""Each function runs as a role of its own holding exactly its template policies, and the local AWS
refuses whatever those do not allow: a call added without its permission fails here, not in AWS.

The functions run on the local host (template.yaml) against the local AWS engine, IAM enforced.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from devstack import TEMPLATE
from devstack.host import LocalHost
from devstack.host.template import load_template
from sipreg.cipher import KmsCipher
from sipreg.queue import deduplication_id
from sipreg.store.event_log import EventLogEntry, Outcome
from sipreg.store.registrations import RegistrationRecord, RegistrationStatus
from sipreg.worker import DynamoJournal
from tests.support.events_api import REGION, aws_client

DENIED = ("AccessDenied", "AccessDeniedException")


@pytest.fixture(scope="module")
def host(aws_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalHost]:
    running = LocalHost(
        TEMPLATE,
        aws_endpoint,
        region=REGION,
        stack_name=f"ro{uuid.uuid4().hex[:8]}",
        log_dir=tmp_path_factory.mktemp("roles"),
    )
    with running:
        yield running


def errors_logged(host: LocalHost, function: str) -> list[str]:
    assert host.log_dir is not None
    text = (host.log_dir / f"{function}.log").read_text()
    return [line[:300] for line in text.splitlines() if '"level":"ERROR"' in line]


def as_role(host: LocalHost, function: str, service: str) -> Any:
    """A client signing with the session the host gives `function`'s sandboxes."""
    credentials = host.functions[function].credentials
    assert credentials is not None, f"{function} runs without a role of its own"
    environment, _ = credentials()
    return boto3.client(
        service,
        endpoint_url=host.aws_endpoint,
        region_name=REGION,
        aws_access_key_id=environment["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=environment["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=environment["AWS_SESSION_TOKEN"],
    )


def refused(call: Callable[[], Any]) -> str:
    """The error code of a call that must be refused for want of a permission."""
    with pytest.raises(ClientError) as caught:
        call()
    code = str(caught.value.response["Error"]["Code"])
    assert code in DENIED, caught.value
    return str(caught.value.response["Error"]["Message"])


def sqs_record(queue_arn: str, event: dict[str, Any]) -> dict[str, Any]:
    body = json.dumps(event)
    now = str(int(datetime.now(UTC).timestamp() * 1000))
    return {
        "messageId": str(uuid.uuid4()),
        "receiptHandle": f"local-{uuid.uuid4().hex}",
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": now,
            "SequenceNumber": "18880000000000000001",
            "MessageGroupId": event["msisdn"],
            "SenderId": "AROAEXAMPLE:test",
            "MessageDeduplicationId": deduplication_id(event["id"]),
            "ApproximateFirstReceiveTimestamp": now,
        },
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    }


def test_every_function_signs_as_its_own_role(host: LocalHost) -> None:
    # Given every function of the template on the local host
    functions = {
        name
        for name, resource in load_template(TEMPLATE)["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }
    assert set(host.functions) == functions
    # When each asks STS who it is, with the credentials its sandboxes get
    identities = {name: as_role(host, name, "sts").get_caller_identity()["Arn"] for name in host.functions}
    # Then each is a session of a role of its own, named after the function as SAM names it
    assert len(set(identities.values())) == len(functions)
    for name, arn in identities.items():
        assert ":assumed-role/" in arn and f"-{name}Role-" in arn


def test_the_worker_reads_a_batchs_records_in_one_batch_get_item_it_may_make(host: LocalHost) -> None:
    # Given an upsert for a number without consent, as the SQS event source hands it to the worker
    msisdn = f"+4791{uuid.uuid4().int % 10**6:06d}"
    event = {
        "id": f"roles-{uuid.uuid4().hex[:8]}",
        "type": "registration.upsert",
        "msisdn": msisdn,
        "registration": {"route_type": "fork", "sip_uri": "sips:pbx.example.com:5061"},
        "occurred_at": datetime.now(UTC).isoformat(),
    }
    queue_arn = host.resources["EventsQueue"]["Arn"]
    # When the real worker runs it with its role (its first call is one BatchGetItem of the records)
    answer = host.invoke("RegistrationWorkerFunction", {"Records": [sqs_record(queue_arn, event)]})
    # Then nothing was refused (the worker logged no error, e.g. falling back to one read per
    # record): the record waits for consent, with no failed record reported
    assert errors_logged(host, "RegistrationWorkerFunction") == []
    assert answer == {"batchItemFailures": []}
    table = host.resources["RegistrationsTable"]["Ref"]
    item = aws_client(host.aws_endpoint, "dynamodb").get_item(
        TableName=table,
        Key={"msisdn": {"S": msisdn}, "sip_uri": {"S": "sips:pbx.example.com:5061"}},
        ConsistentRead=True,
    )["Item"]
    assert item["status"]["S"] == "awaiting_consent"
    # And the worker's role may make exactly that read (consistent BatchGetItem on its table)
    read = as_role(host, "RegistrationWorkerFunction", "dynamodb").batch_get_item(
        RequestItems={
            table: {
                "Keys": [{"msisdn": {"S": msisdn}, "sip_uri": {"S": "sips:pbx.example.com:5061"}}],
                "ConsistentRead": True,
            }
        }
    )
    assert len(read["Responses"][table]) == 1


def test_every_read_and_write_of_the_workers_journal_is_one_its_role_may_make(
    host: LocalHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Some of these run only on rarer paths (a record read again after a conflicting save, an
    event redelivered), which no end-to-end run is sure to take: here each runs once, as the role."""
    # Given the worker's journal on its tables, signing with the worker's session
    credentials = host.functions["RegistrationWorkerFunction"].credentials
    assert credentials is not None
    environment, _ = credentials()
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, environment[name])
    monkeypatch.setenv("AWS_ENDPOINT_URL", host.aws_endpoint)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    # sipreg.aws makes the journal's tables for the role's credentials now in the environment
    journal = DynamoJournal(
        host.resources["RegistrationsTable"]["Ref"], host.resources["EventLogTable"]["Ref"]
    )
    msisdn, sip_uri, now = (
        f"+4792{uuid.uuid4().int % 10**6:06d}",
        "sips:pbx.example.com",
        datetime.now(UTC),
    )
    record = RegistrationRecord(
        msisdn=msisdn, sip_uri=sip_uri, status=RegistrationStatus.PENDING, updated_at=now
    )
    entry = EventLogEntry(
        msisdn=msisdn,
        event_id="roles-journal",
        event_type="registration.upsert",
        outcome=Outcome.APPLYING,
        sip_uri=sip_uri,
        occurred_at=now,
        recorded_at=now,
    )
    # When it saves a record with its log item, then reads it every way the worker does
    [saved] = journal.commit([(record, None)], [entry], count_try=True)
    journal.write(entry.model_copy(update={"outcome": Outcome.ACTIVE}))
    # Then each call is allowed and sees what was written
    assert journal.get(msisdn, sip_uri) == saved  # GetItem: the re-read after a conflict
    assert journal.get_many([(msisdn, sip_uri)]) == {(msisdn, sip_uri): saved}
    assert journal.list_for(msisdn) == [saved]  # Query: a subscriber's registrations
    item_key = (msisdn, entry.key["sk"])
    assert journal.tries_of([item_key]) == {item_key: 1}  # a redelivered event's tries
    # a redriven internal event's item (whose sender SQS names as the operator)
    item = journal.log_item(item_key)
    assert item is not None and (item.event_type, item.outcome) == ("registration.upsert", Outcome.ACTIVE)
    assert journal.log_item((msisdn, "e#nothing-here")) is None


def test_a_function_is_refused_what_its_policies_do_not_name(host: LocalHost) -> None:
    resources = host.resources
    registrations = resources["RegistrationsTable"]["Ref"]
    key = {"msisdn": {"S": "+4791000000"}, "sip_uri": {"S": "sips:pbx.example.com"}}
    # The events API reads registrations but never writes them
    message = refused(
        lambda: as_role(host, "EventsApiFunction", "dynamodb").put_item(TableName=registrations, Item=key)
    )
    assert "dynamodb:PutItem" in message
    # The worker writes what it checks: a condition check alone is nothing it makes
    check = {
        "ConditionCheck": {
            "TableName": registrations,
            "Key": key,
            "ConditionExpression": "attribute_exists(msisdn)",
        }
    }
    message = refused(
        lambda: as_role(host, "RegistrationWorkerFunction", "dynamodb").transact_write_items(
            TransactItems=[check]
        )
    )
    assert "dynamodb:ConditionCheckItem" in message
    # The refresher queries the RefreshDue index only, never the table's items
    refused(lambda: as_role(host, "RefresherFunction", "dynamodb").get_item(TableName=registrations, Key=key))
    # The consent start cannot read the OAuth client secret (only the callback and the worker may)
    secret = resources["OAuthClientSecret"]["Ref"]
    refused(lambda: as_role(host, "OAuthStartFunction", "secretsmanager").get_secret_value(SecretId=secret))
    # Nobody but the events API reads the webhook signing secret
    webhook = resources["WebhookSecret"]["Ref"]
    refused(
        lambda: as_role(host, "RegistrationWorkerFunction", "secretsmanager").get_secret_value(
            SecretId=webhook
        )
    )


def test_a_token_longer_than_kms_takes_is_stored_and_read_in_parts_under_the_same_permissions(
    host: LocalHost,
) -> None:
    # Given a JWT access token of 10 KB, more than one KMS Encrypt takes
    key, token = host.resources["DataKey"]["Arn"], "eyJ" + "a" * 10_000
    # When the consent callback's role stores it, then the worker's reads it back whole
    sealed = KmsCipher(key, client=as_role(host, "OAuthCallbackFunction", "kms")).encrypt(
        token, msisdn="+4791000001"
    )
    worker = KmsCipher(key, client=as_role(host, "RegistrationWorkerFunction", "kms"))
    assert worker.decrypt(sealed, msisdn="+4791000001") == token


def test_only_the_functions_that_use_a_token_may_decrypt_one(host: LocalHost) -> None:
    # Given a subscriber's token, encrypted with the data key as the token store does it
    key = host.resources["DataKey"]["Arn"]
    context = {"purpose": "sipreg-oauth-token", "msisdn": "+4791000000"}
    kms = aws_client(host.aws_endpoint, "kms")
    blob = kms.encrypt(KeyId=key, Plaintext=b"a token", EncryptionContext=context)["CiphertextBlob"]
    # Then the events API's role may not decrypt it (it only reads its signing secret, through
    # Secrets Manager), while the worker's may
    events_api = as_role(host, "EventsApiFunction", "kms")
    message = refused(lambda: events_api.decrypt(CiphertextBlob=blob, EncryptionContext=context))
    assert "kms:Decrypt" in message
    worker = as_role(host, "RegistrationWorkerFunction", "kms")
    assert worker.decrypt(CiphertextBlob=blob, EncryptionContext=context)["Plaintext"] == b"a token"
    # And the consent callback, which stores tokens, may encrypt one but never read one back
    callback = as_role(host, "OAuthCallbackFunction", "kms")
    sealed = callback.encrypt(KeyId=key, Plaintext=b"another token", EncryptionContext=context)[
        "CiphertextBlob"
    ]
    assert "kms:Decrypt" in refused(
        lambda: callback.decrypt(CiphertextBlob=sealed, EncryptionContext=context)
    )
    # And it may read its signing secret only: the OAuth client secret, under the same key, is refused
    refused(
        lambda: as_role(host, "EventsApiFunction", "secretsmanager").get_secret_value(
            SecretId=host.resources["OAuthClientSecret"]["Ref"]
        )
    )
