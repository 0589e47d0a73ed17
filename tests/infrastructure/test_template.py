"""Assertions on template.yaml itself: the rules every resource must keep as the template grows.

cfn-lint and checkov run in `make lint`; these catch what they miss (docs/reference/local-tools.md): a `!Ref`
to a missing resource inside a policy, an unknown runtime, a queue that would redeliver while
its function still runs, an unencrypted store, a wildcard in a function's policy.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack.host.template import FUNCTION, Pseudo, Template, load_template
from sipreg.config import RETRY_DELAY_LIMIT_SECONDS

ROOT = Path(__file__).resolve().parents[2]
RAW = load_template(ROOT / "template.yaml")
TEMPLATE = Template(RAW, ROOT, Pseudo(region="eu-west-1", account_id="123456789012", stack_name="sipreg"))
RESOURCES = TEMPLATE.resources
FUNCTIONS = {r.logical_id: r for r in TEMPLATE.of_type(FUNCTION)}
SAM_POLICY_TEMPLATE = re.compile(r"^[A-Za-z0-9]+Policy$")


def of_type(type_: str) -> dict[str, dict[str, Any]]:
    return {r.logical_id: r.properties for r in TEMPLATE.of_type(type_)}


def value_of(value: Any) -> Any:
    """A literal, or the default of the parameter a Ref names (what a deploy with defaults gets)."""
    if isinstance(value, dict) and set(value) == {"Ref"}:
        return TEMPLATE.parameters[value["Ref"]]
    return value


def references(value: Any) -> Iterator[str]:
    """Every logical id or parameter named by Ref, GetAtt or a ${...} of Sub inside `value`."""
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "Ref":
                yield str(inner)
            elif key == "Fn::GetAtt":
                yield (inner.split(".")[0] if isinstance(inner, str) else inner[0])
            elif key == "Fn::Sub":
                text = inner if isinstance(inner, str) else inner[0]
                local = {} if isinstance(inner, str) else inner[1]
                for name in re.findall(r"\$\{([^}!]+)\}", text):
                    if name.split(".")[0] not in local:
                        yield name.split(".")[0]
                yield from references(local)
            else:
                yield from references(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from references(inner)


def test_the_template_has_functions() -> None:
    assert {"OAuthStartFunction", "OAuthCallbackFunction", "EventsApiFunction"} <= set(FUNCTIONS)


def test_every_reference_names_a_resource_parameter_or_pseudo_parameter() -> None:
    known = set(RAW["Resources"]) | set(RAW.get("Parameters", {})) | set(TEMPLATE.pseudo.as_refs())
    # SAM's generated resources (the HTTP API's default stage, a function's execution role).
    known |= {"ApiApiGatewayDefaultStage"}
    known |= {
        f"{logical_id}Role" for logical_id in FUNCTIONS if "Role" not in FUNCTIONS[logical_id].properties
    }
    missing = {
        f"{logical_id}: {name}"
        for logical_id, body in RAW["Resources"].items()
        for name in references(body)
        if name not in known
    }
    assert not missing


@pytest.mark.parametrize("logical_id", sorted(FUNCTIONS))
def test_every_function_runs_python312_with_a_handler_that_exists(logical_id: str) -> None:
    props = FUNCTIONS[logical_id].properties
    assert props["Runtime"] == "python3.12"
    module, _, name = props["Handler"].rpartition(".")
    source = ROOT / props["CodeUri"] / f"{module}.py"
    tree = ast.parse(source.read_text())
    defined = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    assigned = [node.targets for node in tree.body if isinstance(node, ast.Assign)]
    defined |= {target.id for targets in assigned for target in targets if isinstance(target, ast.Name)}
    assert name in defined, f"{source} defines no {name}"


@pytest.mark.parametrize("logical_id", sorted(FUNCTIONS))
def test_every_function_has_a_log_group_with_retention(logical_id: str) -> None:
    groups = [
        props
        for props in of_type("AWS::Logs::LogGroup").values()
        if logical_id in set(references(props.get("LogGroupName")))
    ]
    assert len(groups) == 1, f"{logical_id} needs one AWS::Logs::LogGroup /aws/lambda/<its name>"
    assert int(value_of(groups[0]["RetentionInDays"])) > 0
    assert "KmsKeyId" in groups[0]


@pytest.mark.parametrize("logical_id", sorted(FUNCTIONS))
def test_queues_outlast_their_functions(logical_id: str) -> None:
    """A queue's visibility timeout is at least 6x its function's timeout (AWS's own advice)."""
    props = FUNCTIONS[logical_id].properties
    for event in props.get("Events", {}).values():
        if event["Type"] != "SQS":
            continue
        queue_id = next(references(event["Properties"]["Queue"]))
        queue = RESOURCES[queue_id].properties
        assert int(value_of(queue["VisibilityTimeout"])) >= 6 * int(value_of(props["Timeout"])), queue_id
        assert "ReportBatchItemFailures" in event["Properties"].get("FunctionResponseTypes", [])
        assert "RedrivePolicy" in queue


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def inline_statements(props: dict[str, Any]) -> Iterator[dict[str, Any]]:
    policies = props.get("Policies", [])
    for policy in policies if isinstance(policies, list) else [policies]:
        if isinstance(policy, dict) and "Statement" in policy:
            yield from policy["Statement"]


@pytest.mark.parametrize("logical_id", sorted(FUNCTIONS))
def test_no_function_policy_grants_a_wildcard(logical_id: str) -> None:
    props = FUNCTIONS[logical_id].properties
    policies = props.get("Policies", [])
    for policy in policies if isinstance(policies, list) else [policies]:
        # Managed policies by name would hide what they grant; only SAM templates and statements.
        assert isinstance(policy, dict), f"{logical_id}: managed policy {policy!r}"
        if "Statement" not in policy:
            [(name, _args)] = policy.items()
            assert SAM_POLICY_TEMPLATE.match(name), name
    for statement in inline_statements(props):
        assert all(isinstance(r, dict) or "*" not in r for r in as_list(statement["Resource"])), statement
        assert all(not a.endswith(":*") and a != "*" for a in as_list(statement["Action"])), statement


@pytest.mark.parametrize("logical_id", sorted(of_type("AWS::DynamoDB::Table")))
def test_every_table_is_encrypted_with_the_stack_key_and_billed_on_demand(logical_id: str) -> None:
    props = of_type("AWS::DynamoDB::Table")[logical_id]
    assert props["SSESpecification"]["SSEEnabled"] is True
    assert props["SSESpecification"]["SSEType"] == "KMS"
    assert list(references(props["SSESpecification"]["KMSMasterKeyId"])) == ["DataKey"]
    assert props["BillingMode"] == "PAY_PER_REQUEST"


@pytest.mark.parametrize("logical_id", sorted(of_type("AWS::SQS::Queue")))
def test_every_queue_is_encrypted_with_the_stack_key(logical_id: str) -> None:
    assert list(references(of_type("AWS::SQS::Queue")[logical_id]["KmsMasterKeyId"])) == ["DataKey"]


@pytest.mark.parametrize("logical_id", sorted(of_type("AWS::SecretsManager::Secret")))
def test_every_secret_is_encrypted_with_the_stack_key(logical_id: str) -> None:
    assert list(references(of_type("AWS::SecretsManager::Secret")[logical_id]["KmsKeyId"])) == ["DataKey"]


def test_the_data_key_rotates() -> None:
    assert RESOURCES["DataKey"].properties["EnableKeyRotation"] is True


def test_every_dead_letter_queue_has_an_alarm() -> None:
    dead_letter_ids = {
        next(references(props["RedrivePolicy"]["deadLetterTargetArn"]))
        for props in of_type("AWS::SQS::Queue").values()
        if "RedrivePolicy" in props
    }
    alarmed = {
        name
        for props in of_type("AWS::CloudWatch::Alarm").values()
        for dimension in props.get("Dimensions", [])
        for name in references(dimension["Value"])
    }
    assert dead_letter_ids
    assert dead_letter_ids <= alarmed


def test_outputs_name_the_api_the_callback_and_the_queue() -> None:
    outputs = RAW["Outputs"]
    assert {"ApiUrl", "CallbackUrl", "EventsQueueUrl", "OperatorPolicyArn"} <= set(outputs)
    condition, custom, generated = outputs["CallbackUrl"]["Value"]["Fn::If"]
    assert condition == "HasApiDomain"
    assert custom["Fn::Sub"] == "https://${ApiDomainName}/oauth/callback"
    assert generated["Fn::Sub"].endswith("/oauth/callback")


def alarmed_metrics() -> set[tuple[str, str | None]]:
    """(metric name, resource its dimension names, if any) of every alarm, metric math included."""
    found: set[tuple[str, str | None]] = set()
    for props in of_type("AWS::CloudWatch::Alarm").values():
        stats = [m["MetricStat"]["Metric"] for m in props.get("Metrics", []) if "MetricStat" in m]
        stats += [props] if "MetricName" in props else []
        for stat in stats:
            found.add((stat["MetricName"], None))
            for dimension in stat.get("Dimensions", []):
                found |= {(stat["MetricName"], name) for name in references(dimension["Value"])}
    return found


def test_the_worker_and_the_refresher_have_alarms() -> None:
    alarmed = alarmed_metrics()
    assert ("Errors", "RegistrationWorkerFunction") in alarmed
    assert ("Invocations", "RefresherFunction") in alarmed  # silence is a failure too
    assert ("Errors", "RefresherFunction") in alarmed
    assert ("OverdueRegistrations", None) in alarmed
    assert ("Events_from_outside", None) in alarmed  # a producer sending what only sipreg may


def emitted_metrics() -> set[str]:
    """Every metric name sipreg's code emits (metrics.add_metric, telemetry count/observe,
    the worker's Events_<outcome> and the API's Refused_<error kind>)."""
    from sipreg.api import problems  # noqa: PLC0415  # the refusals' error classes
    from sipreg.events import InvalidEventsError  # noqa: PLC0415
    from sipreg.store.event_log import Outcome  # noqa: PLC0415
    from sipreg.worker.batch import FROM_OUTSIDE, NOT_STARTED  # noqa: PLC0415

    names: set[str] = {f"Events_{outcome}" for outcome in [*Outcome, NOT_STARTED, FROM_OUTSIDE]}
    refusals: list[type[Exception]] = [problems.ApiError]
    kinds: list[type[Exception]] = [InvalidEventsError]
    while refusals:  # every subclass, however deep (NotAuthenticatedError is an UnauthenticatedError)
        kinds += (below := refusals.pop().__subclasses__())
        refusals += below
    names |= {f"Refused_{cls.__name__.removesuffix('Error')}" for cls in kinds}
    for path in [*(ROOT / "functions").rglob("*.py"), *(ROOT / "layers/common/sipreg").rglob("*.py")]:
        text = path.read_text()
        names |= set(re.findall(r"""add_metric\(\s*name=["']([A-Za-z_]+)["']""", text))
        names |= set(re.findall(r"""(?:count|observe)\(\s*["']([A-Za-z_]+)["']""", text))
        names |= set(re.findall(r"""["']([A-Z][A-Za-z]+)["']\s+if\s""", text))  # name = "X" if ... else "Y"
        names |= set(re.findall(r"""else\s+["']([A-Z][A-Za-z]+)["']""", text))
    return names


def test_the_dashboard_shows_only_metrics_sipreg_emits_and_the_queues_it_has() -> None:
    import json  # noqa: PLC0415

    [dashboard] = of_type("AWS::CloudWatch::Dashboard").values()
    body = dashboard["DashboardBody"]["Fn::Sub"]
    referenced = set(re.findall(r"\$\{([A-Za-z0-9]+)(?:\.[A-Za-z]+)?\}", body)) - {"AWS"}
    assert referenced <= set(RESOURCES), referenced - set(RESOURCES)
    widgets = json.loads(re.sub(r"\$\{[^}]+\}", "x", body))["widgets"]
    shown = {
        metric[1] for widget in widgets for metric in widget["properties"]["metrics"] if metric[0] == "sipreg"
    }
    assert shown, "the dashboard shows none of sipreg's metrics"
    assert shown <= emitted_metrics(), shown - emitted_metrics()


# --- fit for production ----------------------------------------------------------------------------

STATEFUL = ("AWS::KMS::Key", "AWS::DynamoDB::Table", "AWS::SecretsManager::Secret", "AWS::SQS::Queue")


@pytest.mark.parametrize(
    "logical_id", sorted(i for i, body in RAW["Resources"].items() if body["Type"] in STATEFUL)
)
def test_a_stack_delete_or_a_replacing_update_keeps_every_key_table_secret_and_queue(logical_id: str) -> None:
    body = RAW["Resources"][logical_id]
    assert (body.get("DeletionPolicy"), body.get("UpdateReplacePolicy")) == ("Retain", "Retain")


def test_the_http_api_is_explicit_throttled_logged_and_every_route_is_on_it() -> None:
    (api_id,) = of_type("AWS::Serverless::HttpApi")
    api = of_type("AWS::Serverless::HttpApi")[api_id]
    assert api["Auth"] == {"EnableIamAuthorizer": True}
    routes = api["DefaultRouteSettings"]
    assert value_of(routes["ThrottlingRateLimit"]) and value_of(routes["ThrottlingBurstLimit"])
    logs = api["AccessLogSettings"]
    assert logs["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogs", "Arn"]}
    assert "$context.requestId" in logs["Format"] and "$context.identity.userArn" in logs["Format"]
    assert of_type("AWS::Logs::LogGroup")["ApiAccessLogs"]["KmsKeyId"] == {"Fn::GetAtt": ["DataKey", "Arn"]}
    for logical_id, function in FUNCTIONS.items():
        for event in (function.properties.get("Events") or {}).values():
            if event["Type"] == "HttpApi":
                assert event["Properties"].get("ApiId") == {"Ref": api_id}, logical_id


