"""SIP OPTIONS over TLS: is a PBX/TAS endpoint's SIP stack up? (RFC 3261 §11, the keep-alive ping
SIP proxies such as Kamailio's dispatcher send.)

    result = probe("sips:pbx.acme.example:5061", timeout=5.0)
    result.up, result.status_code, result.reason   # True, 200, "200 OK"
    results = probe_all(uris, timeout=5.0, concurrency=8)   # {uri: ProbeResult}, each uri once

One OPTIONS request per probe, on a fresh TLS connection (certificate and host name verified
against the system's roots, or `ca_file`), answered by the first final response. `up` means the
PBX's SIP stack answered: any final response (RFC 3261 §11.2) but those that say it cannot serve
now (`DOWN_STATUSES`: 408 and the 5xx but 501). A PBX that challenges (401, 407) or refuses
(403, 404) an OPTIONS from a source it does not know, as Asterisk's PJSIP and many SBCs do with
a Lambda's address, is up: the core's INVITEs come from elsewhere and are served. No answer
within `timeout`, a refused connection, a TLS failure or an unresolvable host is down, with the
reason. `probe` never raises for what the network does; only a `uri`
that is not `sips:` host [":" port] raises `ValueError`.

No SRV lookup (RFC 3263): a `sips:` URI without a port is tried on 5061. No SIP library, on
purpose: this is one client transaction, and the module has no dependency beyond the standard
library.
"""

from __future__ import annotations

import secrets
import socket
import ssl
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

DEFAULT_PORT = 5061  # sips: without a port, and without SRV
DEFAULT_TIMEOUT_SECONDS = 5.0
MAX_RESPONSE_BYTES = 65536
USER_AGENT = "sipreg-health/1"
# Final answers to OPTIONS that say the server cannot serve now (RFC 3261 §21.4.9, §21.5; RFC 3263
# §4.3 fails over on 503): Request Timeout and the server errors, but 501 Not Implemented (a
# working server that does not do OPTIONS).
DOWN_STATUSES = frozenset({408} | set(range(500, 600)) - {501})
# Compact header forms (RFC 3261 §7.3.3) a response may use for what this client reads.
COMPACT = {"v": "via", "i": "call-id", "l": "content-length", "f": "from", "t": "to"}


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What one OPTIONS probe found. `status_code` is the final SIP status, None when none came."""

    uri: str
    up: bool
    status_code: int | None
    reason: str  # "200 OK", "486 Busy Here", "timeout: no final response within 5 s", "connect: ..."
    elapsed_seconds: float


@dataclass(frozen=True, slots=True)
class SipsTarget:
    host: str  # a DNS name or an IP literal (IPv6 without brackets)
    port: int

    @property
    def hostport(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_sips_uri(uri: str) -> SipsTarget:
    """`sips:` host [":" port], as registrations carry it; anything else raises ValueError."""
    if uri[:5].lower() != "sips:":
        raise ValueError(f"{uri!r} is not a sips: URI")
    rest = uri[5:]
    if not rest or any(char in rest for char in "@;?/ "):
        raise ValueError(f"{uri!r}: expected sips: host [':' port] only")
    if rest.startswith("["):
        host, _, after = rest[1:].partition("]")
        port_text = after.removeprefix(":") if after.startswith(":") else ("" if not after else "x")
    else:
        host, colon, port_text = rest.partition(":")
        if colon and not port_text:
            port_text = "x"
    if not host:
        raise ValueError(f"{uri!r} has no host")
    if port_text and not (port_text.isascii() and port_text.isdigit() and 1 <= int(port_text) <= 65535):
        raise ValueError(f"{uri!r} has a bad port {port_text!r}")
    return SipsTarget(host, int(port_text) if port_text else DEFAULT_PORT)


def build_options(target: SipsTarget, *, local_hostport: str, branch: str, tag: str, call_id: str) -> bytes:
    """The request: every header RFC 3261 §8.1.1 requires, Via over TLS with a magic-cookie branch."""
    lines = [
        f"OPTIONS sips:{target.hostport} SIP/2.0",
        f"Via: SIP/2.0/TLS {local_hostport};branch={branch}",
        "Max-Forwards: 70",
        f"From: <sips:health@{local_hostport}>;tag={tag}",
        f"To: <sips:{target.hostport}>",
        f"Call-ID: {call_id}",
        "CSeq: 1 OPTIONS",
        f"Contact: <sips:health@{local_hostport}>",
        "Accept: application/sdp",
        f"User-Agent: {USER_AGENT}",
        "Content-Length: 0",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@dataclass(frozen=True, slots=True)
class Response:
    status_code: int
    reason: str
    headers: dict[str, str]  # lower-case long names; the first value of each


class ResponseReader:
    """Splits a TLS byte stream into SIP messages (Content-Length framing, RFC 3261 §18.3)."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[Response]:
        self._buffer += data
        if len(self._buffer) > MAX_RESPONSE_BYTES:
            raise ValueError("response too large")
        found: list[Response] = []
        while True:
            self._buffer = self._buffer.lstrip(b"\r\n")  # keep-alive CRLFs between messages
            end = self._buffer.find(b"\r\n\r\n")
            if end == -1:
                return found
            head = self._buffer[:end].decode("utf-8", errors="replace")
            lines = head.split("\r\n")
            try:
                headers = _headers(lines[1:])
                # A request the server sends on this connection (RFC 3261 §18.3: either side may) is
                # skipped; a response is read.
                response = None if _is_request_line(lines[0]) else _response(lines[0], headers)
            except ValueError:
                if found:  # what came before the bad message is answer enough
                    return found
                raise
            length_text = headers.get("content-length", "0") or "0"
            # 1*DIGIT (RFC 3261 §20.14): a negative length would cut nothing, and the same
            # response would be read again and again.
            if not (length_text.isascii() and length_text.isdigit()):
                raise ValueError(f"bad Content-Length {length_text[:20]!r}")
            length = int(length_text)
            if len(self._buffer) < end + 4 + length:
                return found
            self._buffer = self._buffer[end + 4 + length :]
            if response is not None:
                found.append(response)


