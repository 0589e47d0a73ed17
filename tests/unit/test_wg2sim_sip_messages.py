"""The emulated core's SIP messages: parsing, encoding, and the header rules its transactions use."""

from __future__ import annotations

import pytest

from devstack.wg2sim.sip.message import (
    Hop,
    Message,
    SipError,
    StreamParser,
    hop_of,
    param,
    parse_head,
    response_to,
    split_values,
    uri_of,
)

INVITE = (
    "INVITE sips:+4799990001@ims.wg2sim.invalid;user=phone SIP/2.0\r\n"
    "Via: SIP/2.0/TLS 127.0.0.1:40001;branch=z9hG4bKp1;rport,"
    " SIP/2.0/TLS 127.0.0.1:40000;branch=z9hG4bKc1\r\n"
    "Route: <sips:127.0.0.1:5061;lr>\r\n"
    "Route: <sips:127.0.0.1:7000;lr;odi=abc>\r\n"
    'f: "Dave" <sips:+4799990010@ims.wg2sim.invalid>;tag=from1\r\n'
    "To: <sips:+4799990001@ims.wg2sim.invalid>\r\n"
    "i: call-1@wg2sim\r\n"
    "CSeq: 1 INVITE\r\n"
    "Record-Route: <sip:127.0.0.1:5061;transport=tls;lr>\r\n"
    "Content-Length: 3\r\n\r\nsdp"
)


def test_a_request_parses_with_compact_names_and_split_multi_values() -> None:
    [message] = StreamParser().feed(INVITE.encode())
    assert message.is_request and message.method == "INVITE"
    assert message.uri == "sips:+4799990001@ims.wg2sim.invalid;user=phone"
    assert message.call_id == "call-1@wg2sim"
    assert message.cseq == (1, "INVITE")
    assert message.branch == "z9hG4bKp1"  # the top Via
    assert len(message.values("via")) == 2
    assert message.values("route") == ["<sips:127.0.0.1:5061;lr>", "<sips:127.0.0.1:7000;lr;odi=abc>"]
    assert param(message.header("from"), "tag") == "from1"
    assert message.body == b"sdp"


def test_a_response_copies_via_from_call_id_cseq_and_tags_to() -> None:
    [request] = StreamParser().feed(INVITE.encode())
    ringing = response_to(request, 180, to_tag="t9")
    trying = response_to(request, 100, to_tag="t9")
    assert ringing.first_line == "SIP/2.0 180 Ringing"
    assert [v for n, v in ringing.headers if n == "via"] == [v for n, v in request.headers if n == "via"]
    assert ringing.header("to").endswith(";tag=t9")
    assert "tag" not in trying.header("to")  # 100 Trying carries no To tag
    assert ringing.header("call-id") == "call-1@wg2sim" and ringing.header("cseq") == "1 INVITE"
    # And the encoding sets Content-Length from the body, once
    encoded = ringing.encode()
    assert encoded.count(b"Content-Length: 0") == 1


def test_encoding_round_trips() -> None:
    message = Message("OPTIONS sips:127.0.0.1:5061 SIP/2.0", [("call-id", "x"), ("cseq", "1 OPTIONS")], b"hi")
    [again] = StreamParser().feed(message.encode())
    assert again.first_line == message.first_line
    assert again.header("call-id") == "x" and again.body == b"hi"


@pytest.mark.parametrize(
    ("uri", "hop"),
    [
        ("sips:127.0.0.1:5062", Hop("127.0.0.1", 5062)),
        ("sip:127.0.0.1:5061;transport=tls;lr", Hop("127.0.0.1", 5061)),
        ("sips:core@pbx.example", Hop("pbx.example", 5061)),
        ("sips:[::1]:7000;lr", Hop("::1", 7000)),
    ],
)
def test_where_a_uri_is_sent(uri: str, hop: Hop) -> None:
    assert hop_of(uri) == hop


def test_values_split_outside_angle_brackets_and_quotes() -> None:
    assert split_values('<sip:a;x=1,2>, "b, c" <sip:b>') == ["<sip:a;x=1,2>", '"b, c" <sip:b>']
    assert uri_of('"Dave" <sips:+47@h>;tag=1') == "sips:+47@h"
    with pytest.raises(SipError):
        hop_of("tel:+4799990001")
    with pytest.raises(SipError, match="not a SIP message"):
        parse_head("GET / HTTP/1.1")
