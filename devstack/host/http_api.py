"""An HTTP API (API Gateway v2) on 127.0.0.1: routes to functions with payload format 2.0.

Routes are what template.yaml declares: one method and a path of plain segments and `{name}`
variables (a plain segment wins over a variable). `ANY`, the `$default` route and greedy
`{name+}` variables are refused at load (`unsupported_route`)."""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote
from uuid import uuid4

from devstack.host.invoker import FunctionRuntime, InvocationError

log = logging.getLogger(__name__)

STAGE = "$default"  # the API's one stage, as SAM makes it for an HttpApi without StageName
# An HttpApi event's properties (read by local_host when it adds the route), and an API's: its
# throttling and access logs are not applied locally.
EVENT_PROPERTIES = frozenset({"ApiId", "Path", "Method", "Auth"})
API_PROPERTIES = frozenset({"Description", "Auth", "DefaultRouteSettings", "AccessLogSettings"})
_TEXT_TYPES = (
    "text/",
    "application/json",
    "application/xml",
    "application/javascript",
    "application/graphql",
)
_TEXT_SUFFIXES = ("+json", "+xml")
_VARIABLE = re.compile(r"\{([^}]+)\}")


def unsupported_route(method: Any, path: Any) -> str | None:
    """What of an HttpApi event's route the host does not run, or None."""
    if str(method).upper() == "ANY":
        return "Method ANY"
    if path == STAGE:
        return "the $default route"
    if "+}" in str(path):
        return f"the greedy path variable of {path}"
    return None


@dataclass(frozen=True)
class Route:
    method: str  # upper case
    path: str  # `/pets/{id}`
    function: FunctionRuntime
    authorizer: str | None = None  # "AWS_IAM", or None (open)

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def segments(self) -> tuple[str, ...]:
        return _segments(self.path)

    def match(self, method: str, path: str) -> dict[str, str] | None:
        """The path parameters when this route takes the request, else None."""
        if self.method != method:
            return None
        names, pattern = _path_pattern(self.path)
        found = pattern.fullmatch(path)
        if found is None:
            return None
        return {name: unquote(value) for name, value in zip(names, found.groups(), strict=True)}

    def precedence(self) -> int:
        """API Gateway prefers plain path segments to path variables."""
        return sum(1 for s in self.segments if not s.startswith("{"))


def _segments(path: str) -> tuple[str, ...]:
    return () if path in ("/", "") else tuple(path.split("/")[1:])


@functools.cache
def _path_pattern(path: str) -> tuple[list[str], re.Pattern[str]]:
    """`/a/{id}/b` -> (["id"], a regex matching one segment for each variable)."""
    names: list[str] = []
    parts: list[str] = []
    for segment in _segments(path):
        variable = _VARIABLE.fullmatch(segment)
        if variable is None:
            parts.append(re.escape(segment))
            continue
        names.append(variable.group(1))
        parts.append("([^/]+)")
    return names, re.compile("/" + "/".join(parts))


@dataclass
class Request:
    method: str
    target: str  # path and query as sent
    headers: list[tuple[str, str]]
    body: bytes
    source_ip: str
    protocol: str = "HTTP/1.1"


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


@dataclass(frozen=True)
class IamDecision:
    """An AWS_IAM route's verdict: the caller's identity (`requestContext.authorizer.iam`), or why not."""

    identity: dict[str, Any] | None
    message: str = ""


# (the request as received, the route's execute-api ARN) -> the verdict
IamAuthorizer = Callable[[Request, str], IamDecision]


def _json_response(status: int, document: Any) -> Response:
    return Response(status, [("content-type", "application/json")], json.dumps(document).encode())


def not_found() -> Response:
    return _json_response(404, {"message": "Not Found"})


def internal_error() -> Response:
    return _json_response(500, {"message": "Internal Server Error"})


class HttpApi:
    """One API (on its `$default` stage): its routes, its server."""

    def __init__(self, logical_id: str, port: int = 0) -> None:
        self.logical_id = logical_id
        self.stage = STAGE
        self.api_id = ""
        self.account_id = ""
        self.region = ""
        self.routes: list[Route] = []
        # Checks the SigV4 signature and execute-api:Invoke of AWS_IAM routes (devstack.host.iam).
        self.iam_authorizer: IamAuthorizer | None = None
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
        self._server.daemon_threads = True
        self._server.api = self  # type: ignore[attr-defined]  # read by _Handler
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"http-{self.logical_id}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()

    def handle(self, request: Request) -> Response:
        path, _, query = request.target.partition("?")
        candidates = [(route, route.match(request.method, path)) for route in self.routes]
        matching = [(route, params) for route, params in candidates if params is not None]
        if not matching:
            return not_found()
        route, parameters = max(matching, key=lambda pair: pair[0].precedence())
        identity: dict[str, Any] | None = None
        if route.authorizer == "AWS_IAM":
            if self.iam_authorizer is None:
                return _json_response(403, {"message": "Forbidden"})  # nobody could check it
            decision = self.iam_authorizer(request, self.route_arn(request.method, path))
            if decision.identity is None:
                # what API Gateway's access log shows of a refused request (errorMessage)
                log.info("%s %s refused: 403 %s", request.method, path, decision.message or "Forbidden")
                return _json_response(403, {"message": decision.message or "Forbidden"})
            identity = decision.identity
        event = build_event(self, route, parameters, request, path=path, query=query)
        if identity is not None:
            event["requestContext"]["authorizer"] = {"iam": identity}
        try:
            result = route.function.invoke(event, trigger=f"http:{route.key}")
        except InvocationError:
            return internal_error()  # logged by the invoker, as Lambda's log would hold it
        response = map_response(result)
        response.headers.append(("apigw-requestid", event["requestContext"]["requestId"]))
        return response

    def route_arn(self, method: str, route_path: str) -> str:
        """What an IAM policy names to allow this request: `arn:aws:execute-api:<region>:<account>:
        <api id>/<stage>/<METHOD>/<path>` (the path as requested, decoded)."""
        return (
            f"arn:aws:execute-api:{self.region}:{self.account_id}:{self.api_id}/{self.stage}/"
            f"{method}/{unquote(route_path).lstrip('/')}"
        )


