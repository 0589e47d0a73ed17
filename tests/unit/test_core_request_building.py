"""Given a registration, the client builds the request the configured API version and auth mode expect."""

from __future__ import annotations

import pytest

from sipreg.config import AuthMode
from sipreg.core.requests import build_delete_request, build_upsert_request
from sipreg.models import ApiVersion, Registration, RouteType

FORK = Registration(
    msisdn="+4799990000",
    sip_uri="sips:pbx.acme.example:5061",
    route_type=RouteType.FORK,
    mobile_originating_prefix="00",
    mobile_terminating_prefix="011",
)
BUILDERS = [build_upsert_request, build_delete_request]


@pytest.mark.parametrize("build", BUILDERS)
@pytest.mark.parametrize("version", list(ApiVersion))
def test_request_carries_the_registration_fields_in_the_versions_package(build, version) -> None:
    request = build(version, AuthMode.USER, FORK)

    assert request.DESCRIPTOR.full_name.startswith(f"wgtwo.sipbreakout.{version}.")
    registration = request.registration
    assert registration.sip_uri == "sips:pbx.acme.example:5061"
    route_types = registration.DESCRIPTOR.fields_by_name["route_type"].enum_type
    assert route_types.values_by_number[registration.route_type].name == "ROUTE_TYPE_FORK"
    assert registration.mobile_originating_prefix == "00"
    assert registration.mobile_terminating_prefix == "011"


@pytest.mark.parametrize("build", BUILDERS)
@pytest.mark.parametrize("version", list(ApiVersion))
def test_user_token_mode_sends_no_phone_number(build, version) -> None:
    request = build(version, AuthMode.USER, FORK)

    assert not request.registration.HasField("phone_number")


@pytest.mark.parametrize("build", BUILDERS)
@pytest.mark.parametrize(
    ("version", "phone_type"),
    [(ApiVersion.V0, "wgtwo.common.v0.PhoneNumber"), (ApiVersion.V1, "wgtwo.common.v1.E164")],
)
def test_client_token_mode_names_the_number_in_the_versions_phone_type(build, version, phone_type) -> None:
    request = build(version, AuthMode.CLIENT, FORK)

    phone_number = request.registration.phone_number
    assert request.registration.HasField("phone_number")
    assert phone_number.DESCRIPTOR.full_name == phone_type
    assert phone_number.e164 == "+4799990000"


def test_absent_prefixes_go_out_as_empty_strings() -> None:
    bare = Registration(msisdn="+4799990000", sip_uri="sips:pbx.acme.example", route_type=RouteType.FALLBACK)

    registration = build_upsert_request(ApiVersion.V0, AuthMode.USER, bare).registration

    assert registration.mobile_originating_prefix == ""
    assert registration.mobile_terminating_prefix == ""
    assert registration.route_type == 3  # ROUTE_TYPE_FALLBACK in both versions


@pytest.mark.parametrize(
    ("route_type", "number"), [(RouteType.LOOP_MO, 4), (RouteType.LOOP_MT, 5), (RouteType.INGRESS, 6)]
)
def test_v1_only_route_types_get_their_v1_numbers(route_type, number) -> None:
    registration = FORK.model_copy(update={"route_type": route_type})

    assert build_upsert_request(ApiVersion.V1, AuthMode.USER, registration).registration.route_type == number
