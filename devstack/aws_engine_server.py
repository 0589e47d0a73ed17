"""The local AWS engine's program: ministack on a free 127.0.0.1 port (run by `devstack.aws_engine`).

Runs with the engine environment's interpreter (`.venv-aws`), so it imports nothing of sipreg's:
only the standard library, ministack and hypercorn. It binds the port itself (no race for a free
one), prints one JSON line `{"port": N}` on stdout once ministack answers, sends everything
ministack prints to stderr, and stops on SIGTERM or SIGINT.

What it adds to ministack, so the local engine is as strict as AWS for sipreg:

- SQS's batch calls are authorized as their single actions (`sqs:SendMessage` for
  SendMessageBatch, ...), as AWS does: ministack asks for actions IAM does not have.
- KMS requests carry the `kms:EncryptionContext:<key>` and `kms:EncryptionContextKeys` condition
  keys (ministack evaluates conditions but leaves these out, so a policy scoped to a context would
  refuse every call).
- "Via service" KMS calls: a caller of an SQS queue, a Secrets Manager secret or a DynamoDB table
  encrypted with a customer managed KMS key needs that key's permissions too, as AWS requires
  (SQS send: kms:GenerateDataKey and kms:Decrypt, receive: kms:Decrypt; GetSecretValue:
  kms:Decrypt; DynamoDB item and query calls: kms:Decrypt), with the condition keys the service
  sets: `kms:ViaService`, `kms:CallerAccount` and its encryption context (`aws:sqs:arn`,
  `SecretARN`, `aws:dynamodb:tableName` + `aws:dynamodb:subscriberId`).
- SQS's SendMessage and SendMessageBatch (JSON and Query protocols) record as each message's
  `SenderId` who sent it, as SQS does: a role's session `<RoleId>:<session name>` (STS
  GetCallerIdentity's UserId), an IAM user its user id, the root the account id (ministack
  writes the account id for everyone). A message the redrive policy moves to a DLQ keeps it.
- SQS's ChangeMessageVisibility(Batch) is refused past 12 hours from the receive that put the
  message in flight, or past 43,200 s, as AWS refuses it ("Total VisibilityTimeout for the
  message is beyond the limit"); ministack set any value. A change of a message whose look is
  over (visible again) is answered OK and changes nothing, as SQS does; ministack hid it again.
- A FIFO queue's DeleteMessage(Batch) with a receipt handle whose visibility timeout has passed
  is refused ("The receipt handle has expired"), as SQS refuses it; ministack deleted the message
  as long as nobody had received it again.
- SQS's MessageGroupId and MessageDeduplicationId are 1 to 128 alphanumeric or punctuation
  characters (SendMessage refused, a batch's entry failed), as SQS requires; ministack took any.
- EventBridge's PutEvents is refused when its entries add up to more than 256 KB (as EventBridge
  counts them), and an entry whose Detail is not a JSON object fails (`MalformedDetail`) while the
  others are put, as EventBridge does; ministack put both.
- KMS Encrypt refuses more than 4,096 bytes of plaintext, as KMS does; ministack took any size.
- DynamoDB's BatchGetItem answers at most 16 MB of items (as projected), and hands the rest
  back in `UnprocessedKeys`, as DynamoDB does; ministack answered everything.
- `POST /_sipreg/dynamodb/throttle` (`{"table": T, "keys_per_call": K, "calls": N}`): the next N
  BatchGetItem requests naming T read at most K of its keys, the rest in `UnprocessedKeys` (none
  read at all: ProvisionedThroughputExceededException), as a throttled table answers. ministack
  has no throughput to exceed, so without this a caller's handling of throttling never runs.
- `POST /_sipreg/execute-api/authorize`: what API Gateway does for a route with `AWS_IAM`
  authorization. The local function host sends the request it received (method, raw path, raw
  query, headers, body) and the route's ARN; the answer says whether the SigV4 signature is good
  and the signer may `execute-api:Invoke` that ARN (`{"allowed": true, "identity": {...}}`), or
  why not (`{"allowed": false, "status": 403, "message": ...}`). Secrets never leave the engine.
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import json
import os
import re
import signal
import socket
import sys
import threading
import time
import urllib.request
from typing import Any
from urllib.parse import parse_qs

KMS_CONTEXT_ACTIONS = frozenset(
    {
        "Encrypt",
        "Decrypt",
        "ReEncrypt",
        "GenerateDataKey",
        "GenerateDataKeyWithoutPlaintext",
        "GenerateDataKeyPair",
        "GenerateDataKeyPairWithoutPlaintext",
    }
)


def _kms_context(iam_action: str, body: bytes) -> dict[str, Any]:
    service, _, action = iam_action.partition(":")
    if service != "kms" or action not in KMS_CONTEXT_ACTIONS:
        return {}
    try:
        request = json.loads(body or b"{}")
    except ValueError:
        return {}
    context = request.get("EncryptionContext") if isinstance(request, dict) else None
    if not isinstance(context, dict):
        return {}
    keys: dict[str, Any] = {f"kms:EncryptionContext:{name}": str(value) for name, value in context.items()}
    keys["kms:EncryptionContextKeys"] = sorted(context)
    return keys


SQS_BATCH_ACTIONS = {
    "sqs:SendMessageBatch": "sqs:SendMessage",
    "sqs:DeleteMessageBatch": "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
}

# What a call on a resource encrypted with a customer managed key needs of that key, as AWS documents
# it for each service (SQS: "Key management", Secrets Manager: "Secret encryption and decryption",
# DynamoDB: "How Amazon DynamoDB uses AWS KMS").
_DYNAMODB_ITEM_ACTIONS = (
    "GetItem",
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "ConditionCheckItem",
    "Query",
    "Scan",
    "BatchGetItem",
    "BatchWriteItem",
)
VIA_SERVICE_KMS: dict[str, tuple[str, ...]] = {
    "sqs:SendMessage": ("kms:GenerateDataKey", "kms:Decrypt"),
    "sqs:ReceiveMessage": ("kms:Decrypt",),
    "secretsmanager:GetSecretValue": ("kms:Decrypt",),
    "secretsmanager:PutSecretValue": ("kms:GenerateDataKey",),
    **{f"dynamodb:{action}": ("kms:Decrypt",) for action in _DYNAMODB_ITEM_ACTIONS},
}
# The KMS action a denial was about, so the error names it (as AWS's KMS.AccessDeniedException does).
_kms_denial: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar(
    "kms_denial", default=None
)


def _customer_key(key_id: str | None) -> str | None:
    """The ARN of a customer managed key named by id, ARN or alias; None for none or AWS's own."""
    if not key_id:
        return None
    from ministack.services import kms  # noqa: PLC0415

    record = kms._resolve_key(key_id)
    if not record or record.get("KeyManager") == "AWS" or str(key_id).startswith("alias/aws/"):
        return None
    return str(record["Arn"])


