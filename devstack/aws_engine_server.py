"""The local AWS engine's program: ministack on a free 127.0.0.1 port (run by `devstack.aws_engine`).

Runs with the engine environment's interpreter (`.venv-aws`), so it imports nothing of sipreg's:
only the standard library, ministack and hypercorn. It binds the port itself (no race for a free
one), prints one JSON line `{"port": N}` on stdout once ministack answers, sends everything
ministack prints to stderr, and stops on SIGTERM or SIGINT.

What it adds to ministack's IAM checks, so local enforcement is as strict as AWS for sipreg:
KMS requests carry the `kms:EncryptionContext:<key>` and `kms:EncryptionContextKeys` condition
keys (ministack evaluates conditions but leaves these out, so a policy scoped to a context would
refuse every call).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import threading
import time
import urllib.request
from typing import Any

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


def _install_iam_additions() -> None:
    from ministack.core import iam_actions  # noqa: PLC0415  # after the environment is set

    plain = iam_actions.request_tag_context

    def request_context(service: str, iam_action: str, body: bytes, params: dict[str, Any]) -> dict[str, Any]:
        return {**plain(service, iam_action, body, params), **_kms_context(iam_action, body)}

    iam_actions.request_tag_context = request_context


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
        await serve(app, config, shutdown_trigger=stopping.wait)

    threading.Thread(target=_announce_when_ready, args=(port, ready_line), daemon=True).start()
    asyncio.run(serve_until_stopped())
    return 0


if __name__ == "__main__":
    sys.exit(main())
