"""What the local host runs, checked when a template is loaded, before anything is created.

The host implements what template.yaml uses and nothing more, so anything else in a template is
refused here with a TemplateError naming its place: a function quietly left untriggered, or
triggered differently than on AWS, would be worse than a host that does not start. When the
template grows, the error says where the host must grow with it.
"""

from __future__ import annotations

from devstack.host import http_api, schedules, sqs_source
from devstack.host.resources import HTTP_API, NAMED_ONLY_TYPES, Stack
from devstack.host.template import FUNCTION, TemplateError, iter_events

# The properties of a function (with Globals merged in) that the host reads, or that change
# nothing locally (Architectures, Description, Policies: iam turns them into the function's role).
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
# Named-only resources whose properties would change what a function gets (e.g. a stage name).
RESOURCE_PROPERTIES = {HTTP_API: http_api.API_PROPERTIES}


def check_supported(stack: Stack) -> None:
    """Raises TemplateError for the first resource type, function property, event source type
    or event property the host does not run."""
    for resource in stack.template.resources.values():
        where = f"Resources.{resource.logical_id}"
        if resource.type not in stack.created_types | NAMED_ONLY_TYPES:
            raise _unsupported(f"{where}: resource type {resource.type}", "resources.py")
        allowed_properties = RESOURCE_PROPERTIES.get(resource.type)
        if allowed_properties is not None:
            unknown = sorted(set(resource.properties) - allowed_properties)
            if unknown:
                raise _unsupported(f"{where}.Properties.{unknown[0]}", "http_api.py")
        if resource.type != FUNCTION:
            continue
        unknown = sorted(set(resource.properties) - FUNCTION_PROPERTIES)
        if unknown:
            raise _unsupported(f"{where}.Properties.{unknown[0]}", "functions.py")
        for event_name, event_type, properties in iter_events(resource.properties):
            event = f"{where}.Properties.Events.{event_name}"
            allowed = EVENT_PROPERTIES.get(event_type)
            if allowed is None:
                raise _unsupported(f"{event}: event type {event_type!r}", "a source module")
            unknown = sorted(set(properties) - allowed)
            if unknown:
                raise _unsupported(f"{event}.Properties.{unknown[0]}", f"the {event_type} source")
            missing = sorted(EVENT_REQUIRED[event_type] - set(properties))
            if missing:
                raise TemplateError(f"{event}.Properties.{missing[0]}: required by the local host")


def _unsupported(what: str, where_to_add: str) -> TemplateError:
    return TemplateError(
        f"{what} is not supported by the local host (devstack/host: add it to {where_to_add} "
        "and to devstack/host/supported.py)"
    )
