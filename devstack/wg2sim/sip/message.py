"""SIP messages (RFC 3261): parsing and framing on a stream transport, the header helpers, where a
URI is sent, and the responses the core builds."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

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
