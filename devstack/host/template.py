"""Loading a SAM template and resolving its intrinsic functions, as CloudFormation does.

The functions resolved are those template.yaml uses (`Ref`, `Fn::Sub`, `Fn::GetAtt`, `Fn::If`,
`Fn::Equals`, `Fn::Not`, `Fn::And`, `Condition`); any other is refused naming its place.

The YAML short forms (`!Ref`, `!Sub`, ...) become their long JSON forms (`{"Ref": ...}`,
`{"Fn::Sub": ...}`) at load time, so JSON templates and both YAML spellings resolve alike.
What a `!Ref` or `!GetAtt` of a resource means is asked of a `Lookup` (the provisioned stack).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml

FUNCTION = "AWS::Serverless::Function"
GLOBALS_TYPES = {"Function": FUNCTION}  # the Globals sections merged (template.yaml has only this one)
PARAMETER_TYPES = ("String", "Number")  # template.yaml's: a parameter's value is one string
_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


class TemplateError(ValueError):
    """The template (or an override) is not something CloudFormation would accept."""


class _NoValue:
    """`!Ref AWS::NoValue`: the property it stands in is removed."""

    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE = _NoValue()


# --- loading -----------------------------------------------------------------------------------


class _Loader(yaml.CSafeLoader):
    """SafeLoader (libyaml's parser) that keeps dates as strings (`Version: 2012-10-17` must stay text)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _construct_tag(loader: _Loader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if tag_suffix in ("Ref", "Condition"):
        return {tag_suffix: value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        logical_id, _, attribute = value.partition(".")
        value = [logical_id, attribute]
    return {f"Fn::{tag_suffix}": value}


_Loader.add_multi_constructor("!", _construct_tag)


def load_template(path: Path) -> dict[str, Any]:
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)  # noqa: S506  # SafeLoader subclass
    except yaml.YAMLError as exc:
        raise TemplateError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("Resources"), dict):
        raise TemplateError(f"{path}: a template needs a Resources mapping")
    return raw


# --- the template model ------------------------------------------------------------------------


@dataclass(frozen=True)
class Pseudo:
    """The pseudo parameters (`AWS::Region`, ...) of the local stack."""

    region: str
    account_id: str
    stack_name: str
    partition: str = "aws"
    url_suffix: str = "amazonaws.com"

    def as_refs(self) -> dict[str, Any]:
        stack_id = (
            f"arn:{self.partition}:cloudformation:{self.region}:{self.account_id}:"
            f"stack/{self.stack_name}/00000000-0000-0000-0000-000000000000"
        )
        return {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account_id,
            "AWS::StackName": self.stack_name,
            "AWS::StackId": stack_id,
            "AWS::Partition": self.partition,
            "AWS::URLSuffix": self.url_suffix,
            "AWS::NotificationARNs": [],
            "AWS::NoValue": NO_VALUE,
        }


@dataclass
class Resource:
    logical_id: str
    type: str
    properties: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict)


