"""sipreg.sip at its boundary: the sips: URIs it accepts, the OPTIONS it writes, and how it reads
what comes back over a stream (no network: the probes themselves are in
tests/integration/test_sip_probe_against_kamailio.py)."""

from __future__ import annotations

import pytest

from sipreg.sip import (
    ResponseReader,
    SipsTarget,
    build_options,
    parse_response_head,
    parse_sips_uri,
    probe_all,
)


@pytest.mark.parametrize(
    ("uri", "host", "port"),
    [
        ("sips:pbx.acme.example:5061", "pbx.acme.example", 5061),
        ("sips:pbx.acme.example", "pbx.acme.example", 5061),  # no SRV lookup: 5061
        ("SIPS:127.0.0.1:15061", "127.0.0.1", 15061),
        ("sips:[2001:db8::1]:5062", "2001:db8::1", 5062),
    ],
)
def test_a_sips_uri_names_host_and_port(uri: str, host: str, port: int) -> None:
    assert parse_sips_uri(uri) == SipsTarget(host, port)


@pytest.mark.parametrize(
    "uri",
    [
        "sip:pbx.acme.example",
        "sips:",
        "sips:pbx.acme.example:",
        "sips:pbx:99999",
        "sips:u@pbx",
        "sips:pbx;transport=tls",
    ],
)
def test_anything_but_sips_host_port_is_refused(uri: str) -> None:
    with pytest.raises(ValueError, match="sips"):
        parse_sips_uri(uri)


def test_the_options_request_carries_every_header_rfc_3261_requires() -> None:
    # Given a target and the connection's local address
    target = parse_sips_uri("sips:pbx.acme.example:5061")
    # When the request is built
    raw = build_options(
        target, local_hostport="127.0.0.1:40000", branch="z9hG4bKabc", tag="t1", call_id="c1@x"
    )
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    # Then it is an OPTIONS to the sips: URI over TLS, with a magic-cookie branch and no body
    assert lines[0] == "OPTIONS sips:pbx.acme.example:5061 SIP/2.0"
    assert headers["Via"] == "SIP/2.0/TLS 127.0.0.1:40000;branch=z9hG4bKabc"
    assert headers["From"].endswith(";tag=t1")
    assert headers["To"] == "<sips:pbx.acme.example:5061>"
    assert headers["Call-ID"] == "c1@x"
    assert headers["CSeq"] == "1 OPTIONS"
    assert headers["Max-Forwards"] == "70"
    assert headers["Content-Length"] == "0"
    assert "Contact" in headers and body == b""


def test_responses_are_framed_by_content_length_across_reads() -> None:
    # Given a 100 Trying, then a 200 with a body, split across reads in awkward places
    trying = b"SIP/2.0 100 Trying\r\nVia: SIP/2.0/TLS h;branch=z9hG4bK1\r\nl: 0\r\n\r\n"
    ok = b"SIP/2.0 200 OK\r\nv: SIP/2.0/TLS h;branch=z9hG4bK1\r\nContent-Length: 4\r\n\r\nabcd"
    stream = b"\r\n" + trying + ok
    reader = ResponseReader()
    # When it arrives 7 bytes at a time
    found = []
    for start in range(0, len(stream), 7):
        found += reader.feed(stream[start : start + 7])
    # Then both come out whole, in order, with compact header names expanded
    assert [(r.status_code, r.reason) for r in found] == [(100, "Trying"), (200, "OK")]
    assert found[1].headers["via"] == "SIP/2.0/TLS h;branch=z9hG4bK1"
    assert found[1].headers["content-length"] == "4"


def test_folded_headers_are_joined_and_garbage_is_refused() -> None:
    response = parse_response_head("SIP/2.0 486 Busy Here\r\nVia: SIP/2.0/TLS h\r\n ;branch=z9hG4bK2")
    assert response.status_code == 486
    assert response.headers["via"] == "SIP/2.0/TLS h ;branch=z9hG4bK2"
    with pytest.raises(ValueError, match="not a SIP response"):
        parse_response_head("HTTP/1.1 200 OK\r\nServer: x")
    with pytest.raises(ValueError, match="too large"):
        ResponseReader().feed(b"x" * 70000)


@pytest.mark.parametrize("length", ["-99999", "-5", "+4", "4x", "٤", ""])
def test_a_content_length_that_is_not_digits_is_refused_not_looped_on(length: str) -> None:
    head = f"SIP/2.0 200 OK\r\nContent-Length: {length}\r\n\r\n".encode()
    if not length:  # an empty value means no body
        assert [r.status_code for r in ResponseReader().feed(head)] == [200]
        return
    with pytest.raises(ValueError, match="Content-Length"):
        ResponseReader().feed(head + b"abcd")


def test_probe_all_needs_a_positive_concurrency_and_reports_a_bad_uri_as_down() -> None:
    with pytest.raises(ValueError, match="concurrency"):
        probe_all(["sips:a.example"], concurrency=0)
    assert probe_all([]) == {}
    [bad] = probe_all(["sip:plain.example"]).values()
    assert not bad.up and bad.status_code is None and bad.reason.startswith("bad uri")


def test_a_request_the_server_sends_on_the_connection_is_skipped_not_taken_for_garbage() -> None:
    # Given the server's own OPTIONS (with a body) ahead of its answer, in one read
    request = b"OPTIONS sips:sipreg@127.0.0.1 SIP/2.0\r\nCall-ID: x\r\nl: 3\r\n\r\nabc"
    answer = b"SIP/2.0 200 OK\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    # Then only the answer comes out
    assert [r.status_code for r in ResponseReader().feed(request + answer)] == [200]


def test_an_answer_read_before_garbage_in_the_same_read_is_kept() -> None:
    answer = b"SIP/2.0 200 OK\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    found = ResponseReader().feed(answer + b"HTTP/1.1 400 Bad Request\r\n\r\n")
    assert [r.status_code for r in found] == [200]
    with pytest.raises(ValueError, match="not a SIP response"):  # garbage alone still is
        ResponseReader().feed(b"HTTP/1.1 400 Bad Request\r\n\r\n")
