"""The local host's template loader: intrinsic tags, conditions, parameters and Globals resolve as
CloudFormation and SAM resolve them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from devstack.host.template import (
    NO_VALUE,
    Pseudo,
    Resolver,
    Template,
    TemplateError,
    load_template,
    merge_globals,
    references,
)

PSEUDO = Pseudo(region="eu-west-1", account_id="123456789012", stack_name="demo")

TEMPLATE = """
Parameters:
  Stage: {Type: String, Default: dev, AllowedValues: [dev, prod]}
  Count: {Type: Number, Default: 3, MinValue: 1, MaxValue: 10}
  Name: {Type: String, Default: abc, MinLength: 2, MaxLength: 5}
Conditions:
  IsProd: !Equals [!Ref Stage, prod]
  IsDev: !Not [!Condition IsProd]
  Both: !And [!Condition IsDev, !Equals [x, x]]
Globals:
  Function:
    Timeout: 10
    Layers: [GlobalLayer]
    Environment:
      Variables: {SHARED: global, OVERRIDDEN: global}
Resources:
  Queue:
    Type: AWS::SQS::Queue
  OnlyInProd:
    Type: AWS::SQS::Queue
    Condition: IsProd
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Timeout: 20
      Layers: [LocalLayer]
      Environment:
        Variables: {OVERRIDDEN: local, OWN: own}
  Policy:
    Type: AWS::IAM::ManagedPolicy
    Properties:
      PolicyDocument:
        Version: 2012-10-17
