"""Creating a template's resources at the local AWS engine, and answering `!Ref` / `!GetAtt` for them.

Tables, queues, keys, aliases, secrets, managed policies and event buses are really created
(through the AWS APIs at the endpoint), with the properties template.yaml gives them
(`CREATED_PROPERTIES`) and the generated names CloudFormation gives resources the template does
not name. The other types template.yaml uses (`NAMED_ONLY_TYPES`: functions, layers, APIs,
alarms, ...) only get the names and ARNs CloudFormation would give them, so references to them
resolve; `supported` refuses any other type, or property, at load.
"""

from __future__ import annotations

import json
import logging
import secrets
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from devstack.host.aws import Clients
from devstack.host.template import (
    FUNCTION,
    Pseudo,
    Resolver,
    Resource,
    Template,
    TemplateError,
    load_template,
    references,
    text_value,
)

log = logging.getLogger(__name__)

HTTP_API = "AWS::Serverless::HttpApi"
LAYER = "AWS::Serverless::LayerVersion"
# Run nothing locally: they get only the names and ARNs CloudFormation would give them.
NAMED_ONLY_TYPES = frozenset(
    {
        FUNCTION,
        LAYER,
        HTTP_API,
        "AWS::ApiGatewayV2::ApiMapping",
        "AWS::ApiGatewayV2::DomainName",
        "AWS::CloudWatch::Alarm",
        "AWS::CloudWatch::Dashboard",
        "AWS::Logs::LogGroup",
        "AWS::Route53::RecordSet",
        "AWS::SNS::Topic",
    }
)
_SUFFIX_ALPHABET = string.ascii_uppercase + string.digits
_QUEUE_ATTRIBUTES = (
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoQueue",
    "FifoThroughputLimit",
    "KmsDataKeyReusePeriodSeconds",
    "KmsMasterKeyId",
    "MessageRetentionPeriod",
    "VisibilityTimeout",
)
# The properties of each created type that its creator applies: those template.yaml uses
# (`supported` refuses any other). A property the template starts to use is applied in the
# creator and added here.
CREATED_PROPERTIES = {
    "AWS::DynamoDB::Table": frozenset(
        {
            "AttributeDefinitions",
            "BillingMode",
            "GlobalSecondaryIndexes",
            "KeySchema",
            "PointInTimeRecoverySpecification",
            "SSESpecification",
            "TimeToLiveSpecification",
        }
    ),
    "AWS::SQS::Queue": frozenset({*_QUEUE_ATTRIBUTES, "RedrivePolicy"}),
    "AWS::KMS::Key": frozenset({"Description", "EnableKeyRotation", "KeyPolicy"}),
    "AWS::KMS::Alias": frozenset({"AliasName", "TargetKeyId"}),
    "AWS::SecretsManager::Secret": frozenset({"Description", "GenerateSecretString", "KmsKeyId"}),
    "AWS::Events::EventBus": frozenset({"Name"}),
    "AWS::IAM::ManagedPolicy": frozenset({"Description", "PolicyDocument"}),
}
# What of `GenerateSecretString` the local value follows.
GENERATE_SECRET_OPTIONS = frozenset(
    {"PasswordLength", "ExcludePunctuation", "SecretStringTemplate", "GenerateStringKey"}
)


class ProvisioningError(RuntimeError):
    """The endpoint refused to create a resource (named in the message)."""


@dataclass
class Physical:
    """What a provisioned (or named-only) resource answers: `!Ref` and its attributes."""

    type: str
    ref: Any
    attributes: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {"Type": self.type, "Ref": self.ref, **self.attributes}