def _encryption_of(service: str, resource_arn: str, account: str) -> tuple[str, dict[str, str]] | None:
    """(key ARN, the encryption context the service uses) of an encrypted queue, secret or table."""
    if service == "sqs":
        from ministack.services import sqs  # noqa: PLC0415

        url = sqs._queue_name_to_url.get(resource_arn.rsplit(":", 1)[-1])
        queue = sqs._queues.get(url) if url else None
        key = _customer_key(((queue or {}).get("attributes") or {}).get("KmsMasterKeyId"))
        return (key, {"aws:sqs:arn": resource_arn}) if key else None
    if service == "secretsmanager":
        from ministack.services import secretsmanager  # noqa: PLC0415

        for name, secret in secretsmanager._secrets.items():
            if resource_arn in (secret.get("ARN"), name) or str(secret.get("ARN", "")).startswith(
                resource_arn
            ):
                key = _customer_key(secret.get("KmsKeyId"))
                return (key, {"SecretARN": str(secret["ARN"])}) if key else None
        return None
    if service == "dynamodb":
        from ministack.services import dynamodb  # noqa: PLC0415

        name = resource_arn.partition(":table/")[2].split("/", 1)[0]
        table = dynamodb._tables.get(name) if name else None
        sse = (table or {}).get("SSEDescription") or {}
        if sse.get("Status") != "ENABLED":
            return None
        key = _customer_key(sse.get("KMSMasterKeyArn"))
        context = {"aws:dynamodb:tableName": name, "aws:dynamodb:subscriberId": account}
        return (key, context) if key else None
    return None


def _via_service_kms(
    enforce: Any, access_key_id: str, iam_action: str, region: str, resource_arn: str
) -> Any:
    """The denial of the KMS permissions `iam_action` on `resource_arn` needs, or None."""
    kms_actions = VIA_SERVICE_KMS.get(iam_action)
    if not kms_actions or resource_arn in ("", "*"):
        return None
    from ministack.core.responses import get_account_id  # noqa: PLC0415

    service = iam_action.partition(":")[0]
    account = get_account_id()
    encrypted = _encryption_of(service, resource_arn, account)
    if encrypted is None:
        return None
    key_arn, context = encrypted
    keys: dict[str, Any] = {
        "kms:ViaService": f"{service}.{region}.amazonaws.com",
        "kms:CallerAccount": account,
        **{f"kms:EncryptionContext:{name}": value for name, value in context.items()},
        "kms:EncryptionContextKeys": sorted(context),
    }
    for kms_action in kms_actions:
        denied = enforce(access_key_id, kms_action, "kms", region, resource_arn=key_arn, service_context=keys)
        if denied:
            _kms_denial.set((kms_action, key_arn))
            return denied
    return None


