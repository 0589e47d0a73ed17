"""Request signatures: what verifies, what does not, and the stored secret's shape."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipreg import signing
from sipreg.signing import Request, SecretFormatError, parse_secret, sign, verify

BODY = b'{"id":"evt-1","type":"registration.upsert"}'
NOW = 1_750_000_000
SECRET = "current-secret"
REQUEST = Request("POST", "/v1/events", "", "req-0123456789abcdef", BODY)


def test_a_signature_is_the_documented_hmac_of_method_path_query_time_id_and_body_hash() -> None:
    request = Request("GET", "/v1/registrations/%2B4799990000", "limit=5&type=x", "req-0123456789abcdef", b"")
    header = sign(request, SECRET, timestamp=NOW)

    text = "\n".join(
        [
            "sipreg-v2",
            str(NOW),
            "req-0123456789abcdef",
            "GET",
            "/v1/registrations/%2B4799990000",
            "limit=5&type=x",
            hashlib.sha256(b"").hexdigest(),
        ]
    )
    expected = hmac.new(SECRET.encode(), text.encode(), hashlib.sha256).hexdigest()
    assert header == f"t={NOW},v2={expected}"


def test_a_fresh_signature_with_the_right_secret_verifies_and_says_when_it_was_made() -> None:
    assert verify(sign(REQUEST, SECRET, timestamp=NOW), REQUEST, [SECRET], now=NOW) == NOW


@pytest.mark.parametrize(
    "moved",
    [
        pytest.param(replace(REQUEST, method="PUT"), id="another method"),
        pytest.param(replace(REQUEST, path="/v1/subscribers/%2B4799990000/revoke"), id="another route"),
        pytest.param(replace(REQUEST, path="/v1/events/"), id="another path"),
        pytest.param(replace(REQUEST, query="dry_run=1"), id="another query"),
        pytest.param(replace(REQUEST, request_id="req-fedcba9876543210"), id="another request id"),
        pytest.param(replace(REQUEST, body=BODY + b" "), id="another body"),
    ],
)
def test_a_signature_fits_exactly_one_request(moved: Request) -> None:
    header = sign(REQUEST, SECRET, timestamp=NOW)

    assert verify(header, moved, [SECRET], now=NOW) is None


def test_the_path_of_one_msisdn_does_not_sign_another() -> None:
    one = Request("GET", "/v1/registrations/%2B4799990001", "", "req-0123456789abcdef", b"")
    header = sign(one, SECRET, timestamp=NOW)

    assert verify(header, replace(one, path="/v1/registrations/%2B4799990002"), [SECRET], now=NOW) is None


@pytest.mark.parametrize("request_id", ["", "short", "x" * 129, "has space 0123456789", "ünïcode-0123456789"])
def test_a_request_id_out_of_shape_never_verifies(request_id: str) -> None:
    request = replace(REQUEST, request_id=request_id)

    assert verify(sign(request, SECRET, timestamp=NOW), request, [SECRET], now=NOW) is None


def test_new_request_ids_are_well_formed_and_differ() -> None:
    ids = {signing.new_request_id() for _ in range(100)}

    assert len(ids) == 100
    assert all(signing.REQUEST_ID.fullmatch(i) for i in ids)


@pytest.mark.parametrize(
    ("header", "signed", "secrets", "now"),
    [
        pytest.param(None, REQUEST, [SECRET], NOW, id="missing"),
        pytest.param("", REQUEST, [SECRET], NOW, id="empty"),
        pytest.param(sign(REQUEST, SECRET, timestamp=NOW - 301), REQUEST, [SECRET], NOW, id="stale by 301 s"),
        pytest.param(
            sign(REQUEST, SECRET, timestamp=NOW + 301), REQUEST, [SECRET], NOW, id="future by 301 s"
        ),
        pytest.param(sign(REQUEST, "other-secret", timestamp=NOW), REQUEST, [SECRET], NOW, id="wrong secret"),
        pytest.param(sign(REQUEST, SECRET, timestamp=NOW), REQUEST, [], NOW, id="no secrets held"),
        pytest.param(
            f"v2={signing.signature(SECRET, NOW, REQUEST)}", REQUEST, [SECRET], NOW, id="no timestamp"
        ),
        pytest.param(f"t={NOW}", REQUEST, [SECRET], NOW, id="no signature"),
        pytest.param(
            f"t={NOW},v1={signing.signature(SECRET, NOW, REQUEST)}", REQUEST, [SECRET], NOW, id="other scheme"
        ),
        pytest.param(
            f"t=abc,v2={signing.signature(SECRET, NOW, REQUEST)}",
            REQUEST,
            [SECRET],
            NOW,
            id="timestamp not a number",
        ),
        pytest.param(f"t=-{NOW},v2=00", REQUEST, [SECRET], NOW, id="negative timestamp"),
        pytest.param(f"t={NOW},v2=" + "0" * 64, REQUEST, [SECRET], NOW, id="all zeros"),
        pytest.param(
            sign(REQUEST, SECRET, timestamp=NOW).upper(), REQUEST, [SECRET], NOW, id="keys upper-case"
        ),
        pytest.param("garbage,,,==", REQUEST, [SECRET], NOW, id="garbage"),
    ],
)
def test_bad_signatures_are_refused(
    header: str | None, signed: Request, secrets: list[str], now: int
) -> None:
    assert verify(header, signed, secrets, now=now) is None


@pytest.mark.parametrize(
    "stamp",
    [
        pytest.param("9" * 400, id="beyond a float"),
        pytest.param("9" * 5000, id="beyond int()'s 4300 digits"),
        pytest.param("1" + "0" * 12, id="13 digits"),
        pytest.param("\u0661\u0667\u0665\u0660", id="digits not ASCII"),
        pytest.param("+1750000000", id="signed"),
    ],
)
def test_a_timestamp_that_is_not_1_to_12_ascii_digits_is_a_plain_refusal(stamp: str) -> None:
    # Given a header whose t= no clock could have written (a real signature beside it)
    header = f"t={stamp},v2={signing.signature(SECRET, NOW, REQUEST)}"
    # When our clock reads as time.time() does (a float)
    verdict = verify(header, REQUEST, [SECRET], now=NOW + 0.25)
    # Then it is refused as any wrong signature is, never raised
    assert verdict is None


@pytest.mark.parametrize("skew", [-300, -1, 0, 1, 300])
def test_the_tolerance_is_five_minutes_either_way(skew: int) -> None:
    assert verify(sign(REQUEST, SECRET, timestamp=NOW + skew), REQUEST, [SECRET], now=NOW) == NOW + skew


def test_during_rotation_a_signature_with_the_previous_secret_still_verifies() -> None:
    held = parse_secret(json.dumps({"current": "new-secret", "previous": ["old-secret"]}))

    assert verify(sign(REQUEST, "old-secret", timestamp=NOW), REQUEST, held, now=NOW)
    assert verify(sign(REQUEST, "new-secret", timestamp=NOW), REQUEST, held, now=NOW)
    assert not verify(sign(REQUEST, "retired-secret", timestamp=NOW), REQUEST, held, now=NOW)


def test_a_sender_may_send_one_signature_per_secret_during_rotation() -> None:
    old, new = signing.signature("old", NOW, REQUEST), signing.signature("new", NOW, REQUEST)
    both = f"t={NOW},v2={old},v2={new}"

    assert verify(both, REQUEST, ["new"], now=NOW)
    assert verify(both, REQUEST, ["old"], now=NOW)
    assert not verify(both, REQUEST, ["other"], now=NOW)


def test_spaces_after_commas_are_tolerated() -> None:
    header = sign(REQUEST, SECRET, timestamp=NOW).replace(",", ", ")

    assert verify(header, REQUEST, [SECRET], now=NOW)


def test_signed_headers_carry_a_new_request_id_and_its_signature() -> None:
    headers = signing.signed_headers(SECRET, "POST", "/v1/events", BODY, timestamp=NOW)
    request = Request("POST", "/v1/events", "", headers[signing.REQUEST_ID_HEADER], BODY)

    assert verify(headers[signing.HEADER], request, [SECRET], now=NOW) == NOW


@given(st.binary(max_size=512), st.binary(max_size=512))
def test_any_change_to_the_body_breaks_the_signature(body: bytes, other: bytes) -> None:
    header = sign(replace(REQUEST, body=body), SECRET, timestamp=NOW)

    assert verify(header, replace(REQUEST, body=body), [SECRET], now=NOW)
    assert (verify(header, replace(REQUEST, body=other), [SECRET], now=NOW) is not None) == (other == body)


@given(st.text(max_size=200))
def test_no_header_text_makes_verification_raise(header: str) -> None:
    assert verify(header, REQUEST, [SECRET], now=NOW) in (None, NOW)


def test_the_stored_secret_lists_current_first_then_previous() -> None:
    assert parse_secret('{"current": "a", "previous": ["b", "c"]}') == ("a", "b", "c")
    assert parse_secret({"current": "a"}) == ("a",)
    assert parse_secret(b'{"previous": [], "current": "a"}') == ("a",)


@pytest.mark.parametrize(
    "value",
    [
        "not json",
        '"just-a-string"',
        "{}",
        '{"current": ""}',
        '{"current": 5}',
        '{"current": "a", "previous": "b"}',
        '{"current": "a", "previous": [""]}',
        '{"current": "a", "previous": [1]}',
    ],
)
def test_a_badly_shaped_secret_is_refused_without_showing_it(value: str) -> None:
    with pytest.raises(SecretFormatError) as caught:
        parse_secret(value)

    assert "just-a-string" not in str(caught.value)
