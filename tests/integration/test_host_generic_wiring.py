"""A function, queue, schedule and route added to a template are wired by the host with no change
to the host: names are made up here, per run, so nothing in the host can know them."""

from __future__ import annotations

import json
from pathlib import Path
from uuid import uuid4

import httpx
import pytest

from devstack.host import TemplateError
from tests.support.host import FIXTURES, client, items, start_host, wait_until

TEMPLATE = """
Transform: AWS::Serverless-2016-10-31
Globals:
  Function:
    Runtime: python3.12
    Timeout: 3
Resources:
  {table}:
    Type: AWS::DynamoDB::Table
    Properties:
      BillingMode: PAY_PER_REQUEST
      AttributeDefinitions:
        - {{AttributeName: pk, AttributeType: S}}
        - {{AttributeName: sk, AttributeType: S}}
      KeySchema:
        - {{AttributeName: pk, KeyType: HASH}}
        - {{AttributeName: sk, KeyType: RANGE}}
  {queue}:
    Type: AWS::SQS::Queue
    Properties:
      VisibilityTimeout: 3
  {api}:
    Type: AWS::Serverless::HttpApi
  {function}:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: {code}
      Handler: app.handler
      Policies:
        - DynamoDBWritePolicy:
            TableName: !Ref {table}
      Environment:
        Variables:
          RECORD_TABLE: !Ref {table}
          {variable}: !GetAtt {queue}.QueueName
      Events:
        {function}Queue:
          Type: SQS
          Properties:
            Queue: !GetAtt {queue}.Arn
            BatchSize: 5
        {function}Tick:
          Type: Schedule
          Properties:
            Schedule: rate(1 day)
        {function}Route:
          Type: HttpApi
          Properties:
            ApiId: !Ref {api}
            Path: /{route}/{{id}}
            Method: POST
"""


def test_made_up_function_queue_schedule_and_route_are_all_wired(tmp_path: Path, aws_endpoint: str) -> None:
    # Given a template whose every name is new
    word = f"X{uuid4().hex[:8]}"
    names = {
        "table": f"{word}Table",
        "queue": f"{word}Queue",
        "api": f"{word}Api",
        "function": f"{word}Function",
        "variable": f"{word.upper()}_QUEUE",
        "route": word.lower(),
        "code": str(FIXTURES / "functions" / "recorder"),
    }
    template = tmp_path / "template.yaml"
    template.write_text(TEMPLATE.format(**names))
    # When the host runs it
    host = start_host(aws_endpoint, template=template)
    try:
        function_name = host.resources[names["function"]]["Ref"]
        table = host.resources[names["table"]]["Ref"]

        def recorded() -> list[dict[str, object]]:
            return [json.loads(str(item["event"])) for item in items(aws_endpoint, table, function_name)]

        # Then its queue feeds its function through its SQS event
        sqs = client(aws_endpoint, "sqs")
        sqs.send_message(QueueUrl=host.resources[names["queue"]]["Ref"], MessageBody="hi")

        def sources_seen() -> set[str]:
            return {e["Records"][0]["eventSourceARN"] for e in recorded() if "Records" in e}  # type: ignore[index]

        wait_until(lambda: sources_seen() == {host.resources[names["queue"]]["Arn"]})
        # and its schedule fires it with EventBridge's event of its rule
        tick = f"{names['function']}Tick"
        scheduled = host.trigger_schedule(names["function"], tick)
        assert scheduled["detail-type"] == "Scheduled Event"
        assert tick in scheduled["resources"][0]
        # and its route reaches it on its own API
        api_url = host.api_urls[names["api"]]
        answer = httpx.post(f"{api_url}/{names['route']}/7", json={"a": 1}, timeout=10)
        assert answer.status_code == 200
        assert answer.json()["pathParameters"] == {"id": "7"}
        assert answer.json()["rawPath"] == f"/{names['route']}/7"
        # and it saw its own variable, resolved
        assert (
            host.functions[names["function"]].env[names["variable"]]
            == host.resources[names["queue"]]["QueueName"]
        )
        events = recorded()
        assert any(event.get("detail-type") == "Scheduled Event" for event in events)
        assert any(event.get("routeKey") == f"POST /{names['route']}/{{id}}" for event in events)
    finally:
        host.stop()