class Stack:
    """The local stack: provisions resources in dependency order and resolves references."""

    def __init__(
        self,
        template: Template,
        clients: Clients,
        api_endpoints: Mapping[str, str],
        secret_values: Mapping[str, str] | None = None,
    ) -> None:
        self.template = template
        self.clients = clients
        self.pseudo = template.pseudo
        self.api_endpoints = dict(api_endpoints)
        self.secret_values = dict(secret_values or {})
        self.physical: dict[str, Physical] = {}
        self.resolver = Resolver(template, self)
        self._creators: dict[str, Callable[[Resource], Physical]] = {
            "AWS::DynamoDB::Table": self._table,
            "AWS::SQS::Queue": self._queue,
            "AWS::KMS::Key": self._key,
            "AWS::KMS::Alias": self._alias,
            "AWS::SecretsManager::Secret": self._secret,
            "AWS::Events::EventBus": self._event_bus,
            "AWS::IAM::ManagedPolicy": self._managed_policy,
        }

    @property
    def created_types(self) -> frozenset[str]:
        """The resource types really created at the endpoint."""
        return frozenset(self._creators)

    # --- Lookup -------------------------------------------------------------------------------

    def ref(self, logical_id: str) -> Any:
        return self._physical(logical_id).ref

    def get_att(self, logical_id: str, attribute: str) -> Any:
        physical = self._physical(logical_id)
        if attribute in physical.attributes:
            return physical.attributes[attribute]
        if physical.type in self._creators:
            raise TemplateError(f"!GetAtt {logical_id}.{attribute}: {physical.type} has no such attribute")
        log.debug("!GetAtt %s.%s: unknown attribute, a placeholder stands in", logical_id, attribute)
        return f"{physical.ref}.{attribute}"

    def _physical(self, logical_id: str) -> Physical:
        if logical_id in self.physical:
            return self.physical[logical_id]
        if logical_id in self.template.resources:
            raise TemplateError(f"{logical_id} is referred to before it exists (a dependency cycle?)")
        raise TemplateError(f"the template refers to {logical_id!r}, which it does not declare")

    # --- provisioning -------------------------------------------------------------------------

    def provision(self) -> None:
        order = TopologicalSorter(
            {r.logical_id: self._dependencies(r) for r in self.template.resources.values()}
        )
        try:
            logical_ids = list(order.static_order())
        except CycleError as exc:
            raise TemplateError(f"Resources refer to each other in a cycle: {exc.args[1]}") from exc
        for logical_id in logical_ids:
            resource = self.template.resources[logical_id]
            creator = self._creators.get(resource.type)
            if creator is None:
                self.physical[logical_id] = self._named_only(resource)
                continue
            try:
                self.physical[logical_id] = creator(resource)
            except (ClientError, BotoCoreError) as exc:
                raise ProvisioningError(f"{logical_id} ({resource.type}): {exc}") from exc
            except (KeyError, TypeError, ValueError) as exc:
                if isinstance(exc, TemplateError):
                    raise
                where = f"Resources.{logical_id}.Properties"
                raise TemplateError(f"{where}: missing or malformed ({type(exc).__name__}: {exc})") from exc
            log.debug("created %s (%s): %s", logical_id, resource.type, self.physical[logical_id].ref)

    def _dependencies(self, resource: Resource) -> set[str]:
        # Only created resources resolve their properties here; a function's environment is
        # resolved later, once everything it names exists.
        used = references(resource.properties) if resource.type in self._creators else set()
        return {r for r in used if r in self.template.resources}

    def resolve(self, resource: Resource, key: str, default: Any = None) -> Any:
        if key not in resource.properties:
            return default
        return self.resolver.resolve(
            resource.properties[key], f"Resources.{resource.logical_id}.Properties.{key}"
        )

    def generated_name(self, logical_id: str, limit: int = 128, suffix: str = "") -> str:
        """`<stack>-<LogicalId>-<random>`, as CloudFormation names resources without a name."""
        random_part = "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(12))
        base = f"{self.pseudo.stack_name}-{logical_id}"[: limit - len(random_part) - len(suffix) - 1]
        return f"{base}-{random_part}{suffix}"

    def arn(self, service: str, resource: str) -> str:
        pseudo = self.pseudo
        return f"arn:{pseudo.partition}:{service}:{pseudo.region}:{pseudo.account_id}:{resource}"

    def _named_only(self, resource: Resource) -> Physical:
        logical_id, type_ = resource.logical_id, resource.type
        if type_ == FUNCTION:
            name = self.generated_name(logical_id, 64)
            return Physical(type_, name, {"Arn": self.arn("lambda", f"function:{name}")})
        if type_ == LAYER:
            name = self.generated_name(logical_id, 64)
            arn = self.arn("lambda", f"layer:{name}:1")
            return Physical(type_, arn, {"Arn": arn})
        if type_ == HTTP_API:
            api_id = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(10))
            endpoint = self.api_endpoints.get(
                logical_id, f"https://{api_id}.execute-api.{self.pseudo.region}.{self.pseudo.url_suffix}"
            )
            return Physical(type_, api_id, {"ApiEndpoint": endpoint, "ApiId": api_id})
        name = self.generated_name(logical_id)
        service = type_.split("::")[1].lower() if type_.count("::") == 2 else "cloudformation"
        log.debug("%s (%s) is not created locally; references get placeholder names", logical_id, type_)
        return Physical(type_, name, {"Arn": self.arn(service, name)})

    # --- creators -----------------------------------------------------------------------------

    def _table(self, resource: Resource) -> Physical:
        where = f"Resources.{resource.logical_id}.Properties"
        props = self.resolver.resolve(resource.properties, where)
        name = self.generated_name(resource.logical_id, 255)
        if props.get("BillingMode") != "PAY_PER_REQUEST":
            raise TemplateError(f"{where}.BillingMode: only PAY_PER_REQUEST runs locally")
        args: dict[str, Any] = {
            "TableName": name,
            "KeySchema": props["KeySchema"],
            "AttributeDefinitions": props["AttributeDefinitions"],
            "BillingMode": "PAY_PER_REQUEST",
        }
        indexes = [
            {k: index[k] for k in ("IndexName", "KeySchema", "Projection") if k in index}
            for index in props.get("GlobalSecondaryIndexes", [])
        ]
        if indexes:
            args["GlobalSecondaryIndexes"] = indexes
        sse = props.get("SSESpecification")
        if sse:
            args["SSESpecification"] = {"Enabled": _flag(sse.get("SSEEnabled", False))}
            args["SSESpecification"].update({k: sse[k] for k in ("SSEType", "KMSMasterKeyId") if k in sse})
        dynamodb = self.clients.client("dynamodb")
        description = dynamodb.create_table(**args)["TableDescription"]
        ttl = props.get("TimeToLiveSpecification")
        if ttl and _flag(ttl.get("Enabled", False)):
            dynamodb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]},
            )
        pitr = props.get("PointInTimeRecoverySpecification") or {}
        if _flag(pitr.get("PointInTimeRecoveryEnabled", False)):
            dynamodb.update_continuous_backups(
                TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
            )
        attributes = {"Arn": description["TableArn"]}
        return Physical(resource.type, name, attributes)

    def _queue(self, resource: Resource) -> Physical:
        props = self.resolver.resolve(resource.properties, f"Resources.{resource.logical_id}.Properties")
        fifo = _flag(props.get("FifoQueue", False))
        name = self.generated_name(resource.logical_id, 80, ".fifo" if fifo else "")
        attributes = {k: text_value(props[k]) for k in _QUEUE_ATTRIBUTES if k in props}
        if "RedrivePolicy" in props:
            value = props["RedrivePolicy"]
            attributes["RedrivePolicy"] = value if isinstance(value, str) else json.dumps(value)
        sqs = self.clients.client("sqs")
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return Physical(resource.type, url, {"Arn": arn, "QueueName": name, "QueueUrl": url})

    def _key(self, resource: Resource) -> Physical:
        props = self.resolver.resolve(resource.properties, f"Resources.{resource.logical_id}.Properties")
        args: dict[str, Any] = {k: props[k] for k in ("Description",) if k in props}
        if "KeyPolicy" in props:
            policy = props["KeyPolicy"]
            args["Policy"] = policy if isinstance(policy, str) else json.dumps(policy)
        kms = self.clients.client("kms")
        metadata = kms.create_key(**args)["KeyMetadata"]
        if _flag(props.get("EnableKeyRotation", False)):
            kms.enable_key_rotation(KeyId=metadata["KeyId"])
        return Physical(
            resource.type, metadata["KeyId"], {"Arn": metadata["Arn"], "KeyId": metadata["KeyId"]}
        )

    def _alias(self, resource: Resource) -> Physical:
        name = self.resolve(resource, "AliasName")
        self.clients.client("kms").create_alias(
            AliasName=name, TargetKeyId=self.resolve(resource, "TargetKeyId")
        )
        return Physical(resource.type, name, {})

    def _secret(self, resource: Resource) -> Physical:
        props = self.resolver.resolve(resource.properties, f"Resources.{resource.logical_id}.Properties")
        name = self.generated_name(resource.logical_id, 256)
        value = self.secret_values.get(resource.logical_id)
        if value is None:
            value = _generate_secret(props.get("GenerateSecretString") or {})
        args: dict[str, Any] = {"Name": name, "SecretString": value}
        args.update({k: props[k] for k in ("Description", "KmsKeyId") if k in props})
        arn = self.clients.client("secretsmanager").create_secret(**args)["ARN"]
        return Physical(resource.type, arn, {"Id": arn})

    def _managed_policy(self, resource: Resource) -> Physical:
        """Created for real (IAM enforced locally): principals the local stack makes attach it."""
        props = self.resolver.resolve(resource.properties, f"Resources.{resource.logical_id}.Properties")
        name = self.generated_name(resource.logical_id, 128)
        document = props["PolicyDocument"]
        policy = self.clients.client("iam").create_policy(
            PolicyName=name,
            PolicyDocument=document if isinstance(document, str) else json.dumps(document),
            Description=props.get("Description", ""),
        )["Policy"]
        return Physical(resource.type, policy["Arn"], {"PolicyArn": policy["Arn"]})

    def _event_bus(self, resource: Resource) -> Physical:
        name = self.resolve(resource, "Name")
        arn = self.clients.client("events").create_event_bus(Name=name)["EventBusArn"]
        return Physical(resource.type, name, {"Arn": arn, "Name": name})


