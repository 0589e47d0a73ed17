"""sipreg's HTTP requests: one request, and its whole answer. The OAuth client's calls to the
identity server, and the CLI's clients of the events API (sipreg.client).

Sent with urllib3, which botocore has loaded already in every function: httpx and httpcore cost
the worker's cold start about 30 ms more, for the few requests a token needs, and the layer a
megabyte. No redirects are followed (an OAuth endpoint that redirects is misconfigured, a token
request must not be re-sent elsewhere, and a signed request is signed for its own URL) and nothing
is retried here: the callers decide what a failure means.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import certifi
import urllib3

# Answers here are small (a token, a discovery document, a key set, a page of status): a bigger one
# is refused rather than read into memory.
MAX_ANSWER_BYTES = 1_000_000
POOL_SIZE = 10


class HttpError(Exception):
    """No answer: the connection, TLS, a timeout, a request that cannot be sent, or an answer too
    big to be one. The message names the failure, never a URL, header or body."""


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes

    @property
    def is_success(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> Any:
        """The body's JSON; ValueError when it is not JSON (or not UTF-8)."""
        return json.loads(self.body)


class Http(Protocol):
    def get(self, url: str, headers: Mapping[str, str]) -> Answer: ...

    def post(self, url: str, body: str | bytes, headers: Mapping[str, str]) -> Answer: ...


def trusted_roots() -> str:
    """The roots a server's certificate must chain to, as httpx (the client before) took them: the
    file SSL_CERT_FILE names, else certifi's bundle (botocore's too), not whatever the host has."""
    return os.environ.get("SSL_CERT_FILE") or certifi.where()


class Urllib3Http:
    """`Http` over one urllib3 pool manager (safe to share between threads; it keeps connections)."""

    def __init__(self, timeout_seconds: float) -> None:
        self._pool = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=timeout_seconds, read=timeout_seconds),
            retries=False,
            ca_certs=trusted_roots(),
            # Connections kept per host: the worker's group threads renew tokens at once, and a
            # producer may send from threads (urllib3 keeps one by default, opening and dropping more).
            maxsize=POOL_SIZE,
        )

    def close(self) -> None:
        self._pool.clear()

    def get(self, url: str, headers: Mapping[str, str]) -> Answer:
        return self.request("GET", url, None, headers)

    def post(self, url: str, body: str | bytes, headers: Mapping[str, str]) -> Answer:
        return self.request("POST", url, body.encode() if isinstance(body, str) else body, headers)

    def request(self, method: str, url: str, body: bytes | None, headers: Mapping[str, str]) -> Answer:
        try:
            response = self._pool.request(
                method, url, body=body, headers=dict(headers), redirect=False, preload_content=False
            )
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise HttpError(type(error).__name__) from None
        except ValueError:
            # http.client refuses a header with a line break (a token from a broken or hostile
            # server); its message quotes the value, so only this says what happened.
            raise HttpError("a header that cannot be sent") from None
        try:
            data = response.read(MAX_ANSWER_BYTES + 1)
        except (urllib3.exceptions.HTTPError, OSError) as error:
            response.close()
            raise HttpError(type(error).__name__) from None
        if len(data) > MAX_ANSWER_BYTES:
            response.close()  # not back to the pool with the rest of it unread
            raise HttpError(f"an answer of more than {MAX_ANSWER_BYTES} bytes")
        response.release_conn()
        return Answer(response.status, data)
