"""What a PBX's answer to OPTIONS says about it, against a real TLS peer that answers with a given
status: any final response shows its SIP stack is up (RFC 3261 §11.2), so a PBX that challenges
(401, 407) or refuses (403, 404) a probe from a source it does not know, as Asterisk's PJSIP does
with a Lambda's address, is not taken down (with `ENDPOINT_DOWN_ACTION=suspend` that took its
registrations off the core); only no answer, 408 and the server errors but 501 are down."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devstack.wg2sim.tls import write_self_signed
from sipreg.sip import probe

Answering = Callable[[str], tuple[str, str]]  # "NNN Reason" -> (uri, ca_file)


def _answer(request: bytes, status: str) -> bytes:
    """A final response to `request` as a UAS builds it (RFC 3261 §8.2.6): its Via, From, Call-ID
    and CSeq copied, a To tag added, and a challenge where the status asks for one."""
    lines = request.decode().split("\r\n")
    copied = [line for line in lines if line.split(":")[0].lower() in {"via", "from", "call-id", "cseq"}]
    to = next(line for line in lines if line.lower().startswith("to:"))
    challenge = {"401": "WWW-Authenticate", "407": "Proxy-Authenticate"}.get(status[:3])
    extra = [f'{challenge}: Digest realm="pbx.example", nonce="5f1c", algorithm=MD5'] if challenge else []
    head = [f"SIP/2.0 {status}", *copied, f"{to};tag=pbx1", *extra, "Content-Length: 0"]
    return ("\r\n".join(head) + "\r\n\r\n").encode()


@pytest.fixture
def answering_pbx(tmp_path: Path) -> Iterator[Answering]:
    """Starts TLS SIP servers that answer every OPTIONS with the status asked for."""
    tls = write_self_signed(tmp_path, file_name="pbx.pem")
    key = tmp_path / "pbx-key.pem"
    key.write_bytes(tls.key_pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls.cert_file, key)
    servers: list[socket.socket] = []
    stopping = threading.Event()

    def serve(server: socket.socket, status: str) -> None:
        while not stopping.is_set():
            try:
                raw, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                with context.wrap_socket(raw, server_side=True) as conn:
                    conn.settimeout(2)
                    request = b""
                    while b"\r\n\r\n" not in request:
                        request += conn.recv(4096)
                    conn.sendall(_answer(request, status))
            except (ssl.SSLError, OSError):
                raw.close()

    def start(status: str) -> tuple[str, str]:
        server = socket.create_server(("127.0.0.1", 0))
        server.settimeout(0.1)
        servers.append(server)
        threading.Thread(target=serve, args=(server, status), daemon=True).start()
        return f"sips:127.0.0.1:{server.getsockname()[1]}", str(tls.cert_file)

    yield start
    stopping.set()
    for server in servers:
        server.close()


UP = ["200 OK", "401 Unauthorized", "403 Forbidden", "404 Not Found", "405 Method Not Allowed"]
UP += ["407 Proxy Authentication Required", "486 Busy Here", "501 Not Implemented", "603 Decline"]
DOWN = ["408 Request Timeout", "500 Server Internal Error", "502 Bad Gateway", "503 Service Unavailable"]
DOWN += ["504 Server Time-out"]


@pytest.mark.parametrize(("status", "up"), [(s, True) for s in UP] + [(s, False) for s in DOWN])
def test_a_pbx_that_answers_is_up_unless_it_says_it_cannot_serve_and_its_answer_is_the_reason(
    answering_pbx: Answering, status: str, up: bool
) -> None:
    uri, ca_file = answering_pbx(status)
    result = probe(uri, timeout=2, ca_file=ca_file)
    assert (result.up, result.status_code, result.reason) == (up, int(status[:3]), status)