def provision_template(
    path: Path,
    endpoint: str,
    *,
    region: str,
    stack_name: str,
    secret_values: Mapping[str, str] | None = None,
    property_overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, dict[str, Any]]:
    """A template's resources (tables, queues, keys, secrets, buses, ...) made at the endpoint, and
    none of its functions run: {logical id: its `Ref` and attributes}. For rigs that drive a
    function's code in their own process (tests, benchmarks)."""
    clients = Clients(endpoint, region)
    pseudo = Pseudo(region=region, account_id=clients.account_id(), stack_name=stack_name)
    template = Template(load_template(path), path.parent, pseudo, {}, property_overrides)
    stack = Stack(template, clients, {}, secret_values)
    stack.provision()
    return {logical_id: physical.describe() for logical_id, physical in stack.physical.items()}


def _flag(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


def _generate_secret(options: Mapping[str, Any]) -> str:
    """A local dev value shaped as `GenerateSecretString` asks (length, punctuation, the JSON
    document it goes into)."""
    alphabet = string.ascii_letters + string.digits
    if not _flag(options.get("ExcludePunctuation", False)):
        alphabet += string.punctuation
    generated = "".join(secrets.choice(alphabet) for _ in range(int(options.get("PasswordLength", 32))))
    template = options.get("SecretStringTemplate")
    if template is None:
        return generated
    document = json.loads(template)
    document[options.get("GenerateStringKey", "password")] = generated
    return json.dumps(document)
