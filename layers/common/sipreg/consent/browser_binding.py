"""The cookie that ties a consent flow to the browser that started it (RFC 9700 §4.7: no login CSRF)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from sipreg.store.oauth_states import LIFETIME_SECONDS

if TYPE_CHECKING:
    from aws_lambda_powertools.shared.cookies import Cookie

# The browser binding: a random value in this cookie, its SHA-256 in the flow's state record.
BROWSER_COOKIE = "sipreg_consent"
BROWSER_COOKIE_PATH = "/oauth"  # sent to /oauth/start (to reuse it) and /oauth/callback
BINDING = re.compile(r"[A-Za-z0-9_-]{43}")  # what secrets.token_urlsafe(32) makes


def binding_digest(binding: str) -> str:
    return hashlib.sha256(binding.encode()).hexdigest()


def browser_cookie(binding: str, *, secure: bool) -> Cookie:
    """The binding cookie: HttpOnly, SameSite=Lax (it must come along on the identity server's
    top-level redirect back), only under /oauth, gone when the flow's state is."""
    from aws_lambda_powertools.shared.cookies import Cookie, SameSite  # noqa: PLC0415

    return Cookie(
        BROWSER_COOKIE,
        binding,
        path=BROWSER_COOKIE_PATH,
        secure=secure,
        http_only=True,
        max_age=LIFETIME_SECONDS,
        same_site=SameSite.LAX_MODE,
    )


def browser_from_cookies(cookies: Iterable[str] | None) -> str | None:
    """The binding from a request's cookies (`name=value` strings, as API Gateway passes them)."""
    for cookie in cookies or ():
        name, _, value = cookie.strip().partition("=")
        if name == BROWSER_COOKIE and BINDING.fullmatch(value):
            return value
    return None
