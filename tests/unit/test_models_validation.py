"""Given values from callers, the model validators accept exactly the valid ones and say why not."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from sipreg.models import (
    ApiVersion,
    Msisdn,
    Prefix,
    Registration,
    RouteType,
    SipUri,
    field_errors,
    mask_msisdn,
)

MSISDN = TypeAdapter(Msisdn)
SIP_URI = TypeAdapter(SipUri)
PREFIX = TypeAdapter(Prefix)


@pytest.mark.parametrize(
    "value", ["+4799990000", "+12025550123", "+49301234567890", "+10000000", "+999999999999999"]
)
def test_valid_msisdn_is_accepted_unchanged(value: str) -> None:
    assert MSISDN.validate_python(value) == value


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("4799990000", "E.164"),  # no '+'
        ("+0799990000", "E.164"),  # first digit 0
        ("+1234567", "E.164"),  # 7 digits
        ("+1234567890123456", "E.164"),  # 16 digits
        ("+47 9999 0000", "E.164"),
        ("+47-99990000", "E.164"),
        ("+４７99990000", "E.164"),  # full-width digits are not ASCII digits
        ("", "E.164"),
        ("+4799990000\n", "E.164"),
    ],
)
def test_invalid_msisdn_is_rejected_with_reason(value: str, why: str) -> None:
    with pytest.raises(ValidationError) as caught:
        MSISDN.validate_python(value)
    assert why in str(caught.value)


@pytest.mark.parametrize(
    ("value", "normalised"),
    [
        ("sips:pbx.example.com", "sips:pbx.example.com"),
        ("sips:pbx.example.com:5061", "sips:pbx.example.com:5061"),
        ("SIPS:PBX.Example.COM:5061", "sips:pbx.example.com:5061"),
        ("sips:example.com:1", "sips:example.com:1"),
        ("sips:example.com:65535", "sips:example.com:65535"),
        ("sips:localhost", "sips:localhost"),
        ("sips:10.0.0.1:5061", "sips:10.0.0.1:5061"),
        ("sips:[2001:db8::1]", "sips:[2001:db8::1]"),
        ("sips:[2001:db8::1]:5061", "sips:[2001:db8::1]:5061"),
        ("sips:xn--bcher-kva.example", "sips:xn--bcher-kva.example"),
        ("sips:a-b.c-d.example", "sips:a-b.c-d.example"),
    ],
)
def test_valid_sip_uri_is_accepted_and_normalised(value: str, normalised: str) -> None:
    assert SIP_URI.validate_python(value) == normalised


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("sip:pbx.example.com", "must start with 'sips:'"),
        ("pbx.example.com", "must start with 'sips:'"),
        ("sips:", "must name a host"),
        ("sips:alice@pbx.example.com", "no user part"),
        ("sips:pbx.example.com;transport=tls", "parameters"),
        ("sips:pbx.example.com?subject=x", "headers"),
        ("sips:pbx.example.com:0", "1 to 65535"),
        ("sips:pbx.example.com:65536", "1 to 65535"),
        ("sips:pbx.example.com:", "1 to 65535"),
        ("sips:pbx.example.com:50a", "1 to 65535"),
        ("sips:pbx..example.com", "DNS name"),
        ("sips:-pbx.example.com", "DNS name"),
        ("sips:pbx-.example.com", "DNS name"),
        ("sips:pbx_1.example.com", "DNS name"),
        ("sips:" + "a" * 64 + ".example", "DNS name"),
        ("sips:1.2.3", "IPv4"),
        ("sips:256.1.1.1", "IPv4"),
        ("sips:[2001:db8::1", "closed"),
        ("sips:[2001:db8::zz]", "IPv6"),
        ("sips:[::1]5061", "':'"),
        ("sips:pbx example.com", "no user part"),
        ("sips:[fe80::1%eth0]:5061", "zone"),
        ("sips:[fe80::1%25eth0]", "zone"),
        ("sips:\u212aelvin.example", "ASCII"),  # the Kelvin sign: lower() would make it 'k'
        ("sips:b\u00fccher.example", "ASCII"),
        ("sips:pbx.example.com:\u0665\u0660\u0666\u0661", "ASCII"),
    ],
)
def test_invalid_sip_uri_is_rejected_with_reason(value: str, why: str) -> None:
    with pytest.raises(ValidationError) as caught:
        SIP_URI.validate_python(value)
    assert why in str(caught.value)


@pytest.mark.parametrize(
    "value",
    [
        "sips:my_secret_token.example",
        "sips:1.2.3.999",
        "sips:[my:secret::zz]",
        "sips:pbx.example.com:99999",
        "sips:pbx.example.com:secret",
        "sips:secret-\u212a.example",
    ],
)
def test_a_sip_uri_refusal_says_what_is_wrong_without_repeating_the_host_or_port(value: str) -> None:
    with pytest.raises(ValidationError) as caught:
        SIP_URI.validate_python(value)

    [message] = [e.message for e in field_errors(caught.value)]
    assert "secret" not in message and "999" not in message and "zz" not in message, message


@pytest.mark.parametrize("value", ["0", "00", "12345678"])
def test_valid_prefix(value: str) -> None:
    assert PREFIX.validate_python(value) == value


@pytest.mark.parametrize("value", ["", "123456789", "+00", "0a", " 00", "٠٠"])
def test_invalid_prefix_says_digits(value: str) -> None:
    with pytest.raises(ValidationError, match="1 to 8 digits"):
        PREFIX.validate_python(value)


@pytest.mark.parametrize(
    ("given_name", "expected"),
    [("fork", RouteType.FORK), ("FORK", RouteType.FORK), ("Loop_Mt", RouteType.LOOP_MT)],
)
def test_route_type_names_are_case_insensitive(given_name: str, expected: RouteType) -> None:
    assert RouteType(given_name) is expected


def test_unknown_route_type_lists_the_valid_names() -> None:
    with pytest.raises(ValidationError) as caught:
        Registration(msisdn="+4799990000", sip_uri="sips:a.example", route_type="ROUTE_TYPE_FORK")  # type: ignore[arg-type]
    assert "'loop', 'fork', 'fallback'" in str(caught.value)


def test_v0_lacks_the_v1_route_types() -> None:
    v0 = {rt for rt in RouteType if rt.available_in(ApiVersion.V0)}
    v1 = {rt for rt in RouteType if rt.available_in(ApiVersion.V1)}
    assert v0 == {RouteType.LOOP, RouteType.FORK, RouteType.FALLBACK}
    assert v1 == set(RouteType)
    assert RouteType.LOOP_MO.proto_name == "ROUTE_TYPE_LOOP_MO"


def test_registration_names_every_bad_field_without_echoing_input() -> None:
    with pytest.raises(ValidationError) as caught:
        Registration.model_validate(
            {
                "msisdn": "4799990000",
                "sip_uri": "sip:secret-host.example",
                "route_type": "fork",
                "mobile_originating_prefix": "0x",
                "colour": "blue",
            }
        )
    errors = {e.field: e.message for e in field_errors(caught.value, prefix="registration.")}
    assert set(errors) == {
        "registration.msisdn",
        "registration.sip_uri",
        "registration.mobile_originating_prefix",
        "registration.colour",
    }
    assert "secret-host" not in " ".join(errors.values())


def test_registration_treats_empty_prefix_as_none() -> None:
    reg = Registration(
        msisdn="+4799990000",
        sip_uri="sips:pbx.example.com",
        route_type=RouteType.FALLBACK,
        mobile_terminating_prefix="",
    )
    assert reg.mobile_terminating_prefix is None


def test_mask_msisdn_keeps_only_country_part_and_last_two_digits() -> None:
    assert mask_msisdn("+4799990012") == "+47******12"
    assert "9999" not in mask_msisdn("+4799990012")


# --- properties ----------------------------------------------------------------------------------

e164 = st.builds(
    lambda first, rest: f"+{first}{rest}",
    st.sampled_from("123456789"),
    st.text(alphabet=string.digits, min_size=7, max_size=14),
)


@given(e164)
def test_every_e164_number_is_accepted(value: str) -> None:
    assert MSISDN.validate_python(value) == value


@given(st.text(max_size=20))
def test_msisdn_acceptance_matches_the_e164_rule(value: str) -> None:
    digits = value[1:]
    expected = (
        value.startswith("+")
        and 8 <= len(digits) <= 15
        and all(c in string.digits for c in digits)
        and digits[0] != "0"
    )
    try:
        MSISDN.validate_python(value)
        accepted = True
    except ValidationError:
        accepted = False
    assert accepted == expected


label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)
dns_name = st.builds(
    lambda labels, tld: ".".join([*labels, tld]),
    st.lists(label, min_size=0, max_size=4),
    st.from_regex(r"[a-z][a-z0-9]{1,10}", fullmatch=True),
)
port = st.integers(min_value=1, max_value=65535)


@given(dns_name, st.none() | port)
def test_every_well_formed_sips_uri_round_trips(host: str, maybe_port: int | None) -> None:
    uri = f"sips:{host}" + ("" if maybe_port is None else f":{maybe_port}")
    assert SIP_URI.validate_python(uri) == uri
    assert SIP_URI.validate_python(uri.upper()) == uri


@given(dns_name, st.sampled_from("@;?&= "), st.text(min_size=1, max_size=8))
def test_any_user_part_param_or_header_is_rejected(host: str, marker: str, tail: str) -> None:
    with pytest.raises(ValidationError):
        SIP_URI.validate_python(f"sips:{host}{marker}{tail}")


@given(st.text(max_size=40))
def test_accepted_sip_uris_are_normal_and_stable(value: str) -> None:
    try:
        normalised = SIP_URI.validate_python(value)
    except ValidationError:
        return
    assert normalised.startswith("sips:")
    assert SIP_URI.validate_python(normalised) == normalised