def _install_iam_additions() -> None:
    from ministack.core import iam_actions, iam_evaluator  # noqa: PLC0415  # after the environment is set

    plain = iam_actions.request_tag_context

    def request_context(service: str, iam_action: str, body: bytes, params: dict[str, Any]) -> dict[str, Any]:
        return {**plain(service, iam_action, body, params), **_kms_context(iam_action, body)}

    iam_actions.request_tag_context = request_context
    plain_action = iam_actions.extract_iam_action

    def extract_iam_action(service: str, *args: Any, **kwargs: Any) -> Any:
        action = plain_action(service, *args, **kwargs)
        # AWS authorizes SQS's batch calls as their single actions (there is no sqs:SendMessageBatch).
        return SQS_BATCH_ACTIONS.get(action, action)

    iam_actions.extract_iam_action = extract_iam_action

    # ministack imports `enforce` and `access_denied_response` where it calls them: replacing the
    # module attributes reaches every call.
    plain_enforce = iam_evaluator.enforce

    def enforce(  # noqa: PLR0917  # ministack's own signature
        access_key_id: str,
        iam_action: str,
        service: str,
        region: str,
        resource_arn: str = "*",
        service_context: dict[str, Any] | None = None,
    ) -> Any:
        denied = plain_enforce(
            access_key_id,
            iam_action,
            service,
            region,
            resource_arn=resource_arn,
            service_context=service_context,
        )
        if denied is None and access_key_id:
            denied = _via_service_kms(plain_enforce, access_key_id, iam_action, region, resource_arn)
        return denied

    iam_evaluator.enforce = enforce
    plain_denial = iam_actions.access_denied_response

    def access_denied_response(
        service: str, action: str, principal_arn: str, *args: Any, **kwargs: Any
    ) -> Any:
        kms_denial = _kms_denial.get()
        if kms_denial is not None and not kwargs.get("message"):
            kms_action, key_arn = kms_denial
            kwargs["message"] = (
                f"User: {principal_arn} is not authorized to perform: {kms_action} on resource: {key_arn} "
                f"(needed by {action}) because no identity-based policy allows the {kms_action} action"
            )
        # Each refusal in the log, as CloudTrail keeps AccessDenied events: what a failing test
        # (and tests/permission_mutants.py) finds there
        needed = f"{kms_denial[0]} (needed by {action})" if kms_denial is not None else action
        print(
            f"AccessDenied: {principal_arn} is not authorized to perform: {needed}",
            file=sys.stderr,
            flush=True,
        )
        return plain_denial(service, action, principal_arn, *args, **kwargs)

    iam_actions.access_denied_response = access_denied_response


# The access key of the SQS request being served: the sender its messages record.
_sqs_caller_key: contextvars.ContextVar[str] = contextvars.ContextVar("sqs_caller_key", default="")


def _install_sqs_sender_id() -> None:
    from ministack.core import iam_evaluator  # noqa: PLC0415
    from ministack.core.router import extract_access_key_id  # noqa: PLC0415
    from ministack.services import sqs  # noqa: PLC0415

    plain_handle = sqs.handle_request

    async def handle_request(
        method: str, path: str, headers: dict[str, str], body: bytes, query_params: dict[str, Any]
    ) -> Any:
        # SigV4's `Credential=<key>/...` (Authorization header or a presigned X-Amz-Credential)
        caller = _sqs_caller_key.set(extract_access_key_id(headers, query_params))
        try:
            return await plain_handle(method, path, headers, body, query_params)
        finally:
            _sqs_caller_key.reset(caller)

    # app.py looks `handle_request` up on the module at each request; SendMessageBatch sends each
    # entry through `_act_send_message`, which calls the module's `_build_send_sys_attrs`.
    sqs.handle_request = handle_request
    plain_sys_attrs = sqs._build_send_sys_attrs

    def build_send_sys_attrs(now: float, sys_attrs_input: dict[str, Any]) -> dict[str, Any]:
        attributes: dict[str, Any] = plain_sys_attrs(now, sys_attrs_input)  # SenderId: the account id
        identity = iam_evaluator.resolve_caller_identity(_sqs_caller_key.get())
        if identity and identity.get("userId"):
            attributes["SenderId"] = identity["userId"]
        return attributes

    sqs._build_send_sys_attrs = build_send_sys_attrs