class Template:
    """Parameters, conditions and resources (with Globals merged in) of one SAM template."""

    def __init__(
        self,
        raw: Mapping[str, Any],
        base_dir: Path,
        pseudo: Pseudo,
        parameter_overrides: Mapping[str, str] | None = None,
        property_overrides: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.raw = raw
        self.base_dir = base_dir
        self.pseudo = pseudo
        self.parameters = _parameter_values(raw.get("Parameters") or {}, parameter_overrides or {})
        self._condition_defs: dict[str, Any] = dict(raw.get("Conditions") or {})
        self._conditions: dict[str, bool] = {}
        globals_ = raw.get("Globals") or {}
        unknown = sorted(set(globals_) - set(GLOBALS_TYPES))
        if unknown:
            raise TemplateError(f"Globals.{unknown[0]}: not supported by the local host (only Function)")
        self.resources: dict[str, Resource] = {}
        for logical_id, body in raw["Resources"].items():
            if not isinstance(body, dict) or not isinstance(body.get("Type"), str):
                raise TemplateError(f"Resources.{logical_id}: needs a Type")
            condition = body.get("Condition")
            if condition is not None and not self.condition(condition):
                continue
            properties = body.get("Properties") or {}
            for section, type_ in GLOBALS_TYPES.items():
                if body["Type"] == type_ and section in globals_:
                    properties = merge_globals(globals_[section], properties)
            self.resources[logical_id] = Resource(
                logical_id=logical_id,
                type=body["Type"],
                properties=properties,
                metadata=body.get("Metadata") or {},
            )

        self._override(property_overrides or {})

    def _override(self, overrides: Mapping[str, Mapping[str, Any]]) -> None:
        """Local-only property values (e.g. a short VisibilityTimeout), replacing the template's."""
        for logical_id, properties in overrides.items():
            if logical_id not in self.resources:
                raise TemplateError(f"property overrides name a resource the template lacks: {logical_id}")
            self.resources[logical_id].properties = {**self.resources[logical_id].properties, **properties}

    def of_type(self, *types: str) -> list[Resource]:
        return [r for r in self.resources.values() if r.type in types]

    def condition(self, name: str) -> bool:
        if name in self._conditions:
            return self._conditions[name]
        if name not in self._condition_defs:
            raise TemplateError(f"Conditions: no condition named {name!r}")
        self._conditions[name] = False  # guards against a condition referring to itself
        resolver = Resolver(self, _NoResources())
        self._conditions[name] = resolver.condition_value(self._condition_defs[name], f"Conditions.{name}")
        return self._conditions[name]


def _parameter_values(declared: Mapping[str, Any], overrides: Mapping[str, str]) -> dict[str, str]:
    unknown = sorted(set(overrides) - set(declared))
    if unknown:
        raise TemplateError(f"parameter overrides name parameters the template lacks: {unknown}")
    values: dict[str, str] = {}
    for name, spec in declared.items():
        if spec.get("Type") not in PARAMETER_TYPES:
            raise TemplateError(
                f"Parameters.{name}: type {spec.get('Type')!r} is not supported by the local host"
            )
        if name in overrides:
            value = str(overrides[name])
        elif "Default" in spec:
            value = str(spec["Default"])
        else:
            raise TemplateError(f"Parameters.{name}: no Default and no override given")
        allowed = spec.get("AllowedValues")
        if allowed is not None and value not in [str(a) for a in allowed]:
            raise TemplateError(f"Parameters.{name}: {value!r} is not one of {allowed}")
        pattern = spec.get("AllowedPattern")
        if pattern is not None and not re.fullmatch(pattern, value):
            raise TemplateError(f"Parameters.{name}: {value!r} does not match {pattern}")
        _check_bounds(name, spec, value)
        values[name] = value
    return values


def _check_bounds(name: str, spec: Mapping[str, Any], value: str) -> None:
    """CloudFormation's MinValue/MaxValue (Number) and MinLength/MaxLength (String): a deploy
    with a value out of bounds fails, so a local stack with one must not start."""
    if spec["Type"] == "Number":
        try:
            number = float(value)
        except ValueError:
            raise TemplateError(f"Parameters.{name}: {value!r} is not a number") from None
        low, high = spec.get("MinValue"), spec.get("MaxValue")
        if (low is not None and number < float(low)) or (high is not None and number > float(high)):
            raise TemplateError(f"Parameters.{name}: {value} is outside [{low}, {high}]")
    else:
        shortest, longest = spec.get("MinLength"), spec.get("MaxLength")
        if (shortest is not None and len(value) < int(shortest)) or (
            longest is not None and len(value) > int(longest)
        ):
            raise TemplateError(f"Parameters.{name}: {len(value)} characters, not in [{shortest}, {longest}]")


def _is_intrinsic(value: Any) -> bool:
    if not isinstance(value, dict) or len(value) != 1:
        return False
    key = str(next(iter(value)))
    return key == "Ref" or key.startswith("Fn::")


def merge_globals(global_value: Any, local_value: Any) -> Any:
    """SAM's rule: maps merge (the resource wins), lists add up (globals first), scalars are
    replaced; an intrinsic function counts as a scalar."""
    if isinstance(global_value, dict) and isinstance(local_value, dict):
        if _is_intrinsic(global_value) or _is_intrinsic(local_value):
            return local_value
        merged = dict(global_value)
        for key, value in local_value.items():
            merged[key] = merge_globals(global_value[key], value) if key in merged else value
        return merged
    if isinstance(global_value, list) and isinstance(local_value, list):
        return [*global_value, *local_value]
    return local_value


# --- resolution --------------------------------------------------------------------------------


class Lookup(Protocol):
    """What the provisioned stack answers for references to its resources."""

    def ref(self, logical_id: str) -> Any: ...

    def get_att(self, logical_id: str, attribute: str) -> Any: ...


class _NoResources:
    def ref(self, logical_id: str) -> Any:
        raise TemplateError(f"a condition cannot refer to the resource {logical_id}")

    def get_att(self, logical_id: str, attribute: str) -> Any:
        raise TemplateError(f"a condition cannot refer to the resource {logical_id}")


class Resolver:
    """Turns template values with intrinsic functions into plain values."""

    def __init__(self, template: Template, lookup: Lookup) -> None:
        self.template = template
        self.lookup = lookup
        self._pseudo = template.pseudo.as_refs()
        self._functions: dict[str, Callable[[Any, str], Any]] = {
            "Fn::Sub": self._sub,
            "Fn::GetAtt": self._get_att,
            "Fn::If": self._if,
            "Fn::Equals": lambda v, w: self.condition_value({"Fn::Equals": v}, w),
            "Fn::Not": lambda v, w: self.condition_value({"Fn::Not": v}, w),
            "Fn::And": lambda v, w: self.condition_value({"Fn::And": v}, w),
        }

    def resolve(self, value: Any, where: str = "") -> Any:
        """Resolves `value`; `where` names the template path in error messages."""
        if isinstance(value, list):
            items = (self.resolve(item, f"{where}[{i}]") for i, item in enumerate(value))
            return [item for item in items if item is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if _is_intrinsic(value):
            name, argument = next(iter(value.items()))
            if name == "Ref":
                return self.ref(argument, where)
            function = self._functions.get(name)
            if function is None:
                raise TemplateError(f"{where}: {name} is not supported by the local host")
            return function(argument, f"{where}.{name}")
        resolved = {key: self.resolve(item, f"{where}.{key}") for key, item in value.items()}
        return {key: item for key, item in resolved.items() if item is not NO_VALUE}

    def ref(self, name: Any, where: str) -> Any:
        if not isinstance(name, str):
            raise TemplateError(f"{where}: Ref needs a name, got {name!r}")
        if name in self._pseudo:
            return self._pseudo[name]
        if name in self.template.parameters:
            return self.template.parameters[name]
        return self.lookup.ref(name)

    def condition_value(self, value: Any, where: str) -> bool:
        if isinstance(value, dict) and len(value) == 1:
            name, argument = next(iter(value.items()))
            if name == "Condition":
                return self.template.condition(argument)
            if name == "Fn::Equals":
                left, right = self._args(argument, 2, where)
                return self._scalar(left, where) == self._scalar(right, where)
            if name == "Fn::Not":
                (inner,) = self._args(argument, 1, where)
                return not self.condition_value(inner, where)
            if name == "Fn::And":
                return all(self.condition_value(c, where) for c in self._list(argument, where))
        resolved = self.resolve(value, where)
        if isinstance(resolved, bool):
            return resolved
        if isinstance(resolved, str) and resolved.lower() in ("true", "false"):
            return resolved.lower() == "true"
        raise TemplateError(f"{where}: {value!r} is not a condition")

    # Each intrinsic function: `argument` is the unresolved value after the function's name.

    def _sub(self, argument: Any, where: str) -> str:
        if isinstance(argument, list):
            text, variables = self._args(argument, 2, where)
            variables = self.resolve(variables, where)
        else:
            text, variables = argument, {}
        if not isinstance(text, str):
            raise TemplateError(f"{where}: Fn::Sub needs a string")

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return self._scalar(variables[name], where)
            if name in self._pseudo or "." not in name:
                return self._scalar(self.ref(name, where), where)
            logical_id, _, attribute = name.partition(".")
            return self._scalar(self.lookup.get_att(logical_id, attribute), where)

        return _SUB_VARIABLE.sub(replace, text)

    def _get_att(self, argument: Any, where: str) -> Any:
        logical_id, attribute = self._args(argument, 2, where)
        return self.lookup.get_att(logical_id, self._scalar(attribute, where))

    def _if(self, argument: Any, where: str) -> Any:
        name, when_true, when_false = self._args(argument, 3, where)
        chosen = when_true if self.template.condition(name) else when_false
        return self.resolve(chosen, where)

    # helpers

    def _args(self, argument: Any, count: int, where: str) -> list[Any]:
        if not isinstance(argument, list) or len(argument) != count:
            raise TemplateError(f"{where}: expected a list of {count} arguments, got {argument!r}")
        return argument

    def _list(self, value: Any, where: str) -> list[Any]:
        resolved = self.resolve(value, where)
        if not isinstance(resolved, list):
            raise TemplateError(f"{where}: expected a list, got {resolved!r}")
        return resolved

    def _scalar(self, value: Any, where: str) -> str:
        resolved = self.resolve(value, where)
        if isinstance(resolved, dict | list):
            raise TemplateError(f"{where}: expected a single value, got {resolved!r}")
        return text_value(resolved)


def text_value(value: Any) -> str:
    """A resolved scalar as CloudFormation passes it on (booleans lower-case)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def references(value: Any) -> set[str]:
    """Names a value refers to through Ref, Fn::GetAtt and Fn::Sub (resources and others)."""
    found: set[str] = set()
    if isinstance(value, list):
        for item in value:
            found |= references(item)
    elif isinstance(value, dict):
        if _is_intrinsic(value):
            name, argument = next(iter(value.items()))
            if name == "Ref" and isinstance(argument, str):
                return {argument}
            if name == "Fn::GetAtt" and isinstance(argument, list) and argument:
                return {str(argument[0])}
            if name == "Fn::Sub":
                text, variables = (argument, {}) if isinstance(argument, str) else (argument[0], argument[1])
                found |= references(variables)
                for match in _SUB_VARIABLE.finditer(text if isinstance(text, str) else ""):
                    variable = match.group(1)
                    if not variable.startswith("!") and variable not in variables:
                        found.add(variable.partition(".")[0])
                return found
        for item in value.values():
            found |= references(item)
    return found


def iter_events(properties: Mapping[str, Any]) -> Iterable[tuple[str, str, Mapping[str, Any]]]:
    for name, event in (properties.get("Events") or {}).items():
        if isinstance(event, dict):
            yield name, str(event.get("Type", "")), event.get("Properties") or {}
