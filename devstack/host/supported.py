"""What the local host runs, checked when a template is loaded, before anything is created.

The host implements what template.yaml uses and nothing more, so anything else in a template is
refused here with a TemplateError naming its place: a function quietly left untriggered, or
triggered differently than on AWS, would be worse than a host that does not start. When the
template grows, the error says where the host must grow with it.
"""

from __future__ import annotations

from typing import Any

from devstack.host import http_api, schedules, sqs_source
from devstack.host.resources import (
    CREATED_PROPERTIES,
    GENERATE_SECRET_OPTIONS,
    HTTP_API,
    NAMED_ONLY_TYPES,
    Stack,
)
from devstack.host.template import FUNCTION, TemplateError, iter_events

# What a resource may say besides its properties (Metadata and the deletion policies change
# nothing locally; a false Condition leaves the resource out).
RESOURCE_ATTRIBUTES = frozenset(
    {"Type", "Properties", "Condition", "Metadata", "DeletionPolicy", "UpdateReplacePolicy"}
)
OUTPUT_ATTRIBUTES = frozenset({"Description", "Value"})
# The properties of a function (with Globals merged in) that the host reads, or that change
# nothing locally (Architectures, Description; Policies: iam turns them into the function's role).
FUNCTION_PROPERTIES = frozenset(
    {
        "Architectures",
        "CodeUri",
        "Description",
        "Environment",
        "Events",
        "Handler",
        "Layers",
        "MemorySize",
        "Policies",
        "ReservedConcurrentExecutions",
        "Runtime",
        "Timeout",
        "Tracing",
    }
)
# Each event source type the host runs, with the properties its module reads, and those it needs
# (an HttpApi event without ApiId would be on SAM's implicit API, which template.yaml does not use).
EVENT_PROPERTIES = {
    "HttpApi": http_api.EVENT_PROPERTIES,
    "SQS": sqs_source.EVENT_PROPERTIES,
    "Schedule": schedules.EVENT_PROPERTIES,
}
EVENT_REQUIRED = {
    "HttpApi": frozenset({"ApiId", "Path", "Method"}),
    "SQS": frozenset({"Queue"}),
    "Schedule": frozenset({"Schedule"}),
}
# The properties the host applies of each resource type it creates, and those of a named-only
# one that would change what a function gets (e.g. an API's stage name).
RESOURCE_PROPERTIES = {**CREATED_PROPERTIES, HTTP_API: http_api.API_PROPERTIES}


def check_supported(stack: Stack) -> None:
    """Raises TemplateError for the first resource type, resource attribute or property, function
    property, policy, event source type, event property, route or output the host does not run."""
    template = stack.template
    for logical_id, body in template.raw["Resources"].items():
        unknown = sorted(set(body) - RESOURCE_ATTRIBUTES)
        if unknown:
            raise _unsupported(f"Resources.{logical_id}.{unknown[0]}", "resources.py")
    for name, output in (template.raw.get("Outputs") or {}).items():
        unknown = sorted(set(output) - OUTPUT_ATTRIBUTES)
        if unknown:
            raise _unsupported(f"Outputs.{name}.{unknown[0]}", "local_host.py")
    for resource in template.resources.values():
        where = f"Resources.{resource.logical_id}"
        if resource.type not in stack.created_types | NAMED_ONLY_TYPES:
            raise _unsupported(f"{where}: resource type {resource.type}", "resources.py")
        allowed_properties = RESOURCE_PROPERTIES.get(resource.type)
        if allowed_properties is not None:
            unknown = sorted(set(resource.properties) - allowed_properties)
            if unknown:
                module = "http_api.py" if resource.type == HTTP_API else "resources.py"
                raise _unsupported(f"{where}.Properties.{unknown[0]}", module)
        options = resource.properties.get("GenerateSecretString") or {}
        unknown = sorted(set(options) - GENERATE_SECRET_OPTIONS)
        if unknown:
            raise _unsupported(f"{where}.Properties.GenerateSecretString.{unknown[0]}", "resources.py")
        if resource.type == FUNCTION:
            _check_function(where, resource.properties)


def _check_function(where: str, properties: dict[str, Any]) -> None:
    unknown = sorted(set(properties) - FUNCTION_PROPERTIES)
    if unknown:
        raise _unsupported(f"{where}.Properties.{unknown[0]}", "functions.py")
    policies = properties.get("Policies", [])
    if not isinstance(policies, list) or not all(isinstance(policy, dict) for policy in policies):
        raise _unsupported(f"{where}.Properties.Policies: a managed policy, or Policies not a list", "iam.py")
    for event_name, event_type, event in iter_events(properties):
        at = f"{where}.Properties.Events.{event_name}"
        allowed = EVENT_PROPERTIES.get(event_type)
        if allowed is None:
            raise _unsupported(f"{at}: event type {event_type!r}", "a source module")
        unknown = sorted(set(event) - allowed)
        if unknown:
            raise _unsupported(f"{at}.Properties.{unknown[0]}", f"the {event_type} source")
        missing = sorted(EVENT_REQUIRED[event_type] - set(event))
        if missing:
            raise TemplateError(f"{at}.Properties.{missing[0]}: required by the local host")
        if event_type == "HttpApi":
            route = http_api.unsupported_route(event["Method"], event["Path"])
            if route is not None:
                raise _unsupported(f"{at}: {route}", "http_api.py")


def _unsupported(what: str, where_to_add: str) -> TemplateError:
    return TemplateError(
        f"{what} is not supported by the local host (devstack/host: add it to {where_to_add} "
        "and to devstack/host/supported.py)"
    )
