"""Runs both front ends of one `Wg2Sim` on loopback: gRPC (plain or TLS) and HTTP."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import grpc
from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

from devstack.wg2sim.calls.router import CallRouter
from devstack.wg2sim.grpc_service import create_grpc_server
from devstack.wg2sim.http_app import create_http_app
from devstack.wg2sim.sip.transport import client_context, server_context
from devstack.wg2sim.sip.uas import ServerInvite, SipListener
from devstack.wg2sim.state import Wg2Sim
from devstack.wg2sim.tls import TlsFiles

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class SipOptions:
    """The core's SIP side: its TLS port (leg 3 of a Loop, Ingress calls) with this certificate,
    and the certificates it trusts, besides the system's roots, when it calls a TAS (leg 2)."""

    cert_file: str
    key_file: str
    trusted: tuple[str, ...] = ()
    port: int = 0


class Wg2simServer:
    """Start, read the bound ports, stop. Also usable in-process (e.g. by a local stack)."""

    def __init__(
        self,
        sim: Wg2Sim,
        *,
        grpc_port: int = 0,
        http_port: int = 0,
        tls: TlsFiles | None = None,
        http_app: Flask | None = None,
        sip: SipOptions | None = None,
    ) -> None:
        """`http_app` defaults to `create_http_app(sim)` (the admin API); with `sip`, the call path
        (`sim.calls`) and the core's SIP port (`sip_port`) run too."""
        self.sim = sim
        self.tls = tls
        self.sip_listener: SipListener | None = None
        if sip is not None:
            self.sip_listener = SipListener(
                server_context(sip.cert_file, sip.key_file), self._on_invite, host=LOOPBACK, port=sip.port
            )
            sim.calls = CallRouter(
                sim.registrations, sim.clock.time_scale, self.sip_listener, client_context(sip.trusted)
            )
        self._grpc_server = create_grpc_server(sim)
        address = f"{LOOPBACK}:{grpc_port}"
        try:
            if tls is None:
                self.grpc_port = self._grpc_server.add_insecure_port(address)
            else:
                credentials = grpc.ssl_server_credentials([(tls.key_pem, tls.cert_pem)])
                self.grpc_port = self._grpc_server.add_secure_port(address, credentials)
        except RuntimeError as error:  # grpcio's way of saying the bind failed
            raise OSError(f"cannot bind gRPC to {address}: {error}") from None
        # The per-request access log would only repeat what /_admin/stats counts.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        try:
            self._http_server: BaseWSGIServer = make_server(
                LOOPBACK, http_port, http_app or create_http_app(sim), threaded=True
            )
        except SystemExit:  # werkzeug reports a busy port on stderr and exits
            raise OSError(f"cannot bind HTTP to {LOOPBACK}:{http_port}") from None
        self.http_port = self._http_server.server_port
        self._http_thread = threading.Thread(
            target=self._http_server.serve_forever, args=(0.1,), name="wg2sim-http", daemon=True
        )

    def _on_invite(self, invite: ServerInvite) -> None:
        assert self.sim.calls is not None
        self.sim.calls.on_invite(invite)

    @property
    def sip_port(self) -> int | None:
        return self.sip_listener.port if self.sip_listener else None

    def start(self) -> None:
        self._grpc_server.start()
        self._http_thread.start()
        if self.sip_listener is not None:
            self.sip_listener.start()

    def stop(self, grace_seconds: float = 1.0) -> None:
        """In-flight calls get `grace_seconds`, then are cancelled (stalled ones wake at once)."""
        self._http_server.shutdown()
        self._http_server.server_close()
        self._grpc_server.stop(grace_seconds).wait()
        if self.sip_listener is not None:
            self.sip_listener.stop()
