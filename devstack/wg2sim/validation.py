"""The emulated core's own input rules, independent of `sipreg.models` on purpose.

The emulator stands in for WG2's core, so it must not share sipreg's validators: a bug there
would then be invisible here. Each check returns a human-readable problem naming the field,
or None when the value is acceptable.
"""

from __future__ import annotations

import ipaddress
import re

E164 = re.compile(r"\+[1-9][0-9]{7,14}")
PREFIX = re.compile(r"[0-9]{1,8}")
# RFC 3261 hostname: domainlabels of alphanumerics and inner hyphens; the top label starts
# with a letter (which also keeps "1.2.3.999" from passing as a name).
DOMAIN_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
TOP_LABEL = re.compile(r"[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
MAX_HOSTNAME_LENGTH = 253
MAX_PORT = 65535


def e164_problem(value: str, field: str) -> str | None:
    if E164.fullmatch(value):
        return None
    return f"{field} {value!r} is not an E.164 number ('+', first digit 1-9, 8 to 15 digits)"


def prefix_problem(value: str, field: str) -> str | None:
    """Prefixes are optional: the empty string (proto3's "unset") means none."""
    if value == "" or PREFIX.fullmatch(value):
        return None
    return f"{field} {value!r} must be 1 to 8 digits (e.g. '00') or empty"


def sip_uri_problem(value: str) -> str | None:
    """`sips:` host [":" port] and nothing else (RFC 3261 grammar, TLS only)."""
    field = "sip_uri"
    if not value:
        return f"{field} is required (e.g. 'sips:pbx.example.com:5061')"
    if value[:5].lower() != "sips:":
        return f"{field} {value!r} must use the 'sips:' scheme (the core reaches a TAS over TLS only)"
    rest = value[5:]
    for char, what in (("@", "a user part"), (";", "URI parameters"), ("?", "headers")):
        if char in rest:
            return f"{field} {value!r} must not carry {what}: only 'sips:' host [':' port]"
    host, port = _split_host_port(rest)
    if port is not None and not (port.isascii() and port.isdigit() and 1 <= int(port) <= MAX_PORT):
        return f"{field} {value!r} has port {port!r}; it must be a number from 1 to 65535"
    host_problem = _host_problem(host)
    return f"{field} {value!r}: {host_problem}" if host_problem else None


def _split_host_port(rest: str) -> tuple[str, str | None]:
    if rest.startswith("["):
        close = rest.find("]")
        if close == -1:
            return rest, None
        host, after = rest[: close + 1], rest[close + 1 :]
        if after.startswith(":"):
            return host, after[1:]
        return (host, None) if not after else (rest, None)
    host, colon, port = rest.partition(":")
    return host, (port if colon else None)


def _host_problem(host: str) -> str | None:
    if not host:
        return "the host is missing"
    if host.startswith("["):
        return _ip_literal_problem(host, host[1:-1] if host.endswith("]") else host)
    if all(part.isascii() and part.isdigit() for part in host.split(".")):
        return _ip_literal_problem(host, host)
    labels = host.split(".")
    if (
        len(host) > MAX_HOSTNAME_LENGTH
        or not all(DOMAIN_LABEL.fullmatch(label) for label in labels[:-1])
        or not TOP_LABEL.fullmatch(labels[-1])
    ):
        return (
            f"host {host!r} is not a DNS name or IP literal (letters, digits and inner "
            "hyphens in dot-separated labels; IPv6 in brackets)"
        )
    return None


def _ip_literal_problem(host: str, address: str) -> str | None:
    version = "IPv6" if host.startswith("[") else "IPv4"
    try:
        ipaddress.IPv6Address(address) if version == "IPv6" else ipaddress.IPv4Address(address)
    except ValueError:
        return f"host {host!r} is not a valid {version} address"
    return None


class FieldError(ValueError):
    """Bad admin or command-line input: which field, and why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
