"""Cron expressions as the Lightning server evaluates them (standard library only).

The same file ships twice, byte for byte (``tests/unit/test_cron.py`` checks it):
``airflow_provider_lightning.schedules.cron``, against which the provider validates every schedule (and
against Airflow's ``CronTriggerTimetable``, so both produce the same fire times), and ``lightning_simulator.cron``,
with which the simulator fires schedules; the simulator distribution stays standard library only.

Syntax
------
* Five fields: ``minute hour day-of-month month day-of-week``.
* ``*``, lists (``1,2,5``), ranges (``1-5``), steps (``*/15``, ``1-10/2``, ``5/15`` = ``5-59/15``),
  month names (``JAN``-``DEC``) and weekday names (``SUN``-``SAT``), case-insensitive, also inside
  ranges (``MON-FRI``).
* Day-of-week ``0``-``7``; both ``0`` and ``7`` are Sunday.
* Aliases: ``@yearly``/``@annually`` (``0 0 1 1 *``), ``@monthly`` (``0 0 1 * *``), ``@weekly``
  (``0 0 * * 0``), ``@daily``/``@midnight`` (``0 0 * * *``), ``@hourly`` (``0 * * * *``).
* Six fields are accepted only when the leading seconds field is ``0``; it is dropped.
* Rejected with :class:`CronError`: ``@every``, ``@reboot``, unknown aliases, Quartz extensions
  ``L``, ``W``, ``#``, ``?``, a year field, out-of-range values, empty or reversed ranges, step 0,
  and expressions that can never fire (``0 0 30 2 *``).

Day matching (same as Vixie cron and croniter, which Airflow uses): a field is *restricted* when
its set of values is not the full range (so ``*/1`` and ``1-31`` are unrestricted, ``*/2`` is
restricted). When both day-of-month and day-of-week are restricted, a day matches if EITHER
matches; otherwise both must match.

The normalised :attr:`Cron.expression` is numeric: a full field is ``*``, an arithmetic
progression from the field's minimum to its end is ``*/n``, other progressions ``a-b/n``,
anything else a list of values and ranges; Sunday is ``0``.

Time zones and daylight-saving time
-----------------------------------
The expression is evaluated on local wall-clock time in :attr:`Cron.timezone` (IANA name, via
:mod:`zoneinfo`); results are aware UTC datetimes. Around DST transitions the rule mirrors what
Airflow's ``CronTriggerTimetable`` does (``airflow/timetables/_cron.py``), which has two code
paths depending on whether the hour field is ``*``:

* **Hourly expressions** (hour field unrestricted): every *instant* whose local wall-clock time
  matches fires. A wall time repeated by a fall-back fold fires twice (once per offset); a wall
  time skipped by a spring-forward gap does not fire.
* **Fixed-hour expressions** (hour field restricted): each matching wall time fires once. A
  repeated (folded) wall time fires at its *second* occurrence (``fold=1``, the post-transition
  offset); a skipped wall time fires at the instant obtained by reading it with the
  pre-transition offset, i.e. shifted forward by the length of the gap (02:30 on a 1-hour gap
  fires at 03:30 new time). Duplicate instants fire once.

Airflow follows the fixed-hour rule only when it starts before the gap or fold, and the hourly
rule only across whole-hour transitions that the wait to the next match does not span, so
:func:`airflow_provider_lightning.schedules.validation.validate_cron` rejects every schedule for which
the two implementations cannot be shown to agree (rule and experiments in
:mod:`airflow_provider_lightning.schedules.validation`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import timezone as dt_timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["ALIASES", "FIELD_NAMES", "Cron", "CronError"]

UTC = dt_timezone.utc


class CronError(ValueError):
    """An invalid cron expression or time zone."""


ALIASES: dict[str, str] = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

FIELD_NAMES = ("minute", "hour", "day-of-month", "month", "day-of-week")

_MONTH_NAMES = {
    name: i + 1
    for i, name in enumerate(["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"])
}
_DOW_NAMES = {name: i for i, name in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}


@dataclass(frozen=True)
class _FieldSpec:
    name: str
    low: int
    high: int
    names: dict[str, int]


_SPECS = (
    _FieldSpec("minute", 0, 59, {}),
    _FieldSpec("hour", 0, 23, {}),
    _FieldSpec("day-of-month", 1, 31, {}),
    _FieldSpec("month", 1, 12, _MONTH_NAMES),
    _FieldSpec("day-of-week", 0, 7, _DOW_NAMES),
)
_SECONDS_SPEC = _FieldSpec("second", 0, 59, {})

_TOKEN_RE = re.compile(r"^(?P<range>\*|[A-Za-z0-9]+(?:-[A-Za-z0-9]+)?)(?:/(?P<step>[0-9]+))?$")
_QUARTZ_LW = re.compile(r"[0-9]*(?:l|w|lw)|l-[0-9]+")
_MAX_DAYS = {1: 31, 2: 29, 3: 31, 4: 30, 5: 31, 6: 30, 7: 31, 8: 31, 9: 30, 10: 31, 11: 30, 12: 31}
# Search horizon for the next matching wall time; the sparsest valid cron (Feb 29 on a given
# weekday) repeats within 28 years, and Feb 29 alone within 8.
_MAX_SEARCH_YEARS = 30


def _value(original: str, spec: _FieldSpec, token: str) -> int:
    text = original.lower()
    if text.isdigit():
        value = int(text)
    elif text in spec.names:
        value = spec.names[text]
    else:
        if _QUARTZ_LW.fullmatch(text):
            raise CronError(
                f"{spec.name} field: {token!r} uses 'L' (last) or 'W' (nearest weekday), Quartz cron extensions "
                "that are not supported; use standard 5-field cron"
            )
        if spec.names:
            allowed = f"numbers {spec.low}-{spec.high} or names {', '.join(n.upper() for n in spec.names)}"
        else:
            allowed = f"numbers {spec.low}-{spec.high}"
        raise CronError(f"{spec.name} field: {token!r} is not valid ({original!r} is not one of {allowed})")
    if not spec.low <= value <= spec.high:
        raise CronError(f"{spec.name} field: {value} in {token!r} is out of range {spec.low}-{spec.high}")
    return value


def _parse_field(text: str, spec: _FieldSpec) -> frozenset[int]:
    if not text:
        raise CronError(f"{spec.name} field is empty")
    values: set[int] = set()
    for token in text.split(","):
        if not token:
            raise CronError(f"{spec.name} field {text!r}: empty list element")
        for bad, what in (("?", "'?' (no specific value)"), ("#", "'#' (nth weekday)")):
            if bad in token.lower():
                raise CronError(
                    f"{spec.name} field {text!r}: {what} is a Quartz cron extension that is not supported; "
                    "use standard 5-field cron"
                )
        match = _TOKEN_RE.match(token)
        if match is None:
            raise CronError(f"{spec.name} field: {token!r} is not a value, range, list or step")
        step_text = match.group("step")
        step = int(step_text) if step_text is not None else 1
        if step == 0:
            raise CronError(f"{spec.name} field: step 0 in {token!r} is not allowed")
        rng = match.group("range")
        if rng == "*":
            start, end = spec.low, spec.high
        elif "-" in rng:
            a, b = rng.split("-", 1)
            start, end = _value(a, spec, token), _value(b, spec, token)
            if start > end:
                raise CronError(
                    f"{spec.name} field: range {token!r} starts after it ends (wrap-around ranges are not supported)"
                )
        else:
            start = _value(rng, spec, token)
            # "5/15" means "5-<max>/15" (Vixie cron and croniter)
            end = spec.high if step_text is not None else start
        if step > spec.high - spec.low + 1 and step_text is not None and rng == "*":
            raise CronError(f"{spec.name} field: step {step} in {token!r} is larger than the field's range")
        values.update(range(start, end + 1, step))
    if spec.name == "day-of-week" and 7 in values:
        values.discard(7)
        values.add(0)
    return frozenset(values)


def _format_field(values: frozenset[int], low: int, high: int) -> str:
    ordered = sorted(values)
    if ordered == list(range(low, high + 1)):
        return "*"
    if len(ordered) >= 3:
        step = ordered[1] - ordered[0]
        if step > 1 and ordered == list(range(ordered[0], ordered[-1] + 1, step)):
            if ordered[0] == low and ordered[-1] + step > high:
                return f"*/{step}"
            return f"{ordered[0]}-{ordered[-1]}/{step}"
    parts: list[str] = []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        if j - i >= 2:
            parts.append(f"{ordered[i]}-{ordered[j]}")
        else:
            parts.extend(str(v) for v in ordered[i : j + 1])
        i = j + 1
    return ",".join(parts)


def _load_timezone(name: str) -> ZoneInfo:
    if not isinstance(name, str) or not name.strip():
        raise CronError(f"timezone must be a non-empty IANA name such as 'UTC' or 'Europe/Berlin', got {name!r}")
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise CronError(f"timezone {name!r} is not a known IANA time zone") from exc


def _split(expression: str) -> list[str]:
    if not isinstance(expression, str):
        raise CronError(f"cron expression must be a string, got {type(expression).__name__}")
    text = expression.strip()
    if not text:
        raise CronError("cron expression is empty")
    if text.startswith("@"):
        alias = text.lower()
        if alias in ALIASES:
            return ALIASES[alias].split()
        if alias.startswith("@every"):
            raise CronError(
                f"cron expression {expression!r}: '@every' intervals are not supported; "
                "write a cron such as '*/15 * * * *'"
            )
        if alias == "@reboot":
            raise CronError(f"cron expression {expression!r}: '@reboot' has no fire times and is not supported")
        raise CronError(
            f"cron expression {expression!r}: unknown alias; supported aliases are {', '.join(sorted(ALIASES))}"
        )
    fields = text.split()
    if len(fields) == 6:
        seconds = _parse_field(fields[0], _SECONDS_SPEC)
        if seconds != frozenset({0}):
            raise CronError(
                f"cron expression {expression!r}: 6-field expressions are accepted only with a seconds field "
                f"of 0 (sub-minute schedules are not supported), got seconds field {fields[0]!r}"
            )
        return fields[1:]
    if len(fields) != 5:
        raise CronError(
            f"cron expression {expression!r} has {len(fields)} fields; expected 5 "
            "(minute hour day-of-month month day-of-week) or 6 with a leading seconds field of 0"
        )
    return fields


class Cron:
    """A parsed cron expression bound to an IANA time zone. Create with :meth:`parse`."""

    __slots__ = (
        "days_of_month",
        "days_of_week",
        "dom_restricted",
        "dow_restricted",
        "expression",
        "hourly",
        "hours",
        "minutes",
        "months",
        "timezone",
        "tzinfo",
    )

    #: The normalised expression: numeric, five fields, Sunday ``0`` (see the module's description).
    expression: str
    #: The IANA time zone the expression is evaluated in (``UTC`` by default).
    timezone: str
    tzinfo: ZoneInfo
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days_of_month: frozenset[int]
    months: frozenset[int]
    days_of_week: frozenset[int]
    dom_restricted: bool
    dow_restricted: bool
    hourly: bool

    def __init__(self) -> None:  # pragma: no cover - use Cron.parse
        raise TypeError("use Cron.parse(expression, timezone)")

    @classmethod
    def parse(cls, expression: str, timezone: str = "UTC") -> Cron:
        """Parse *expression* (5 fields, 6 with seconds ``0``, or an alias) in *timezone*."""
        fields = _split(expression)
        try:
            sets = [_parse_field(text, spec) for text, spec in zip(fields, _SPECS, strict=True)]
        except CronError as exc:
            if len(expression.split()) == 6:
                raise CronError(
                    f"{exc} (a 6-field expression is read as 'second minute hour day-of-month month "
                    "day-of-week'; a trailing year field is not supported)"
                ) from None
            raise
        tz = _load_timezone(timezone)
        self = object.__new__(cls)
        self.tzinfo = tz
        self.timezone = timezone.strip()
        self.minutes = tuple(sorted(sets[0]))
        self.hours = tuple(sorted(sets[1]))
        self.days_of_month = sets[2]
        self.months = sets[3]
        self.days_of_week = sets[4]
        self.dom_restricted = len(sets[2]) != 31
        self.dow_restricted = len(sets[4]) != 7
        self.hourly = len(sets[1]) == 24
        self.expression = " ".join(
            [
                _format_field(sets[0], 0, 59),
                _format_field(sets[1], 0, 23),
                _format_field(sets[2], 1, 31),
                _format_field(sets[3], 1, 12),
                _format_field(sets[4], 0, 6),
            ]
        )
        if (
            self.dom_restricted
            and not self.dow_restricted
            and not any(d <= _MAX_DAYS[m] for m in self.months for d in self.days_of_month)
        ):
            raise CronError(
                f"cron expression {expression!r} never fires: day-of-month {fields[2]!r} does not exist "
                f"in month {fields[3]!r}"
            )
        return self

    # ------------------------------------------------------------------ wall-clock matching
    def matches_day(self, day: date) -> bool:
        """Whether *day* (a local calendar date) is a firing day (month and the DOM/DOW rule)."""
        if day.month not in self.months:
            return False
        dom_ok = day.day in self.days_of_month
        dow_ok = (day.isoweekday() % 7) in self.days_of_week
        if self.dom_restricted and self.dow_restricted:
            return dom_ok or dow_ok
        return dom_ok and dow_ok

    def matches_wall(self, wall: datetime) -> bool:
        """Whether the naive local wall-clock time *wall* matches (seconds must be 0)."""
        return (
            wall.second == 0
            and wall.microsecond == 0
            and wall.minute in self.minutes
            and wall.hour in self.hours
            and self.matches_day(wall.date())
        )

    def next_wall(self, start: datetime) -> datetime:
        """First naive wall-clock time ``>= start`` (naive) that matches the expression."""
        if start.tzinfo is not None:
            raise ValueError("next_wall expects a naive local datetime")
        t = start.replace(second=0, microsecond=0)
        if t < start:
            t += timedelta(minutes=1)
        limit_year = t.year + _MAX_SEARCH_YEARS
        day = t.date()
        hour, minute = t.hour, t.minute
        while day.year <= limit_year:
            if not self.matches_day(day):
                day = self._next_candidate_day(day)
                hour, minute = 0, 0
                continue
            for h in self.hours:
                if h < hour:
                    continue
                first_minute = minute if h == hour else 0
                for m in self.minutes:
                    if m >= first_minute:
                        return datetime(day.year, day.month, day.day, h, m)
            day = day + timedelta(days=1)
            hour, minute = 0, 0
        raise CronError(f"cron expression {self.expression!r} has no fire time within {_MAX_SEARCH_YEARS} years")

    def _next_candidate_day(self, day: date) -> date:
        if day.month not in self.months:
            year, month = day.year, day.month
            while True:
                month += 1
                if month > 12:
                    year, month = year + 1, 1
                if month in self.months:
                    return date(year, month, 1)
        return day + timedelta(days=1)

    # ------------------------------------------------------------------ instants
    def instants_of(self, wall: datetime) -> list[datetime]:
        """UTC instants at which the matching wall time *wall* fires (see the module docstring)."""
        first = wall.replace(tzinfo=self.tzinfo, fold=0)
        second = wall.replace(tzinfo=self.tzinfo, fold=1)
        if first.utcoffset() == second.utcoffset():
            return [first.astimezone(UTC)]
        a, b = first.astimezone(UTC), second.astimezone(UTC)
        exists = a.astimezone(self.tzinfo).replace(tzinfo=None) == wall
        if exists:  # fold: the wall time happens twice
            ordered = sorted((a, b))
            return ordered if self.hourly else [ordered[1]]
        # gap: the wall time never happens; fold=0 reads it with the pre-transition offset,
        # which lands after the gap (the forward shift Airflow/pendulum applies).
        return [] if self.hourly else [a]

    def _offset_range(self, instant: datetime) -> tuple[timedelta, timedelta]:
        offsets = []
        for days in (-2, -1, 0, 1, 2):
            try:
                offsets.append((instant + timedelta(days=days)).astimezone(self.tzinfo).utcoffset() or timedelta())
            except OverflowError:
                continue
        return min(offsets), max(offsets)

    def next_after(self, after: datetime) -> datetime:
        """The first fire time strictly after *after*, as an aware UTC datetime.

        A naive *after* is read as UTC.
        """
        if not isinstance(after, datetime):
            raise TypeError(f"after must be a datetime, got {type(after).__name__}")
        after_utc = after.replace(tzinfo=UTC) if after.tzinfo is None else after.astimezone(UTC)
        low_off, _ = self._offset_range(after_utc)
        # No wall time earlier than this can map to an instant after `after`.
        wall = (after_utc + low_off).replace(tzinfo=None)
        best: datetime | None = None
        best_high: timedelta = timedelta()
        while True:
            wall = self.next_wall(wall)
            if best is not None and wall - best_high > best.replace(tzinfo=None):
                return best
            for instant in self.instants_of(wall):
                if instant > after_utc and (best is None or instant < best):
                    best = instant
                    best_high = self._offset_range(best)[1]
            wall += timedelta(minutes=1)

    def fire_times(self, after: datetime, count: int) -> list[datetime]:
        """The next *count* fire times strictly after *after* (aware UTC datetimes)."""
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        result: list[datetime] = []
        current = after
        for _ in range(count):
            current = self.next_after(current)
            result.append(current)
        return result

    def __repr__(self) -> str:
        return f"Cron.parse({self.expression!r}, {self.timezone!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Cron):
            return NotImplemented
        return (self.expression, self.timezone) == (other.expression, other.timezone)

    def __hash__(self) -> int:
        return hash((self.expression, self.timezone))
