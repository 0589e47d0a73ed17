"""The local host runs what template.yaml uses and refuses anything else when a template is
loaded, naming its place, rather than leaving a function quietly untriggered."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack.host.resources import Stack
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
            "      ReservedConcurrentExecutions: 2",
            r"Resources.Fn.Properties.ReservedConcurrentExecutions is not supported",
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
