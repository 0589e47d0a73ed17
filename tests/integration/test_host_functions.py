"""The local host provisions the template's resources in moto server and runs each function with
the environment and context Lambda would give it."""

from __future__ import annotations

import json
import re
import string
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from devstack.host import InvocationError, InvocationTimeoutError, LocalHost, invoker
from tests.support.host import client, start_host, wait_until

SECRET = "local-webhook-secret"


@pytest.fixture(scope="module")
def host(aws_endpoint: str) -> Iterator[LocalHost]:
    host = start_host(
        aws_endpoint,
        parameter_overrides={"Greeting": "hi"},
        env_overrides={"EXTRA": "everywhere"},
        function_env_overrides={"ProbeFunction": {"ONLY_PROBE": "yes"}},
        secret_values={"WebhookSecret": SECRET},
    )
    yield host
    host.stop()


@pytest.fixture(scope="module")
def probe(host: LocalHost) -> dict[str, Any]:
    answer: dict[str, Any] = host.invoke("ProbeFunction", {})
    return answer


def test_function_sees_its_resources_by_their_local_names(
    host: LocalHost, probe: dict[str, Any], aws_account: str
) -> None:
    env, resources = probe["env"], host.resources
    assert env["TABLE_NAME"] == resources["RecordTable"]["Ref"]
    assert env["TABLE_ARN"] == resources["RecordTable"]["Arn"]
    assert env["QUEUE_URL"] == resources["WorkQueue"]["QueueUrl"]
    assert env["QUEUE_ARN"] == resources["WorkQueue"]["Arn"]
    assert env["QUEUE_NAME"].endswith(".fifo")
    assert env["KEY_ID"] == resources["DataKey"]["KeyId"]
    assert env["KEY_ARN"] == resources["DataKey"]["Arn"]
    assert env["KEY_ALIAS"] == f"alias/{host.stack_name}-data"
    assert env["SECRET_ARN"] == resources["WebhookSecret"]["Ref"]
    assert env["BUS_NAME"] == f"{host.stack_name}-bus"
    assert env["BUS_ARN"] == resources["Bus"]["Arn"]
    assert env["PEER_FUNCTION"] == resources["EchoFunction"]["Ref"]
    assert env["ALARM_NAME"] == resources["DlqAlarm"]["Ref"]
    assert env["LAYER_ARN"] == resources["SharedLayer"]["Ref"]
    assert env["LAYER_ARN"].startswith(f"arn:aws:lambda:eu-west-1:{aws_account}:layer:")
    # Names CloudFormation would generate: <stack>-<LogicalId>-<suffix>
    assert re.fullmatch(rf"{host.stack_name}-RecordTable-[A-Z0-9]{{12}}", env["TABLE_NAME"])


def test_intrinsics_parameters_and_globals_shape_the_environment(probe: dict[str, Any]) -> None:
    env = probe["env"]
    assert env["GREETING"] == "overridden-by-function"  # the function's variable beats Globals'
    assert env["STAGE"] == "dev"  # from Globals
    assert env["MODE"] == "development"
    assert env["DEV_ONLY"] == "yes"
    assert env["SUB_LIST"] == "hi-eu-west-1"  # the overridden parameter
    assert env["LITERAL"].startswith("${NotAVariable}-")
    assert env["EXTRA"] == "everywhere"
    assert env["ONLY_PROBE"] == "yes"


def test_api_urls_in_the_environment_point_at_the_local_api(host: LocalHost, probe: dict[str, Any]) -> None:
    assert probe["env"]["CALLBACK_URL"] == f"{host.api_url}/oauth/callback"


def test_outputs_resolve_to_the_local_stack(host: LocalHost) -> None:
    assert host.outputs == {
        "CallbackUrl": f"{host.api_url}/oauth/callback",
        "QueueUrl": host.resources["WorkQueue"]["QueueUrl"],
    }


def test_function_gets_the_lambda_runtime_variables(
    host: LocalHost, aws_endpoint: str, probe: dict[str, Any]
) -> None:
    env = probe["env"]
    name = host.resources["ProbeFunction"]["Ref"]
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == name
    assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "192"
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "eu-west-1"
    assert env["_HANDLER"] == "app.handler"
    assert env["AWS_LAMBDA_LOG_GROUP_NAME"] == f"/aws/lambda/{name}"
    assert env["AWS_ENDPOINT_URL"] == aws_endpoint
    assert env["_X_AMZN_TRACE_ID"].startswith("Root=1-")
    assert probe["cwd"] == env["LAMBDA_TASK_ROOT"]
    # Another function's variables are not this one's
    assert "TABLE_NAME" not in host.functions["EchoFunction"].env


