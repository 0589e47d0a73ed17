"""The local function host: runs template.yaml's functions on this machine, wired as AWS would.

Why it exists: `sam local` runs each function in a container, so it needs a container runtime
(Docker), which the machines this project is developed and tested on do not have. The host runs
each function of the template in a subprocess instead, with its role's credentials (a session of
a role holding exactly its template policies, enforced by the local AWS engine), its environment
(Globals merged, intrinsic functions resolved, API URLs pointing at the local server) and its
event sources (HTTP API routes, SQS queues, schedules).

    host = LocalHost("template.yaml", aws_endpoint="http://127.0.0.1:5000",
                     parameter_overrides={"ApiVersion": "v1"}, secret_values={"WebhookSecret": "..."},
                     time_factor=60).start()
    host.api_url                      # http://127.0.0.1:<port> (the template's HTTP API)
    host.resources["EventsQueue"]     # {"Type", "Ref", "Arn", "QueueUrl", "QueueName"}
    host.outputs["CallbackUrl"]       # Outputs, with API URLs pointing at the local server
    host.invoke("RefresherFunction", {})            # synchronous; raises InvocationError
    host.trigger_schedule("RefresherFunction")      # its schedule's event, now
    host.stop()

Or as a program: `python -m devstack.host --template template.yaml --aws-endpoint URL`, which
prints one JSON line (`api`, `apis`, `resources`, `outputs`) when ready and stops on SIGTERM/SIGINT.

Nothing in here knows the project's functions: routes, queues, schedules, tables, keys and
secrets all come from the template. Modules: `template` (loading, intrinsic functions),
`supported` (what the host runs, checked at load), `resources` (creating resources, names and
ARNs), `functions` (code, limits and environment of each function), `iam` (each function's
role), `invoker` + `worker` (one process per execution environment), the event sources
`http_api`, `sqs_source` and `schedules`, `xray` (a stand-in for the X-Ray daemon), `local_host`
(wiring), `__main__` (the program).

It implements what template.yaml uses today and no more: anything else in a template (a
resource type, attribute or property, a function or event property, an event source type, a
route with `ANY`, `$default` or a greedy `{name+}`, a Globals section, a parameter type other
than String and Number, an intrinsic function, a schedule expression other than `rate(...)`, a
managed policy in `Policies`, an output's `Condition` or `Export`) is refused with a
TemplateError when the template is loaded (`supported`). When the template grows, the host grows
with it:

- a new event source type (e.g. `DynamoDB`, `EventBridgeRule`): a new source module here, listed
  in `supported.EVENT_PROPERTIES` and wired in `LocalHost._wire_events`;
- a new property of an event or a function: read it where that source (or `functions`) is
  built, and allow it in `supported`;
- a new property of a created resource (a table, queue, key, secret, ...): apply it in its
  creator in `resources.Stack` and add it to `resources.CREATED_PROPERTIES`;
- a new resource type: a creator in `resources.Stack` when functions use it at the endpoint
  (tables, queues, ...), else `resources.NAMED_ONLY_TYPES` when it runs nothing locally;
- a new intrinsic function or parameter type: `template.Resolver`, `template.PARAMETER_TYPES`.

The tests of what it runs: tests/unit/test_host_*.py and tests/integration/test_host_*.py, most
of them on a fixture template (tests/fixtures/host/template.yaml) that uses each feature
template.yaml uses, and no other.
"""

from devstack.host.invoker import InvocationError, InvocationTimeoutError
from devstack.host.local_host import LocalHost
from devstack.host.resources import ProvisioningError
from devstack.host.template import TemplateError

__all__ = ["InvocationError", "InvocationTimeoutError", "LocalHost", "ProvisioningError", "TemplateError"]