def parse_response_head(head: str) -> Response:
    """Status line and headers (folded lines joined, compact names expanded); ValueError if no response."""
    lines = head.split("\r\n")
    return _response(lines[0], _headers(lines[1:]))


def _response(status_line: str, headers: dict[str, str]) -> Response:
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or parts[0] != "SIP/2.0" or not (parts[1].isdigit() and len(parts[1]) == 3):
        raise ValueError(f"not a SIP response: {status_line[:80]!r}")
    return Response(int(parts[1]), parts[2] if len(parts) > 2 else "", headers)


def _is_request_line(line: str) -> bool:
    """Method SP Request-URI SP SIP-Version (RFC 3261 §7.1)."""
    parts = line.split(" ")
    return len(parts) == 3 and parts[0].isalpha() and parts[0].isupper() and parts[2] == "SIP/2.0"


def _headers(lines: list[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    last = ""
    for line in lines:
        if line[:1] in (" ", "\t") and last:
            headers[last] += " " + line.strip()
            continue
        name, colon, value = line.partition(":")
        if not colon:
            raise ValueError(f"bad header line {line[:80]!r}")
        name = name.strip().lower()
        name = COMPACT.get(name, name)
        last = name
        headers.setdefault(name, value.strip())
    return headers


def _matches(response: Response, branch: str, call_id: str) -> bool:
    via = response.headers.get("via", "")
    cseq = response.headers.get("cseq", "").split()
    return (
        f"branch={branch}" in via and response.headers.get("call-id") == call_id and cseq[-1:] == ["OPTIONS"]
    )


def probe(  # noqa: PLR0911  # one return per way a probe can end
    uri: str,
    *,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ca_file: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> ProbeResult:
    """One OPTIONS to `uri` over TLS; `timeout` bounds it all (resolve, connect, handshake, answer).

    Trust: `ssl_context` if given, else the system's roots plus `ca_file`.
    """
    target = parse_sips_uri(uri)
    started = time.monotonic()
    deadline = started + timeout

    def result(up: bool, status: int | None, reason: str) -> ProbeResult:
        return ProbeResult(uri, up, status, reason, round(time.monotonic() - started, 4))

    context = ssl_context or tls_context(ca_file)
    try:
        raw = socket.create_connection((target.host, target.port), timeout=max(timeout, 0.001))
    except TimeoutError:
        return result(False, None, f"timeout: no TCP connection within {timeout:g} s")
    except OSError as error:
        return result(False, None, f"connect: {_describe(error)}")
    try:
        raw.settimeout(max(deadline - time.monotonic(), 0.001))
        with context.wrap_socket(raw, server_hostname=target.host) as tls:
            return _exchange(tls, target=target, deadline=deadline, timeout=timeout, result=result)
    except TimeoutError:
        return result(False, None, f"timeout: no TLS session within {timeout:g} s")
    except ssl.SSLCertVerificationError as error:
        return result(False, None, f"tls: certificate not trusted: {error.verify_message or error}")
    except ssl.SSLError as error:
        return result(False, None, f"tls: {error.reason or error}")
    except OSError as error:
        return result(False, None, f"connection: {_describe(error)}")
    finally:
        raw.close()


def _exchange(
    tls: ssl.SSLSocket,
    *,
    target: SipsTarget,
    deadline: float,
    timeout: float,
    result: Callable[[bool, int | None, str], ProbeResult],
) -> ProbeResult:
    local_host, local_port = tls.getsockname()[:2]
    local = f"[{local_host}]:{local_port}" if ":" in local_host else f"{local_host}:{local_port}"
    branch = "z9hG4bK" + secrets.token_hex(8)
    call_id = f"{secrets.token_hex(12)}@sipreg"
    tls.sendall(
        build_options(target, local_hostport=local, branch=branch, tag=secrets.token_hex(6), call_id=call_id)
    )
    reader = ResponseReader()
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return result(False, None, f"timeout: no final response within {timeout:g} s")
        tls.settimeout(left)
        try:
            data = tls.recv(8192)
        except TimeoutError:
            return result(False, None, f"timeout: no final response within {timeout:g} s")
        if not data:
            return result(False, None, "connection closed before a final response")
        try:
            responses = reader.feed(data)
        except ValueError as error:
            return result(False, None, f"protocol: {error}")
        for response in responses:
            if response.status_code >= 200 and _matches(response, branch, call_id):
                code = response.status_code
                return result(code not in DOWN_STATUSES, code, f"{code} {response.reason}".strip())


def probe_all(
    uris: Iterable[str],
    *,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    concurrency: int = 8,
    ca_file: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> dict[str, ProbeResult]:
    """`probe` each distinct URI, at most `concurrency` at once; all done within about `timeout`
    x ceil(distinct / concurrency). A URI that is not `sips:` host[:port] is down ("bad uri")."""
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    distinct = list(dict.fromkeys(uris))
    context = ssl_context or tls_context(ca_file)

    def one(uri: str) -> ProbeResult:
        try:
            return probe(uri, timeout=timeout, ssl_context=context)
        except ValueError as error:
            return ProbeResult(uri, False, None, f"bad uri: {error}", 0.0)

    if not distinct:
        return {}
    with ThreadPoolExecutor(
        max_workers=min(concurrency, len(distinct)), thread_name_prefix="sip-probe"
    ) as pool:
        return dict(zip(distinct, pool.map(one, distinct), strict=True))


def tls_context(ca_file: str | None = None) -> ssl.SSLContext:
    """The system's roots, plus `ca_file`'s certificates; built once, shared by many probes."""
    context = ssl.create_default_context()
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    return context


def _describe(error: OSError) -> str:
    if isinstance(error, socket.gaierror):
        return f"cannot resolve host ({error.strerror or error})"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, ConnectionResetError):
        return "connection reset"
    return error.strerror or str(error) or type(error).__name__
