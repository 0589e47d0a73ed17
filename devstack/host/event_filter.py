"""Lambda event filtering (an event source's `FilterCriteria`): EventBridge-style patterns.

A record passes when any filter's pattern matches it. A JSON body is matched as an object,
any other body as a string. Supported: exact values (and null), `prefix`, `suffix`,
`equals-ignore-case`, `anything-but`, `numeric`, `exists`, nested objects.
"""

from __future__ import annotations

import contextlib
import json
import operator
from collections.abc import Callable, Mapping
from typing import Any

_MISSING = object()
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


class FilterError(ValueError):
    pass


def parse_filters(filter_criteria: Mapping[str, Any]) -> list[dict[str, Any]]:
    patterns = []
    for entry in filter_criteria.get("Filters") or []:
        pattern = entry.get("Pattern")
        try:
            parsed = json.loads(pattern) if isinstance(pattern, str) else pattern
        except json.JSONDecodeError as exc:
            raise FilterError(f"FilterCriteria pattern is not JSON: {exc}") from exc
        if not isinstance(parsed, dict):
            raise FilterError("FilterCriteria pattern must be a JSON object")
        patterns.append(parsed)
    return patterns


def record_passes(patterns: list[dict[str, Any]], record: Mapping[str, Any]) -> bool:
    if not patterns:
        return True
    data = dict(record)
    with contextlib.suppress(ValueError, TypeError):  # a body that is not JSON stays a string
        data["body"] = json.loads(record["body"])
    return any(_matches(pattern, data) for pattern in patterns)


def _matches(pattern: Mapping[str, Any], data: Any) -> bool:
    for key, rule in pattern.items():
        value = data.get(key, _MISSING) if isinstance(data, dict) else _MISSING
        if isinstance(rule, dict):
            if value is _MISSING or not _matches(rule, value):
                return False
        elif isinstance(rule, list):
            if not any(_matcher(matcher, value) for matcher in rule):
                return False
        else:
            raise FilterError(f"FilterCriteria: {key!r} needs a list of values or an object")
    return True


def _matcher(matcher: Any, value: Any) -> bool:
    values = value if isinstance(value, list) else [value]
    if not isinstance(matcher, dict):
        return value is not _MISSING and matcher in values
    name, argument = next(iter(matcher.items()))
    name = str(name)
    if name == "exists":
        return (value is not _MISSING) == bool(argument)
    if value is _MISSING:
        return name == "anything-but"
    return any(_operator(name, argument, v) for v in values)


def _operator(name: str, argument: Any, value: Any) -> bool:  # noqa: PLR0911  # one per operator
    if name == "prefix":
        return isinstance(value, str) and value.startswith(argument)
    if name == "suffix":
        return isinstance(value, str) and value.endswith(argument)
    if name == "equals-ignore-case":
        return isinstance(value, str) and value.lower() == str(argument).lower()
    if name == "anything-but":
        if isinstance(argument, dict):
            return not _matcher(argument, value)
        return value not in (argument if isinstance(argument, list) else [argument])
    if name == "numeric":
        if not isinstance(value, int | float) or isinstance(value, bool):
            return False
        pairs = zip(argument[::2], argument[1::2], strict=True)
        return all(_COMPARE[op](value, bound) for op, bound in pairs)
    raise FilterError(f"FilterCriteria: {name!r} is not supported locally")
