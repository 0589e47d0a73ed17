"""The local host serves the template's HttpApi routes as API Gateway does (payload format 2.0)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from devstack.host import LocalHost
from tests.support.host import start_host


@pytest.fixture(scope="module")
def host(aws_endpoint: str) -> Iterator[LocalHost]:
    host = start_host(aws_endpoint)
    yield host
    host.stop()


@pytest.fixture(scope="module")
def http(host: LocalHost) -> Iterator[httpx.Client]:
    assert host.api_url is not None
    with httpx.Client(base_url=host.api_url, timeout=10) as client:
        yield client


def echoed(response: httpx.Response) -> dict[str, Any]:
    event: dict[str, Any] = response.json()["event"]
    return event


def test_path_parameter_query_and_headers_reach_the_function(http: httpx.Client, aws_account: str) -> None:
    # Given a route GET /items/{id}
    # When it is called with a repeated query parameter, mixed-case headers and cookies
    response = http.get(
        "/items/4%2F2?tag=a&tag=b&empty=",
        headers={"X-Custom": "Value", "Cookie": "s=1; t=2"},
    )
    # Then the function gets the 2.0 event API Gateway would send
    assert response.status_code == 200
    event = echoed(response)
    assert event["version"] == "2.0"
    assert event["routeKey"] == "GET /items/{id}"
    assert event["rawPath"] == "/items/4/2"  # decoded, as HTTP APIs hand it on
    assert event["rawQueryString"] == "tag=a&tag=b&empty="
    assert event["pathParameters"] == {"id": "4/2"}
    assert event["queryStringParameters"] == {"tag": "a,b", "empty": ""}
    assert event["headers"]["x-custom"] == "Value"
    assert "cookie" not in event["headers"]
    assert event["cookies"] == ["s=1", "t=2"]
    assert event["isBase64Encoded"] is False
    assert "body" not in event
    context = event["requestContext"]
    assert context["http"]["method"] == "GET"
    assert context["http"]["path"] == "/items/4/2"
    assert context["http"]["sourceIp"] == "127.0.0.1"
    assert context["http"]["userAgent"].startswith("python-httpx")
    assert context["stage"] == "$default"
    assert context["routeKey"] == "GET /items/{id}"
    assert context["requestId"] and context["timeEpoch"] > 0 and "+0000" in context["time"]
    assert context["accountId"] == aws_account
    # And the answer carries the function's headers and API Gateway's request id
    assert response.headers["x-route"] == "GET /items/{id}"
    assert response.headers["apigw-requestid"] == context["requestId"]


def test_exact_route_wins_over_path_variable(http: httpx.Client) -> None:
    assert echoed(http.get("/items/special"))["routeKey"] == "GET /items/special"


def test_json_body_arrives_as_text(http: httpx.Client) -> None:
    event = echoed(http.post("/items", json={"name": "x"}))
    assert event["isBase64Encoded"] is False
    assert json.loads(event["body"]) == {"name": "x"}


def test_chunked_body_is_read_whole(http: httpx.Client) -> None:
    event = echoed(
        http.post("/items", content=iter([b'{"a": ', b"1}"]), headers={"content-type": "application/json"})
    )
    assert json.loads(event["body"]) == {"a": 1}


def test_binary_body_arrives_base64_and_binary_answer_is_decoded(http: httpx.Client) -> None:
    # Given bytes that are not text, sent as application/octet-stream
    data = bytes([0, 255, 1, 254])
    response = http.post("/binary", content=data, headers={"content-type": "application/octet-stream"})
    # Then the function got them base64-encoded and its base64 answer went out as bytes
    assert response.status_code == 201
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.content == bytes(reversed(data))


def test_form_body_arrives_base64_as_api_gateway_sends_it(http: httpx.Client) -> None:
    event = echoed(http.post("/items", data={"a": "1"}))
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == b"a=1"


def test_result_without_status_code_becomes_200_json(http: httpx.Client) -> None:
    response = http.get("/bare")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"bare": True, "layer": "shared-layer"}


def test_status_code_of_the_function_is_kept(http: httpx.Client) -> None:
    assert http.get("/items/1?status=418").status_code == 418


def test_cookies_are_sent_each_as_a_header_of_its_own(http: httpx.Client) -> None:
    response = http.get("/cookies")
    assert response.headers.get_list("set-cookie") == ["a=1; Path=/", "b=2; HttpOnly"]
    assert response.text == "ok"


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/nowhere"), ("GET", "/items"), ("PUT", "/items/1"), ("TRACE", "/items/1"), ("QUERY", "/x")],
)
def test_unmatched_route_is_404_not_found(http: httpx.Client, method: str, path: str) -> None:
    response = http.request(method, path)
    assert response.status_code == 404
    assert response.json() == {"message": "Not Found"}


def test_handler_exception_is_500_internal_server_error(http: httpx.Client) -> None:
    response = http.get("/boom")
    assert response.status_code == 500
    assert response.json() == {"message": "Internal Server Error"}
    # And the API keeps serving
    assert http.get("/bare").status_code == 200
