"""The local host refuses the function variables Lambda's CreateFunction refuses: names outside its
pattern, reserved keys, and more than 4 KB as Lambda measures them (the map's compact JSON)."""

from __future__ import annotations

import json

import pytest

from devstack.host.functions import RESERVED_VARIABLES, VARIABLES_LIMIT_BYTES, check_lambda_variables
from devstack.host.template import TemplateError

LOCAL = "http://127.0.0.1:45123"
WHERE = r"Resources\.Fn\.Properties\.Environment\.Variables"


def check(variables: dict[str, str]) -> None:
    check_lambda_variables("Fn", variables, region="eu-west-1", local_endpoint=LOCAL)


def of_size(size: int, **more: str) -> dict[str, str]:
    """One variable PAD filling the map's JSON to `size` bytes."""
    variables = {**more, "PAD": ""}
    variables["PAD"] = "x" * (size - len(json.dumps(variables, separators=(",", ":"))))
    assert len(json.dumps(variables, separators=(",", ":"))) == size
    return variables


def test_variables_of_exactly_4_kb_are_taken_and_one_byte_more_is_refused_with_its_size() -> None:
    check(of_size(VARIABLES_LIMIT_BYTES))

    with pytest.raises(TemplateError, match=rf"{WHERE}: 4097 bytes as Lambda measures them.*'PAD'"):
        check(of_size(VARIABLES_LIMIT_BYTES + 1))


def test_the_size_is_counted_in_utf8_bytes_not_characters() -> None:
    variables = of_size(VARIABLES_LIMIT_BYTES)
    variables["PAD"] = variables["PAD"][:-1] + "é"  # 4,096 characters, 4,097 bytes

    with pytest.raises(TemplateError, match=rf"{WHERE}: 4097 bytes"):
        check(variables)


def test_a_local_engine_url_counts_as_long_as_the_aws_endpoint_it_stands_for() -> None:
    # A queue URL that fits with the local engine's short host but not with sqs.<region>.amazonaws.com
    queue_url = f"{LOCAL}/123456789012/sipreg-EventsQueue-ABC.fifo"
    longer_by = len("https://sqs.eu-west-1.amazonaws.com") - len(LOCAL)
    variables = of_size(VARIABLES_LIMIT_BYTES - longer_by + 1, EVENTS_QUEUE_URL=queue_url)

    with pytest.raises(TemplateError, match=rf"{WHERE}: 4097 bytes"):
        check(variables)


@pytest.mark.parametrize("name", ["AWS_REGION", "_HANDLER", "AWS_LAMBDA_RUNTIME_API", "LAMBDA_TASK_ROOT"])
def test_a_reserved_key_is_refused_naming_it(name: str) -> None:
    assert name in RESERVED_VARIABLES

    with pytest.raises(TemplateError, match=rf"{WHERE}: Lambda reserves \['{name}'\]"):
        check({"TABLE": "t", name: "x"})


@pytest.mark.parametrize("name", ["A", "1TABLE", "MY-TABLE", "MY.TABLE", "TABLÉ"])
def test_a_name_outside_lambdas_pattern_is_refused_naming_it(name: str) -> None:
    with pytest.raises(TemplateError, match=rf"{WHERE}: names must match .*{name}"):
        check({"TABLE": "t", name: "x"})


def test_names_of_letters_digits_and_underscores_after_a_letter_are_allowed() -> None:
    check({"POWERTOOLS_SERVICE_NAME": "sipreg", "AWS_ENDPOINT_URL_SQS": "x", "aB_9": ""})
