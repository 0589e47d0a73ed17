"""A function, queue, schedule and route added to a template are wired by the host with no change
to the host: names are made up here, per run, so nothing in the host can know them."""

from __future__ import annotations

import json
from pathlib import Path
from uuid import uuid4

import httpx
import pytest

from devstack.host import TemplateError
from tests.fixtures.host.hosting import FIXTURES, client, items, start_host, wait_until

TEMPLATE = """
Transform: AWS::Serverless-2016-10-31
Globals:
  Function:
    Runtime: python3.12
    Timeout: 3
Resources:
  {table}:
    Type: AWS::Serverless::SimpleTable
    Properties:
      PrimaryKey: {{Name: pk, Type: String}}
  {table}Sorted:
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
  {queue}Raw:
    Type: AWS::SQS::Queue
    Properties:
      VisibilityTimeout: 3
  {api}:
    Type: AWS::Serverless::HttpApi
    Properties:
      StageName: live
  {function}Mapping:
    Type: AWS::Lambda::EventSourceMapping
    Properties:
      EventSourceArn: !GetAtt {queue}Raw.Arn
      FunctionName: !Ref {function}
      BatchSize: 2
  {function}Rule:
    Type: AWS::Events::Rule
    Properties:
      ScheduleExpression: rate(7 days)
      Targets:
        - Id: target
          Arn: !GetAtt {function}.Arn
          Input: '{{"rule": "{variable}"}}'
  {function}:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: {code}
      Handler: app.handler
      Policies:
        - DynamoDBWritePolicy:
            TableName: !Ref {table}Sorted
      Environment:
        Variables:
          RECORD_TABLE: !Ref {table}Sorted
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
            Input: '{{"tick": "{variable}"}}'
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
        table = host.resources[f"{names['table']}Sorted"]["Ref"]

        def recorded() -> list[dict[str, object]]:
            return [json.loads(str(item["event"])) for item in items(aws_endpoint, table, function_name)]

        # Then its queues feed its function, through its SQS event and through its mapping resource
        sqs = client(aws_endpoint, "sqs")
        queues = (names["queue"], f"{names['queue']}Raw")
        for queue in queues:
            sqs.send_message(QueueUrl=host.resources[queue]["Ref"], MessageBody="hi")

        def sources_seen() -> set[str]:
            return {e["Records"][0]["eventSourceARN"] for e in recorded() if "Records" in e}  # type: ignore[index]

        wait_until(lambda: sources_seen() == {host.resources[q]["Arn"] for q in queues})
        # and its schedules (an event and a rule resource) fire it with the template's Input
        tick, rule = f"{names['function']}Tick", f"{names['function']}Rule"
        assert host.trigger_schedule(names["function"], tick) == {"tick": names["variable"]}
        assert host.trigger_schedule(names["function"], rule) == {"rule": names["variable"]}
        # and its route reaches it on its own API
        api_url = host.api_urls[names["api"]]
        answer = httpx.post(f"{api_url}/{names['route']}/7", json={"a": 1}, timeout=10)
        assert answer.status_code == 200
        assert answer.json()["pathParameters"] == {"id": "7"}
        assert answer.json()["requestContext"]["stage"] == "live"
        assert answer.json()["rawPath"] == f"/live/{names['route']}/7"
        assert api_url.endswith("/live")
        # and it saw its own variable, resolved
        assert (
            host.functions[names["function"]].env[names["variable"]]
            == host.resources[names["queue"]]["QueueName"]
        )
        # and the SimpleTable exists too
        table_name = host.resources[names["table"]]["Ref"]
        described = client(aws_endpoint, "dynamodb").describe_table(TableName=table_name)["Table"]
        assert described["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
        events = recorded()
        assert any(event.get("tick") == names["variable"] for event in events)
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
        ("cron(0 3 * * *)", r"Resources.Fn.Properties.Events.Tick: .*6 fields"),
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
