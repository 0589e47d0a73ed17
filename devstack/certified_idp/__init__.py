"""An OpenID Certified provider implementation on loopback, for the consent tests.

panva's `oidc-provider` (npm, pinned in `package.json` / `package-lock.json` beside this file;
`make idp` installs it) runs unmodified in `server.mjs`, configured with WG2's endpoint paths
(or its own with `default_routes=True`). Its devInteractions pages are the login (any login:
type the MSISDN; any password) and consent screens.

    with CertifiedIdp.start() as idp:
        idp.register_client("sipreg-x", "secret...", "http://127.0.0.1:PORT/oauth/callback")
        ...  # IdentityServerUrl = idp.issuer
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import IO, Self

import httpx

from devstack.child import (
    ChildStartError,
    Stoppable,
    open_child_log,
    read_child_log,
    stop_child,
    wait_for_ready_line,
)

HERE = Path(__file__).resolve().parent
SERVER = HERE / "server.mjs"
INSTALLED = HERE / "node_modules" / "oidc-provider" / "package.json"
STARTUP_TIMEOUT_SECONDS = 20.0


class CertifiedIdpError(RuntimeError):
    """The provider could not be started or refused a set-up request (the message says why)."""


class CertifiedIdp(Stoppable):
    """A running `node server.mjs` child; build it with `start()`."""

    def __init__(self, process: subprocess.Popen[bytes], stderr: IO[bytes], issuer: str) -> None:
        self.process = process
        self.issuer = issuer
        self._stderr = stderr

    @classmethod
    def start(cls, *, default_routes: bool = False, log_file: Path | None = None) -> Self:
        node = shutil.which("node")
        if node is None:
            raise CertifiedIdpError("node is not on PATH (Node.js 20 or later runs the provider)")
        if not INSTALLED.exists():
            raise CertifiedIdpError(f"{INSTALLED.parent} is missing: `make idp` installs it (npm ci)")
        args = [node, str(SERVER), *(["--default-routes"] if default_routes else [])]
        stderr = open_child_log(log_file)  # closed in stop()
        process = subprocess.Popen(  # noqa: S603  # our own script, no shell
            args, cwd=HERE, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr
        )
        try:
            ready = wait_for_ready_line(process, STARTUP_TIMEOUT_SECONDS)
        except ChildStartError as error:
            detail = read_child_log(stderr).strip()
            stderr.close()
            raise CertifiedIdpError(f"{error}; stderr:\n{detail}") from None
        return cls(process, stderr, str(ready["issuer"]))

    @property
    def http_url(self) -> str:
        return self.issuer

    def register_client(self, client_id: str, client_secret: str, redirect_uri: str) -> None:
        answer = httpx.post(
            f"{self.issuer}/_admin/clients",
            json={"client_id": client_id, "client_secret": client_secret, "redirect_uris": [redirect_uri]},
            timeout=5,
        )
        if answer.status_code != 201:
            raise CertifiedIdpError(f"registering {client_id}: {answer.status_code} {answer.text}")

    def stop(self) -> None:
        stop_child(self.process, timeout=5)
        self._stderr.close()

    def stderr_text(self) -> str:
        return read_child_log(self._stderr)