BROKEN = """
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: {code}
      Handler: app.handler
      Runtime: python3.12
      Events:
        Tick:
          Type: Schedule
          Properties:
            Schedule: {schedule}
"""


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ("cron(0 3 * * ? *)", r"Resources.Fn.Properties.Events.Tick: .*not a rate"),
        ("sometimes", r"Resources.Fn.Properties.Events.Tick: .*not a rate"),
    ],
)
def test_bad_schedule_is_refused_naming_the_event(
    tmp_path: Path, aws_endpoint: str, schedule: str, message: str
) -> None:
    template = tmp_path / "template.yaml"
    template.write_text(BROKEN.format(code=FIXTURES / "functions" / "recorder", schedule=f"'{schedule}'"))
    with pytest.raises(TemplateError, match=message):
        start_host(aws_endpoint, template=template)


def test_missing_code_folder_is_refused_naming_the_function(tmp_path: Path, aws_endpoint: str) -> None:
    template = tmp_path / "template.yaml"
    template.write_text(BROKEN.format(code=tmp_path / "nowhere", schedule="rate(1 day)"))
    with pytest.raises(TemplateError, match=r"Resources.Fn.Properties.CodeUri: .*nowhere is not a folder"):
        start_host(aws_endpoint, template=template)


def test_a_layer_from_outside_the_template_is_refused_naming_the_function(
    tmp_path: Path, aws_endpoint: str
) -> None:
    template = tmp_path / "template.yaml"
    text = BROKEN.format(code=FIXTURES / "functions" / "recorder", schedule="rate(1 day)")
    layer = "      Layers: [arn:aws:lambda:eu-west-1:123456789012:layer:elsewhere:1]\n"
    template.write_text(text.replace("      Runtime: python3.12\n", "      Runtime: python3.12\n" + layer))
    with pytest.raises(
        TemplateError, match=r"Resources.Fn.Properties.Layers: .* is not a layer of this template"
    ):
        start_host(aws_endpoint, template=template)


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ("{AWS_REGION: us-east-1}", r"Environment.Variables: Lambda reserves \['AWS_REGION'\]"),
        (f"{{BIG: {'x' * 4100}}}", r"Environment.Variables: 4110 bytes as Lambda measures them"),
    ],
)
def test_variables_lambda_would_refuse_are_refused_naming_the_function(
    tmp_path: Path, aws_endpoint: str, variables: str, message: str
) -> None:
    template = tmp_path / "template.yaml"
    text = BROKEN.format(code=FIXTURES / "functions" / "recorder", schedule="rate(1 day)")
    runtime = "      Runtime: python3.12\n"
    environment = f"      Environment:\n        Variables: {variables}\n"
    template.write_text(text.replace(runtime, runtime + environment))
    with pytest.raises(TemplateError, match=rf"Resources.Fn.Properties.{message}"):
        start_host(aws_endpoint, template=template)


MAPPED = """
Resources:
  Work:
    Type: AWS::SQS::Queue
    Properties:
      VisibilityTimeout: {visibility}
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: {code}
      Handler: app.handler
      Runtime: python3.12
      Timeout: {timeout}
      Events:
        Work:
          Type: SQS
          Properties:
            Queue: !GetAtt Work.Arn
            {more}
"""


@pytest.mark.parametrize(
    ("seconds", "more", "message"),
    [
        ((3, 5), "", r"Queue visibility timeout: 3 seconds is less than Function timeout: 5 seconds"),
        ((5, 5), "BatchSize: 11", r"BatchSize 11 is not within 1-10"),
        ((5, 5), "BatchSize: 0", r"BatchSize 0 is not within 1-10"),
        ((5, 5), "ScalingConfig: {MaximumConcurrency: 1}", r"ScalingConfig.MaximumConcurrency 1 is not"),
    ],
)
def test_an_sqs_mapping_lambda_would_refuse_is_refused_naming_it(
    tmp_path: Path, aws_endpoint: str, seconds: tuple[int, int], more: str, message: str
) -> None:
    # seconds: the queue's visibility timeout, the function's timeout
    template = tmp_path / "template.yaml"
    code = FIXTURES / "functions" / "recorder"
    visibility, timeout = seconds
    template.write_text(MAPPED.format(code=code, visibility=visibility, timeout=timeout, more=more))
    with pytest.raises(TemplateError, match=rf"Fn\.Work: {message}"):
        start_host(aws_endpoint, template=template)