def test_a_custom_domain_is_optional_and_maps_the_api() -> None:
    assert TEMPLATE.parameters["ApiDomainName"] == ""
    for logical_id in ("ApiDomain", "ApiDomainMapping"):
        assert RAW["Resources"][logical_id]["Condition"] == "HasApiDomain"
    assert RAW["Resources"]["ApiDomainRecord"]["Condition"] == "HasApiHostedZone"
    assert not TEMPLATE.condition("HasApiDomain")  # the default deploy has none
    mapping = RAW["Resources"]["ApiDomainMapping"]["Properties"]
    assert mapping["ApiId"] == {"Ref": "Api"}


def test_operators_and_producers_have_policies_of_their_own() -> None:
    policies = of_type("AWS::IAM::ManagedPolicy")
    operator, producer = (
        {a for s in policies[name]["PolicyDocument"]["Statement"] for a in _list(s["Action"])}
        for name in ("OperatorPolicy", "ProducerPolicy")
    )
    assert "execute-api:Invoke" in operator
    assert "execute-api:Invoke" not in producer and "sqs:SendMessage" in producer


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_the_layer_build_reads_only_its_own_folder_so_sams_cache_sees_every_pin() -> None:
    # sam build (cached = true) rebuilds a layer when its ContentUri folder's hash changes: every
    # file the layer's build reads must be in there, the transitive pins included.
    makefile = (ROOT / "layers" / "common" / "Makefile").read_text()
    assert "../" not in makefile
    assert '-c "$(HERE)constraints.txt"' in makefile
    layer = dict(_pins(ROOT / "layers" / "common" / "constraints.txt"))
    root = dict(_pins(ROOT / "constraints.txt"))
    assert layer, "the layer has no pins of its own"
    assert {name: pin for name, pin in layer.items() if root.get(name) != pin} == {}
    wanted = {name for name, _ in _pins(ROOT / "layers" / "common" / "requirements.txt")}
    assert wanted <= set(layer)


