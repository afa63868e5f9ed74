"""Validate a (cron expression, IANA time zone) pair so that Lightning and Airflow agree on it.

:func:`validate_cron` is used in both mapping directions. It returns the normalised expression
(aliases such as ``@daily`` become explicit 5-field cron, names become numbers, Sunday is ``0``,
6-field expressions with seconds ``0`` lose the seconds field) and the time zone, or raises a
:class:`~airflow_provider_lightning.schedules.errors.ScheduleError` (a ``ValueError``).

Daylight-saving time rule
=========================
Airflow's ``CronTriggerTimetable`` (``airflow/timetables/_cron.py``, croniter on naive local
time) has two code paths, and experiments against Airflow 3.3.2 (the property tests in
``tests/unit/test_schedule_mapping.py`` and ``tests/unit/test_cron.py`` replay them) showed:

* **Fixed-hour crons** (hour field not ``*``): the next naive wall time is made aware with
  ``fold=1``. A time in a spring-forward gap is shifted forward by the gap (``30 2 * * *`` in
  Europe/Berlin fires at 03:30 CEST on the change day), a time in a fall-back fold fires at its
  second occurrence -- but only when the previous run or start instant is before the skipped or
  repeated hour. Starting from 03:10 CEST on the spring-forward day, Airflow skips that day's
  (shifted) 03:30 run; starting from 02:40 CEST (first pass) on the fall-back day it skips the
  02:30 CET run. So the fire times depend on where you start and cannot be reproduced by a
  fixed set of instants.
* **Hourly crons** (hour field ``*``): Airflow adds the naive wall-clock difference to the
  current instant as *elapsed* time (pendulum ``DateTime + timedelta``). For ``M * * * *`` across
  whole-hour transitions that happen on the hour this yields exactly "every instant whose wall
  clock matches" (fold hours fire twice, gap hours are skipped). But whenever the wait to the
  next match spans a transition, the run moves by the offset change: ``0 * * 4 *`` (hourly in
  April) in Europe/Berlin started in January first fires on April 1 at 01:00, not 00:00; across
  the 30-minute change of Australia/Lord_Howe ``45 * * * *`` fires at 03:15 instead of 02:45.

The stdlib :class:`~airflow_provider_lightning.schedules.cron.Cron` implements the well-defined
parts (see its docstring). Looking at every UTC-offset change of the time zone from *since*
(default: now) for *years* (default 30, more than the 28-year calendar cycle), a schedule is
**accepted** only when, for every transition:

1. fixed-hour cron: no matching local wall time inside the gap or the repeated hour;
2. hourly cron: with ``T`` the local wall time at the transition (old offset), ``delta`` the
   offset change and ``next(x)`` the first matching wall time ``>= x``:
   ``next(T) + delta == next(T + delta)``. This is exactly the condition under which Airflow's
   elapsed-time step across the transition lands on the true next match, from every start. It
   holds for ``M * * * *`` across whole-hour transitions on the hour, and fails for hourly crons
   whose next match after the transition is on a later day (``0 * * * 1-5`` next to a Sunday
   change), and across 30- or 45-minute changes.

Everything else is **rejected** with :class:`~airflow_provider_lightning.schedules.errors.DSTAmbiguityError`,
which names the transition and suggests ``UTC`` or another local time; nothing is ever silently shifted.
Time zones without transitions in the horizon (UTC, ``Asia/Kolkata``, fixed offsets) accept every valid cron.

This module imports only the standard library; the cron engine (:mod:`.cron`) is imported on first use,
so DAG files that only import this package do not pay for it.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from functools import lru_cache
from typing import TYPE_CHECKING, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from airflow_provider_lightning.schedules.errors import (
    DSTAmbiguityError,
    InvalidCronError,
    UnknownTimezoneError,
)

if TYPE_CHECKING:
    from airflow_provider_lightning.schedules.cron import Cron

__all__ = [
    "DEFAULT_HORIZON_YEARS",
    "DSTConflict",
    "Transition",
    "ValidatedCron",
    "check_timezone",
    "find_dst_conflicts",
    "parse_cron",
    "transitions",
    "validate_cron",
]

UTC = dt_timezone.utc
DEFAULT_HORIZON_YEARS = 30
_HOUR = timedelta(hours=1)
_DAY = timedelta(days=1)


class ValidatedCron(NamedTuple):
    """A normalised 5-field cron expression and an IANA time-zone name."""

    expression: str
    timezone: str


@dataclass(frozen=True)
class Transition:
    """A change of UTC offset: at ``instant`` (UTC) the offset goes from ``before`` to ``after``."""

    instant: datetime
    before: timedelta
    after: timedelta

    @property
    def delta(self) -> timedelta:
        return self.after - self.before

    @property
    def wall_before(self) -> datetime:
        """The naive local wall-clock reading at the transition, in the old offset."""
        return (self.instant + self.before).replace(tzinfo=None)

    @property
    def window(self) -> tuple[datetime, datetime]:
        """The naive local wall times that are skipped (gap) or happen twice (fold)."""
        start = self.wall_before
        if self.delta > timedelta(0):
            return start, start + self.delta
        return start + self.delta, start

    @property
    def kind(self) -> str:
        return "gap" if self.delta > timedelta(0) else "fold"


@dataclass(frozen=True)
class DSTConflict:
    """Why a cron cannot be proven to agree across one transition."""

    transition: Transition
    reason: str
    advice: str


# --------------------------------------------------------------------------- time zones
def _suggest(name: str) -> list[str]:
    names = available_timezones() | {"UTC"}
    lowered = {n.lower(): n for n in names}
    found: list[str] = []
    key = name.strip().lower()
    if key in lowered:
        found.append(lowered[key])
    tail = key.replace(" ", "_").rsplit("/", 1)[-1]
    found.extend(sorted(n for n in names if n.lower().rsplit("/", 1)[-1] == tail))
    found.extend(lowered[m] for m in difflib.get_close_matches(key, list(lowered), n=3, cutoff=0.6))
    unique: list[str] = []
    for n in found:
        if n not in unique and n != name:
            unique.append(n)
    return unique[:3]


def check_timezone(timezone: object, *, argument: str = "timezone") -> str:
    """Return the IANA name *timezone* (stripped) or raise :class:`UnknownTimezoneError`."""
    if not isinstance(timezone, str):
        raise UnknownTimezoneError(
            f"{argument} must be an IANA time-zone name string such as 'UTC' or 'Europe/Berlin', "
            f"got {type(timezone).__name__} {timezone!r}"
        )
    name = timezone.strip()
    if not name:
        raise UnknownTimezoneError(f"{argument} is empty; use an IANA name such as 'UTC' or 'Europe/Berlin'")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        suggestions = _suggest(name)
        hint = f"; did you mean {' or '.join(repr(s) for s in suggestions)}?" if suggestions else ""
        raise UnknownTimezoneError(f"{argument} {timezone!r} is not a known IANA time zone{hint}") from None
    return name


def parse_cron(expression: object, timezone: object = "UTC", *, argument: str = "cron_expression") -> Cron:
    """Parse without the DST check; errors name *argument* (``cron_expression``) or ``timezone``."""
    from airflow_provider_lightning.schedules.cron import Cron, CronError

    tz_name = check_timezone(timezone)
    if not isinstance(expression, str):
        raise InvalidCronError(f"{argument} must be a string, got {type(expression).__name__} {expression!r}")
    try:
        return Cron.parse(expression, tz_name)
    except CronError as exc:
        raise InvalidCronError(f"{argument} {expression!r} is invalid: {exc}") from None


# --------------------------------------------------------------------------- transitions
def _offset(tz: ZoneInfo, instant: datetime) -> timedelta:
    return instant.astimezone(tz).utcoffset() or timedelta(0)


@lru_cache(maxsize=8192)
def _year_transitions(key: str, year: int) -> tuple[Transition, ...]:
    """Offset changes in ``(Jan 1 year, Jan 1 year+1]`` UTC, found by daily sampling and bisection."""
    tz = ZoneInfo(key)
    start = datetime(year, 1, 1, tzinfo=UTC)
    end = datetime(year + 1, 1, 1, tzinfo=UTC)
    found: list[Transition] = []
    prev_t, prev_off = start, _offset(tz, start)
    t = start
    while t < end:
        t = min(t + _DAY, end)
        off = _offset(tz, t)
        if off != prev_off:
            lo, hi = prev_t, t
            while hi - lo > timedelta(seconds=1):
                mid = lo + (hi - lo) / 2
                mid = mid.replace(microsecond=0)
                if _offset(tz, mid) == prev_off:
                    lo = mid
                else:
                    hi = mid
            found.append(Transition(hi, _offset(tz, lo), _offset(tz, hi)))
        prev_t, prev_off = t, off
    return tuple(found)


def transitions(timezone: str, since: datetime, until: datetime) -> list[Transition]:
    """UTC-offset changes of *timezone* with ``since <= instant <= until`` (aware datetimes)."""
    key = check_timezone(timezone)
    since, until = since.astimezone(UTC), until.astimezone(UTC)
    result: list[Transition] = []
    for year in range(since.year - 1, until.year + 1):
        result.extend(tr for tr in _year_transitions(key, year) if since <= tr.instant <= until)
    return result


# --------------------------------------------------------------------------- the DST rule
def _next_wall(cron: Cron, start: datetime) -> datetime | None:
    from airflow_provider_lightning.schedules.cron import CronError

    try:
        return cron.next_wall(start)
    except CronError:
        return None


def _first_match(cron: Cron, start: datetime, end: datetime) -> datetime | None:
    wall = _next_wall(cron, start)
    return wall if wall is not None and wall < end else None


def _hm(wall: datetime) -> str:
    return wall.strftime("%H:%M") if wall.second == 0 else wall.strftime("%H:%M:%S")


def _fmt_offset(off: timedelta) -> str:
    sign = "-" if off < timedelta(0) else "+"
    total = abs(int(off.total_seconds()))
    return f"{sign}{total // 3600:02d}:{total % 3600 // 60:02d}"


def _describe(tr: Transition) -> str:
    lo, hi = tr.window
    change = f"UTC{_fmt_offset(tr.before)} -> UTC{_fmt_offset(tr.after)}"
    if tr.kind == "gap":
        return (
            f"the daylight-saving gap on {lo.date()} when clocks jump from {_hm(lo)} to {_hm(hi)} ({change}), "
            f"so local times {_hm(lo)}-{_hm(hi)} do not exist"
        )
    return (
        f"the daylight-saving fold on {hi.date()} when clocks fall back from {_hm(hi)} to {_hm(lo)} ({change}), "
        f"so local times {_hm(lo)}-{_hm(hi)} happen twice"
    )


def _conflict(cron: Cron, tr: Transition) -> DSTConflict | None:
    lo, hi = tr.window
    if not cron.hourly:
        match = _first_match(cron, lo, hi)
        if match is None:
            return None
        return DSTConflict(
            tr,
            f"it fires at {_hm(match)} local time on {match.date()}, inside {_describe(tr)}",
            f"use timezone 'UTC' (or a zone without DST), or move the schedule outside local times {_hm(lo)}-{_hm(hi)}",
        )
    # Hourly crons: Airflow adds the naive wall-clock difference to the current instant as elapsed
    # time. From any start before the transition whose next naive match s is at or after T, it
    # fires at wall time s + delta; the true next match after the transition is
    # next_match(T + delta). They agree exactly when these are equal.
    start = tr.wall_before
    airflow_wall = _next_wall(cron, start)
    true_wall = _next_wall(cron, start + tr.delta)
    if airflow_wall is None or true_wall is None or airflow_wall + tr.delta == true_wall:
        return None
    return DSTConflict(
        tr,
        f"it runs hourly and, across {_describe(tr)}, Airflow's CronTriggerTimetable (which adds elapsed time "
        f"for crons whose hour field is '*') would fire at {_hm(airflow_wall + tr.delta)} local time on "
        f"{(airflow_wall + tr.delta).date()} instead of the cron's {_hm(true_wall)} on {true_wall.date()}",
        "use timezone 'UTC' (or a zone without DST), or a schedule that fires every day at the same minutes "
        "of every hour",
    )


def find_dst_conflicts(
    cron: Cron, *, since: datetime | None = None, years: int = DEFAULT_HORIZON_YEARS
) -> list[DSTConflict]:
    """The transitions in ``[since - 1 day, since + years]`` where *cron* is not proven to agree."""
    if since is None:
        since = datetime.now(UTC)
    elif since.tzinfo is None:
        since = since.replace(tzinfo=UTC)  # a naive since is read as UTC
    start = since.astimezone(UTC) - _DAY
    until = start + timedelta(days=round(365.2425 * years)) + _DAY
    result = []
    for tr in transitions(cron.timezone, start, until):
        conflict = _conflict(cron, tr)
        if conflict is not None:
            result.append(conflict)
    return result


def validate_cron(
    expression: object,
    timezone: object = "UTC",
    *,
    since: datetime | None = None,
    years: int = DEFAULT_HORIZON_YEARS,
    argument: str = "cron_expression",
) -> ValidatedCron:
    """Validate and normalise a cron expression in an IANA time zone for both Lightning and Airflow.

    :param expression: 5-field cron, an alias (``@daily``...) or 6 fields with seconds ``0``.
    :param timezone: IANA name; the schedule is evaluated on its local wall clock.
    :param since: start of the DST-check horizon (aware; default now).
    :param years: length of the DST-check horizon.
    :param argument: the argument name used in error messages.
    :raises InvalidCronError: bad syntax (the message names the field), ``@every``, ``@reboot``,
        Quartz ``L W # ?``, 6 fields with non-zero seconds, a cron that never fires.
    :raises UnknownTimezoneError: not an IANA name (close names are suggested).
    :raises DSTAmbiguityError: the cron can fire in a DST gap/fold where the sides may differ.
    """
    cron = parse_cron(expression, timezone, argument=argument)
    conflicts = find_dst_conflicts(cron, since=since, years=years)
    if conflicts:
        first = conflicts[0]
        more = f" (and {len(conflicts) - 1} more transitions)" if len(conflicts) > 1 else ""
        raise DSTAmbiguityError(
            f"{argument} {expression!r} in timezone {cron.timezone!r} is ambiguous around daylight-saving "
            f"changes: {first.reason}{more}. Airflow's CronTriggerTimetable and the Lightning scheduler are not "
            f"guaranteed to fire at the same instants there, and the schedule is never shifted silently. "
            f"Fix: {first.advice}."
        )
    return ValidatedCron(cron.expression, cron.timezone)
