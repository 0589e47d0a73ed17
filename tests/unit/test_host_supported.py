"""The local host runs what template.yaml uses and refuses anything else when a template is
loaded, naming its place, rather than leaving a function quietly untriggered."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack.host.resources import CREATED_PROPERTIES, Stack
from devstack.host.supported import check_supported
from devstack.host.template import Pseudo, Template, TemplateError, load_template

ROOT = Path(__file__).resolve().parents[2]
PSEUDO = Pseudo(region="eu-west-1", account_id="123456789012", stack_name="demo")
DOMAIN = {
    "ApiDomainName": "api.example.com",
    "ApiCertificateArn": "arn:aws:acm:eu-west-1:123456789012:certificate/x",
    "ApiHostedZoneId": "Z123",
}


def check(path: Path, overrides: dict[str, str] | None = None) -> None:
    template = Template(load_template(path), path.parent, PSEUDO, overrides)
    check_supported(Stack(template, None, {}))  # type: ignore[arg-type]  # no endpoint: nothing is created


@pytest.mark.parametrize("overrides", [{}, DOMAIN], ids=["default", "custom-domain"])
def test_everything_template_yaml_uses_is_supported(overrides: dict[str, str]) -> None:
    check(ROOT / "template.yaml", overrides)


FUNCTION = """
Resources:
  Queue:
    Type: AWS::SQS::Queue
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: .
      Handler: app.handler
      Runtime: python3.12
{extra}
"""


@pytest.mark.parametrize(
    ("extra", "refused"),
    [
        (
            "      ProvisionedConcurrencyConfig: {ProvisionedConcurrentExecutions: 2}",
            r"Resources.Fn.Properties.ProvisionedConcurrencyConfig is not supported",
        ),
        (
            "      InlineCode: 'def handler(e, c): pass'",
            r"Resources.Fn.Properties.InlineCode is not supported",
        ),
        (
            "      Events: {Nightly: {Type: ScheduleV2, Properties: {ScheduleExpression: rate(1 day)}}}",
            r"Resources.Fn.Properties.Events.Nightly: event type 'ScheduleV2' is not supported",
        ),
        (
            "      Events: {Changes: {Type: DynamoDB, Properties: {Stream: arn}}}",
            r"Events.Changes: event type 'DynamoDB' is not supported .*a source module",
        ),
        (
            "      Events: {Q: {Type: SQS, Properties: {Queue: !GetAtt Queue.Arn, FilterCriteria: {}}}}",
            r"Resources.Fn.Properties.Events.Q.Properties.FilterCriteria is not supported .*the SQS source",
        ),
        (
            "      Events: {Q: {Type: SQS, Properties: {Queue: !GetAtt Queue.Arn, Enabled: false}}}",
            r"Events.Q.Properties.Enabled is not supported",
        ),
        (
            "      Events: {Q: {Type: SQS, Properties: {Queue: x, MaximumBatchingWindowInSeconds: 1}}}",
            r"Events.Q.Properties.MaximumBatchingWindowInSeconds is not supported",
        ),
        (
            "      Events: {T: {Type: Schedule, Properties: {Schedule: rate(1 day), Input: '{}'}}}",
            r"Events.T.Properties.Input is not supported .*the Schedule source",
        ),
        (
            "      Events: {R: {Type: HttpApi, Properties: {Path: /x, Method: GET, TimeoutInMillis: 1}}}",
            r"Events.R.Properties.TimeoutInMillis is not supported",
        ),
        (
            "      Events: {R: {Type: HttpApi, Properties: {Path: /x, Method: GET}}}",
            r"Events.R.Properties.ApiId: required",  # SAM's implicit API: template.yaml names its own
        ),
        (
            "      Events: {R: {Type: HttpApi, Properties: {ApiId: x, Path: /x, Method: ANY}}}",
            r"Events.R: Method ANY is not supported .*http_api.py",
        ),
        (
            "      Events: {R: {Type: HttpApi, Properties: {ApiId: x, Path: '/f/{proxy+}', Method: GET}}}",
            r"Events.R: the greedy path variable of /f/\{proxy\+\} is not supported",
        ),
        (
            "      Events: {R: {Type: HttpApi, Properties: {ApiId: x, Path: $default, Method: GET}}}",
            r"Events.R: the \$default route is not supported",
        ),
        (
            "      Policies: [arn:aws:iam::aws:policy/ReadOnlyAccess]",
            r"Resources.Fn.Properties.Policies: a managed policy, or Policies not a list is not supported",
        ),
        (
            "      Role: arn:aws:iam::123456789012:role/mine",
            r"Resources.Fn.Properties.Role is not supported",
        ),
    ],
)
def test_function_feature_the_host_does_not_run_is_refused_by_name(
    tmp_path: Path, extra: str, refused: str
) -> None:
    path = tmp_path / "template.yaml"
    path.write_text(FUNCTION.format(extra=extra))
    with pytest.raises(TemplateError, match=refused):
        check(path)


@pytest.mark.parametrize(
    "resource_type",
    [
        "AWS::Events::Rule",
        "AWS::Scheduler::Schedule",
        "AWS::Lambda::EventSourceMapping",
        "AWS::Serverless::SimpleTable",
        "AWS::SNS::Subscription",
    ],
)
def test_resource_type_the_host_does_not_run_is_refused_by_name(tmp_path: Path, resource_type: str) -> None:
    path = tmp_path / "template.yaml"
    path.write_text(f"Resources:\n  Extra:\n    Type: {resource_type}\n")
    with pytest.raises(
        TemplateError, match=rf"Resources.Extra: resource type {resource_type} is not supported"
    ):
        check(path)


def test_http_api_property_the_host_does_not_apply_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "template.yaml"
    api = "  Api:\n    Type: AWS::Serverless::HttpApi\n    Properties: {StageName: v1}\n"
    path.write_text(f"Resources:\n{api}")
    with pytest.raises(TemplateError, match=r"Resources.Api.Properties.StageName is not supported"):
        check(path)


@pytest.mark.parametrize(
    ("resource", "refused"),
    [
        ("Type: AWS::SQS::Queue\n    DependsOn: Other", r"Resources.Extra.DependsOn is not supported"),
        ("Type: AWS::SQS::Queue\n    Properties: {QueueName: mine}", r"Extra.Properties.QueueName is not"),
        ("Type: AWS::SQS::Queue\n    Properties: {DelaySeconds: 5}", r"Extra.Properties.DelaySeconds is not"),
        ("Type: AWS::DynamoDB::Table\n    Properties: {TableName: t}", r"Extra.Properties.TableName is not"),
        (
            "Type: AWS::DynamoDB::Table\n    Properties: {StreamSpecification: {}}",
            r"Extra.Properties.StreamSpecification is not supported .*resources.py",
        ),
        ("Type: AWS::KMS::Key\n    Properties: {Tags: []}", r"Extra.Properties.Tags is not supported"),
        (
            "Type: AWS::SecretsManager::Secret\n    Properties: {SecretString: x}",
            r"Extra.Properties.SecretString is not supported",
        ),
        (
            "Type: AWS::SecretsManager::Secret\n    Properties: {GenerateSecretString: {IncludeSpace: true}}",
            r"Extra.Properties.GenerateSecretString.IncludeSpace is not supported",
        ),
        (
            "Type: AWS::IAM::ManagedPolicy\n    Properties: {ManagedPolicyName: p, PolicyDocument: {}}",
            r"Extra.Properties.ManagedPolicyName is not supported",
        ),
    ],
)
def test_resource_attribute_or_property_the_host_does_not_apply_is_refused_by_name(
    tmp_path: Path, resource: str, refused: str
) -> None:
    path = tmp_path / "template.yaml"
    path.write_text(f"Resources:\n  Extra:\n    {resource}\n")
    with pytest.raises(TemplateError, match=refused):
        check(path)


def test_an_output_with_a_condition_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "template.yaml"
    path.write_text("Resources: {}\nOutputs:\n  Url: {Condition: C, Value: x}\n")
    with pytest.raises(TemplateError, match=r"Outputs.Url.Condition is not supported"):
        check(path)


def test_each_created_type_has_the_properties_its_creator_applies() -> None:
    stack = Stack(Template({"Resources": {}}, ROOT, PSEUDO), None, {})  # type: ignore[arg-type]
    assert stack.created_types == set(CREATED_PROPERTIES)
