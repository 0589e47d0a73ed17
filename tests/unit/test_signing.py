"""Request signatures: what verifies, what does not, and the stored secret's shape."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipreg import signing
from sipreg.signing import SecretFormatError, parse_secret, sign, verify

BODY = b'{"id":"evt-1","type":"registration.upsert"}'
NOW = 1_750_000_000
SECRET = "current-secret"


def test_a_signature_is_the_documented_hmac_of_timestamp_dot_body() -> None:
    header = sign(BODY, SECRET, timestamp=NOW)

    expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert header == f"t={NOW},v1={expected}"


def test_a_fresh_signature_with_the_right_secret_verifies() -> None:
    assert verify(sign(BODY, SECRET, timestamp=NOW), BODY, [SECRET], now=NOW)


@pytest.mark.parametrize(
    ("header", "body", "secrets", "now"),
    [
        pytest.param(None, BODY, [SECRET], NOW, id="missing"),
        pytest.param("", BODY, [SECRET], NOW, id="empty"),
        pytest.param(sign(BODY, SECRET, timestamp=NOW - 301), BODY, [SECRET], NOW, id="stale by 301 s"),
        pytest.param(sign(BODY, SECRET, timestamp=NOW + 301), BODY, [SECRET], NOW, id="future by 301 s"),
        pytest.param(sign(BODY, "other-secret", timestamp=NOW), BODY, [SECRET], NOW, id="wrong secret"),
        pytest.param(sign(BODY, SECRET, timestamp=NOW), BODY + b" ", [SECRET], NOW, id="body tampered"),
        pytest.param(
            sign(BODY, SECRET, timestamp=NOW), BODY.replace(b"1", b"2"), [SECRET], NOW, id="body changed"
        ),
        pytest.param(sign(BODY, SECRET, timestamp=NOW), BODY, [], NOW, id="no secrets held"),
        pytest.param(f"v1={signing.signature(SECRET, NOW, BODY)}", BODY, [SECRET], NOW, id="no timestamp"),
        pytest.param(f"t={NOW}", BODY, [SECRET], NOW, id="no signature"),
        pytest.param(
            f"t={NOW},v0={signing.signature(SECRET, NOW, BODY)}", BODY, [SECRET], NOW, id="other scheme"
        ),
        pytest.param(
            f"t=abc,v1={signing.signature(SECRET, NOW, BODY)}",
            BODY,
            [SECRET],
            NOW,
            id="timestamp not a number",
        ),
        pytest.param(f"t=-{NOW},v1=00", BODY, [SECRET], NOW, id="negative timestamp"),
        pytest.param(f"t={NOW},v1=" + "0" * 64, BODY, [SECRET], NOW, id="all zeros"),
        pytest.param(sign(BODY, SECRET, timestamp=NOW).upper(), BODY, [SECRET], NOW, id="keys upper-case"),
        pytest.param("garbage,,,==", BODY, [SECRET], NOW, id="garbage"),
    ],
)
def test_bad_signatures_are_refused(header: str | None, body: bytes, secrets: list[str], now: int) -> None:
    assert not verify(header, body, secrets, now=now)


@pytest.mark.parametrize("skew", [-300, -1, 0, 1, 300])
def test_the_tolerance_is_five_minutes_either_way(skew: int) -> None:
    assert verify(sign(BODY, SECRET, timestamp=NOW + skew), BODY, [SECRET], now=NOW)


def test_during_rotation_a_signature_with_the_previous_secret_still_verifies() -> None:
    held = parse_secret(json.dumps({"current": "new-secret", "previous": ["old-secret"]}))

    assert verify(sign(BODY, "old-secret", timestamp=NOW), BODY, held, now=NOW)
    assert verify(sign(BODY, "new-secret", timestamp=NOW), BODY, held, now=NOW)
    assert not verify(sign(BODY, "retired-secret", timestamp=NOW), BODY, held, now=NOW)


def test_a_sender_may_send_one_signature_per_secret_during_rotation() -> None:
    both = f"t={NOW},v1={signing.signature('old', NOW, BODY)},v1={signing.signature('new', NOW, BODY)}"

    assert verify(both, BODY, ["new"], now=NOW)
    assert verify(both, BODY, ["old"], now=NOW)
    assert not verify(both, BODY, ["other"], now=NOW)


def test_spaces_after_commas_are_tolerated() -> None:
    header = sign(BODY, SECRET, timestamp=NOW).replace(",", ", ")

    assert verify(header, BODY, [SECRET], now=NOW)


@given(st.binary(max_size=512), st.binary(max_size=512))
def test_any_change_to_the_body_breaks_the_signature(body: bytes, other: bytes) -> None:
    header = sign(body, SECRET, timestamp=NOW)

    assert verify(header, body, [SECRET], now=NOW)
    assert verify(header, other, [SECRET], now=NOW) == (other == body)


@given(st.text(max_size=200))
def test_no_header_text_makes_verification_raise(header: str) -> None:
    assert verify(header, BODY, [SECRET], now=NOW) in (True, False)


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
