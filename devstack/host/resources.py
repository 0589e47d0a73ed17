"""Creating a template's resources at the local AWS engine, and answering `!Ref` / `!GetAtt` for them.

Tables, queues, keys, aliases, secrets, managed policies and event buses are really created
(through the AWS APIs at the endpoint). The other types template.yaml uses (`NAMED_ONLY_TYPES`:
functions, layers, APIs, alarms, ...) only get the names and ARNs CloudFormation would give
them, so references to them resolve; `supported` refuses any other type at load.
"""

from __future__ import annotations

import json
import logging
import secrets
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from devstack.host.aws import Clients
from devstack.host.template import (
    FUNCTION,
    Resolver,
    Resource,
    Template,
    TemplateError,
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
    "DelaySeconds",
    "FifoQueue",
    "FifoThroughputLimit",
    "KmsDataKeyReusePeriodSeconds",
    "KmsMasterKeyId",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "SqsManagedSseEnabled",
    "VisibilityTimeout",
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
        implicit = self._implicit(logical_id)
        if implicit is None:
            raise TemplateError(f"the template refers to {logical_id!r}, which it does not declare")
        self.physical[logical_id] = implicit
        return implicit

    def _implicit(self, logical_id: str) -> Physical | None:
        """Resources SAM creates behind the scenes (`<Function>Role`, `<Api>.<attribute>`, ...)."""
        owner = logical_id.partition(".")[0]
        if owner != logical_id and owner in self.template.resources:
            return self._named_only(Resource(logical_id, "AWS::CloudFormation::Implicit", {}))
        role_owner = self.template.resources.get(logical_id.removesuffix("Role"))
        if logical_id.endswith("Role") and role_owner is not None and role_owner.type == FUNCTION:
            return self._named_only(Resource(logical_id, "AWS::IAM::Role", {}))
        return None

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
        if resource.type in self._creators:
            used = references(resource.properties)
        else:
            used = set()
        return {r for r in used | set(resource.depends_on) if r in self.template.resources}

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

    def arn(self, service: str, resource: str, region: bool = True) -> str:
        where = self.pseudo.region if region else ""
        return f"arn:{self.pseudo.partition}:{service}:{where}:{self.pseudo.account_id}:{resource}"

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
        if type_ == "AWS::IAM::Role":
            name = self.generated_name(logical_id, 64)
            return Physical(
                type_, name, {"Arn": self.arn("iam", f"role/{name}", region=False), "RoleId": name}
            )
        name = self.generated_name(logical_id)
        service = type_.split("::")[1].lower() if type_.count("::") == 2 else "cloudformation"
        log.debug("%s (%s) is not created locally; references get placeholder names", logical_id, type_)
        return Physical(type_, name, {"Arn": self.arn(service, name)})

    # --- creators -----------------------------------------------------------------------------

    def _table(self, resource: Resource) -> Physical:
        props = self.resolver.resolve(resource.properties, f"Resources.{resource.logical_id}.Properties")
        name = props.get("TableName") or self.generated_name(resource.logical_id, 255)
        billing = props.get("BillingMode", "PROVISIONED")
        throughput = props.get("ProvisionedThroughput") or {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
        args: dict[str, Any] = {
            "TableName": name,
            "KeySchema": props["KeySchema"],
            "AttributeDefinitions": props["AttributeDefinitions"],
            "BillingMode": billing,
        }
        if billing == "PROVISIONED":
            args["ProvisionedThroughput"] = _numbers(throughput)
        indexes = []
        for index in props.get("GlobalSecondaryIndexes", []):
            entry = {k: index[k] for k in ("IndexName", "KeySchema", "Projection") if k in index}
            if billing == "PROVISIONED":
                entry["ProvisionedThroughput"] = _numbers(index.get("ProvisionedThroughput", throughput))
            indexes.append(entry)
        if indexes:
            args["GlobalSecondaryIndexes"] = indexes
        if props.get("LocalSecondaryIndexes"):
            args["LocalSecondaryIndexes"] = props["LocalSecondaryIndexes"]
        sse = props.get("SSESpecification")
        if sse:
            args["SSESpecification"] = {"Enabled": _flag(sse.get("SSEEnabled", False))}
            args["SSESpecification"].update({k: sse[k] for k in ("SSEType", "KMSMasterKeyId") if k in sse})
        for key in ("TableClass", "DeletionProtectionEnabled", "Tags"):
            if key in props:
                args[key] = props[key]
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
        name = props.get("QueueName") or self.generated_name(resource.logical_id, 80, ".fifo" if fifo else "")
        attributes = {k: text_value(props[k]) for k in _QUEUE_ATTRIBUTES if k in props}
        for policy in ("RedrivePolicy", "RedriveAllowPolicy"):
            if policy in props:
                value = props[policy]
                attributes[policy] = value if isinstance(value, str) else json.dumps(value)
        tags = {t["Key"]: t["Value"] for t in props.get("Tags", [])}
        sqs = self.clients.client("sqs")
        url = sqs.create_queue(QueueName=name, Attributes=attributes, tags=tags)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return Physical(resource.type, url, {"Arn": arn, "QueueName": name, "QueueUrl": url})

    def _key(self, resource: Resource) -> Physical:
        props = self.resolver.resolve(resource.properties, f"Resources.{resource.logical_id}.Properties")
        args: dict[str, Any] = {k: props[k] for k in ("Description", "KeyUsage", "KeySpec") if k in props}
        if props.get("Tags"):
            args["Tags"] = [{"TagKey": t["Key"], "TagValue": t["Value"]} for t in props["Tags"]]
        if "KeyPolicy" in props:
            policy = props["KeyPolicy"]
            args["Policy"] = policy if isinstance(policy, str) else json.dumps(policy)
        kms = self.clients.client("kms")
        metadata = kms.create_key(**args)["KeyMetadata"]
        if _flag(props.get("EnableKeyRotation", False)):
            kms.enable_key_rotation(KeyId=metadata["KeyId"])
        if not _flag(props.get("Enabled", True)):
            kms.disable_key(KeyId=metadata["KeyId"])
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
        name = props.get("Name") or self.generated_name(resource.logical_id, 256)
        value = self.secret_values.get(resource.logical_id)
        if value is None:
            value = props.get("SecretString")
        if value is None:
            value = _generate_secret(props.get("GenerateSecretString") or {})
        args: dict[str, Any] = {"Name": name, "SecretString": value}
        args.update({k: props[k] for k in ("Description", "KmsKeyId", "Tags") if k in props})
        arn = self.clients.client("secretsmanager").create_secret(**args)["ARN"]
        return Physical(resource.type, arn, {"Id": arn})

    def _managed_policy(self, resource: Resource) -> Physical:
        """Created for real (IAM enforced locally): principals the local stack makes attach it."""
        props = self.resolver.resolve(resource.properties, f"Resources.{resource.logical_id}.Properties")
        name = props.get("ManagedPolicyName") or self.generated_name(resource.logical_id, 128)
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


def _flag(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


def _numbers(throughput: Mapping[str, Any]) -> dict[str, int]:
    return {k: int(v) for k, v in throughput.items()}


def _generate_secret(options: Mapping[str, Any]) -> str:
    """A local dev value shaped as `GenerateSecretString` asks (length, excluded characters)."""
    alphabet = ""
    if not _flag(options.get("ExcludeLowercase", False)):
        alphabet += string.ascii_lowercase
    if not _flag(options.get("ExcludeUppercase", False)):
        alphabet += string.ascii_uppercase
    if not _flag(options.get("ExcludeNumbers", False)):
        alphabet += string.digits
    if not _flag(options.get("ExcludePunctuation", False)):
        alphabet += string.punctuation
    if _flag(options.get("IncludeSpace", False)):
        alphabet += " "
    excluded = set(str(options.get("ExcludeCharacters", "")))
    alphabet = "".join(c for c in alphabet if c not in excluded) or string.ascii_letters
    generated = "".join(secrets.choice(alphabet) for _ in range(int(options.get("PasswordLength", 32))))
    template = options.get("SecretStringTemplate")
    if template is None:
        return generated
    document = json.loads(template)
    document[options.get("GenerateStringKey", "password")] = generated
    return json.dumps(document)
