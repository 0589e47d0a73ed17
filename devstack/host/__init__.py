"""The local function host: runs a SAM template's functions against moto server, as AWS would.

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
`resources` (creating resources, names and ARNs), `functions` (code, limits and environment of
each function), `invoker` + `worker` (one process per execution environment), `http_api`,
`sqs_source`, `schedules` + `schedule_expr`, `local_host` (wiring), `__main__` (the program).
"""

from devstack.host.invoker import InvocationError, InvocationTimeoutError
from devstack.host.local_host import LocalHost
from devstack.host.resources import ProvisioningError
from devstack.host.template import TemplateError

__all__ = ["InvocationError", "InvocationTimeoutError", "LocalHost", "ProvisioningError", "TemplateError"]
