"""sipreg.aws: one session per process makes every client, each once, safely from many threads
(each check in a fresh interpreter, as a cold Lambda sandbox)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def fresh_interpreter(code: str) -> dict[str, object]:
    result = subprocess.run(  # this interpreter, fixed code
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        env={
            "PYTHONPATH": str(ROOT / "layers" / "common"),
            "PATH": "/usr/bin:/bin",
            "AWS_DEFAULT_REGION": "eu-west-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_ENDPOINT_URL": "http://127.0.0.1:9",  # nothing is sent
        },
        check=False,
    )
    assert result.returncode == 0, result.stderr
    answer: dict[str, object] = json.loads(result.stdout.splitlines()[-1])
    return answer


def test_the_workers_clients_come_from_one_session_reading_each_model_once() -> None:
    # Given a cold process counting the sessions made and the service models read, when it makes
    # what the worker's first invocation makes: three tables, SQS, EventBridge, KMS, the secrets
    answer = fresh_interpreter(
        """
        import collections, json
        import boto3, botocore.loaders
        sessions, models = [0], collections.Counter()
        made = boto3.session.Session.__init__
        def counted_session(self, *args, **kwargs):
            sessions[0] += 1
            made(self, *args, **kwargs)
        boto3.session.Session.__init__ = counted_session
        read = botocore.loaders.Loader.load_service_model
        def counted_model(self, service_name, type_name, api_version=None):
            models[f"{service_name}/{type_name}"] += 1
            return read(self, service_name, type_name, api_version)
        botocore.loaders.Loader.load_service_model = counted_model
        from sipreg import aws
        tables = [aws.dynamodb_table(name) for name in ("Registrations", "EventLog", "Subscribers")]
        clients = [aws.client(service) for service in ("sqs", "events", "kms")]
        aws.secrets()
        print(json.dumps({
            "sessions": sessions[0],
            "models": models,
            "same_table_again": aws.dynamodb_table("EventLog") is tables[1],
            "same_client_again": aws.client("sqs") is clients[0],
            "one_dynamodb_client": len({id(table.meta.client) for table in tables}),
        }))
        """
    )
    # Then one session made them all, and DynamoDB's model was read once for the three tables
    # (a session per client read it three times, and every model and endpoint file with it)
    assert answer["sessions"] == 1
    models = answer["models"]
    assert isinstance(models, dict)
    assert models["dynamodb/service-2"] == 1
    assert all(count == 1 for count in models.values()), models
    assert answer["same_table_again"] is True and answer["same_client_again"] is True
    assert answer["one_dynamodb_client"] == 1


def test_threads_asking_at_once_get_one_client_and_one_table() -> None:
    # Given a cold process, when 16 threads ask for the same client and table at the same moment
    answer = fresh_interpreter(
        """
        import json, threading
        from sipreg import aws
        start, got, errors = threading.Barrier(16), [], []
        def ask():
            start.wait()
            try:
                got.append((id(aws.client("sqs")), id(aws.dynamodb_table("EventLog"))))
            except Exception as error:
                errors.append(repr(error))
        threads = [threading.Thread(target=ask) for _ in range(16)]
        for thread in threads: thread.start()
        for thread in threads: thread.join()
        print(json.dumps({"distinct": len(set(got)), "asked": len(got), "errors": errors}))
        """
    )
    # Then each got the very same two, and none failed
    assert answer == {"distinct": 1, "asked": 16, "errors": []}


def test_another_principal_in_the_environment_gets_clients_of_its_own() -> None:
    # Given a client made for one principal, when the environment names another (as a test acting
    # as a function's role does), then the next client is made for that one
    answer = fresh_interpreter(
        """
        import json, os
        from sipreg import aws
        first = aws.client("sqs")
        os.environ["AWS_ACCESS_KEY_ID"] = "ASIAOTHERPRINCIPAL"
        second = aws.client("sqs")
        print(json.dumps({
            "same": first is second,
            "keys": [first._request_signer._credentials.access_key,
                     second._request_signer._credentials.access_key],
        }))
        """
    )
    assert answer == {"same": False, "keys": ["testing", "ASIAOTHERPRINCIPAL"]}
