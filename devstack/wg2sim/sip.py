"""The emulated core's SIP over TLS: just enough RFC 3261 for the calls `calls.py` places.

- `Message`, `StreamParser`: SIP messages on a stream transport (Content-Length framing, folded
  and compact headers, comma-separated Route/Record-Route/Via values).
- `Connection`: one TLS connection with a reader thread handing every message to a callback.
- `ClientInvite`: a UAC INVITE on its own connection: provisional responses, the final one, ACK
  for a non-2xx in the same transaction, ACK for a 2xx as a new request along the dialog's route
  set, CANCEL while it rings, BYE to end an answered call.
- `SipListener`: the core's own TLS port, where a TAS sends leg 3 (Loop) or places a call
  (Ingress); `ServerInvite` answers such an INVITE; ACK, BYE and CANCEL find their transaction
  or dialog.

Kept apart from `sipreg.sip` on purpose, like the rest of the emulator: it stands in for the
operator's side and must not share the provider's code.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger("devstack.wg2sim.sip")

DEFAULT_SIPS_PORT = 5061
MAX_MESSAGE_BYTES = 65536
COMPACT = {
    "v": "via",
    "i": "call-id",
    "l": "content-length",
    "f": "from",
    "t": "to",
    "m": "contact",
    "c": "content-type",
}
MULTI_VALUE = {"via", "route", "record-route"}
ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS"
USER_AGENT = "wg2sim-core/1"
REASONS = {
    100: "Trying",
    180: "Ringing",
    200: "OK",
    403: "Forbidden",
    404: "Not Found",
    408: "Request Timeout",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    486: "Busy Here",
    487: "Request Terminated",
    500: "Server Internal Error",
    503: "Service Unavailable",
}
# A WebRTC-style offer (DTLS-SRTP): the signalling is real, no media ever flows in the emulator.
SDP_OFFER = (
    "v=0\r\no=wg2sim 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\na=setup:actpass\r\n"
    "a=fingerprint:sha-256 " + ":".join(["00"] * 32) + "\r\n"
).encode()
SDP_ANSWER = SDP_OFFER.replace(b"a=setup:actpass", b"a=setup:active")


class SipError(RuntimeError):
    """A message that is not SIP, or a peer that cannot be reached."""


# --- messages ---------------------------------------------------------------------------------------


@dataclass
class Message:
    first_line: str
    headers: list[tuple[str, str]] = field(default_factory=list)  # (lower-case long name, value)
    body: bytes = b""

    @property
    def is_request(self) -> bool:
        return not self.first_line.startswith("SIP/2.0 ")

    @property
    def method(self) -> str:
        return self.first_line.split(" ", 1)[0] if self.is_request else self.cseq[1]

    @property
    def uri(self) -> str:
        return self.first_line.split(" ")[1]

    @property
    def status(self) -> int:
        return int(self.first_line.split(" ")[1])

    @property
    def reason(self) -> str:
        parts = self.first_line.split(" ", 2)
        return parts[2] if len(parts) > 2 else ""

    @property
    def cseq(self) -> tuple[int, str]:
        number, _, method = self.header("cseq").partition(" ")
        return int(number), method.strip()

    @property
    def call_id(self) -> str:
        return self.header("call-id")

    @property
    def branch(self) -> str:
        return param(self.values("via")[0], "branch") if self.values("via") else ""

    def header(self, name: str) -> str:
        return next((value for key, value in self.headers if key == name), "")

    def values(self, name: str) -> list[str]:
        """Every value of a header, comma-separated ones split (Via, Route, Record-Route)."""
        found: list[str] = []
        for key, value in self.headers:
            if key == name:
                found += split_values(value) if name in MULTI_VALUE else [value]
        return found

    def set(self, name: str, value: str) -> None:
        self.headers = [(k, v) for k, v in self.headers if k != name] + [(name, value)]

    def encode(self) -> bytes:
        lines = [self.first_line]
        lines += [f"{_canonical(name)}: {value}" for name, value in self.headers if name != "content-length"]
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + self.body


def _canonical(name: str) -> str:
    special = {"call-id": "Call-ID", "cseq": "CSeq", "www-authenticate": "WWW-Authenticate"}
    return special.get(name, "-".join(part.capitalize() for part in name.split("-")))


def split_values(value: str) -> list[str]:
    """Split on commas outside <...> and quotes."""
    parts: list[str] = []
    depth, quoted, start = 0, False, 0
    for index, char in enumerate(value):
        if char == '"':
            quoted = not quoted
        elif not quoted and char == "<":
            depth += 1
        elif not quoted and char == ">":
            depth -= 1
        elif not quoted and depth == 0 and char == ",":
            parts.append(value[start:index].strip())
            start = index + 1
    parts.append(value[start:].strip())
    return [part for part in parts if part]


def param(value: str, name: str) -> str:
    """A `;name=value` parameter of a header value (outside its <uri>), "" when absent."""
    tail = value.rsplit(">", 1)[-1]
    for part in tail.split(";")[1:]:
        key, _, found = part.partition("=")
        if key.strip().lower() == name:
            return found.strip()
    return ""


def uri_of(value: str) -> str:
    """The URI of a name-addr (`"x" <sips:a@b>;tag=1`) or addr-spec header value."""
    if "<" in value:
        return value.split("<", 1)[1].split(">", 1)[0]
    return value.split(";", 1)[0].strip()


def parse_head(head: str, body: bytes = b"") -> Message:
    lines = head.split("\r\n")
    first = lines[0]
    parts = first.split(" ")
    is_response = first.startswith("SIP/2.0 ") and len(parts) >= 2 and parts[1].isdigit()
    if not is_response and (len(parts) != 3 or parts[2] != "SIP/2.0"):
        raise SipError(f"not a SIP message: {first[:80]!r}")
    message = Message(first)
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and message.headers:
            name, value = message.headers[-1]
            message.headers[-1] = (name, value + " " + line.strip())
            continue
        name, colon, value = line.partition(":")
        if not colon:
            raise SipError(f"bad header line {line[:80]!r}")
        name = name.strip().lower()
        message.headers.append((COMPACT.get(name, name), value.strip()))
    message.body = body
    return message


class StreamParser:
    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[Message]:
        self._buffer += data
        if len(self._buffer) > MAX_MESSAGE_BYTES:
            raise SipError("message too large")
        found: list[Message] = []
        while True:
            self._buffer = self._buffer.lstrip(b"\r\n")
            end = self._buffer.find(b"\r\n\r\n")
            if end == -1:
                return found
            head = self._buffer[:end].decode("utf-8", errors="replace")
            message = parse_head(head)
            length = int(message.header("content-length") or "0")
            if len(self._buffer) < end + 4 + length:
                return found
            message.body = self._buffer[end + 4 : end + 4 + length]
            self._buffer = self._buffer[end + 4 + length :]
            found.append(message)


def new_branch() -> str:
    return "z9hG4bK" + secrets.token_hex(8)


def new_tag() -> str:
    return secrets.token_hex(6)


def new_call_id() -> str:
    return f"{secrets.token_hex(12)}@wg2sim"


@dataclass(frozen=True)
class Hop:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def hop_of(uri: str) -> Hop:
    """Where a sip:/sips: URI is sent: its host and port (5061 without one; TLS either way)."""
    scheme, colon, rest = uri.partition(":")
    if not colon or scheme.lower() not in ("sip", "sips"):
        raise SipError(f"{uri!r} is not a sip: or sips: URI")
    hostport = rest.split(";", 1)[0].split("?", 1)[0].rsplit("@", 1)[-1]
    if hostport.startswith("["):
        host, _, after = hostport[1:].partition("]")
        port = after.removeprefix(":")
    else:
        host, _, port = hostport.partition(":")
    return Hop(host, int(port) if port.isdigit() else DEFAULT_SIPS_PORT)


def response_to(request: Message, status: int, reason: str | None = None, *, to_tag: str = "") -> Message:
    """A response copying Via, From, To (+ tag), Call-ID and CSeq (RFC 3261 §8.2.6)."""
    response = Message(f"SIP/2.0 {status} {reason or REASONS.get(status, '')}".rstrip())
    for name, value in request.headers:
        if name in ("via", "from", "call-id", "cseq"):
            response.headers.append((name, value))
        elif name == "to":
            tagged = (
                value if (param(value, "tag") or not to_tag or status == 100) else f"{value};tag={to_tag}"
            )
            response.headers.append(("to", tagged))
    response.headers.append(("server", USER_AGENT))
    return response


# --- transport --------------------------------------------------------------------------------------


class Connection:
    """One TLS connection; `on_message(message, connection)` runs on its reader thread."""

    def __init__(
        self, sock: ssl.SSLSocket, on_message: Callable[[Message, Connection], None], name: str
    ) -> None:
        self.sock = sock
        self.local = Hop(*sock.getsockname()[:2])
        self.peer = Hop(*sock.getpeername()[:2])
        self._on_message = on_message
        self._send_lock = threading.Lock()
        self.closed = threading.Event()
        self._thread = threading.Thread(target=self._read, name=name, daemon=True)
        self._thread.start()

    @classmethod
    def open(
        cls,
        hop: Hop,
        context: ssl.SSLContext,
        on_message: Callable[[Message, Connection], None],
        timeout: float,
    ) -> Connection:
        """Connects and completes the TLS handshake (the certificate must fit `hop.host`)."""
        try:
            raw = socket.create_connection((hop.host, hop.port), timeout=timeout)
        except socket.gaierror as error:
            raise SipError(f"cannot resolve {hop.host}: {error.strerror or error}") from None
        except TimeoutError:
            raise SipError(f"no TCP connection to {hop} within {timeout:g} s") from None
        except ConnectionRefusedError:
            raise SipError(f"connection refused by {hop}") from None
        except OSError as error:
            raise SipError(f"cannot connect to {hop}: {error.strerror or error}") from None
        try:
            sock = context.wrap_socket(raw, server_hostname=hop.host)
        except ssl.SSLCertVerificationError as error:
            raw.close()
            raise SipError(f"TLS to {hop}: certificate not trusted ({error.verify_message})") from None
        except (ssl.SSLError, OSError) as error:
            raw.close()
            raise SipError(f"TLS to {hop} failed: {error}") from None
        sock.settimeout(None)
        return cls(sock, on_message, f"sip-client-{hop}")

    def send(self, message: Message) -> None:
        data = message.encode()
        with self._send_lock:
            try:
                self.sock.sendall(data)
            except OSError as error:
                raise SipError(f"send to {self.peer}: {error}") from None
        log.debug("sent to %s: %s", self.peer, message.first_line)

    def close(self) -> None:
        if not self.closed.is_set():
            self.closed.set()
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)
            self.sock.close()

    def _read(self) -> None:
        parser = StreamParser()
        try:
            while True:
                data = self.sock.recv(16384)
                if not data:
                    break
                for message in parser.feed(data):
                    log.debug("from %s: %s", self.peer, message.first_line)
                    try:
                        self._on_message(message, self)
                    except Exception:
                        log.exception("handling %s from %s", message.first_line, self.peer)
        except (OSError, SipError, ValueError) as error:
            if not self.closed.is_set():
                log.debug("connection to %s ends: %s", self.peer, error)
        finally:
            self.closed.set()
            with contextlib.suppress(OSError):
                self.sock.close()


# --- UAC: an outgoing INVITE ------------------------------------------------------------------------


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


# --- UAS: the core's own port -----------------------------------------------------------------------


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

    @property
    def route_params(self) -> str:
        """The Route header values left for us (the core's own Route, with its odi parameter)."""
        return ",".join(self.request.values("route"))

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
        sock.settimeout(None)
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


def client_context(ca_files: tuple[str, ...] = ()) -> ssl.SSLContext:
    """What the core trusts when it calls a TAS: the system's roots plus `ca_files`."""
    context = ssl.create_default_context()
    for ca_file in ca_files:
        context.load_verify_locations(cafile=ca_file)
    return context


def server_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    return context


def wait_until(event: threading.Event, deadline: float) -> bool:
    return event.wait(max(0.0, deadline - time.monotonic()))
