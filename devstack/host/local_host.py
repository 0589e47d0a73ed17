"""`LocalHost`: runs a SAM template's functions locally, wired exactly as the template says."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from botocore.exceptions import BotoCoreError, ClientError

from devstack.child import start_or_stop
from devstack.host.aws import Clients
from devstack.host.functions import FunctionSpec, api_url_rewrites, build_functions, rewrite_api_urls
from devstack.host.http_api import HttpApi, Route
from devstack.host.iam import EngineIamAuthorizer, RoleSessions, function_roles
from devstack.host.invoker import FunctionRuntime
from devstack.host.resources import HTTP_API, ProvisioningError, Stack
from devstack.host.schedules import Schedule, Scheduler, make_schedule
from devstack.host.sqs_source import SqsEventSource
from devstack.host.supported import check_supported
from devstack.host.template import FUNCTION, Pseudo, Template, TemplateError, load_template
from devstack.host.xray import XRayCollector

log = logging.getLogger("devstack.host")


class LocalHost:
    """Provisions the template's resources at `aws_endpoint` and runs its functions.

    `start()` creates tables, queues, keys and secrets, then serves the HTTP APIs, polls the SQS
    event sources and fires the schedules; `stop()` ends all of it. Functions run in worker
    processes (see `invoker`), started on their first invocation and kept warm.
    """

    def __init__(
        self,
        template_path: str | Path,
        aws_endpoint: str,
        *,
        parameter_overrides: Mapping[str, str] | None = None,
        property_overrides: Mapping[str, Mapping[str, Any]] | None = None,
        env_overrides: Mapping[str, str] | None = None,
        function_env_overrides: Mapping[str, Mapping[str, str]] | None = None,
        secret_values: Mapping[str, str] | None = None,
        time_factor: float = 1.0,
        http_port: int = 0,
        stack_name: str = "sipreg-local",
        region: str | None = None,
        sqs_wait_seconds: int = 1,
        log_dir: str | Path | None = None,
        init_timeout: float = 30.0,
        prewarm: bool = False,
        function_roles: bool = True,
    ) -> None:
        self.template_path = Path(template_path).resolve()
        self.aws_endpoint = aws_endpoint
        self.parameter_overrides = dict(parameter_overrides or {})
        self.property_overrides = {k: dict(v) for k, v in (property_overrides or {}).items()}
        self.env_overrides = dict(env_overrides or {})
        self.function_env_overrides = {k: dict(v) for k, v in (function_env_overrides or {}).items()}
        self.secret_values = dict(secret_values or {})
        self.time_factor = time_factor
        self.http_port = http_port
        self.stack_name = stack_name
        self.region = (
            region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        )
        self.sqs_wait_seconds = sqs_wait_seconds
        self.log_dir = Path(log_dir) if log_dir else None
        self.init_timeout = init_timeout
        self.prewarm = prewarm
        # Each function runs as a role of its own holding exactly its template policies (see
        # devstack.host.iam); False: every function runs with the host's own credentials.
        self.function_roles = function_roles
        self.roles: dict[str, RoleSessions] = {}
        self.apis: dict[str, HttpApi] = {}
        self.functions: dict[str, FunctionSpec] = {}
        self.runtimes: dict[str, FunctionRuntime] = {}
        self.sources: list[SqsEventSource] = []
        self.schedules: list[Schedule] = []
        self.stack: Stack | None = None
        self.outputs: dict[str, Any] = {}
        self._scheduler: Scheduler | None = None
        self._logs: list[IO[Any]] = []
        self.xray: XRayCollector | None = None  # X-Ray's stand-in, when a function is traced
        self._authorizer: EngineIamAuthorizer | None = None
        self._started = False

    # --- the API other code uses --------------------------------------------------------------

    @property
    def api_url(self) -> str | None:
        """Base URL of the template's (first) HTTP API, None if it has none."""
        return next((api.url for api in self.apis.values()), None)

    @property
    def api_urls(self) -> dict[str, str]:
        return {logical_id: api.url for logical_id, api in self.apis.items()}

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        """Logical id -> {"Type", "Ref", and attributes such as "Arn", "QueueUrl"}."""
        if self.stack is None:
            return {}
        return {logical_id: p.describe() for logical_id, p in self.stack.physical.items()}

    def invoke(self, function_logical_id: str, event: Any) -> Any:
        """Invokes a function synchronously (RequestResponse); raises InvocationError on its error."""
        return self._runtime(function_logical_id).invoke(event)

    def trigger_schedule(self, function_logical_id: str, name: str | None = None) -> Any:
        """Fires a function's schedule now (the one named, or its only one); returns the result."""
        self._runtime(function_logical_id)
        found = [
            s
            for s in self.schedules
            if s.function.spec.logical_id == function_logical_id and name in (None, s.name)
        ]
        if len(found) != 1 or self._scheduler is None:
            names = [s.name for s in self.schedules if s.function.spec.logical_id == function_logical_id]
            raise ValueError(f"{function_logical_id} has schedules {names}; name one of them")
        return self._scheduler.fire(found[0])

    def start(self) -> LocalHost:
        if self._started:
            raise RuntimeError("this host has already been started")
        self._started = True
        start_or_stop(self._start, self.stop)
        return self

    def stop(self) -> None:
        """Stops schedules, pollers, servers and workers; quick (about one SQS poll wait)."""
        if self._scheduler is not None:
            self._scheduler.stop()
        with ThreadPoolExecutor(max_workers=max(len(self.sources), 1)) as pool:
            list(pool.map(SqsEventSource.stop, self.sources))
        for api in self.apis.values():
            api.stop()
        if self._authorizer is not None:
            self._authorizer.close()
            self._authorizer = None
        for runtime in self.runtimes.values():
            runtime.close()
        if self.xray is not None:
            self.xray.stop()
            self.xray = None
        for stream in self._logs:
            stream.close()
        self._scheduler, self.sources, self.apis, self.runtimes, self._logs = None, [], {}, {}, []

    def __enter__(self) -> LocalHost:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- wiring -------------------------------------------------------------------------------

    def _start(self) -> None:
        clients = Clients(self.aws_endpoint, self.region)
        pseudo = Pseudo(region=self.region, account_id=self._account_id(clients), stack_name=self.stack_name)
        template = Template(
            load_template(self.template_path),
            self.template_path.parent,
            pseudo,
            self.parameter_overrides,
            self.property_overrides,
        )
        stack = self.stack = Stack(template, clients, {}, self.secret_values)
        check_supported(stack)
        self._bind_apis(stack)
        stack.provision()
        if self.function_roles:
            # Before the functions' environments: they may name a role (`!GetAtt <Function>Role.RoleId`).
            self._create_roles(stack)
        self.functions = build_functions(stack, self.env_overrides, self.function_env_overrides)
        if any(spec.traced for spec in self.functions.values()):
            self.xray = XRayCollector(self.log_dir / "xray.jsonl" if self.log_dir else None).start()
            for spec in self.functions.values():
                if spec.traced:
                    spec.env["AWS_XRAY_DAEMON_ADDRESS"] = self.xray.address
        self._give_roles()
        for logical_id, spec in self.functions.items():
            self.runtimes[logical_id] = FunctionRuntime(spec, self._output_for(logical_id), self.init_timeout)
        self._wire_events(stack, clients)
        self.outputs = self._outputs(stack)
        self._scheduler = Scheduler(self.schedules, pseudo.account_id, self.region, self.time_factor)
        if self.prewarm:
            with ThreadPoolExecutor(max_workers=4) as pool:
                list(pool.map(FunctionRuntime.prewarm, self.runtimes.values()))
        for api in self.apis.values():
            api.start()
        for source in self.sources:
            source.start()
        self._scheduler.start()
        log.info(
            "local host ready: %d functions, %d routes, %d SQS sources, %d schedules",
            len(self.runtimes),
            sum(len(a.routes) for a in self.apis.values()),
            len(self.sources),
            len(self.schedules),
        )

    def _create_roles(self, stack: Stack) -> None:
        names = {fn.logical_id: str(stack.ref(fn.logical_id)) for fn in stack.template.of_type(FUNCTION)}
        try:
            self.roles = function_roles(stack, names)
        except (ClientError, BotoCoreError) as exc:
            raise ProvisioningError(f"execution roles: {exc}") from exc

    def _give_roles(self) -> None:
        for logical_id, sessions in self.roles.items():

            def credentials(sessions: RoleSessions = sessions) -> tuple[dict[str, str], float]:
                current = sessions.current()
                return current.as_environment(), current.expires_at

            self.functions[logical_id] = replace(self.functions[logical_id], credentials=credentials)

    def _outputs(self, stack: Stack) -> dict[str, Any]:
        """The template's Outputs, resolved locally (API URLs point at the local servers)."""
        rewrites = api_url_rewrites(stack)
        outputs: dict[str, Any] = {}
        for name, output in (stack.template.raw.get("Outputs") or {}).items():
            try:
                value = stack.resolver.resolve(output.get("Value"), f"Outputs.{name}.Value")
            except TemplateError as exc:
                log.warning("output %s is not resolved locally: %s", name, exc)
                continue
            outputs[name] = rewrite_api_urls(value, rewrites) if isinstance(value, str) else value
        return outputs

    def _account_id(self, clients: Clients) -> str:
        try:
            return clients.account_id()
        except (BotoCoreError, ClientError) as exc:
            raise ProvisioningError(f"cannot reach the AWS endpoint {self.aws_endpoint}: {exc}") from exc

    def _bind_apis(self, stack: Stack) -> None:
        """Listens for each HTTP API before provisioning, so `ApiEndpoint` names the local URL."""
        for position, resource in enumerate(stack.template.of_type(HTTP_API)):
            api = HttpApi(resource.logical_id, self.http_port if position == 0 else 0)
            self.apis[resource.logical_id] = api
            stack.api_endpoints[resource.logical_id] = api.url

    def _wire_events(self, stack: Stack, clients: Clients) -> None:
        by_api_id = {stack.ref(logical_id): api for logical_id, api in self.apis.items()}
        for api in self.apis.values():
            api.api_id, api.account_id = stack.ref(api.logical_id), stack.pseudo.account_id
            api.region = stack.pseudo.region
            api.iam_authorizer = self._iam_authorizer()
        for logical_id, spec in self.functions.items():
            runtime = self.runtimes[logical_id]
            for event in spec.events:
                props = event.properties
                where = f"Resources.{logical_id}.Properties.Events.{event.name}"
                if event.type == "HttpApi":
                    target = by_api_id.get(props["ApiId"])
                    if target is None:
                        raise TemplateError(f"{where}.Properties.ApiId: not an HttpApi of this template")
                    authorizer = self._route_authorizer(stack, target.logical_id, props, where)
                    target.routes.append(
                        Route(str(props["Method"]).upper(), str(props["Path"]), runtime, authorizer)
                    )
                elif event.type == "SQS":
                    self.sources.append(
                        SqsEventSource(runtime, event.name, props, clients, self.sqs_wait_seconds)
                    )
                else:  # Schedule: `supported` refused every other type at load
                    self.schedules.append(self._event_schedule(stack, runtime, event.name, props))

    def _iam_authorizer(self) -> EngineIamAuthorizer:
        if self._authorizer is None:
            self._authorizer = EngineIamAuthorizer(self.aws_endpoint, self.region)
        return self._authorizer

    @staticmethod
    def _route_authorizer(stack: Stack, api_logical_id: str, props: dict[str, Any], where: str) -> str | None:
        """The route's authorizer: AWS_IAM, or None for an open route."""
        api = stack.template.resources.get(api_logical_id)
        api_auth = (stack.resolve(api, "Auth", {}) if api is not None else {}) or {}
        name = (props.get("Auth") or {}).get("Authorizer")
        if name in (None, "NONE"):
            return None
        if name != "AWS_IAM":
            raise TemplateError(
                f"{where}.Properties.Auth.Authorizer: only AWS_IAM runs locally, not {name!r}"
            )
        if not api_auth.get("EnableIamAuthorizer"):
            raise TemplateError(
                f"{where}: AWS_IAM needs Auth.EnableIamAuthorizer on the API {api_logical_id}"
            )
        return "AWS_IAM"

    @staticmethod
    def _event_schedule(stack: Stack, runtime: FunctionRuntime, name: str, props: dict[str, Any]) -> Schedule:
        arn = stack.arn("events", f"rule/{stack.generated_name(f'{runtime.spec.logical_id}{name}', 64)}")
        try:
            return make_schedule(runtime, name, arn, props)
        except ValueError as exc:
            raise TemplateError(
                f"Resources.{runtime.spec.logical_id}.Properties.Events.{name}: {exc}"
            ) from exc

    def _output_for(self, logical_id: str) -> int | IO[Any]:
        """Where a function's stdout/stderr go: `<log_dir>/<LogicalId>.log`, else our stderr."""
        if self.log_dir is None:
            return 2
        self.log_dir.mkdir(parents=True, exist_ok=True)
        stream = (self.log_dir / f"{logical_id}.log").open("ab")
        self._logs.append(stream)
        return stream

    def _runtime(self, function_logical_id: str) -> FunctionRuntime:
        if function_logical_id not in self.runtimes:
            raise KeyError(f"no running function {function_logical_id!r}; functions: {sorted(self.runtimes)}")
        return self.runtimes[function_logical_id]
