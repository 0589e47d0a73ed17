"""sipreg's HTTP (`sipreg.http.Urllib3Http`) against a real HTTP server on
loopback: what it sends, and what it refuses to follow or read."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from devstack.wg2sim.tls import write_self_signed
from sipreg.http import MAX_ANSWER_BYTES, HttpError, Urllib3Http


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: ClassVar[list[tuple[str, str, bytes, str | None]]] = []

    def do_GET(self) -> None:  # http.server's name
        self._record(b"")
        if self.path == "/moved":
            self._answer(302, b"", location="/elsewhere")
        elif self.path == "/huge":
            self._answer(200, b"x" * (MAX_ANSWER_BYTES + 1))
        elif self.path == "/slow":
            threading.Event().wait(2.0)
            self._answer(200, b"{}")
        else:
            self._answer(200, b'{"keys": []}')

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self._record(body)
        self._answer(400, b'{"error": "invalid_grant"}')

    def _record(self, body: bytes) -> None:
        self.seen.append((self.command, self.path, body, self.headers.get("Content-Type")))

    def _answer(self, status: int, body: bytes, location: str | None = None) -> None:
        self.send_response(status)
        if location:
            self.send_header("Location", location)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def serve(httpd: ThreadingHTTPServer, scheme: str) -> Iterator[str]:
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"{scheme}://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    yield from serve(ThreadingHTTPServer(("127.0.0.1", 0), Handler), "http")


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """HTTPS with a self-signed certificate for 127.0.0.1: the root no public bundle holds."""
    directory = tmp_path_factory.mktemp("tls")
    tls = write_self_signed(directory, file_name="idp.pem", common_name="not a public root")
    (directory / "idp-key.pem").write_bytes(tls.key_pem)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls.cert_file, directory / "idp-key.pem")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    for url in serve(httpd, "https"):
        yield url, tls.cert_file


def test_a_get_and_a_form_post_arrive_whole_and_every_status_is_an_answer(server: str) -> None:
    http = Urllib3Http(timeout_seconds=5)
    Handler.seen.clear()
    assert http.get(f"{server}/keys", {}).json() == {"keys": []}
    refused = http.post(
        f"{server}/token",
        "grant_type=refresh_token&refresh_token=r1",
        {"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert (refused.status, refused.is_success, refused.json()) == (400, False, {"error": "invalid_grant"})
    assert Handler.seen == [
        ("GET", "/keys", b"", None),
        ("POST", "/token", b"grant_type=refresh_token&refresh_token=r1", "application/x-www-form-urlencoded"),
    ]


def test_a_redirect_is_an_answer_not_followed(server: str) -> None:
    Handler.seen.clear()
    assert Urllib3Http(timeout_seconds=5).get(f"{server}/moved", {}).status == 302
    assert [path for _, path, _, _ in Handler.seen] == ["/moved"]


def test_an_answer_too_big_to_be_a_token_is_refused_and_the_pool_still_works(server: str) -> None:
    http = Urllib3Http(timeout_seconds=5)
    with pytest.raises(HttpError, match="more than"):
        http.get(f"{server}/huge", {})
    assert http.get(f"{server}/keys", {}).status == 200


def test_a_server_slower_than_the_timeout_is_a_failure(server: str) -> None:
    with pytest.raises(HttpError, match="ReadTimeoutError"):
        Urllib3Http(timeout_seconds=0.3).get(f"{server}/slow", {})


def test_nobody_listening_is_a_failure_naming_the_error_and_not_the_url() -> None:
    with socket.socket() as probe:  # a port that was free a moment ago
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(HttpError) as caught:
        Urllib3Http(timeout_seconds=2).get(f"http://127.0.0.1:{port}/token?code=secret", {})
    assert str(caught.value) == "NewConnectionError"


def test_a_token_with_a_line_break_is_not_sent_and_not_repeated(server: str) -> None:
    Handler.seen.clear()
    with pytest.raises(HttpError) as caught:
        Urllib3Http(timeout_seconds=5).get(f"{server}/me", {"Authorization": "Bearer at-1\r\nX-Injected: 1"})
    assert "at-1" not in str(caught.value)
    assert Handler.seen == []


def test_a_certificate_no_trusted_root_signed_is_refused(
    tls_server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    url, _ = tls_server
    Handler.seen.clear()
    with pytest.raises(HttpError, match="SSLError"):
        Urllib3Http(timeout_seconds=5).get(f"{url}/keys", {})
    assert Handler.seen == []


def test_the_roots_ssl_cert_file_names_are_trusted_instead(
    tls_server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, root = tls_server
    monkeypatch.setenv("SSL_CERT_FILE", str(root))
    assert Urllib3Http(timeout_seconds=5).get(f"{url}/keys", {}).json() == {"keys": []}
