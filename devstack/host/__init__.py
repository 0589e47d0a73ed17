"""The local function host: runs a SAM template's functions against moto server, as AWS would.

    host = LocalHost("template.yaml", aws_endpoint="http://127.0.0.1:5000").start()
    host.api_url, host.resources, host.invoke("Fn", event), host.trigger_schedule("Fn"), host.stop()

Or as a program: `python -m devstack.host --template template.yaml --aws-endpoint URL`.
"""

from devstack.host.invoker import InvocationError, InvocationTimeoutError
from devstack.host.local_host import LocalHost
from devstack.host.resources import ProvisioningError
from devstack.host.template import TemplateError

__all__ = ["InvocationError", "InvocationTimeoutError", "LocalHost", "ProvisioningError", "TemplateError"]
