"""What each `AWS::Serverless::Function` is, locally: code, handler, limits, environment, events."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack.host.aws import local_credentials
from devstack.host.resources import LAYER, Stack
from devstack.host.template import FUNCTION, Resource, TemplateError, iter_events, text_value

_RESOLVED_PROPERTIES = (
    "Handler",
    "Runtime",
    "CodeUri",
    "Timeout",
    "MemorySize",
    "Environment",
    "Layers",
    "Tracing",
    "ReservedConcurrentExecutions",
)


@dataclass(frozen=True)
class EventSpec:
    name: str
    type: str
    properties: dict[str, Any]  # resolved


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    name: str
    arn: str
    handler: str
    code_dir: Path
    python_paths: tuple[Path, ...]  # code directory first, then layers, as Lambda's sys.path
    timeout: float
    memory_mb: int
    concurrency: int
    env: dict[str, str]
    events: tuple[EventSpec, ...]
    traced: bool = False  # Tracing: Active (the host's X-Ray stand-in gets its segments)
    # The execution role's credentials for a new sandbox: (their variables, when they expire, epoch
    # seconds). None: the sandbox keeps the host's own credentials from `env`.
    credentials: Callable[[], tuple[dict[str, str], float]] | None = None


def build_functions(
    stack: Stack,
    env_overrides: Mapping[str, str],
    function_env_overrides: Mapping[str, Mapping[str, str]],
) -> dict[str, FunctionSpec]:
    specs: dict[str, FunctionSpec] = {}
    api_urls = api_url_rewrites(stack)
    for resource in stack.template.of_type(FUNCTION):
        spec = _build_one(stack, resource, api_urls)
        spec.env.update(env_overrides)
        spec.env.update(function_env_overrides.get(resource.logical_id, {}))
        specs[resource.logical_id] = spec
    unknown = sorted(set(function_env_overrides) - set(specs))
    if unknown:
        raise TemplateError(f"environment overrides name functions the template lacks: {unknown}")
    return specs


def _build_one(stack: Stack, resource: Resource, api_urls: Mapping[str, str]) -> FunctionSpec:
    logical_id = resource.logical_id
    props = {key: stack.resolve(resource, key) for key in _RESOLVED_PROPERTIES if key in resource.properties}
    runtime = str(props.get("Runtime", ""))
    if not runtime.startswith("python"):
        raise TemplateError(
            f"Resources.{logical_id}.Properties.Runtime: only python runs locally, not {runtime!r}"
        )
    handler = str(props.get("Handler") or "")
    if not handler:
        raise TemplateError(f"Resources.{logical_id}.Properties.Handler: missing")
    code_dir = _code_dir(stack, logical_id, props)
    name = stack.ref(logical_id)
    memory = int(props.get("MemorySize", 128))
    timeout = float(props.get("Timeout", 3))
    events = tuple(
        EventSpec(event_name, event_type, _resolve_event(stack, logical_id, event_name, event_props))
        for event_name, event_type, event_props in iter_events(resource.properties)
    )
    variables = {
        str(key): text_value(value)
        for key, value in ((props.get("Environment") or {}).get("Variables") or {}).items()
    }
    check_lambda_variables(
        logical_id, variables, region=stack.pseudo.region, local_endpoint=stack.clients.endpoint
    )
    env = {
        **_runtime_env(
            name=name, handler=handler, memory=memory, runtime=runtime, code_dir=code_dir, stack=stack
        ),
        **{key: rewrite_api_urls(value, api_urls) for key, value in variables.items()},
        "AWS_ENDPOINT_URL": stack.clients.endpoint,
    }
    traced = props.get("Tracing") == "Active"
    if not traced:  # powertools' tracer would only complain that no daemon listens
        env["POWERTOOLS_TRACE_DISABLED"] = "true"
    return FunctionSpec(
        logical_id=logical_id,
        name=name,
        arn=stack.get_att(logical_id, "Arn"),
        handler=handler,
        code_dir=code_dir,
        python_paths=(code_dir, *_layer_dirs(stack, logical_id, props.get("Layers") or [])),
        timeout=timeout,
        memory_mb=memory,
        concurrency=_concurrency(events, props.get("ReservedConcurrentExecutions")),
        env=env,
        events=events,
        traced=traced,
    )


# What Lambda's CreateFunction refuses in `Environment.Variables` (InvalidParameterValueException),
# so that a template the service would not deploy does not run here either.
VARIABLES_LIMIT_BYTES = 4096  # the compact JSON of the whole map, as its error says it measured
_VARIABLE_NAME = re.compile(r"[a-zA-Z][a-zA-Z0-9_]+")
RESERVED_VARIABLES = frozenset(
    {
        "_HANDLER",
        "_X_AMZN_TRACE_ID",
        "AWS_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID",
        "AWS_DEFAULT_REGION",
        "AWS_EXECUTION_ENV",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_INITIALIZATION_TYPE",
        "AWS_LAMBDA_LOG_GROUP_NAME",
        "AWS_LAMBDA_LOG_STREAM_NAME",
        "AWS_LAMBDA_RUNTIME_API",
        "AWS_REGION",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "LAMBDA_RUNTIME_DIR",
        "LAMBDA_TASK_ROOT",
    }
)


def check_lambda_variables(
    logical_id: str, variables: Mapping[str, str], *, region: str, local_endpoint: str
) -> None:
    """Lambda's rules for a function's variables: names, reserved keys and the 4 KB limit. The
    size counts the local engine's URLs (the queues') at the length of AWS's endpoint, which is
    longer, so what fits here fits there."""
    where = f"Resources.{logical_id}.Properties.Environment.Variables"
    reserved = sorted(RESERVED_VARIABLES & set(variables))
    if reserved:
        raise TemplateError(f"{where}: Lambda reserves {reserved}; they cannot be set")
    bad = sorted(name for name in variables if not _VARIABLE_NAME.fullmatch(name))
    if bad:
        raise TemplateError(f"{where}: names must match [a-zA-Z]([a-zA-Z0-9_])+: {bad}")
    aws_endpoint = f"https://sqs.{region}.amazonaws.com"
    measured = json.dumps(
        {name: value.replace(local_endpoint, aws_endpoint) for name, value in variables.items()},
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()
    if len(measured) > VARIABLES_LIMIT_BYTES:
        largest = sorted(variables, key=lambda name: -len(variables[name]))[:3]
        raise TemplateError(
            f"{where}: {len(measured)} bytes as Lambda measures them, over its limit of "
            f"{VARIABLES_LIMIT_BYTES} (the largest: {largest})"
        )


def _resolve_event(stack: Stack, logical_id: str, event_name: str, properties: Any) -> dict[str, Any]:
    where = f"Resources.{logical_id}.Properties.Events.{event_name}.Properties"
    resolved = stack.resolver.resolve(properties, where)
    if not isinstance(resolved, dict):
        raise TemplateError(f"{where}: expected a mapping")
    return resolved


def _code_dir(stack: Stack, logical_id: str, props: Mapping[str, Any]) -> Path:
    code_uri = props.get("CodeUri", ".")
    if not isinstance(code_uri, str):
        raise TemplateError(f"Resources.{logical_id}.Properties.CodeUri: only a local folder runs locally")
    code_dir = (stack.template.base_dir / code_uri).resolve()
    if not code_dir.is_dir():
        raise TemplateError(f"Resources.{logical_id}.Properties.CodeUri: {code_dir} is not a folder")
    return code_dir


def _layer_dirs(stack: Stack, logical_id: str, layers: list[Any]) -> list[Path]:
    """The function's layers, each a layer of the template (as template.yaml's are), by its local
    content folder (`python/` inside if built)."""
    by_arn = {
        stack.ref(layer.logical_id): layer
        for layer in stack.template.of_type(LAYER)
        if isinstance(layer.properties.get("ContentUri"), str)
    }
    found = []
    for arn in layers:
        layer = by_arn.get(arn)
        if layer is None:
            raise TemplateError(
                f"Resources.{logical_id}.Properties.Layers: {arn} is not a layer of this template "
                "with a local ContentUri, the only kind run locally"
            )
        content = (stack.template.base_dir / layer.properties["ContentUri"]).resolve()
        found.append(content / "python" if (content / "python").is_dir() else content)
    return found


# Lambda runs each concurrent invocation in an execution environment of its own, up to the
# account's concurrency (1,000 by default) unless the function reserves some: a schedule's next
# invocation starts beside one still running, two API requests run side by side. The host runs
# this many at once of a function that reserves none: enough for every overlap to happen.
UNRESERVED_CONCURRENCY = 4


def _concurrency(events: tuple[EventSpec, ...], reserved: Any) -> int:
    """The function's ReservedConcurrentExecutions (0: every invocation is throttled), else
    UNRESERVED_CONCURRENCY, or more when an SQS source's scaling allows more."""
    if reserved is not None:
        return int(reserved)
    scaling = [
        int((e.properties.get("ScalingConfig") or {}).get("MaximumConcurrency", 1))
        for e in events
        if e.type == "SQS"
    ]
    return max([UNRESERVED_CONCURRENCY, *scaling])


def _runtime_env(
    *, name: str, handler: str, memory: int, runtime: str, code_dir: Path, stack: Stack
) -> dict[str, str]:
    """What the Lambda service sets in every execution environment (reserved variables)."""
    region = stack.pseudo.region
    return {
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{runtime}",
        "_HANDLER": handler,
        "LAMBDA_TASK_ROOT": str(code_dir),
        "LAMBDA_RUNTIME_DIR": str(Path(__file__).parent),
        "TZ": ":UTC",
        "LANG": "en_US.UTF-8",
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        "PYTHONUNBUFFERED": "1",
        **local_credentials(),
    }


def api_url_rewrites(stack: Stack) -> dict[str, str]:
    """`https://<api id>.execute-api.<region>.<suffix>` -> the local server of that API."""
    rewrites = {}
    for logical_id, url in stack.api_endpoints.items():
        api_id = stack.ref(logical_id)
        public = f"https://{api_id}.execute-api.{stack.pseudo.region}.{stack.pseudo.url_suffix}"
        rewrites[public] = url
    return rewrites


def rewrite_api_urls(value: str, rewrites: Mapping[str, str]) -> str:
    for public, local in rewrites.items():
        value = re.sub(re.escape(public) + r"(?=/|$)", local, value)
    return value