def test_context_is_lambdas(host: LocalHost, probe: dict[str, Any]) -> None:
    context = probe["context"]
    assert context["function_name"] == host.resources["ProbeFunction"]["Ref"]
    assert context["function_version"] == "$LATEST"
    assert context["invoked_function_arn"] == host.resources["ProbeFunction"]["Arn"]
    assert context["memory_limit_in_mb"] == "192"
    assert re.fullmatch(r"[0-9a-f-]{36}", context["aws_request_id"])
    assert context["log_group_name"] == f"/aws/lambda/{context['function_name']}"
    assert context["log_stream_name"].endswith(probe["env"]["AWS_LAMBDA_LOG_STREAM_NAME"][-32:])


def test_remaining_time_counts_down_from_the_function_timeout(host: LocalHost) -> None:
    # Given ProbeFunction's Timeout of 2 s
    # When it asks at once, Then nearly 2 s are left
    assert 1500 < host.invoke("ProbeFunction", {})["remaining_ms"] <= 2000
    # When it asks after sleeping 0.5 s, Then at most 1.5 s are left
    assert 0 < host.invoke("ProbeFunction", {"sleep": 0.5})["remaining_ms"] <= 1500


def test_function_uses_its_table_and_queue_through_moto(host: LocalHost, aws_endpoint: str) -> None:
    host.invoke("ProbeFunction", {"write": "marker-1"})
    item = client(aws_endpoint, "dynamodb").get_item(
        TableName=host.resources["RecordTable"]["Ref"], Key={"pk": {"S": "probe"}, "sk": {"S": "marker-1"}}
    )
    assert item["Item"]["kind"] == {"S": "probe"}


def test_warm_invocations_reuse_the_sandbox(host: LocalHost) -> None:
    first = host.invoke("ProbeFunction", {})
    second = host.invoke("ProbeFunction", {})
    assert second["pid"] == first["pid"]
    assert second["invocations"] == first["invocations"] + 1


def test_timeout_is_reported_and_the_next_invocation_starts_cold(host: LocalHost) -> None:
    before = host.invoke("ProbeFunction", {})
    with pytest.raises(InvocationTimeoutError) as caught:
        host.invoke("ProbeFunction", {"sleep": 5})
    assert caught.value.error_type == "Sandbox.Timedout"
    assert "Task timed out after 2.00 seconds" in str(caught.value)
    after = host.invoke("ProbeFunction", {})
    assert after["pid"] != before["pid"]
    assert after["invocations"] == 1


def test_handler_error_is_raised_with_its_type_and_message(host: LocalHost) -> None:
    with pytest.raises(InvocationError) as caught:
        host.invoke("ProbeFunction", {"raise": "bad input"})
    assert caught.value.error_type == "ValueError"
    assert caught.value.error_message == "bad input"
    # And the sandbox stays warm
    assert host.invoke("ProbeFunction", {})["invocations"] > 1


def test_an_answer_past_6_mb_fails_the_invocation_as_lambdas_does(host: LocalHost) -> None:
    limit = invoker.MAX_PAYLOAD_BYTES
    assert len(host.invoke("ProbeFunction", {"answer_bytes": limit})["padding"]) == limit - 14
    with pytest.raises(InvocationError) as caught:
        host.invoke("ProbeFunction", {"answer_bytes": limit + 1})
    assert caught.value.error_type == "Function.ResponseSizeTooLarge"
    assert f"({limit + 1} bytes) exceeded maximum allowed payload size" in caught.value.error_message


def test_a_request_past_6_mb_is_refused_before_it_reaches_the_function(host: LocalHost) -> None:
    before = host.invoke("ProbeFunction", {})["invocations"]
    with pytest.raises(InvocationError) as caught:
        host.invoke("ProbeFunction", {"padding": "x" * invoker.MAX_PAYLOAD_BYTES})
    assert caught.value.error_type == "RequestEntityTooLargeException"
    assert host.invoke("ProbeFunction", {})["invocations"] == before + 1  # never ran


def test_crashed_sandbox_is_reported_and_replaced(host: LocalHost) -> None:
    with pytest.raises(InvocationError) as caught:
        host.invoke("ProbeFunction", {"exit": True})
    assert caught.value.error_type == "Runtime.ExitError"
    assert host.invoke("ProbeFunction", {})["invocations"] == 1


