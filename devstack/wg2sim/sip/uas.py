"""The core as a SIP server: its own TLS port, and the INVITEs that arrive there."""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from collections.abc import Callable

from devstack.wg2sim.sip.message import (
    ALLOW,
    SDP_ANSWER,
    Message,
    SipError,
    new_tag,
    param,
    response_to,
)
from devstack.wg2sim.sip.transport import Connection

log = logging.getLogger(__name__)


class ServerInvite:
    """An INVITE that arrived at the core's listener; `respond` sends provisional and final answers."""

    def __init__(self, request: Message, connection: Connection, contact: str) -> None:
        self.request = request
        self.connection = connection
        self.contact = contact
        self.local_tag = new_tag()
        self.final_status: int | None = None
        self.cancelled = threading.Event()
        self.acked = threading.Event()
        self.ended = threading.Event()  # a BYE came
        self._lock = threading.Lock()

    def respond(self, status: int, reason: str | None = None, *, sdp: bool = False) -> bool:
        """Sends one response; False when a final one was sent already (e.g. after a CANCEL)."""
        with self._lock:
            if self.final_status is not None:
                return False
            if status >= 200:
                self.final_status = status
        response = response_to(self.request, status, reason, to_tag=self.local_tag)
        if 100 < status < 300:
            response.headers += [("record-route", rr) for rr in self.request.values("record-route")]
            response.headers.append(("contact", f"<{self.contact}>"))
        if 200 <= status < 300 and sdp:
            response.headers.append(("content-type", "application/sdp"))
            response.body = SDP_ANSWER
        try:
            self.connection.send(response)
        except SipError as error:
            log.warning("response %s to %s: %s", status, self.request.call_id, error)
        return True


class SipListener:
    """The core's SIP port over TLS on loopback. New INVITEs go to `on_invite` on a thread of their
    own; ACK, BYE and CANCEL are matched here; OPTIONS is answered 200."""

    def __init__(
        self,
        context: ssl.SSLContext,
        on_invite: Callable[[ServerInvite], None],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self._context = context
        self._on_invite = on_invite
        self._server = socket.create_server((host, port))
        self._server.settimeout(0.2)
        self.host, self.port = self._server.getsockname()[:2]
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._by_branch: dict[str, ServerInvite] = {}
        self._by_dialog: dict[tuple[str, str], ServerInvite] = {}
        self._connections: list[Connection] = []
        self._thread = threading.Thread(target=self._accept, name="wg2sim-sip", daemon=True)

    @property
    def contact(self) -> str:
        return f"sips:core@{self.host}:{self.port}"

    def route_back(self, odi: str) -> str:
        """The Route the core puts after the TAS's for a Loop: the way back to itself, naming the call."""
        return f"<sips:{self.host}:{self.port};lr;odi={odi}>"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(2)
        self._server.close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            connection.close()

    def forget(self, invite: ServerInvite) -> None:
        with self._lock:
            self._by_branch.pop(invite.request.branch, None)
            self._by_dialog.pop((invite.request.call_id, invite.local_tag), None)

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                raw, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._handshake, args=(raw,), daemon=True).start()

    def _handshake(self, raw: socket.socket) -> None:
        raw.settimeout(5)
        try:
            sock = self._context.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError) as error:
            log.info("TLS handshake on the core's SIP port failed: %s", error)
            raw.close()
            return
        connection = Connection(sock, self._on_message, "wg2sim-sip-conn")
        with self._lock:
            self._connections = [c for c in self._connections if not c.closed.is_set()] + [connection]

    def _on_message(self, message: Message, connection: Connection) -> None:
        if not message.is_request:
            return  # the core sends no requests from this port
        method = message.method
        to_tag = param(message.header("to"), "tag")
        if method == "OPTIONS":
            response = response_to(message, 200, to_tag=new_tag())
            response.headers.append(("allow", ALLOW))
            connection.send(response)
        elif method == "INVITE" and not to_tag:
            self._new_invite(message, connection)
        elif method == "CANCEL":
            self._cancel(message, connection)
        elif method == "ACK":
            self._ack(message, to_tag)
        elif method == "BYE":
            with self._lock:
                invite = self._by_dialog.get((message.call_id, to_tag))
            connection.send(response_to(message, 200 if invite else 481))
            if invite is not None:
                invite.ended.set()
                self.forget(invite)
        else:
            response = response_to(message, 405 if not to_tag else 481, to_tag=new_tag())
            response.headers.append(("allow", ALLOW))
            connection.send(response)

    def _new_invite(self, request: Message, connection: Connection) -> None:
        with self._lock:
            if request.branch in self._by_branch:
                return  # a retransmission: the transaction answers it already
            invite = ServerInvite(request, connection, self.contact)
            self._by_branch[request.branch] = invite
            self._by_dialog[(request.call_id, invite.local_tag)] = invite
        invite.respond(100)
        threading.Thread(
            target=self._on_invite, args=(invite,), name="wg2sim-sip-invite", daemon=True
        ).start()

    def _cancel(self, request: Message, connection: Connection) -> None:
        with self._lock:
            invite = self._by_branch.get(request.branch)
        if invite is None:
            connection.send(response_to(request, 481, to_tag=new_tag()))
            return
        connection.send(response_to(request, 200, to_tag=invite.local_tag))
        invite.cancelled.set()
        invite.respond(487)

    def _ack(self, request: Message, to_tag: str) -> None:
        with self._lock:
            invite = self._by_branch.get(request.branch) or self._by_dialog.get((request.call_id, to_tag))
        if invite is not None:
            invite.acked.set()
