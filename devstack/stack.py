"""The whole of sipreg on one machine: the local AWS engine, wg2sim (core + identity server) and
the local function host running the repository's `template.yaml` against them, all on free
loopback ports.

    with LocalStack(StackOptions(api_version="v0", auth_mode="user", time_factor=360)).start() as stack:
        stack.api_url                  # the HTTP API (consent pages, events, status)
        stack.webhook_secret           # the local dev signing secret of the events API
        stack.sim.registrations()      # what the core holds (wg2sim's admin API)
        stack.host.trigger_schedule("RefresherFunction")
        stack.pbx.pbx_uri              # the local PBX (Kamailio, SIP over TLS): register numbers to it
        stack.sim.call("+47...", "+47...", "busy")   # a call on the core, leg by leg
        stack.ready_info()             # what `sipreg devstack up` prints as its first line

Time: `time_factor` F makes the emulator's clock, the host's schedules and the function settings
that count real seconds until something on the core runs out (the refresh margins, the retry
delays) all F times faster, so a registration's 3600 s TTL lasts 3600/F real seconds and is still
refreshed in time. wg2sim tells clients real seconds (`time_to_live`, `expires_in`), so sipreg's
own clock needs no scaling.

Calls: the local PBX (`devstack.pbx`, Kamailio with TLS on loopback) serves two endpoints of one
provider, `pbx_uri` and `voicemail_uri`, with a certificate wg2sim trusts; wg2sim's call path
(`POST /_admin/calls`) sends its INVITEs there, and the PBX sends Loop calls back to wg2sim's SIP
port (trusting wg2sim's certificate).

Logs go to `log_dir`: `stack.log` (this module and the host), `aws.log`, `wg2sim.log`, `pbx.log`
(Kamailio: one line per SIP request) and one `<FunctionLogicalId>.log` per function. AWS
credentials of this process are replaced by local placeholders on start, so real ones never
reach the local stack.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime
from pathlib import Path
from typing import Any, Self

import httpx

from devstack.aws_engine import REGION, ROOT, Credentials, LocalAws, root_client
from devstack.child import Stoppable, start_or_stop
from devstack.host import LocalHost
from devstack.host.template import load_template
from devstack.pbx import LocalPbx, write_pbx_tls
from devstack.stack_options import StackOptions, health_check_schedule, scaled_function_settings
from devstack.wg2sim.oidc.config import DEV_CLIENT
from devstack.wg2sim.process import Wg2simProcess
from sipreg.config import RefresherSettings

log = logging.getLogger("devstack.stack")

# Local dev values, documented in the README; a deployed stack generates its own.
DEV_WEBHOOK_SECRET = "sipreg-local-webhook-secret"  # noqa: S105
# Worker sandboxes at once. Each is a process of its own here: the template's default (40, sized
# for a million numbers in AWS) made `make chaos` on 2 cores take 400 s to send what it sends in
# 120, and signed posts timed out. Chaos was measured converging with 5.
LOCAL_WORKER_CONCURRENCY = 5
LOCAL_CREDENTIALS = {**ROOT.as_environment(), "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION}


class StackError(RuntimeError):
    """The stack could not start; the message names the part and where its log is."""


def _export(credentials: Credentials | None) -> str:
    if credentials is None:
        return ""
    return (
        f"AWS_ACCESS_KEY_ID={credentials.access_key_id} AWS_SECRET_ACCESS_KEY={credentials.secret_access_key}"
    )


def _credentials_info(credentials: Credentials | None) -> dict[str, str] | None:
    if credentials is None:
        return None
    return {"access_key_id": credentials.access_key_id, "secret_access_key": credentials.secret_access_key}


class LocalStack(Stoppable):
    """Starts and stops the local AWS, wg2sim and the host, in that order (stopped in reverse)."""

    def __init__(self, options: StackOptions | None = None) -> None:
        self.options = options or StackOptions()
        self.log_dir = (
            self.options.log_dir or Path("devstack-logs") / datetime.now().strftime("%Y%m%d-%H%M%S")
        ).resolve()
        self.webhook_secret = DEV_WEBHOOK_SECRET
        self.client_id = DEV_CLIENT.client_id
        self._client_secret = DEV_CLIENT.client_secret
        self.aws: LocalAws | None = None
        self._sim: Wg2simProcess | None = None
        self._host: LocalHost | None = None
        self._pbx: LocalPbx | None = None
        self._log_handler: logging.Handler | None = None
        # Local IAM users holding the template's OperatorPolicy / ProducerPolicy (stand-ins, valid
        # nowhere else): what `sipreg status`/`revoke`/`redrive` and AWS-native producers sign with.
        self.operator: Credentials | None = None
        self.producer: Credentials | None = None

    # --- what callers use ---------------------------------------------------------------------

    @property
    def sim(self) -> Wg2simProcess:
        if self._sim is None:
            raise RuntimeError("the stack is not running")
        return self._sim

    @property
    def host(self) -> LocalHost:
        if self._host is None:
            raise RuntimeError("the stack is not running")
        return self._host

    @property
    def pbx(self) -> LocalPbx:
        if self._pbx is None:
            raise RuntimeError("the stack runs no local PBX")
        return self._pbx

    @property
    def api_url(self) -> str:
        url = self.host.api_url
        assert url is not None, "template.yaml serves an HTTP API"
        return url

    @property
    def aws_endpoint(self) -> str:
        assert self.aws is not None
        return self.aws.endpoint

    def ref(self, logical_id: str, attribute: str = "Ref") -> str:
        return str(self.host.resources[logical_id][attribute])

    def ready_info(self) -> dict[str, Any]:
        """The machine-readable description of the running stack (no secrets but the local dev ones:
        the webhook secret and the local operator's and producer's keys, valid nowhere else)."""
        return {
            "api": self.api_url,
            "consent_start": f"{self.api_url}/oauth/start",
            "aws_endpoint": self.aws_endpoint,
            "region": REGION,
            "core_grpc": self.sim.grpc_target,
            "core_ca_file": self.sim.ca_file,
            "wg2sim_http": self.sim.http_url,
            "webhook_secret": self.webhook_secret,
            "operator": _credentials_info(self.operator),
            "producer": _credentials_info(self.producer),
            "client_id": self.client_id,
            "api_version": self.options.api_version,
            "auth_mode": self.options.auth_mode,
            "time_factor": self.options.time_factor,
            "log_dir": str(self.log_dir),
            "resources": {logical_id: r["Ref"] for logical_id, r in self.host.resources.items()},
            "queues": {
                logical_id: r["QueueUrl"] for logical_id, r in self.host.resources.items() if "QueueUrl" in r
            },
            "functions": sorted(self.host.functions),
            **self._pbx_info(),
        }

    def _pbx_info(self) -> dict[str, Any]:
        if self._pbx is None:
            return {}
        return {
            "pbx_uri": self._pbx.pbx_uri,
            "voicemail_uri": self._pbx.voicemail_uri,
            "pbx_ca_file": self._pbx.ca_file,
            # Kamailio's process group: SIGSTOP / SIGCONT it to play an outage (tests do).
            "pbx_pgid": self._pbx.process.pid,
            "endpoint_down_action": self.options.endpoint_down_action,
            "core_sip": self.sim.sip_uri,
        }

    def summary(self) -> str:
        opts = self.options
        return "\n".join(
            [
                f"sipreg local stack is up: API {opts.api_version}, auth mode {opts.auth_mode}, "
                f"time x{opts.time_factor:g}",
                f"  HTTP API          {self.api_url}",
                f"  consent           {self.api_url}/oauth/start?msisdn=%2B4799990000",
                f"  core (gRPC, TLS)  {self.sim.grpc_target}   CA {self.sim.ca_file}",
                f"  identity + admin  {self.sim.http_url}   (e.g. {self.sim.http_url}/_admin/registrations)",
                f"  AWS (local)       {self.aws_endpoint}   region {REGION}",
                *(
                    [
                        f"  PBX (SIP, TLS)    {self._pbx.pbx_uri}   voicemail {self._pbx.voicemail_uri}",
                        f"  calls             curl -XPOST {self.sim.http_url}/_admin/calls "
                        """-d '{"from": "+4799990009", "to": "+4799990001", "callee": "busy"}'""",
                    ]
                    if self._pbx
                    else []
                ),
                f"  functions         {', '.join(sorted(self.host.functions))}",
                f"  logs              {self.log_dir}",
                "In another shell:",
                f"  export SIPREG_API={self.api_url} SIPREG_WEBHOOK_SECRET={self.webhook_secret}",
                "  sipreg send events.json                        (a producer: the webhook secret)",
                "  # an operator (status, revoke, redrive): the local operator's AWS credentials",
                f"  export AWS_REGION={REGION} {_export(self.operator)}",
                "  sipreg status +4799990000        sipreg revoke +4799990000",
                "Ctrl-C stops everything.",
            ]
        )

    # --- life cycle ---------------------------------------------------------------------------

    def start(self) -> Self:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._attach_log()
        os.environ.update(LOCAL_CREDENTIALS)
        for leftover in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
            os.environ.pop(leftover, None)
        start_or_stop(self._start, self.stop)
        return self

    def stop(self) -> None:
        """Stops the host, then wg2sim, then the local AWS; safe to call twice or after a failed start."""
        if self._host is not None:
            self._host.stop()
            self._host = None
        if self._pbx is not None:
            self._pbx.stop()
            self._pbx = None
        if self._sim is not None:
            self._sim.stop()
            self._sim = None
        if self.aws is not None:
            self.aws.stop()
            self.aws = None
        if self._log_handler is not None:
            log.info("local stack stopped")
            for name in ("devstack", "sipreg_cli"):
                logging.getLogger(name).removeHandler(self._log_handler)
            self._log_handler.close()
            self._log_handler = None

    def _start(self) -> None:
        opts = self.options
        self.aws = LocalAws.start(log_file=self.log_dir / "aws.log")
        log.info("local AWS (ministack, IAM enforced) at %s", self.aws.endpoint)
        pbx_tls = write_pbx_tls(self.log_dir / "pbx") if opts.pbx else None
        self._sim = Wg2simProcess.start(
            time_scale=opts.time_factor,
            tls=True,
            token_ttl=opts.token_ttl,
            extra_args=[
                "--log-level",
                "INFO",
                *(["--sip-ca-file", str(pbx_tls.cert_file)] if pbx_tls else []),
            ],
            log_file=self.log_dir / "wg2sim.log",
        )
        log.info("wg2sim: gRPC %s, HTTP %s", self._sim.grpc_target, self._sim.http_url)
        if pbx_tls is not None:
            self._pbx = LocalPbx.start(
                self.log_dir / "pbx",
                tls=pbx_tls,
                core_ca_file=self._sim.sip_ca_file,
                log_file=self.log_dir / "pbx.log",
            )
            log.info("local PBX (kamailio): %s, voicemail %s", self._pbx.pbx_uri, self._pbx.voicemail_uri)
        parameters = load_template(opts.template).get("Parameters") or {}

        def default(parameter: str, fallback: int) -> int:
            return int((parameters.get(parameter) or {}).get("Default", fallback))

        self._host = LocalHost(
            opts.template,
            self.aws.endpoint,
            parameter_overrides={
                "CoreEndpoint": self._sim.grpc_target,
                "IdentityServerUrl": self._sim.http_url,
                "ClientId": self.client_id,
                "ApiVersion": opts.api_version,
                "AuthMode": opts.auth_mode,
                "LogLevel": opts.log_level,
                "EndpointDownAction": opts.endpoint_down_action,
                "HealthCheckSchedule": health_check_schedule(opts.time_factor),
                "WorkerMaxConcurrency": str(LOCAL_WORKER_CONCURRENCY),
                **({"SipCaFile": self._pbx.ca_file} if self._pbx else {}),
                **opts.parameter_overrides,
            },
            property_overrides=opts.property_overrides,
            env_overrides={
                "CORE_CA_FILE": str(self._sim.ca_file),
                "PROBE_TIMEOUT_SECONDS": "1",  # loopback: Kamailio answers within milliseconds
                **scaled_function_settings(
                    opts.time_factor,
                    default(
                        "RefreshMarginSeconds",
                        RefresherSettings.model_fields["refresh_margin_seconds"].default,
                    ),
                    default("RetryBaseSeconds", 30),
                    default("RetryMaxSeconds", 900),
                ),
            },
            secret_values={
                "OAuthClientSecret": self._client_secret,
                "WebhookSecret": json.dumps({"current": self.webhook_secret, "previous": []}),
            },
            time_factor=opts.time_factor,
            http_port=opts.api_port,
            stack_name="sipreg-local",
            region=REGION,
            log_dir=self.log_dir,
            prewarm=opts.prewarm,
        )
        self._host.start()
        self.operator = self._local_user("operator", "OperatorPolicy")
        self.producer = self._local_user("producer", "ProducerPolicy")
        # The identity server must know our callback, which exists only now that the API listens.
        callback = f"{self.api_url}/oauth/callback"
        answer = httpx.post(
            f"{self._sim.http_url}/_admin/oidc/clients",
            json={
                "client_id": self.client_id,
                "client_secret": self._client_secret,
                "redirect_uris": [callback, *DEV_CLIENT.redirect_uris],
            },
            timeout=5,
        )
        if answer.is_error:
            raise StackError(f"wg2sim refused the OAuth client: {answer.status_code} {answer.text}")
        log.info("local stack ready: API %s", self.api_url)

    def _local_user(self, role: str, policy: str) -> Credentials:
        """An IAM user of the local AWS holding one of the template's managed policies, and its key."""
        assert self.aws is not None
        iam = root_client("iam", self.aws.endpoint)
        name = f"sipreg-local-{role}"
        iam.create_user(UserName=name)
        iam.attach_user_policy(UserName=name, PolicyArn=self.ref(policy))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        log.info("local %s: IAM user %s with %s", role, name, policy)
        return Credentials(key["AccessKeyId"], key["SecretAccessKey"])

    def _attach_log(self) -> None:
        handler = logging.FileHandler(self.log_dir / "stack.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        for name in ("devstack", "sipreg_cli"):
            logger = logging.getLogger(name)
            logger.addHandler(handler)
            if logger.level == logging.NOTSET or logger.level > logging.INFO:
                logger.setLevel(logging.INFO)
        self._log_handler = handler