def test_a_sandbox_lost_mid_invocation_fails_that_invocation_and_the_next_starts_cold(
    host: LocalHost,
) -> None:
    # Given an invocation under way
    with ThreadPoolExecutor(max_workers=1) as pool:
        running = pool.submit(host.invoke, "ProbeFunction", {"sleep": 1.5})
        wait_until(lambda: host.runtimes["ProbeFunction"].kill_busy() or None, timeout=5)
        # When its execution environment is killed, Then it fails as a crash
        with pytest.raises(InvocationError) as caught:
            running.result(timeout=5)
    assert caught.value.error_type == "Runtime.ExitError"
    assert host.invoke("ProbeFunction", {})["invocations"] == 1
    # And with nothing busy, there is nothing to kill
    assert host.runtimes["ProbeFunction"].kill_busy() is False


def test_invocations_run_side_by_side_unless_the_function_reserves_fewer(host: LocalHost) -> None:
    def two_at_once(function: str) -> set[int]:
        with ThreadPoolExecutor(max_workers=2) as pool:
            answers = list(pool.map(lambda _: host.invoke(function, {"sleep": 0.3}), range(2)))
        return {answer["pid"] for answer in answers}

    # ProbeFunction reserves no concurrency: as in Lambda, a second invocation gets an execution
    # environment of its own and runs beside the first
    assert len(two_at_once("ProbeFunction")) == 2
    # SerialFunction reserves one: the second invocation waits for the one environment
    assert len(two_at_once("SerialFunction")) == 1
    # ThrottledFunction reserves none at all: Lambda throttles every invocation
    with pytest.raises(InvocationError) as caught:
        host.invoke("ThrottledFunction", {})
    assert caught.value.error_type == "TooManyRequestsException"


def test_unknown_function_is_named_in_the_error(host: LocalHost) -> None:
    with pytest.raises(KeyError, match="NoSuchFunction"):
        host.invoke("NoSuchFunction", {})


def test_table_is_created_with_keys_indexes_ttl_and_encryption(host: LocalHost, aws_endpoint: str) -> None:
    dynamodb = client(aws_endpoint, "dynamodb")
    name = host.resources["RecordTable"]["Ref"]
    table = dynamodb.describe_table(TableName=name)["Table"]
    assert {k["AttributeName"]: k["KeyType"] for k in table["KeySchema"]} == {"pk": "HASH", "sk": "RANGE"}
    assert [i["IndexName"] for i in table["GlobalSecondaryIndexes"]] == ["ByKind"]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert table["SSEDescription"]["Status"] == "ENABLED"
    ttl = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires"}


def test_condition_false_resource_is_not_created(host: LocalHost) -> None:
    assert "ProdOnlyTable" not in host.resources


def test_queues_are_created_with_fifo_and_redrive(host: LocalHost, aws_endpoint: str) -> None:
    sqs = client(aws_endpoint, "sqs")
    attributes = sqs.get_queue_attributes(
        QueueUrl=host.resources["WorkQueue"]["QueueUrl"], AttributeNames=["All"]
    )["Attributes"]
    assert attributes["FifoQueue"] == "true"
    assert attributes["ContentBasedDeduplication"] == "true"
    assert attributes["VisibilityTimeout"] == "1"
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == host.resources["WorkDlq"]["Arn"]
    assert int(redrive["maxReceiveCount"]) == 2


def secret_string(host: LocalHost, endpoint: str, logical_id: str) -> str:
    """What a secret of the template was seeded with, read back from the endpoint."""
    arn = host.resources[logical_id]["Ref"]
    return str(client(endpoint, "secretsmanager").get_secret_value(SecretId=arn)["SecretString"])


def test_a_secret_is_seeded_with_the_value_given_to_the_host(host: LocalHost, aws_endpoint: str) -> None:
    assert secret_string(host, aws_endpoint, "WebhookSecret") == SECRET


def test_generated_secret_follows_its_template(aws_endpoint: str) -> None:
    host = start_host(aws_endpoint)
    try:
        value = secret_string(host, aws_endpoint, "WebhookSecret")
    finally:
        host.stop()
    assert len(value) == 40
    assert set(value) <= set(string.ascii_letters + string.digits)


def test_key_alias_and_event_bus_exist(host: LocalHost, aws_endpoint: str) -> None:
    kms = client(aws_endpoint, "kms")
    key = kms.describe_key(KeyId=f"alias/{host.stack_name}-data")["KeyMetadata"]
    assert key["KeyId"] == host.resources["DataKey"]["KeyId"]
    assert kms.get_key_rotation_status(KeyId=key["KeyId"])["KeyRotationEnabled"] is True
    bus = client(aws_endpoint, "events").describe_event_bus(Name=f"{host.stack_name}-bus")
    assert bus["Arn"] == host.resources["Bus"]["Arn"]
