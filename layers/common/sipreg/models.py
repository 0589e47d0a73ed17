"""The domain's value types and their validation rules.

Every rule here rejects with a message that says why, never quoting the value (a caller's typo
may be a secret pasted into the wrong field); pydantic adds which field. Callers turn a
`ValidationError` into field-named errors with `field_errors`.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, ValidationError

# The ids of sipreg's own events begin with this, and a producer's may not: the worker takes a
# seen id for a duplicate, so a producer that could give its upsert the id of a coming resume or
# refresh (some are computed from what the status bus publishes) could have it dropped.
SIPREG_ID_PREFIX = "sipreg:"


def sipreg_event_id(kind: str, unique: str) -> str:
    """The id of an event sipreg makes itself, e.g. `sipreg:resume:<hash>`."""
    return f"{SIPREG_ID_PREFIX}{kind}:{unique}"


# --- MSISDN -------------------------------------------------------------------------------------

# The one MSISDN rule: E.164, '+' then 8 to 15 digits, the first one 1-9.
E164_PATTERN = r"\+[1-9][0-9]{7,14}"
_E164 = re.compile(E164_PATTERN)


def is_msisdn(value: str) -> bool:
    return _E164.fullmatch(value) is not None


def check_msisdn(value: str) -> str:
    if not is_msisdn(value):
        raise ValueError("must be E.164: '+' then 8 to 15 digits, the first one 1-9")
    return value


Msisdn = Annotated[str, AfterValidator(check_msisdn)]


def mask_msisdn(msisdn: str) -> str:
    """What logs and pages show of a number: country part and last two digits, e.g. +47******00."""
    if len(msisdn) < 6:
        return "*" * len(msisdn)
    return msisdn[:3] + "*" * (len(msisdn) - 5) + msisdn[-2:]


# --- SIP URI ------------------------------------------------------------------------------------

_DNS_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_PORT = re.compile(r"[0-9]{1,5}")


def _check_host(host: str) -> str:
    if host.startswith("["):
        if not host.endswith("]"):
            raise ValueError("IPv6 literal must be closed with ']'")
        if "%" in host:  # Python takes a scope id; RFC 3261's IPv6reference has none
            raise ValueError("IPv6 literal must not carry a zone id ('%'): it means nothing off this host")
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise ValueError("host is not a valid IPv6 literal") from None
        return host
    labels = host.split(".")
    if labels[-1].isdigit():  # all-numeric last label: only an IPv4 literal may look like this
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise ValueError("host is neither a DNS name nor an IPv4 address") from None
        return host
    if len(host) > 253 or not all(_DNS_LABEL.fullmatch(label) for label in labels):
        raise ValueError(
            "host is not a valid DNS name: labels of a-z, 0-9 and inner '-', 63 characters at most"
        )
    return host


def check_sip_uri(value: str) -> str:
    """`sips:` host [":" port] and nothing else, in ASCII; scheme and host are case-insensitive
    (lowered)."""
    if value[:5].lower() != "sips:":
        raise ValueError("must start with 'sips:' (the core talks SIP over TLS only)")
    rest = value[5:]
    if not rest:
        raise ValueError("must name a host after 'sips:'")
    # Before lowering: str.lower() turns some non-ASCII letters into ASCII ones (U+212A into 'k').
    if not rest.isascii():
        raise ValueError("must be ASCII: write an internationalised host name in its xn-- form")
    if any(c in rest for c in "@;?&= \t"):
        raise ValueError("must be 'sips:' host [':' port] only: no user part, parameters or headers")
    host, port = rest, None
    if rest.startswith("["):
        close = rest.find("]")
        if close != -1 and close + 1 < len(rest):
            host, separator, port = rest[: close + 1], rest[close + 1], rest[close + 2 :]
            if separator != ":":
                raise ValueError("only ':' and a port may follow an IPv6 literal")
    elif ":" in rest:
        host, _, port = rest.rpartition(":")
    host = _check_host(host.lower())
    if port is not None:
        if not _PORT.fullmatch(port) or not 1 <= int(port) <= 65535:
            raise ValueError("port must be a number from 1 to 65535")
        return f"sips:{host}:{int(port)}"
    return f"sips:{host}"


SipUri = Annotated[str, AfterValidator(check_sip_uri)]


# --- prefixes -----------------------------------------------------------------------------------

_PREFIX = re.compile(r"[0-9]{1,8}")


def check_prefix(value: str) -> str:
    if not _PREFIX.fullmatch(value):
        raise ValueError("must be 1 to 8 digits (e.g. '00')")
    return value


def _empty_prefix_is_none(value: Any) -> Any:
    # The wire format has no "absent" for strings: an empty prefix means no prefix.
    return None if value == "" else value


Prefix = Annotated[str, AfterValidator(check_prefix)]
OptionalPrefix = Annotated[Prefix | None, BeforeValidator(_empty_prefix_is_none)]


# --- route types and API versions ---------------------------------------------------------------


class ApiVersion(StrEnum):
    V0 = "v0"
    V1 = "v1"


class RouteType(StrEnum):
    LOOP = "loop"
    FORK = "fork"
    FALLBACK = "fallback"
    LOOP_MO = "loop_mo"
    LOOP_MT = "loop_mt"
    INGRESS = "ingress"

    @classmethod
    def _missing_(cls, value: object) -> RouteType | None:
        # Names are case-insensitive on input: "FORK" and "Fork" are "fork".
        if isinstance(value, str):
            lowered = value.lower()
            for member in cls:
                if member.value == lowered:
                    return member
        return None

    @property
    def proto_name(self) -> str:
        """The enum value's name in the protos, e.g. ROUTE_TYPE_FORK."""
        return f"ROUTE_TYPE_{self.name}"

    def available_in(self, version: ApiVersion) -> bool:
        return version is ApiVersion.V1 or self in _V0_ROUTE_TYPES


