"""The one error the clients raise: a request that cannot be made, or that the API refused."""

from __future__ import annotations


class ApiError(Exception):
    """No request could be made, or the API refused it as a whole; the message says what to fix
    (never a secret)."""
