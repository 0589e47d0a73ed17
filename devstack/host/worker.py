"""One Lambda execution environment: a process that imports one function's handler and runs
invocations sent by the host, one at a time, for as long as the host keeps it (warm starts).

Run as a script (`python -P worker.py ...`), never imported by the host, so the function's
process holds nothing but the function, the way Lambda's sandbox does: the code directory and
the layers on sys.path, its own environment, its own module-level state.

Protocol (one JSON document per line on the socket passed as --fd):
  worker -> host  {"type": "ready"} | {"type": "init_error", "error": {...}} once, then per
                  invocation {"type": "result", "payload": ...} | {"type": "error", "error": {...}}
  host -> worker  {"request_id", "event", "deadline_ms", "invoked_function_arn", "trace_id"}
"""

from __future__ import annotations

import argparse
import decimal
import importlib
import json
import os
import socket
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any, BinaryIO

Handler = Callable[[Any, "LambdaContext"], Any]


class LambdaContext:
    """The context object of the Python runtime (awslambdaric's attributes and types)."""

    def __init__(self, request_id: str, deadline_ms: int, invoked_function_arn: str) -> None:
        self.aws_request_id = request_id
        self.invoked_function_arn = invoked_function_arn
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION")
        # A string, as in the real runtime (it reads the environment variable).
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self.identity = None
        self.client_context = None
        self.tenant_id = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(self._deadline_ms - int(time.time() * 1000), 0)

    def log(self, message: str) -> None:
        sys.stdout.write(message)
        sys.stdout.flush()


class FaultError(Exception):
    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


def load_handler(spec: str) -> Handler:
    """`app.handler` -> the `handler` attribute of module `app`, with Lambda's error types."""
    module_name, _, function_name = spec.rpartition(".")
    if not module_name:
        raise FaultError("Runtime.MalformedHandlerName", f"Bad handler '{spec}'")
    module_name = module_name.replace("/", ".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise FaultError(
            "Runtime.ImportModuleError", f"Unable to import module '{module_name}': {exc}"
        ) from exc
    except SyntaxError as exc:
        raise FaultError(
            "Runtime.UserCodeSyntaxError", f"Syntax error in module '{module_name}': {exc}"
        ) from exc
    handler = getattr(module, function_name, None)
    if not callable(handler):
        raise FaultError(
            "Runtime.HandlerNotFound", f"Handler '{function_name}' missing on module '{module_name}'"
        )
    return handler  # type: ignore[no-any-return]


def error_document(exc: BaseException, request_id: str | None = None) -> dict[str, Any]:
    error_type = exc.error_type if isinstance(exc, FaultError) else type(exc).__name__
    stack = traceback.format_list(traceback.extract_tb(exc.__traceback__))
    document: dict[str, Any] = {"errorMessage": str(exc), "errorType": error_type, "stackTrace": stack}
    if request_id:
        document["requestId"] = request_id
    # Lambda writes unhandled errors to the function's log, as this does.
    sys.stderr.write(f"[ERROR] {error_type}: {exc}\n{''.join(traceback.format_exception(exc))}")
    sys.stderr.flush()
    return document


def _decimal(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def invoke(handler: Handler, message: dict[str, Any]) -> dict[str, Any]:
    request_id = message["request_id"]
    os.environ["_X_AMZN_TRACE_ID"] = message["trace_id"]
    context = LambdaContext(request_id, message["deadline_ms"], message["invoked_function_arn"])
    try:
        payload = handler(message["event"], context)
    except Exception as exc:  # every handler error goes back to the caller
        return {"type": "error", "error": error_document(exc, request_id)}
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    try:
        return {"type": "result", "payload": json.loads(json.dumps(payload, default=_decimal))}
    except (TypeError, ValueError) as exc:
        fault = FaultError("Runtime.MarshalError", f"Unable to marshal response: {exc}")
        return {"type": "error", "error": error_document(fault, request_id)}


def send(channel: BinaryIO, message: dict[str, Any]) -> None:
    channel.write(json.dumps(message).encode() + b"\n")
    channel.flush()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--handler", required=True)
    parser.add_argument("--path", action="append", default=[], help="sys.path entries, first wins")
    args = parser.parse_args()
    sys.path[:0] = args.path
    connection = socket.socket(fileno=args.fd)
    reader, writer = connection.makefile("rb"), connection.makefile("wb")
    try:
        handler = load_handler(args.handler)
    except Exception as exc:  # an init failure is reported, then the sandbox ends
        send(writer, {"type": "init_error", "error": error_document(exc)})
        return 1
    send(writer, {"type": "ready"})
    for line in reader:
        send(writer, invoke(handler, json.loads(line)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
