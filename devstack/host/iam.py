"""Each function's execution role, locally: its template `Policies` as SAM expands them.

SAM gives every function without a `Role` a role `<LogicalId>Role` holding one inline policy per
entry of `Policies` (`<LogicalId>RolePolicy<N>`): a policy document as written, or a SAM policy
template (`SQSSendMessagePolicy: {QueueName: ...}`) expanded by aws-sam-translator's own processor
and definitions. The host creates that role in the local AWS (with the account's root
credentials), assumes it, and gives the function's sandboxes the session's credentials; the local
AWS then refuses every call the policies do not allow, as AWS would.

Of the managed policies SAM adds for the Lambda service's own work, the local role gets the one
of an SQS event (`AWSLambdaSQSQueueExecutionRole`, written out: the local AWS has no managed
policies), since the host polls a function's queue with its role as Lambda does, so a queue the
role may not read, or whose key it may not decrypt with, stalls the mapping here too. Not put on
it: CloudWatch Logs and X-Ray, which the host does with its own credentials.
(template.yaml names no managed policy in `Policies`, nor a `Role` of its own: `supported`
refuses both.)

Sessions last 12 hours (the role's MaxSessionDuration); `RoleSessions.current` assumes again when
less than `RENEW_BEFORE_SECONDS` is left, and the invoker retires sandboxes whose credentials would
run out during an invocation, so a long `sipreg devstack up` never runs on expired credentials.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import httpx
from samtranslator.policy_template_processor.processor import PolicyTemplatesProcessor

from devstack.host.aws import Clients
from devstack.host.http_api import IamDecision, Request
from devstack.host.resources import Physical, Stack
from devstack.host.template import Resource, TemplateError, iter_events

log = logging.getLogger(__name__)

SESSION_SECONDS = 12 * 3600
RENEW_BEFORE_SECONDS = 3600
_POLICY_VERSION = "2012-10-17"


@dataclass(frozen=True)
class SessionCredentials:
    access_key_id: str
    secret_access_key: str
    session_token: str
    expires_at: float  # epoch seconds

    def as_environment(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_SESSION_TOKEN": self.session_token,
        }

    def __repr__(self) -> str:  # never the secret or the token
        return f"SessionCredentials({self.access_key_id}, expires_at={self.expires_at:.0f})"


@cache
def _templates() -> PolicyTemplatesProcessor:
    return PolicyTemplatesProcessor(PolicyTemplatesProcessor.get_default_policy_templates_json())


def expand_policies(stack: Stack, function: Resource) -> list[tuple[str, dict[str, Any]]]:
    """(policy name, resolved document) for each inline policy SAM would put on the function's role."""
    where = f"Resources.{function.logical_id}.Properties.Policies"
    expanded: list[tuple[str, dict[str, Any]]] = []
    for index, entry in enumerate(function.properties.get("Policies") or []):
        name = f"{function.logical_id}RolePolicy{index}"
        if "Statement" in entry:
            document = entry
        elif len(entry) == 1 and _templates().has(next(iter(entry))):
            template_name, parameters = next(iter(entry.items()))
            document = _templates().convert(template_name, parameters or {})
        else:
            raise TemplateError(f"{where}[{index}]: {sorted(entry)}: not a policy or SAM policy template")
        resolved = stack.resolver.resolve(document, f"{where}[{index}]")
        resolved.setdefault("Version", _POLICY_VERSION)
        expanded.append((name, resolved))
    return expanded


# arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole, which SAM attaches to the
# role of a function with an SQS event (samtranslator.model.eventsources.pull.SQS).
SQS_QUEUE_EXECUTION_POLICY: dict[str, Any] = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": [
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "sqs:GetQueueAttributes",
                "logs:CreateLogGroup",
                "logs:CreateLogStream",
                "logs:PutLogEvents",
            ],
            "Resource": "*",
        }
    ],
}