# A message is in flight for at most 12 hours from the receive that made it so.
MAX_VISIBILITY_SECONDS = 43_200
_RECEIVED_AT = "sipreg_received_at"


def _visibility_refusal(message: dict[str, Any] | None, seconds: int) -> str | None:
    """Why SQS refuses this visibility timeout for this in-flight message, if it does."""
    limit = MAX_VISIBILITY_SECONDS
    if not 0 <= seconds <= limit:
        reason = f"Must be between 0 and {limit}, if provided."
    elif message is not None and time.time() + seconds - message.get(_RECEIVED_AT, time.time()) > limit:
        reason = f"Total VisibilityTimeout for the message is beyond the limit [{limit} seconds]."
    else:
        return None
    return f"Value {seconds} for parameter VisibilityTimeout is invalid. Reason: {reason}"


def _received_as(queue: dict[str, Any], handle: str) -> dict[str, Any] | None:
    """The queue's message `handle` is the receipt of (ministack keeps a message's latest only)."""
    return next((m for m in queue["messages"] if handle and m["receipt_handle"] == handle), None)


def _failed_entry(entry: dict[str, Any], code: str, message: str) -> dict[str, Any]:
    """A batch entry SQS refused for the sender's fault, as a batch answer's `Failed` lists it."""
    return {"Id": entry.get("Id", ""), "Code": code, "Message": message, "SenderFault": True}


def _lapsed(message: dict[str, Any] | None) -> bool:
    """The receive's look is over: the message is visible again, its receipt spent."""
    return message is not None and message["visible_at"] <= time.time()


# A FIFO queue hands out at most 120,000 messages at once; past that a receive gets nothing, and
# no error says why (SQS's FIFO quotas). A test may set a queue's limit lower.
FIFO_IN_FLIGHT_LIMIT = 120_000
IN_FLIGHT_PATH = "/_sipreg/sqs/in-flight-limit"
_in_flight_lock = threading.Lock()
_in_flight_limits: dict[str, int] = {}  # queue name -> its limit, where a test set one


def set_in_flight_limit(request: dict[str, Any]) -> dict[str, Any]:
    """`{"queue": NAME, "limit": N}`: the FIFO queue NAME hands out at most N messages at once."""
    queue, limit = request["queue"], int(request["limit"])
    if not isinstance(queue, str) or limit < 0:
        raise ValueError("queue must be a name, limit at least 0")
    with _in_flight_lock:
        _in_flight_limits[queue] = limit
    return {"queue": queue, "limit": limit}


def _room_in_flight(q: dict[str, Any], now: float) -> int:
    """How many more messages the FIFO queue `q` may hand out now."""
    with _in_flight_lock:
        limit = _in_flight_limits.get(q["name"], FIFO_IN_FLIGHT_LIMIT)
    held = sum(1 for m in q["messages"] if m.get(_RECEIVED_AT) and m["visible_at"] > now)
    return max(limit - held, 0)


