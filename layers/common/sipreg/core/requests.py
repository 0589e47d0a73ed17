"""The request of each API version (v0 and v1 differ in their messages and phone-number type)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import grpc

from sipreg.config import AuthMode
from sipreg.core.port import Rejected
from sipreg.models import ApiVersion, Registration
from sipreg.proto.wgtwo.common.v0 import phonenumber_pb2 as phonenumber_v0
from sipreg.proto.wgtwo.common.v1 import phonenumber_pb2 as phonenumber_v1
from sipreg.proto.wgtwo.sipbreakout.v0 import sipbreakout_pb2 as sipbreakout_v0
from sipreg.proto.wgtwo.sipbreakout.v0 import sipbreakout_pb2_grpc as sipbreakout_v0_grpc
from sipreg.proto.wgtwo.sipbreakout.v1 import sipbreakout_pb2 as sipbreakout_v1
from sipreg.proto.wgtwo.sipbreakout.v1 import sipbreakout_pb2_grpc as sipbreakout_v1_grpc

# --- request building, per API version ----------------------------------------------------------


@dataclass(frozen=True)
class _Api:
    pb2: ModuleType
    stub: Callable[[grpc.Channel], Any]
    phone_number: Callable[[str], Any]

    @property
    def service(self) -> str:
        full_name: str = self.pb2.DESCRIPTOR.services_by_name["SipBreakoutService"].full_name
        return full_name


APIS = {
    ApiVersion.V0: _Api(
        sipbreakout_v0,
        sipbreakout_v0_grpc.SipBreakoutServiceStub,
        lambda e164: phonenumber_v0.PhoneNumber(e164=e164),
    ),
    ApiVersion.V1: _Api(
        sipbreakout_v1,
        sipbreakout_v1_grpc.SipBreakoutServiceStub,
        lambda e164: phonenumber_v1.E164(e164=e164),
    ),
}


def _registration_message(version: ApiVersion, auth_mode: AuthMode, registration: Registration) -> Any:
    api = APIS[version]
    message = api.pb2.Registration(
        sip_uri=registration.sip_uri,
        route_type=api.pb2.RouteType.Value(registration.route_type.proto_name),
        mobile_originating_prefix=registration.mobile_originating_prefix or "",
        mobile_terminating_prefix=registration.mobile_terminating_prefix or "",
    )
    # A user token names its MSISDN itself; a client token acts for any, so the request names it.
    if auth_mode == AuthMode.CLIENT:
        message.phone_number.CopyFrom(api.phone_number(registration.msisdn))
    return message


def build_upsert_request(version: ApiVersion, auth_mode: AuthMode, registration: Registration) -> Any:
    return APIS[version].pb2.UpsertRegistrationRequest(
        registration=_registration_message(version, auth_mode, registration)
    )


def build_delete_request(version: ApiVersion, auth_mode: AuthMode, registration: Registration) -> Any:
    # The core names a registration by MSISDN and sip_uri; the route type goes along as it was made.
    return APIS[version].pb2.DeleteRegistrationRequest(
        registration=_registration_message(version, auth_mode, registration)
    )


def unsupported_route_type(version: ApiVersion, registration: Registration) -> Rejected | None:
    """A local rejection when the configured API version has no such route type, else None."""
    if registration.route_type.available_in(version):
        return None
    return Rejected(
        message=f"route_type: {registration.route_type.proto_name} is not available in API {version}",
        by_core=False,
    )