def build_event(
    api: HttpApi, route: Route, parameters: Mapping[str, str], request: Request, *, path: str, query: str
) -> dict[str, Any]:
    """The payload format 2.0 event API Gateway sends for this request."""
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for raw_name, value in request.headers:
        name = raw_name.lower()
        if name == "cookie":
            cookies += [c.strip() for c in value.split(";") if c.strip()]
        else:
            headers[name] = f"{headers[name]},{value}" if name in headers else value
    headers.setdefault("x-forwarded-for", request.source_ip)
    headers.setdefault("x-forwarded-proto", "http")
    now = datetime.now(UTC)
    headers["x-amzn-trace-id"] = f"Root=1-{int(now.timestamp()):08x}-{uuid4().hex[:24]}"
    request_id = base64.b64encode(uuid4().bytes[:10]).decode()
    # HTTP APIs hand the path on percent-decoded, `rawPath` too (REST APIs and function URLs keep
    # the encoding); only the query string stays as sent.
    decoded_path = unquote(path)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route.key,
        "rawPath": decoded_path,
        "rawQueryString": query,
        "headers": headers,
        "requestContext": {
            "accountId": api.account_id,
            "apiId": api.api_id,
            "domainName": headers.get("host", ""),
            "domainPrefix": headers.get("host", "").split(".")[0].split(":")[0],
            "http": {
                "method": request.method,
                "path": decoded_path,
                "protocol": request.protocol,
                "sourceIp": request.source_ip,
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": request_id,
            "routeKey": route.key,
            "stage": api.stage,
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": False,
    }
    if cookies:
        event["cookies"] = cookies
    if query:
        values: dict[str, list[str]] = {}
        for name, value in parse_qsl(query, keep_blank_values=True):
            values.setdefault(name, []).append(value)
        event["queryStringParameters"] = {name: ",".join(v) for name, v in values.items()}
    if parameters:
        event["pathParameters"] = dict(parameters)
    if request.body:
        if _is_text(headers.get("content-type", "")):
            with contextlib.suppress(UnicodeDecodeError):
                event["body"] = request.body.decode("utf-8")
        if "body" not in event:
            event["body"] = base64.b64encode(request.body).decode()
            event["isBase64Encoded"] = True
    return event


def _is_text(content_type: str) -> bool:
    media_type = content_type.split(";", maxsplit=1)[0].strip().lower()
    return media_type.startswith(_TEXT_TYPES) or media_type.endswith(_TEXT_SUFFIXES)


def map_response(result: Any) -> Response:
    """The HTTP answer API Gateway makes of a 2.0 function result (or 500 if malformed)."""
    if not (isinstance(result, dict) and "statusCode" in result):
        # Without a statusCode, API Gateway sends the whole result as JSON with 200.
        return _json_response(200, result)
    try:
        status = int(result["statusCode"])
        headers = [(str(k), str(v)) for k, v in (result.get("headers") or {}).items()]
        headers += [("set-cookie", str(c)) for c in result.get("cookies") or []]
        body = result.get("body")
        if body is None:
            data = b""
        elif result.get("isBase64Encoded"):
            data = base64.b64decode(body, validate=True)
        else:
            data = (body if isinstance(body, str) else json.dumps(body)).encode()
    except (TypeError, ValueError, AttributeError):
        log.warning("malformed Lambda proxy response: %s", type(result).__name__)
        return internal_error()
    if not 100 <= status <= 599:
        return internal_error()
    return Response(status, headers, data)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "devstack-host"
    sys_version = ""
    # Small answers on keep-alive connections otherwise wait ~40 ms for Nagle + delayed ACK.
    disable_nagle_algorithm = True

    def _serve(self) -> None:
        api: HttpApi = self.server.api  # type: ignore[attr-defined]
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            body = self._read_chunked()
        else:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
        request = Request(
            method=self.command,
            target=self.path,
            headers=list(self.headers.items()),
            body=body,
            source_ip=self.client_address[0],
            protocol=self.request_version,
        )
        started = time.monotonic()
        try:
            response = api.handle(request)
        except Exception:
            log.exception("the local HTTP API failed on %s", self.command)
            response = internal_error()
        self.send_response(response.status)
        for name, value in response.headers:
            self.send_header(name, value)
        self.send_header("content-length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)
        log.debug(
            "%s %s -> %d (%.1f ms)",
            self.command,
            self.path.partition("?")[0],
            response.status,
            (time.monotonic() - started) * 1000,
        )

    def _read_chunked(self) -> bytes:
        chunks = []
        while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
            chunks.append(self.rfile.read(size))
            self.rfile.readline()
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
            pass  # trailers
        return b"".join(chunks)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve  # noqa: N815

    def __getattr__(self, name: str) -> Any:
        # Any other method (TRACE, QUERY, ...) goes through the routes too (to their 404), as at
        # API Gateway, instead of http.server's own 501.
        if name.startswith("do_"):
            return self._serve
        raise AttributeError(name)

    def log_message(self, format: str, *args: Any) -> None:  # the base class's name
        """Requests are logged once, by the invocation log; nothing on stderr per request."""