class RoleSessions:
    """One function's role in the local AWS and its current session."""

    def __init__(self, clients: Clients, role_arn: str, session_name: str) -> None:
        self._clients = clients
        self.role_arn = role_arn
        self._session_name = session_name
        self._current: SessionCredentials | None = None
        self._lock = threading.Lock()

    def current(self) -> SessionCredentials:
        with self._lock:
            if self._current is None or self._current.expires_at - time.time() < RENEW_BEFORE_SECONDS:
                self._current = self._assume()
            return self._current

    def _assume(self) -> SessionCredentials:
        answer = self._clients.client("sts").assume_role(
            RoleArn=self.role_arn, RoleSessionName=self._session_name, DurationSeconds=SESSION_SECONDS
        )
        credentials = answer["Credentials"]
        return SessionCredentials(
            access_key_id=credentials["AccessKeyId"],
            secret_access_key=credentials["SecretAccessKey"],
            session_token=credentials["SessionToken"],
            expires_at=credentials["Expiration"].timestamp(),
        )


def create_function_role(stack: Stack, function: Resource, function_name: str) -> RoleSessions:
    """The function's execution role, created with its expanded policies, ready to be assumed."""
    iam = stack.clients.client("iam")
    logical_id = function.logical_id
    role_name = stack.generated_name(f"{logical_id}Role", 64)
    account = stack.pseudo.account_id
    trust = {
        "Version": _POLICY_VERSION,
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"},
            # Locally the host plays the Lambda service, signing as the account's root.
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:{stack.pseudo.partition}:iam::{account}:root"},
                "Action": "sts:AssumeRole",
            },
        ],
    }
    role = iam.create_role(
        RoleName=role_name,
        AssumeRolePolicyDocument=json.dumps(trust),
        MaxSessionDuration=SESSION_SECONDS,
        Description=f"local execution role of {logical_id}",
    )["Role"]
    policies = expand_policies(stack, function)
    if any(event_type == "SQS" for _, event_type, _ in iter_events(function.properties)):
        policies.append(("AWSLambdaSQSQueueExecutionRole", SQS_QUEUE_EXECUTION_POLICY))
    for name, document in policies:
        iam.put_role_policy(RoleName=role_name, PolicyName=name, PolicyDocument=json.dumps(document))
    stack.physical[f"{logical_id}Role"] = Physical(
        "AWS::IAM::Role", role_name, {"Arn": role["Arn"], "RoleId": role["RoleId"]}
    )
    log.debug("%s runs as %s", logical_id, role["Arn"])
    return RoleSessions(stack.clients, role["Arn"], function_name[:64])


def function_roles(stack: Stack, names: Mapping[str, str]) -> dict[str, RoleSessions]:
    """A role per function of the template (logical id -> its sessions); `names`: logical id -> name."""
    roles = {}
    for logical_id, name in names.items():
        roles[logical_id] = create_function_role(stack, stack.template.resources[logical_id], name)
    return roles


class EngineIamAuthorizer:
    """API Gateway's AWS_IAM route authorization, asked of the local AWS engine, which knows every
    principal's secret and policies (`POST /_sipreg/execute-api/authorize`, in
    devstack/aws_engine_server.py): the SigV4 signature (service execute-api) must be good and the
    signer allowed `execute-api:Invoke` on the route's ARN. Nothing secret is sent or answered."""

    PATH = "/_sipreg/execute-api/authorize"

    def __init__(self, endpoint: str, region: str, timeout: float = 5.0) -> None:
        self._url = endpoint.rstrip("/") + self.PATH
        self._region = region
        self._http = httpx.Client(timeout=timeout)

    def __call__(self, request: Request, route_arn: str) -> IamDecision:
        path, _, query = request.target.partition("?")
        try:
            answer = self._http.post(
                self._url,
                json={
                    "method": request.method,
                    "path": path,
                    "query": query,
                    "headers": request.headers,
                    "body_base64": base64.b64encode(request.body).decode(),
                    "region": self._region,
                    "resource": route_arn,
                    "source_ip": request.source_ip,
                },
            )
            verdict = answer.json()
        except (httpx.HTTPError, ValueError) as error:
            log.error("IAM authorization could not be asked of the local AWS: %s", type(error).__name__)
            return IamDecision(None, "Forbidden")
        if answer.status_code != 200 or not verdict.get("allowed"):
            return IamDecision(None, str(verdict.get("message") or verdict.get("error") or "Forbidden"))
        identity = dict(verdict.get("identity") or {})
        # The fields API Gateway puts in requestContext.authorizer.iam.
        identity.setdefault("callerId", identity.get("userId"))
        identity.setdefault("cognitoIdentity", None)
        return IamDecision(identity)

    def close(self) -> None:
        self._http.close()
