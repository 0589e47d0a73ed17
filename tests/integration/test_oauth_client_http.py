"""The OAuth client's HTTP (`sipreg.oauth_client.http.Urllib3Http`) against a real HTTP server on
loopback: what it sends, and what it refuses to follow or read."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from sipreg.oauth_client.http import MAX_ANSWER_BYTES, HttpError, Urllib3Http


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


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


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