"""


class FakeStack:
    """Answers references like a provisioned stack would."""

    def ref(self, logical_id: str) -> Any:
        return {"Queue": "https://queue.url/demo-Queue"}.get(logical_id, f"ref-of-{logical_id}")

    def get_att(self, logical_id: str, attribute: str) -> Any:
        return f"{logical_id}.{attribute}-value"


@pytest.fixture
def template(tmp_path: Path) -> Template:
    path = tmp_path / "template.yaml"
    path.write_text(TEMPLATE)
    return Template(load_template(path), tmp_path, PSEUDO)


@pytest.fixture
def resolver(template: Template) -> Resolver:
    return Resolver(template, FakeStack())


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("!Ref Stage", "dev"),
        ("!Ref Count", "3"),
        ("!Ref Queue", "https://queue.url/demo-Queue"),
        ("!Ref AWS::Region", "eu-west-1"),
        ("!Ref AWS::AccountId", "123456789012"),
        ("!Ref AWS::StackName", "demo"),
        ("!Ref AWS::Partition", "aws"),
        ("!Ref AWS::URLSuffix", "amazonaws.com"),
        ("!GetAtt Queue.Arn", "Queue.Arn-value"),
        ("!GetAtt [Queue, QueueName]", "Queue.QueueName-value"),
        ("{'Fn::GetAtt': [Queue, Arn]}", "Queue.Arn-value"),
        (
            "!Sub '${AWS::StackName}-${Stage}-${Queue}-${Queue.Arn}'",
            "demo-dev-https://queue.url/demo-Queue-Queue.Arn-value",
        ),
        ("!Sub '${!Literal}-${AWS::Region}'", "${Literal}-eu-west-1"),
        ("!Sub ['${A}/${B}', {A: x, B: !Ref Stage}]", "x/dev"),
        ("{'Fn::Sub': 'long-${Stage}'}", "long-dev"),
        ("!If [IsProd, p, d]", "d"),
        ("!If [IsDev, !Ref Stage, other]", "dev"),
        ("!Equals [!Ref Stage, dev]", True),
        ("!Not [!Equals [a, b]]", True),
        ("!And [!Equals [a, a], !Condition IsProd]", False),
        ("!And [!Condition Both, !Not [!Condition IsProd]]", True),
        ("[a, !Ref AWS::NoValue, b]", ["a", "b"]),
        ("{keep: 1, drop: !Ref AWS::NoValue}", {"keep": 1}),
        ("!If [IsProd, x, !Ref AWS::NoValue]", NO_VALUE),
    ],
)
def test_intrinsic_resolves_as_cloudformation_does(
    tmp_path: Path, resolver: Resolver, written: str, expected: Any
) -> None:
    # Given a value written with a short or long form intrinsic function
    path = tmp_path / "value.yaml"
    path.write_text(f"Resources: {{}}\nValue: {written}\n")
    raw = load_template(path)["Value"]
    # When it is resolved, Then it is what CloudFormation would pass on
    assert resolver.resolve(raw, "Value") == expected


def test_conditions_decide_which_resources_exist(template: Template) -> None:
    assert template.condition("IsDev") is True
    assert template.condition("Both") is True
    assert "OnlyInProd" not in template.resources
    assert "Queue" in template.resources


def test_parameter_override_changes_conditions(tmp_path: Path) -> None:
    path = tmp_path / "template.yaml"
    path.write_text(TEMPLATE)
    template = Template(load_template(path), tmp_path, PSEUDO, {"Stage": "prod"})
    assert template.parameters["Stage"] == "prod"
    assert "OnlyInProd" in template.resources


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"Stage": "qa"}, "Parameters.Stage: 'qa' is not one of"),
        ({"Nope": "x"}, "lack"),
        ({"Count": "0"}, r"Parameters.Count: 0 is outside \[1, 10\]"),
        ({"Count": "11"}, r"Parameters.Count: 11 is outside \[1, 10\]"),
        ({"Count": "three"}, "Parameters.Count: 'three' is not a number"),
        ({"Name": "a"}, r"Parameters.Name: 1 characters, not in \[2, 5\]"),
        ({"Name": "abcdef"}, r"Parameters.Name: 6 characters"),
    ],
)
def test_bad_parameter_override_is_refused_by_name(
    tmp_path: Path, overrides: dict[str, str], message: str
) -> None:
    path = tmp_path / "template.yaml"
    path.write_text(TEMPLATE)
    with pytest.raises(TemplateError, match=message):
        Template(load_template(path), tmp_path, PSEUDO, overrides)


def test_parameters_within_their_bounds_are_taken(tmp_path: Path) -> None:
    path = tmp_path / "template.yaml"
    path.write_text(TEMPLATE)
    template = Template(load_template(path), tmp_path, PSEUDO, {"Count": "10", "Name": "ab"})
    assert (template.parameters["Count"], template.parameters["Name"]) == ("10", "ab")


@pytest.mark.parametrize("kind", ["CommaDelimitedList", "List<String>", "AWS::EC2::VPC::Id"])
def test_parameter_type_template_yaml_does_not_use_is_refused_by_name(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "template.yaml"
    path.write_text(f"Parameters:\n  Names: {{Type: '{kind}', Default: a}}\nResources: {{}}\n")
    with pytest.raises(TemplateError, match=r"Parameters.Names: type .* is not supported"):
        Template(load_template(path), tmp_path, PSEUDO)


def test_parameter_without_default_needs_an_override(tmp_path: Path) -> None:
    path = tmp_path / "template.yaml"
    path.write_text("Parameters:\n  ClientId: {Type: String}\nResources: {}\n")
    with pytest.raises(TemplateError, match=r"Parameters.ClientId: no Default"):
        Template(load_template(path), tmp_path, PSEUDO)
    assert Template(load_template(path), tmp_path, PSEUDO, {"ClientId": "x"}).parameters == {"ClientId": "x"}


def test_globals_merge_like_sam(template: Template) -> None:
    properties = template.resources["Fn"].properties
    assert properties["Timeout"] == 20  # scalars: the function wins
    assert properties["Layers"] == ["GlobalLayer", "LocalLayer"]  # lists: globals first
    assert properties["Environment"]["Variables"] == {"SHARED": "global", "OVERRIDDEN": "local", "OWN": "own"}
    assert "Timeout" not in template.resources["Queue"].properties  # only functions get Function globals


def test_property_overrides_replace_template_values(tmp_path: Path) -> None:
    path = tmp_path / "template.yaml"
    path.write_text(TEMPLATE)
    template = Template(load_template(path), tmp_path, PSEUDO, property_overrides={"Fn": {"Timeout": 1}})
    assert template.resources["Fn"].properties["Timeout"] == 1
    assert template.resources["Fn"].properties["Layers"] == ["GlobalLayer", "LocalLayer"]
    with pytest.raises(TemplateError, match="lacks: Nope"):
        Template(load_template(path), tmp_path, PSEUDO, property_overrides={"Nope": {}})


def test_intrinsic_in_globals_counts_as_a_scalar() -> None:
    assert merge_globals({"Fn::If": ["C", {"a": 1}, {}]}, {"b": 2}) == {"b": 2}


def test_dates_stay_text(template: Template) -> None:
    document = template.resources["Policy"].properties["PolicyDocument"]
    assert document["Version"] == "2012-10-17"


def test_references_find_every_name_a_value_uses() -> None:
    value = {
        "A": {"Ref": "Queue"},
        "B": {"Fn::GetAtt": ["Table", "Arn"]},
        "C": {"Fn::Sub": "${Key.Arn}-${AWS::Region}-${!Skip}"},
        "D": {"Fn::Sub": ["${Local}-${Bus}", {"Local": {"Ref": "Secret"}}]},
    }
    assert references(value) - {"AWS::Region"} == {"Queue", "Table", "Key", "Bus", "Secret"}


@pytest.mark.parametrize(
    ("written", "message"),
    [
        ("!ImportValue shared", "Fn::ImportValue is not supported"),
        # template.yaml uses none of these: refused rather than resolved untested
        ("!Join [',', [a, b]]", "Fn::Join is not supported"),
        ("!Or [!Equals [a, b], !Equals [a, a]]", "Fn::Or is not supported"),
        ("!FindInMap [Sizes, dev, Batch]", "Fn::FindInMap is not supported"),
        ("!If [Missing, a, b]", "no condition named 'Missing'"),
        ("!Equals [a]", "expected a list of 2 arguments"),
    ],
)
def test_unsupported_or_broken_intrinsic_names_its_place(
    tmp_path: Path, resolver: Resolver, written: str, message: str
) -> None:
    path = tmp_path / "value.yaml"
    path.write_text(f"Resources: {{}}\nValue: {written}\n")
    with pytest.raises(TemplateError, match=message) as caught:
        resolver.resolve(load_template(path)["Value"], "Outputs.Value")
    assert "Outputs.Value" in str(caught.value) or "condition" in str(caught.value)


def test_template_that_is_not_yaml_is_refused_clearly(tmp_path: Path) -> None:
    path = tmp_path / "template.yaml"
    path.write_text("Resources:\n  X: {Type: [\n")
    with pytest.raises(TemplateError, match="not valid YAML"):
        load_template(path)


def test_resource_without_type_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "template.yaml"
    path.write_text("Resources:\n  Broken: {Properties: {}}\n")
    with pytest.raises(TemplateError, match=r"Resources.Broken: needs a Type"):
        Template(load_template(path), tmp_path, PSEUDO)


def test_globals_other_than_function_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "template.yaml"
    path.write_text("Globals:\n  HttpApi: {Auth: {EnableIamAuthorizer: true}}\nResources: {}\n")
    with pytest.raises(TemplateError, match=r"Globals.HttpApi: not supported"):
        Template(load_template(path), tmp_path, PSEUDO)