def _pins(path: Path) -> list[tuple[str, str]]:
    found = []
    for line in path.read_text().splitlines():
        text = line.split("#", 1)[0].strip()
        if "==" in text:
            name, pin = text.split("==", 1)
            found.append((re.sub(r"[-_.]+", "-", name.split("[")[0]).lower(), pin))
    return found


def period_seconds(schedule: str) -> int:
    number, unit = re.fullmatch(r"rate\((\d+) (minutes?|hours?)\)", schedule).groups()  # type: ignore[union-attr]
    return int(number) * (60 if unit.startswith("minute") else 3600)


def test_the_defaults_keep_a_million_registrations_alive() -> None:
    # A registration is refreshed once it expires within the margin, seen once a period: on average
    # every (TTL - margin + period / 2) seconds; the core's TTL is 3600 s.
    margin = int(str(TEMPLATE.parameters["RefreshMarginSeconds"]))
    period = period_seconds(str(TEMPLATE.parameters["RefreshSchedule"]))
    registrations = 1_000_000
    per_run = registrations * period / (3600 - margin + period / 2)
    per_second = per_run / period
    # The refresher may enqueue that many per run, with room for a backlog ...
    refresher = FUNCTIONS["RefresherFunction"].properties
    assert int(value_of(refresher["Environment"]["Variables"]["REFRESH_MAX_ITEMS"])) >= 1.5 * per_run
    # ... and ends before the next run starts
    assert refresher["Timeout"] <= period
    # ... and the worker's instances apply them (one applied 25 events/s at 50 ms core latency in
    # the slowest make bench run here)
    [source] = FUNCTIONS["RegistrationWorkerFunction"].properties["Events"].values()
    concurrency = int(value_of(source["Properties"]["ScalingConfig"]["MaximumConcurrency"]))
    assert concurrency * 25 >= 2 * per_second