_V0_ROUTE_TYPES = frozenset({RouteType.LOOP, RouteType.FORK, RouteType.FALLBACK})


# --- the registration value objects -------------------------------------------------------------


# The one model of a route: the registration an upsert asks for, a record's desired and applied
# states, the status API's view and the core call all are (or hold) a RouteSpec.
class RouteSpec(BaseModel):
    """The parameters of one registration on the core (desired or applied)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    route_type: RouteType
    mobile_originating_prefix: OptionalPrefix = None
    mobile_terminating_prefix: OptionalPrefix = None

    def route(self) -> RouteSpec:
        """Just the route, of this model or of one that extends it."""
        return RouteSpec(
            route_type=self.route_type,
            mobile_originating_prefix=self.mobile_originating_prefix,
            mobile_terminating_prefix=self.mobile_terminating_prefix,
        )

    def at(self, msisdn: str, sip_uri: str) -> Registration:
        """This route as the registration of `msisdn` at `sip_uri` (what the core is sent)."""
        return Registration(msisdn=msisdn, sip_uri=sip_uri, **self.route().model_dump())


class Registration(RouteSpec):
    """What one MSISDN's registration on the core should be; (msisdn, sip_uri) identifies it."""

    msisdn: Msisdn
    sip_uri: SipUri


# --- errors -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldError:
    """One rejected field: a dotted path (e.g. `events.3.registration.sip_uri`) and why."""

    field: str
    message: str


def field_errors(error: ValidationError, prefix: str = "") -> list[FieldError]:
    """The field-named reasons of a pydantic error, without echoing the rejected input back."""
    found = []
    for detail in error.errors(include_url=False, include_input=False):
        path = ".".join(str(part) for part in detail["loc"])
        message = detail["msg"].removeprefix("Value error, ")
        found.append(FieldError(field=f"{prefix}{path}" if path else prefix.rstrip("."), message=message))
    return found
