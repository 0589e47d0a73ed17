"""EventBridge schedule expressions: `rate(...)`, 6-field `cron(...)` and Scheduler's `at(...)`.

Cron fields are minutes, hours, day-of-month, month, day-of-week (1-7 = SUN-SAT), year; each
takes `*`, `?`, lists, ranges and steps, month and day names too. `L`, `W` and `#` are refused
with a clear error rather than guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

_RATE = re.compile(r"rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}
_MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
_DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
_SEARCH_YEARS = 5


class ScheduleExpressionError(ValueError):
    pass


@dataclass(frozen=True)
class Rate:
    seconds: int


@dataclass(frozen=True)
class Cron:
    minutes: frozenset[int]
    hours: frozenset[int]
    days_of_month: frozenset[int] | None  # None: `?` (the day-of-week field decides)
    months: frozenset[int]
    days_of_week: frozenset[int] | None  # 1-7 = SUN-SAT; None: `?` or `*`
    years: frozenset[int]

    def next_after(self, moment: datetime, zone: tzinfo = UTC) -> datetime:
        """The first matching minute strictly after `moment` (aware), computed in `zone`."""
        local = moment.astimezone(zone).replace(second=0, microsecond=0) + timedelta(minutes=1)
        day = local.date()
        for _ in range(366 * _SEARCH_YEARS):
            if self._day_matches(day.year, day.month, day.day, day.isoweekday() % 7 + 1):
                first_hour = local.hour if day == local.date() else 0
                for hour in sorted(h for h in self.hours if h >= first_hour):
                    same_hour = day == local.date() and hour == local.hour
                    first_minute = local.minute if same_hour else 0
                    minutes = sorted(m for m in self.minutes if m >= first_minute)
                    if minutes:
                        found = datetime(day.year, day.month, day.day, hour, minutes[0], tzinfo=zone)
                        return found.astimezone(UTC)
            day += timedelta(days=1)
        raise ScheduleExpressionError("cron expression never fires in the next years")

    def _day_matches(self, year: int, month: int, day: int, weekday: int) -> bool:
        if year not in self.years or month not in self.months:
            return False
        if self.days_of_month is not None and day not in self.days_of_month:
            return False
        return self.days_of_week is None or weekday in self.days_of_week


@dataclass(frozen=True)
class At:
    moment: datetime  # aware


Expression = Rate | Cron | At


def parse(expression: str, zone: tzinfo = UTC) -> Expression:
    text = expression.strip()
    rate = _RATE.fullmatch(text)
    if rate:
        amount, unit = int(rate.group(1)), rate.group(2).rstrip("s")
        if amount < 1 or (amount == 1) != (rate.group(2) == unit):
            raise ScheduleExpressionError(f"{expression!r}: use 'rate(1 minute)', 'rate(5 minutes)'")
        return Rate(amount * _UNIT_SECONDS[unit])
    if text.startswith("cron(") and text.endswith(")"):
        return _parse_cron(text[5:-1], expression)
    if text.startswith("at(") and text.endswith(")"):
        try:
            moment = datetime.fromisoformat(text[3:-1])
        except ValueError as exc:
            raise ScheduleExpressionError(f"{expression!r}: at() needs yyyy-mm-ddThh:mm:ss") from exc
        return At(moment.replace(tzinfo=zone) if moment.tzinfo is None else moment)
    raise ScheduleExpressionError(f"{expression!r} is not a rate(), cron() or at() expression")


def _parse_cron(body: str, expression: str) -> Cron:
    fields = body.split()
    if len(fields) != 6:
        raise ScheduleExpressionError(f"{expression!r}: cron() needs 6 fields, got {len(fields)}")
    minute, hour, dom, month, dow, year = fields
    if (dom == "?") == (dow == "?"):
        raise ScheduleExpressionError(f"{expression!r}: exactly one of day-of-month, day-of-week is ?")
    this_year = datetime.now(UTC).year
    return Cron(
        minutes=_field(minute, 0, 59, expression),
        hours=_field(hour, 0, 23, expression),
        days_of_month=None if dom == "?" else _field(dom, 1, 31, expression),
        months=_field(month, 1, 12, expression, _MONTHS),
        days_of_week=None if dow in ("?", "*") else _field(dow, 1, 7, expression, _DAYS),
        years=_field(year, 1970, this_year + _SEARCH_YEARS, expression),
    )


def _field(text: str, low: int, high: int, expression: str, names: list[str] | None = None) -> frozenset[int]:
    for token in re.split(r"[,/-]", text):
        if token not in ("*", "?") and not token.isdigit() and not (names and token.upper() in names):
            raise ScheduleExpressionError(
                f"{expression!r}: {token!r} is not supported here (L, W and # are not)"
            )
    values: set[int] = set()
    for part in text.split(","):
        span, _, step_text = part.partition("/")
        step = _number(step_text, expression) if step_text else 1
        if span in ("*", "?"):
            first, last = low, high
        elif "-" in span:
            start, _, end = span.partition("-")
            first, last = _value(start, names, low, expression), _value(end, names, low, expression)
        else:
            first = _value(span, names, low, expression)
            last = high if step_text else first
        if not (low <= first <= high and low <= last <= high) or step < 1:
            raise ScheduleExpressionError(f"{expression!r}: {part!r} outside {low}-{high}")
        values.update(range(first, last + 1, step))
    return frozenset(values)


def _value(text: str, names: list[str] | None, low: int, expression: str) -> int:
    if names and text.upper() in names:
        return names.index(text.upper()) + low
    return _number(text, expression)


def _number(text: str, expression: str) -> int:
    if not text.isdigit():
        raise ScheduleExpressionError(f"{expression!r}: {text!r} is not a number")
    return int(text)