def test_the_worker_takes_internal_events_from_exactly_the_functions_that_send_to_its_queue() -> None:
    # Every function that may send to the events queue sends sipreg's internal event types (the
    # refresher, the consent callback, the operator routes, the health check); a new one would
    # have its events refused until its role is named here, a dropped one would stay trusted.
    def sends_to_the_events_queue(properties: dict[str, Any]) -> bool:
        return any(
            isinstance(policy, dict)
            and policy.get("SQSSendMessagePolicy", {}).get("QueueName")
            == {"Fn::GetAtt": ["EventsQueue", "QueueName"]}
            for policy in properties.get("Policies", [])
        )

    senders = {
        f"{logical_id}Role" for logical_id, r in FUNCTIONS.items() if sends_to_the_events_queue(r.properties)
    }
    variables = FUNCTIONS["RegistrationWorkerFunction"].properties["Environment"]["Variables"]
    trusted = set(references(variables["SIPREG_ROLE_IDS"]))
    assert senders == trusted
    assert len(senders) == 4


def test_redrive_is_given_the_roles_of_every_function_that_puts_events_on_the_queue_or_its_dlq() -> None:
    # `sipreg redrive --sipreg-role-ids` vouches for an internal event without a log item by the
    # sender the DLQ names: the queue's senders, or the worker (its own dead-letter moves).
    variables = FUNCTIONS["RegistrationWorkerFunction"].properties["Environment"]["Variables"]
    queue_senders = set(references(variables["SIPREG_ROLE_IDS"]))
    dlq_senders = {
        f"{logical_id}Role"
        for logical_id, r in FUNCTIONS.items()
        if any(
            isinstance(policy, dict)
            and policy.get("SQSSendMessagePolicy", {}).get("QueueName")
            == {"Fn::GetAtt": ["EventsDeadLetterQueue", "QueueName"]}
            for policy in r.properties.get("Policies", [])
        )
    }
    assert dlq_senders == {"RegistrationWorkerFunctionRole"}
    assert set(references(RAW["Outputs"]["SipregRoleIds"]["Value"])) == queue_senders | dlq_senders


def test_a_retry_delay_the_template_allows_is_one_sqs_takes_and_the_worker_accepts() -> None:
    # SQS keeps a message in flight at most 12 h from its receive; the worker sets the delay at
    # the end of an invocation (Lambda's longest: 900 s), so both bounds are 12 h less that.
    assert RETRY_DELAY_LIMIT_SECONDS == 43_200 - 900
    for name in ("RetryBaseSeconds", "RetryMaxSeconds"):
        assert RAW["Parameters"][name]["MaxValue"] == RETRY_DELAY_LIMIT_SECONDS, name
