"""The identity server's configuration: its clients (the dev client, flags, a file, the admin
API), the issuer, and the command-line flags that set them."""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class OidcClient:
    client_id: str
    client_secret: str = field(repr=False)
    redirect_uris: tuple[str, ...]
    name: str = "sipreg"

    def secret_matches(self, secret: str) -> bool:
        return hmac.compare_digest(self.client_secret.encode(), secret.encode())


DEV_CLIENT = OidcClient(
    client_id="sipreg-local",
    client_secret="sipreg-local-secret",  # noqa: S106  # the documented dev client of a local emulator
    redirect_uris=("http://127.0.0.1:3000/oauth/callback", "http://localhost:3000/oauth/callback"),
)


def parse_client(text: str) -> OidcClient:
    """`id:secret:redirect_uri` (the redirect URI may hold ':' itself)."""
    client_id, _, rest = text.partition(":")
    secret, _, redirect_uri = rest.partition(":")
    if not client_id or not secret or not redirect_uri:
        raise ValueError(f"expected id:secret:redirect_uri, got {client_id or '?'}:...")
    _check_redirect_uri(redirect_uri)
    return OidcClient(client_id, secret, (redirect_uri,))


def load_clients(path: Path) -> list[OidcClient]:
    """A JSON list of {"client_id", "client_secret", "redirect_uris": [...], "name"?}."""
    data = json.loads(path.read_text())
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of clients")
    return [client_from_json(item, where=f"{path}[{index}]") for index, item in enumerate(data)]


def client_from_json(item: Any, *, where: str = "body") -> OidcClient:
    if not isinstance(item, dict):
        raise ValueError(f"{where}: expected an object")
    client_id, secret, uris = item.get("client_id"), item.get("client_secret"), item.get("redirect_uris")
    if not isinstance(client_id, str) or not client_id:
        raise ValueError(f"{where}.client_id: expected a non-empty string")
    if not isinstance(secret, str) or len(secret) < 8:
        raise ValueError(f"{where}.client_secret: expected a string of at least 8 characters")
    if not isinstance(uris, list) or not uris or not all(isinstance(u, str) for u in uris):
        raise ValueError(f"{where}.redirect_uris: expected a non-empty list of URLs")
    for uri in uris:
        _check_redirect_uri(uri)
    return OidcClient(client_id, secret, tuple(uris), name=str(item.get("name") or client_id))


def _check_redirect_uri(uri: str) -> None:
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.fragment:
        raise ValueError(f"redirect URI {uri!r} must be an absolute http(s) URL without a fragment")


@dataclass
class OidcConfig:
    clients: dict[str, OidcClient] = field(default_factory=lambda: {DEV_CLIENT.client_id: DEV_CLIENT})
    issuer: str | None = None  # None: the base URL the request came to (e.g. http://127.0.0.1:PORT)
    # False: phone_number only from /userinfo, as certified providers do in the code flow.
    phone_number_in_id_token: bool = True
    # Numbers the identity server knows but has not verified: phone_number_verified is false
    # (OIDC Core §5.1), e.g. a number typed at sign-up whose PIN never came back.
    unverified_numbers: set[str] = field(default_factory=set)


def add_oidc_arguments(parser: Any) -> None:
    group = parser.add_argument_group("identity server (OAuth 2.0 / OpenID Connect)")
    group.add_argument(
        "--oidc-client",
        action="append",
        default=[],
        metavar="ID:SECRET:REDIRECT_URI",
        help=f"register a client (repeatable); the dev client {DEV_CLIENT.client_id}:"
        f"{DEV_CLIENT.client_secret}:{DEV_CLIENT.redirect_uris[0]} always exists",
    )
    group.add_argument(
        "--oidc-clients-file",
        type=Path,
        metavar="PATH",
        help='JSON list of {"client_id", "client_secret", "redirect_uris": [...]}',
    )
    group.add_argument(
        "--oidc-issuer", metavar="URL", help="the ID tokens' iss (default: the URL the request came to)"
    )
    group.add_argument(
        "--oidc-phone-number-only-in-userinfo",
        action="store_true",
        help="leave phone_number out of the ID token (clients must ask /userinfo), as certified "
        "providers do in the code flow",
    )


def oidc_config_from_args(args: Any) -> OidcConfig:
    """Raises ValueError naming the bad flag."""
    config = OidcConfig(
        issuer=args.oidc_issuer.rstrip("/") if args.oidc_issuer else None,
        phone_number_in_id_token=not getattr(args, "oidc_phone_number_only_in_userinfo", False),
    )
    clients: list[OidcClient] = []
    try:
        clients += [parse_client(text) for text in args.oidc_client]
    except ValueError as error:
        raise ValueError(f"--oidc-client: {error}") from None
    if args.oidc_clients_file:
        try:
            clients += load_clients(args.oidc_clients_file)
        except (OSError, ValueError) as error:
            raise ValueError(f"--oidc-clients-file: {error}") from None
    for client in clients:
        config.clients[client.client_id] = client
    return config