def _install_sqs_visibility_limit() -> None:
    from ministack.services import sqs  # noqa: PLC0415

    plain_collect = sqs._collect_msgs

    def collect_and_stamp(q: dict[str, Any], max_n: int, vis_timeout: int) -> list[dict[str, Any]]:
        if q["is_fifo"]:
            max_n = min(max_n, _room_in_flight(q, time.time()))
            if max_n == 0:
                return []
        received: list[dict[str, Any]] = plain_collect(q, max_n, vis_timeout)
        now = time.time()
        for message in received:
            message[_RECEIVED_AT] = now
        return received

    def in_flight(data: dict[str, Any], qurl: str, handle: str) -> dict[str, Any] | None:
        return _received_as(sqs._get_q(data.get("QueueUrl", qurl), "sqs:ChangeMessageVisibility"), handle)

    plain_change = sqs._HANDLERS["ChangeMessageVisibility"]
    plain_batch = sqs._HANDLERS["ChangeMessageVisibilityBatch"]

    def change(data: dict[str, Any], qurl: str) -> Any:
        handle = data.get("ReceiptHandle", "")
        message = in_flight(data, qurl, handle)
        refusal = _visibility_refusal(message, int(data.get("VisibilityTimeout", 30)))
        if refusal:
            raise sqs._Err("InvalidParameterValue", refusal)
        # A lapsed receipt: SQS answers OK and the message stays visible (ministack hid it again).
        return {} if _lapsed(message) else plain_change(data, qurl)

    def change_batch(data: dict[str, Any], qurl: str) -> Any:
        entries = data.get("Entries", [])
        sqs._validate_batch_entries(entries, "ChangeMessageVisibilityBatchRequestEntry")
        kept, refused, unchanged = [], [], []
        for entry in entries:
            handle = entry.get("ReceiptHandle", "")
            message = in_flight(data, qurl, handle)
            refusal = _visibility_refusal(message, int(entry.get("VisibilityTimeout", 30)))
            if _lapsed(message) and not refusal:
                unchanged.append({"Id": entry.get("Id", "")})
            elif refusal:
                refused.append(_failed_entry(entry, "InvalidParameterValue", refusal))
            else:
                kept.append(entry)
        answer = plain_batch({**data, "Entries": kept}, qurl) if kept else {"Successful": [], "Failed": []}
        return {
            "Successful": [*answer.get("Successful", []), *unchanged],
            "Failed": [*answer.get("Failed", []), *refused],
        }

    sqs._collect_msgs = collect_and_stamp  # ReceiveMessage and ministack's own pollers call it by name
    sqs._HANDLERS["ChangeMessageVisibility"] = change
    sqs._HANDLERS["ChangeMessageVisibilityBatch"] = change_batch


# A FIFO queue refuses to delete with a receipt handle whose visibility timeout has passed.
EXPIRED_HANDLE = "The receipt handle has expired"


def _install_sqs_fifo_handle_expiry() -> None:
    from ministack.services import sqs  # noqa: PLC0415

    def expired(data: dict[str, Any], qurl: str, handle: str) -> bool:
        queue = sqs._get_q(data.get("QueueUrl", qurl), "sqs:DeleteMessage")
        return bool(queue["is_fifo"]) and _lapsed(_received_as(queue, handle))

    plain_delete = sqs._HANDLERS["DeleteMessage"]
    plain_batch = sqs._HANDLERS["DeleteMessageBatch"]

    def delete(data: dict[str, Any], qurl: str) -> Any:
        handle = data.get("ReceiptHandle", "")
        if expired(data, qurl, handle):
            raise sqs._Err(
                "InvalidParameterValue",
                f"Value {handle} for parameter ReceiptHandle is invalid. Reason: {EXPIRED_HANDLE}.",
            )
        return plain_delete(data, qurl)

    def delete_batch(data: dict[str, Any], qurl: str) -> Any:
        entries = data.get("Entries", [])
        sqs._validate_batch_entries(entries, "DeleteMessageBatchRequestEntry")
        kept, refused = [], []
        for entry in entries:
            if expired(data, qurl, entry.get("ReceiptHandle", "")):
                refused.append(_failed_entry(entry, "ReceiptHandleIsInvalid", EXPIRED_HANDLE))
            else:
                kept.append(entry)
        answer = plain_batch({**data, "Entries": kept}, qurl) if kept else {"Successful": [], "Failed": []}
        return {**answer, "Failed": [*answer.get("Failed", []), *refused]}

    sqs._HANDLERS["DeleteMessage"] = delete
    sqs._HANDLERS["DeleteMessageBatch"] = delete_batch


# A FIFO message's group and deduplication ids: 1 to 128 alphanumeric or punctuation characters.
_SQS_MESSAGE_ID_PARAMETER = re.compile(r"[A-Za-z0-9!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~]{1,128}")


def _install_sqs_message_id_rules() -> None:
    from ministack.services import sqs  # noqa: PLC0415

    plain_send = sqs._act_send_message

    def send(data: dict[str, Any], qurl: str) -> Any:
        for parameter in ("MessageGroupId", "MessageDeduplicationId"):
            value = data.get(parameter)
            if value is not None and not _SQS_MESSAGE_ID_PARAMETER.fullmatch(str(value)):
                raise sqs._Err(
                    "InvalidParameterValue",
                    f"Value {value} for parameter {parameter} is invalid. Reason: {parameter} can "
                    "only include alphanumeric and punctuation characters. 1 to 128 in length.",
                )
        return plain_send(data, qurl)

    # SendMessageBatch sends each entry through the module's `_act_send_message`: its entries fail
    # one by one, as SQS's do.
    sqs._act_send_message = send
    sqs._HANDLERS["SendMessage"] = send


# The entries of one PutEvents request: 256 KB at most, counted as EventBridge counts them.
MAX_PUT_EVENTS_BYTES = 262_144
MAX_PUT_EVENTS_ENTRIES = 10


