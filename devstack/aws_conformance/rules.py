"""The report of the checks made of single requests: each rule checked once."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RulesReport:
    """Single-request rules, each checked once."""

    checked: int = 0
    seconds: float = 0.0
    violations: list[str] = field(default_factory=list)

    def rule(self, holds: bool, broken: str) -> None:
        """One rule checked; when it did not hold, `broken` (what it says) is a violation."""
        self.checked += 1
        if not holds:
            self.violations.append(broken)
