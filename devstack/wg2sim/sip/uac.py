"""The core as a SIP client: an outgoing INVITE, its transaction and the dialog it makes."""

from __future__ import annotations

import logging
import ssl
import threading

from devstack.wg2sim.sip.message import (
    ALLOW,
    SDP_OFFER,
    USER_AGENT,
    Message,
    SipError,
    hop_of,
    new_branch,
    new_call_id,
    new_tag,
    param,
    response_to,
    uri_of,
)
from devstack.wg2sim.sip.transport import Connection

log = logging.getLogger(__name__)


class ClientInvite:
    """One outgoing INVITE client transaction and the dialog a 2xx makes (RFC 3261 §17.1.1, §13.2)."""

    def __init__(
        self,
        *,
        request_uri: str,
        from_uri: str,
        to_uri: str,
        contact: str,
        context: ssl.SSLContext,
        routes: tuple[str, ...] = (),
        call_id: str | None = None,
        extra_headers: tuple[tuple[str, str], ...] = (),
        connect_timeout: float = 3.0,
    ) -> None:
        self.request_uri = request_uri
        self.from_uri = from_uri
        self.to_uri = to_uri
        self.contact = contact
        self.routes = routes
        self.call_id = call_id or new_call_id()
        self.from_tag = new_tag()
        self.branch = new_branch()
        self.cseq = 1
        self._context = context
        self._extra = extra_headers
        self._connect_timeout = connect_timeout
        self._connection: Connection | None = None
        self._others: list[Connection] = []  # opened for in-dialog requests to another hop
        self._lock = threading.Lock()
        self.provisional: list[int] = []
        self.final: Message | None = None
        self.error: str | None = None
        self.answered = threading.Event()  # a final response, or an error
        self.responded = threading.Event()  # any response, or an error
        self.cancel_status: int | None = None
        self.bye_status: int | None = None
        self._bye_done = threading.Event()
        self.remote_ended = threading.Event()  # the far end sent BYE
        self.remote_tag = ""
        self.remote_target = ""
        self.route_set: list[str] = []
        self._invite: Message | None = None

    # -- what callers use --

    @property
    def status(self) -> int | None:
        return self.final.status if self.final else None

    def start(self) -> None:
        """Connects to the first hop and sends the INVITE; errors end up in `error`, never raised."""
        hop = hop_of(uri_of(self.routes[0]) if self.routes else self.request_uri)
        try:
            self._connection = Connection.open(hop, self._context, self._on_message, self._connect_timeout)
            self._invite = self._build_invite()
            self._connection.send(self._invite)
        except SipError as error:
            self._fail(str(error))

    def wait_final(self, timeout: float) -> bool:
        return self.answered.wait(timeout)

    def give_up(self, reason: str) -> None:
        """No final response in time: treat the transaction as failed (Timer B)."""
        with self._lock:
            if not self.answered.is_set():
                self.error = reason
                self.answered.set()
                self.responded.set()

    def cancel(self, wait: float = 3.0) -> None:
        """CANCEL a ringing INVITE (§9.1): only after a provisional response, and before a final one."""
        with self._lock:
            if self.answered.is_set() or self._invite is None or self._connection is None:
                return
            cancel = Message(f"CANCEL {self.request_uri} SIP/2.0")
            for name in ("via", "route", "from", "to", "call-id"):
                cancel.headers += [(n, v) for n, v in self._invite.headers if n == name]
            cancel.headers += [("cseq", f"{self.cseq} CANCEL"), ("max-forwards", "70")]
        try:
            self._connection.send(cancel)
        except SipError as error:
            self._fail(str(error))
            return
        if not self.answered.wait(wait):
            self.give_up(f"no final response within {wait:g} s after CANCEL")

    def bye(self, wait: float = 3.0) -> int | None:
        """End an answered call; the BYE's final status (None when none came)."""
        if self.final is None or not 200 <= self.final.status < 300:
            return None
        with self._lock:
            self.cseq += 1
            request = self._in_dialog("BYE", self.cseq)
        self._send_in_dialog(request)
        self._bye_done.wait(wait)
        return self.bye_status

    def close(self) -> None:
        for connection in [self._connection, *self._others]:
            if connection is not None:
                connection.close()

    # -- internals --

    def _fail(self, reason: str) -> None:
        with self._lock:
            if not self.answered.is_set():
                self.error = reason
            self.answered.set()
            self.responded.set()

    def _build_invite(self) -> Message:
        assert self._connection is not None
        local = self._connection.local
        invite = Message(f"INVITE {self.request_uri} SIP/2.0")
        invite.headers += [("via", f"SIP/2.0/TLS {local};branch={self.branch}")]
        invite.headers += [("route", f"<{route}>" if "<" not in route else route) for route in self.routes]
        invite.headers += [
            ("max-forwards", "70"),
            ("from", f"<{self.from_uri}>;tag={self.from_tag}"),
            ("to", f"<{self.to_uri}>"),
            ("call-id", self.call_id),
            ("cseq", f"{self.cseq} INVITE"),
            ("contact", f"<{self.contact}>"),
            ("allow", ALLOW),
            ("user-agent", USER_AGENT),
            *self._extra,
            ("content-type", "application/sdp"),
        ]
        invite.body = SDP_OFFER
        return invite

    def _in_dialog(self, method: str, cseq: int) -> Message:
        assert self._connection is not None
        request = Message(f"{method} {self.remote_target or self.request_uri} SIP/2.0")
        request.headers += [("via", f"SIP/2.0/TLS {self._connection.local};branch={new_branch()}")]
        request.headers += [("route", route) for route in self.route_set]
        request.headers += [
            ("max-forwards", "70"),
            ("from", f"<{self.from_uri}>;tag={self.from_tag}"),
            ("to", f"<{self.to_uri}>;tag={self.remote_tag}" if self.remote_tag else f"<{self.to_uri}>"),
            ("call-id", self.call_id),
            ("cseq", f"{cseq} {method}"),
            ("user-agent", USER_AGENT),
        ]
        return request

    def _send_in_dialog(self, request: Message) -> None:
        """Along the route set (loose routing: the first Route, else the remote target); over this
        connection when that is where it leads, else over a new one."""
        target = uri_of(self.route_set[0]) if self.route_set else (self.remote_target or self.request_uri)
        hop = hop_of(target)
        try:
            connection = self._connection
            if connection is None or connection.closed.is_set() or hop != connection.peer:
                connection = Connection.open(hop, self._context, self._on_message, self._connect_timeout)
                self._others.append(connection)
            connection.send(request)
        except SipError as error:
            log.warning("%s %s: %s", request.method, self.call_id, error)

    def _ack_non_2xx(self, response: Message) -> Message:
        assert self._invite is not None
        ack = Message(f"ACK {self.request_uri} SIP/2.0")
        ack.headers += [(n, v) for n, v in self._invite.headers if n in ("via", "route")]
        ack.headers += [
            ("max-forwards", "70"),
            ("from", self._invite.header("from")),
            ("to", response.header("to")),
            ("call-id", self.call_id),
            ("cseq", f"{self.cseq} ACK"),
        ]
        return ack

    def _on_message(self, message: Message, connection: Connection) -> None:
        if message.is_request:
            self._on_request(message, connection)
            return
        number, method = message.cseq
        if method == "CANCEL":
            self.cancel_status = message.status
            return
        if method == "BYE":
            self.bye_status = message.status
            self._bye_done.set()
            return
        if method != "INVITE" or message.branch != self.branch:
            return
        status = message.status
        self.responded.set()
        if status < 200:
            self.provisional.append(status)
            return
        if status >= 300:
            with self._lock:
                first = self.final is None and self.error is None
                if first:
                    self.final = message
            connection.send(self._ack_non_2xx(message))
            self.answered.set()
            return
        with self._lock:
            first = self.final is None and self.error is None
            if first:
                self.final = message
                self.remote_tag = param(message.header("to"), "tag")
                self.remote_target = uri_of(message.header("contact")) if message.header("contact") else ""
                self.route_set = list(reversed(message.values("record-route")))
        if first or (self.final is not None and param(message.header("to"), "tag") == self.remote_tag):
            # ACK every 2xx retransmission too (§13.2.2.4)
            self._send_in_dialog(self._in_dialog("ACK", number))
        elif self.final is None:
            # A 2xx after we gave up on the transaction: confirm it and end that call at once
            log.info("late 2xx for %s after giving up: ACK and BYE", self.call_id)
            with self._lock:
                self.remote_tag = param(message.header("to"), "tag")
                self.remote_target = uri_of(message.header("contact")) if message.header("contact") else ""
                self.route_set = list(reversed(message.values("record-route")))
                self.cseq += 1
                bye = self._in_dialog("BYE", self.cseq)
            self._send_in_dialog(self._in_dialog("ACK", number))
            self._send_in_dialog(bye)
        self.answered.set()

    def _on_request(self, request: Message, connection: Connection) -> None:
        if request.method == "ACK":
            return
        if request.method == "BYE":
            self.remote_ended.set()
        status = 200 if request.method in ("BYE", "OPTIONS") else 481
        connection.send(response_to(request, status, to_tag=self.from_tag))