def _put_events_entry_bytes(entry: dict[str, Any]) -> int:
    """EventBridge's size of an entry: 14 bytes for a Time, and the UTF-8 bytes of its Source,
    DetailType, Detail and each of its Resources."""
    resources = entry.get("Resources") or []
    texts = [entry.get("Source"), entry.get("DetailType"), entry.get("Detail"), *resources]
    return (14 if entry.get("Time") is not None else 0) + sum(
        len(str(text).encode()) for text in texts if text is not None
    )


def _is_json_object(text: Any) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except (TypeError, ValueError):
        return False


def _install_put_events_rules() -> None:
    from ministack.core.responses import error_response_json, json_response  # noqa: PLC0415
    from ministack.services import eventbridge  # noqa: PLC0415

    plain_put = eventbridge._put_events

    def put_events(data: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        entries = data.get("Entries") or []
        if sum(_put_events_entry_bytes(entry) for entry in entries) > MAX_PUT_EVENTS_BYTES:
            return error_response_json(
                "ValidationException", "Total size of the entries in the request is over the limit.", 400
            )
        # An entry whose Detail is not a JSON object fails on its own; the others are put.
        malformed = [
            i for i, entry in enumerate(entries) if "Detail" in entry and not _is_json_object(entry["Detail"])
        ]
        if not malformed or len(entries) > MAX_PUT_EVENTS_ENTRIES:  # ministack refuses more than 10
            return plain_put(data, *args, **kwargs)
        kept = [entry for i, entry in enumerate(entries) if i not in malformed]
        put = (
            json.loads(plain_put({**data, "Entries": kept}, *args, **kwargs)[2]) if kept else {"Entries": []}
        )
        results = iter(put.get("Entries", []))
        answers = [
            {"ErrorCode": "MalformedDetail", "ErrorMessage": "Detail is malformed."}
            if i in malformed
            else next(results)
            for i in range(len(entries))
        ]
        return json_response(
            {"FailedEntryCount": sum("ErrorCode" in answer for answer in answers), "Entries": answers}
        )

    # handle_request looks `_put_events` up on the module at each request.
    eventbridge._put_events = put_events


# KMS Encrypt takes 1 to 4,096 bytes of plaintext: more needs envelope encryption (or parts).
MAX_KMS_PLAINTEXT_BYTES = 4096


def _install_kms_plaintext_limit() -> None:
    from ministack.core.responses import error_response_json  # noqa: PLC0415
    from ministack.services import kms  # noqa: PLC0415

    plain_encrypt = kms._encrypt

    def encrypt(data: dict[str, Any]) -> Any:
        plaintext = data.get("Plaintext", "")
        try:
            size = len(base64.b64decode(plaintext, validate=True)) if isinstance(plaintext, str) else 0
        except ValueError:
            size = 0  # ministack answers what is not base64
        if size > MAX_KMS_PLAINTEXT_BYTES:
            return error_response_json(
                "ValidationException",
                "1 validation error detected: Value at 'plaintext' failed to satisfy constraint: "
                f"Member must have length less than or equal to {MAX_KMS_PLAINTEXT_BYTES}",
                400,
            )
        return plain_encrypt(data)

    # handle_request looks `_encrypt` up on the module at each request.
    kms._encrypt = encrypt


# BatchGetItem answers at most 16 MB, the rest in UnprocessedKeys; so does a throttled table.
MAX_BATCH_GET_RESPONSE_BYTES = 16 * 1024 * 1024
THROTTLE_PATH = "/_sipreg/dynamodb/throttle"
_throttle_lock = threading.Lock()
_batch_get_throttles: dict[str, dict[str, int]] = {}  # table -> {"keys_per_call": K, "calls": N}


def throttle_batch_get(request: dict[str, Any]) -> dict[str, Any]:
    """`{"table": T, "keys_per_call": K, "calls": N}`: the next N BatchGetItem requests naming T
    are served K of T's keys at most, the others handed back in UnprocessedKeys, as a throttled
    table answers (`calls: 0` ends it)."""
    table, keys_per_call, calls = request["table"], int(request["keys_per_call"]), int(request["calls"])
    if not isinstance(table, str) or keys_per_call < 0 or calls < 0:
        raise ValueError("table must be a name, keys_per_call and calls at least 0")
    with _throttle_lock:
        _batch_get_throttles[table] = {"keys_per_call": keys_per_call, "calls": calls}
    return {"table": table, "keys_per_call": keys_per_call, "calls": calls}


def _throttled_allowance(table: str) -> int | None:
    """Keys the table serves in this request (None: as many as asked), counting the request."""
    with _throttle_lock:
        throttle = _batch_get_throttles.get(table)
        if not throttle or throttle["calls"] <= 0:
            return None
        throttle["calls"] -= 1
        return throttle["keys_per_call"]


def _install_batch_get_limits() -> None:
    from ministack.core.responses import error_response_json, json_response  # noqa: PLC0415
    from ministack.services import dynamodb  # noqa: PLC0415

    plain_batch_get = dynamodb._batch_get_item

    def answered_bytes(table_name: str, config: dict[str, Any], key: dict[str, Any]) -> int:
        """The size of the key's item as the answer holds it (projected, if asked)."""
        table = dynamodb._tables.get(dynamodb._normalize_table_name(table_name))
        pk, sk, error = dynamodb._resolve_table_key_values(table, key, allow_extra=False)
        item = None if error else table["items"].get(pk, {}).get(sk)
        if item and config.get("ProjectionExpression"):
            item = dynamodb._project_item(
                item, config["ProjectionExpression"], config.get("ExpressionAttributeNames", {})
            )
        elif item and config.get("AttributesToGet"):
            item = {name: item[name] for name in config["AttributesToGet"] if name in item}
        return dynamodb._item_size_bytes(item) if item else 0

    def batch_get_item(data: dict[str, Any]) -> Any:
        answer = plain_batch_get(data)
        if answer[0] != 200:  # refused as a whole (too many keys, no such table, ...)
            return answer
        served: dict[str, Any] = {}
        unprocessed: dict[str, Any] = {}
        budget = MAX_BATCH_GET_RESPONSE_BYTES
        for name, config in data["RequestItems"].items():
            keys = config.get("Keys", [])
            allowance = _throttled_allowance(name)
            take = len(keys) if allowance is None else min(allowance, len(keys))
            for index, key in enumerate(keys[:take]):
                size = answered_bytes(name, config, key)
                if size > budget:
                    take = index
                    break
                budget -= size
            if take:
                served[name] = {**config, "Keys": keys[:take]}
            if take < len(keys):
                unprocessed[name] = {**config, "Keys": keys[take:]}
        if not unprocessed:
            return answer
        if not served:  # nothing could be read: the request fails, as DynamoDB's does
            return error_response_json(
                "ProvisionedThroughputExceededException",
                "Throughput exceeds the current capacity of your table or index.",
                400,
            )
        partial = plain_batch_get({**data, "RequestItems": served})
        if partial[0] != 200:
            return partial
        return json_response(
            {"Responses": json.loads(partial[2])["Responses"], "UnprocessedKeys": unprocessed}
        )

    # handle_request builds its table of handlers from the module's names at each request.
    dynamodb._batch_get_item = batch_get_item


# --- API Gateway's AWS_IAM route authorization, for the local function host ----------------------

AUTHORIZE_PATH = "/_sipreg/execute-api/authorize"
_CREDENTIAL_SCOPE = re.compile(
    r"Credential=(?P<key>[^/,\s]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request"
)


def _refusal(message: str) -> dict[str, Any]:
    return {"allowed": False, "status": 403, "message": message}


def authorize_invoke(request: dict[str, Any]) -> dict[str, Any]:  # noqa: PLR0911  # one per refusal
    """Whether a request (as the HTTP API received it) is SigV4-signed for execute-api by a principal
    that may `execute-api:Invoke` the route ARN `request["resource"]`."""
    from ministack.app import _request_account_scope  # noqa: PLC0415
    from ministack.core import iam_evaluator  # noqa: PLC0415
    from ministack.core.responses import set_request_account_id, set_request_region  # noqa: PLC0415
    from ministack.core.sigv4 import (  # noqa: PLC0415
        header_signature_failure,
        parse_header_signature,
        request_time_failure,
    )

    method, raw_path, region = str(request["method"]), str(request["path"]), str(request["region"])
    resource = str(request["resource"])
    raw_headers = [(str(name).lower(), str(value)) for name, value in request.get("headers", [])]
    headers: dict[str, str] = {}
    for name, value in raw_headers:
        headers[name] = f"{headers[name]},{value}" if name in headers else value
    body = base64.b64decode(request.get("body_base64") or "")
    query_params = parse_qs(str(request.get("query") or ""), keep_blank_values=True)
    authorization = headers.get("authorization", "")
    scope = _CREDENTIAL_SCOPE.search(authorization)
    if not authorization.startswith("AWS4-HMAC-SHA256 ") or scope is None:
        return _refusal("Forbidden")  # what an HTTP API answers to a request without a SigV4 signature
    if scope["service"] != "execute-api":
        return _refusal(
            f"Credential should be scoped to correct service: 'execute-api'. (got {scope['service']!r})"
        )
    if scope["region"] != region:
        return _refusal(f"Credential should be scoped to a valid region, not '{scope['region']}'.")
    access_key = scope["key"]
    set_request_account_id(_request_account_scope(access_key))
    set_request_region(region)
    if iam_evaluator.is_root_access_key(access_key):
        # ministack takes the root key on trust; API Gateway checks its signature like any other.
        signature = parse_header_signature(headers)
        if isinstance(signature, tuple):
            return _refusal(signature[1])
        failure = request_time_failure(signature) or header_signature_failure(
            signature,
            os.environ.get("AWS_SECRET_ACCESS_KEY", "test"),
            method,
            raw_path,
            query_params,
            headers,
            body,
        )
        if failure:
            return _refusal(failure[1])
    iam_evaluator.pin_request_origin(str(request.get("source_ip") or "127.0.0.1"), False)
    iam_evaluator.pin_signed_request(
        method, raw_path, query_params, [(n.encode("latin-1"), v.encode("latin-1")) for n, v in raw_headers]
    )
    iam_evaluator.pin_signed_body(body)
    denied = iam_evaluator.enforce(
        access_key, "execute-api:Invoke", "apigateway", region, resource_arn=resource
    )
    if isinstance(denied, iam_evaluator.AuthError):
        return _refusal(denied.message)
    if denied is not None:
        return _refusal(
            f"User: {denied.principal_arn} is not authorized to perform: execute-api:Invoke "
            f"on resource: {resource}"
        )
    identity = iam_evaluator.resolve_caller_identity(access_key) or {}
    return {
        "allowed": True,
        "identity": {
            name: identity.get(name)
            for name in ("accessKey", "accountId", "userArn", "userId", "principalOrgId")
        },
    }


_CONTROLS = {
    AUTHORIZE_PATH: authorize_invoke,
    THROTTLE_PATH: throttle_batch_get,
    IN_FLIGHT_PATH: set_in_flight_limit,
}


def _with_controls(app: Any) -> Any:
    """sipreg's own paths (`_CONTROLS`: JSON in, JSON out) before ministack."""

    async def serve(scope: dict[str, Any], receive: Any, send: Any) -> None:
        control = _CONTROLS.get(scope.get("path", "")) if scope.get("type") == "http" else None
        if control is None:
            await app(scope, receive, send)
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        status = 200
        try:
            answer = control(json.loads(body)) if scope.get("method") == "POST" else None
        except (ValueError, KeyError, TypeError) as error:
            answer = {"error": f"malformed request: {type(error).__name__}: {error}"}
            status = 400
        if answer is None:
            status, answer = 405, {"error": "POST only"}
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": json.dumps(answer).encode()})

    return serve


def _announce_when_ready(port: int, stdout: Any) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_ministack/health", timeout=1):
                stdout.write(json.dumps({"port": port}) + "\n")
                stdout.flush()
                return
        except OSError:
            time.sleep(0.05)


def main() -> int:
    os.environ.setdefault("BIND_HOST", "127.0.0.1")
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", int(os.environ.get("GATEWAY_PORT", "0"))))
    port = listener.getsockname()[1]
    os.environ["GATEWAY_PORT"] = str(port)  # ministack builds its own URLs from it
    ready_line = sys.stdout
    sys.stdout = sys.stderr  # ministack's own prints must not be taken for the ready line

    from hypercorn.asyncio import serve  # noqa: PLC0415
    from hypercorn.config import Config  # noqa: PLC0415
    from ministack.app import app  # noqa: PLC0415

    _install_iam_additions()
    _install_sqs_sender_id()
    _install_sqs_visibility_limit()
    _install_sqs_fifo_handle_expiry()
    _install_sqs_message_id_rules()
    _install_put_events_rules()
    _install_kms_plaintext_limit()
    _install_batch_get_limits()
    config = Config()
    config.bind = [f"fd://{listener.fileno()}"]
    config.keep_alive_timeout = 75
    config.loglevel = "WARNING"
    config.accesslog = None
    stopping = asyncio.Event()

    async def serve_until_stopped() -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopping.set)
        await serve(_with_controls(app), config, shutdown_trigger=stopping.wait)

    threading.Thread(target=_announce_when_ready, args=(port, ready_line), daemon=True).start()
    asyncio.run(serve_until_stopped())
    return 0


if __name__ == "__main__":
    sys.exit(main())
