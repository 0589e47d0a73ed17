"""What sipreg.config's settings allow, read from their fields (so a test follows a changed bound)."""

from __future__ import annotations

import annotated_types
from pydantic import BaseModel


def most_allowed(settings: type[BaseModel], field: str) -> int:
    """The field's `le` bound."""
    [bound] = [m.le for m in settings.model_fields[field].metadata if isinstance(m, annotated_types.Le)]
    assert isinstance(bound, int)
    return bound
