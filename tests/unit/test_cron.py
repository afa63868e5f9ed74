"""The simulator's stdlib cron engine (``airflow_provider_lightning.schedules.cron``).

Property tests compare it with an independent brute-force matcher and with Airflow's
``CronTriggerTimetable`` (croniter) in zones without DST; DST behaviour is pinned by examples
(the cross-implementation DST properties live in ``test_schedule_mapping.py``).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from airflow_provider_lightning.schedules.cron import ALIASES, Cron, CronError

UTC = timezone.utc
PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def fmt(times: list[datetime], tz: str) -> list[str]:
    return [t.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M%z") for t in times]


# --------------------------------------------------------------------------- strategies
@st.composite
def cron_field(draw: st.DrawFn, low: int, high: int, names: list[str] | None = None, first_name: int = 0) -> str:
    def value(v: int) -> str:
        if names and low + first_name <= v < first_name + len(names) and draw(st.booleans()):
            name = names[v - first_name]
            return name if draw(st.booleans()) else name.lower()
        return str(v)

    def part() -> str:
        kind = draw(st.sampled_from(["value", "value", "range", "range_step", "star_step", "value_step"]))
        a = draw(st.integers(low, high))
        if kind == "value":
            return value(a)
        if kind == "star_step":
            return f"*/{draw(st.integers(1, max(1, high - low)))}"
        if kind == "value_step":
            return f"{a}/{draw(st.integers(1, max(1, high - low)))}"
        b = draw(st.integers(a, high))
        if kind == "range":
            return f"{value(a)}-{value(b)}"
        return f"{a}-{b}/{draw(st.integers(1, max(1, high - low)))}"

    kind = draw(st.sampled_from(["star", "one", "one", "list"]))
    if kind == "star":
        return "*"
    if kind == "one":
        return part()
    return ",".join(part() for _ in range(draw(st.integers(2, 3))))


@st.composite
def cron_expressions(draw: st.DrawFn) -> str:
    if draw(st.integers(0, 9)) == 0:
        return draw(st.sampled_from(sorted(ALIASES)))
    fields = [
        draw(cron_field(0, 59)),
        draw(cron_field(0, 23)),
        draw(cron_field(1, 31)),
        draw(cron_field(1, 12, MONTHS, first_name=1)),
        draw(cron_field(0, 7, DAYS)),  # both 0 and 7 are Sunday
    ]
    if draw(st.integers(0, 9)) == 0:
        fields.insert(0, draw(st.sampled_from(["0", "00"])))
    return " ".join(fields)


def parse_or_none(expression: str, tz: str = "UTC") -> Cron | None:
    try:
        return Cron.parse(expression, tz)
    except CronError as exc:
        # the only valid-syntax expressions the generator makes that are rejected never fire
        assert "never fires" in str(exc) or "larger than the field" in str(exc), str(exc)
        return None


def brute_force_next(cron: Cron, after: datetime, limit_minutes: int) -> datetime | None:
    """Scan minute by minute in UTC with a matcher written from the man page."""
    t = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
    for _ in range(limit_minutes):
        dom_ok = t.day in cron.days_of_month
        dow_ok = (t.isoweekday() % 7) in cron.days_of_week
        dom_star = len(cron.days_of_month) == 31
        dow_star = len(cron.days_of_week) == 7
        day_ok = (dom_ok or dow_ok) if not dom_star and not dow_star else (dom_ok and dow_ok)
        if t.minute in cron.minutes and t.hour in cron.hours and t.month in cron.months and day_ok:
            return t
        t += timedelta(minutes=1)
    return None


def airflow_fire_times(expression: str, tz: str, after: datetime, count: int) -> list[datetime]:
    import pendulum
    from airflow.timetables.base import DataInterval, TimeRestriction
    from airflow.timetables.trigger import CronTriggerTimetable

    timetable = CronTriggerTimetable(expression, timezone=pendulum.timezone(tz))
    last = pendulum.instance(after.astimezone(UTC))
    out: list[datetime] = []
    for _ in range(count):
        info = timetable.next_dagrun_info(
            last_automated_data_interval=DataInterval(last, last),
            restriction=TimeRestriction(earliest=None, latest=None, catchup=True),
        )
        assert info is not None
        last = info.run_after
        out.append(datetime.fromtimestamp(last.timestamp(), UTC))
    return out


starts = st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2040, 12, 31)).map(
    lambda d: d.replace(tzinfo=UTC, microsecond=0)
)


# --------------------------------------------------------------------------- properties
@PROPERTY
@given(expression=cron_expressions(), after=starts)
def test_next_fire_time_matches_brute_force_scan(expression: str, after: datetime) -> None:
    cron = parse_or_none(expression)
    assume(cron is not None)
    assert cron is not None
    window = 3 * 24 * 60
    expected = brute_force_next(cron, after, window)
    actual = cron.next_after(after)
    if expected is None:
        assert actual > after + timedelta(minutes=window)
    else:
        assert actual == expected


@PROPERTY
@given(expression=cron_expressions(), after=starts, tz=st.sampled_from(["UTC", "Asia/Kolkata", "Asia/Tokyo"]))
def test_fire_times_equal_airflow_cron_trigger_timetable_without_dst(expression: str, after: datetime, tz: str) -> None:
    cron = parse_or_none(expression, tz)
    assume(cron is not None)
    assert cron is not None
    ours = cron.fire_times(after, 20)
    assert fmt(ours, tz) == fmt(airflow_fire_times(cron.expression, tz, after, 20), tz)


@PROPERTY
@given(expression=cron_expressions(), after=starts)
def test_normalised_expression_is_a_fixed_point_with_the_same_fire_times(expression: str, after: datetime) -> None:
    cron = parse_or_none(expression)
    assume(cron is not None)
    assert cron is not None
    again = Cron.parse(cron.expression)
    assert again.expression == cron.expression
    assert again.fire_times(after, 5) == cron.fire_times(after, 5)
    fields = cron.expression.split()
    assert len(fields) == 5
    assert "7" not in fields[4].replace("17", "")  # Sunday is normalised to 0
    assert not any(c.isalpha() for c in cron.expression)


@PROPERTY
@given(expression=cron_expressions())
def test_hourly_flag_matches_croniter_hour_expansion(expression: str) -> None:
    """Airflow picks its DST code path with ``croniter(expr).expanded[1] == ['*']``."""
    from croniter import croniter

    cron = parse_or_none(expression)
    assume(cron is not None)
    assert cron is not None
    assert (croniter(cron.expression).expanded[1] == ["*"]) is cron.hourly


@PROPERTY
@given(expression=cron_expressions(), after=starts)
def test_fire_times_are_increasing_aware_utc_and_strictly_after(expression: str, after: datetime) -> None:
    cron = parse_or_none(expression, "Europe/Berlin")
    assume(cron is not None)
    assert cron is not None
    times = cron.fire_times(after, 10)
    assert all(t.tzinfo is UTC for t in times)
    assert all(a < b for a, b in zip([after, *times], times, strict=False))


bad_fields = st.sampled_from(
    [
        ("60 * * * *", "minute"),
        ("*/0 * * * *", "minute"),
        ("5-2 * * * *", "minute"),
        ("1,,2 * * * *", "minute"),
        ("L * * * *", "minute"),
        ("* 24 * * *", "hour"),
        ("* -1 * * *", "hour"),
        ("0 0 0 * *", "day-of-month"),
        ("0 0 32 * *", "day-of-month"),
        ("0 0 L * *", "day-of-month"),
        ("0 0 15W * *", "day-of-month"),
        ("0 0 LW * *", "day-of-month"),
        ("0 0 ? * MON", "day-of-month"),
        ("0 0 * 13 *", "month"),
        ("0 0 * 0 *", "month"),
        ("0 0 * FOO *", "month"),
        ("0 0 * * 8", "day-of-week"),
        ("0 0 * * 5L", "day-of-week"),
        ("0 0 * * 5#3", "day-of-week"),
        ("0 0 * * MON#1", "day-of-week"),
        ("0 0 * * ?", "day-of-week"),
        ("0 0 * * FUNDAY", "day-of-week"),
    ]
)


@PROPERTY
@given(case=bad_fields, tz=st.sampled_from(["UTC", "Europe/Berlin"]))
def test_invalid_fields_are_rejected_naming_the_field(case: tuple[str, str], tz: str) -> None:
    expression, field_name = case
    with pytest.raises(CronError, match=field_name):
        Cron.parse(expression, tz)


@PROPERTY
@given(seconds=st.sampled_from(["1", "30", "59", "*", "*/5", "0-5", "0,30"]), expression=cron_expressions())
def test_six_fields_with_non_zero_seconds_are_rejected(seconds: str, expression: str) -> None:
    assume(not expression.startswith("@") and len(expression.split()) == 5)
    with pytest.raises(CronError, match="seconds field"):
        Cron.parse(f"{seconds} {expression}")


# --------------------------------------------------------------------------- examples: syntax
def test_daily_alias_maps_to_explicit_midnight_cron() -> None:
    assert Cron.parse("@daily").expression == "0 0 * * *"
    assert Cron.parse("@midnight").expression == "0 0 * * *"


@pytest.mark.parametrize(
    ("alias", "expected"),
    [
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        ("@monthly", "0 0 1 * *"),
        ("@weekly", "0 0 * * 0"),
        ("@hourly", "0 * * * *"),
        ("@DAILY", "0 0 * * *"),
    ],
)
def test_aliases_normalise_to_five_fields(alias: str, expected: str) -> None:
    assert Cron.parse(alias).expression == expected


def test_sunday_is_both_0_and_7() -> None:
    after = utc(2024, 1, 1)  # a Monday
    sunday = utc(2024, 1, 7)
    for expression in ("0 0 * * 0", "0 0 * * 7", "0 0 * * SUN", "0 0 * * sun"):
        cron = Cron.parse(expression)
        assert cron.expression == "0 0 * * 0"
        assert cron.next_after(after) == sunday
    assert Cron.parse("0 0 * * 5-7").expression == "0 0 * * 0,5,6"
    assert Cron.parse("0 0 * * 0-7").expression == "0 0 * * *"


def test_day_of_month_or_day_of_week_when_both_are_restricted() -> None:
    cron = Cron.parse("0 12 13 * FRI")  # the 13th OR any Friday
    times = cron.fire_times(utc(2024, 9, 1), 6)
    assert [t.date() for t in times] == [
        date(2024, 9, 6),  # Friday
        date(2024, 9, 13),  # Friday the 13th (once)
        date(2024, 9, 20),
        date(2024, 9, 27),
        date(2024, 10, 4),
        date(2024, 10, 11),
    ]
    assert utc(2024, 10, 13, 12) in cron.fire_times(utc(2024, 10, 1), 4)  # a Sunday the 13th


def test_day_of_month_and_day_of_week_when_only_one_is_restricted() -> None:
    assert Cron.parse("0 0 */2 * *").next_after(utc(2024, 1, 1)) == utc(2024, 1, 3)
    assert Cron.parse("0 0 * * 1").next_after(utc(2024, 1, 1)) == utc(2024, 1, 8)
    # a step over the whole range is unrestricted, like croniter ("*/1" == "*")
    assert Cron.parse("0 0 */1 * MON").next_after(utc(2024, 1, 1)) == utc(2024, 1, 8)


def test_lists_ranges_steps_and_names() -> None:
    assert Cron.parse("*/15 * * * *").expression == "*/15 * * * *"
    assert Cron.parse("1-10/2 * * * *").expression == "1-9/2 * * * *"
    assert Cron.parse("5/20 * * * *").expression == "5-45/20 * * * *"
    assert Cron.parse("0 9-17 * JAN-MAR MON-FRI").expression == "0 9-17 * 1-3 1-5"
    assert Cron.parse("0 0 1,15 */3 *").expression == "0 0 1,15 */3 *"


def test_six_fields_with_zero_seconds_drop_the_seconds() -> None:
    assert Cron.parse("0 30 2 * * 1").expression == "30 2 * * 1"


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("@every 5m", "@every"),
        ("@reboot", "@reboot"),
        ("@fortnightly", "unknown alias"),
        ("* * * *", "4 fields"),
        ("0 0 1 1 * 2030", "year field is not supported"),
        ("5 0 0 1 1 *", "seconds field of 0"),
        ("0 0 1 1 * 2030 x", "7 fields"),
        ("", "empty"),
        ("0 0 30 2 *", "never fires"),
        ("0 0 31 4,6 *", "never fires"),
    ],
)
def test_unsupported_expressions_are_rejected_clearly(expression: str, message: str) -> None:
    with pytest.raises(CronError, match=message):
        Cron.parse(expression)


def test_feb_29_is_valid_and_fires_in_leap_years_only() -> None:
    assert Cron.parse("0 0 29 2 *").fire_times(utc(2025, 1, 1), 2) == [utc(2028, 2, 29), utc(2032, 2, 29)]


def test_unknown_timezone_is_rejected() -> None:
    with pytest.raises(CronError, match="Europe/Berln"):
        Cron.parse("* * * * *", "Europe/Berln")


def test_cron_error_is_a_value_error() -> None:
    assert issubclass(CronError, ValueError)


def test_naive_after_is_read_as_utc() -> None:
    assert Cron.parse("0 * * * *").next_after(datetime(2024, 1, 1, 10, 30)) == utc(2024, 1, 1, 11)


# --------------------------------------------------------------------------- examples: DST
def test_wall_clock_evaluation_in_the_schedule_timezone() -> None:
    cron = Cron.parse("0 9 * * *", "Europe/Berlin")
    assert cron.next_after(utc(2024, 1, 10)) == utc(2024, 1, 10, 8)  # CET
    assert cron.next_after(utc(2024, 7, 10)) == utc(2024, 7, 10, 7)  # CEST


def test_hourly_cron_fires_in_both_passes_of_a_fold_and_skips_a_gap() -> None:
    cron = Cron.parse("30 * * * *", "Europe/Berlin")
    assert fmt(cron.fire_times(utc(2024, 10, 26, 23), 4), "Europe/Berlin") == [
        "2024-10-27 01:30+0200",
        "2024-10-27 02:30+0200",
        "2024-10-27 02:30+0100",
        "2024-10-27 03:30+0100",
    ]
    assert fmt(cron.fire_times(utc(2024, 3, 31), 3), "Europe/Berlin") == [
        "2024-03-31 01:30+0100",
        "2024-03-31 03:30+0200",
        "2024-03-31 04:30+0200",
    ]


def test_fixed_hour_cron_fires_once_in_a_fold_at_the_second_occurrence() -> None:
    cron = Cron.parse("30 2 * * *", "Europe/Berlin")
    assert fmt(cron.fire_times(utc(2024, 10, 26, 12), 2), "Europe/Berlin") == [
        "2024-10-27 02:30+0100",
        "2024-10-28 02:30+0100",
    ]


def test_fixed_hour_cron_in_a_gap_fires_shifted_forward_like_airflow() -> None:
    cron = Cron.parse("30 2 * * *", "Europe/Berlin")
    ours = cron.fire_times(utc(2024, 3, 30, 12), 2)
    assert fmt(ours, "Europe/Berlin") == ["2024-03-31 03:30+0200", "2024-04-01 02:30+0200"]
    assert ours == airflow_fire_times("30 2 * * *", "Europe/Berlin", utc(2024, 3, 30, 12), 2)


def test_every_minute_across_a_fold_counts_real_minutes() -> None:
    cron = Cron.parse("* * * * *", "America/New_York")
    start = utc(2024, 11, 3, 5, 0)  # 01:00 EDT, the fold is 01:00-02:00
    times = cron.fire_times(start, 150)
    assert times == [start + timedelta(minutes=i) for i in range(1, 151)]


def test_the_provider_and_the_simulator_ship_the_same_cron_engine() -> None:
    """Both sides must agree on fire times: the simulator's copy is the provider's file, byte for byte."""
    from pathlib import Path

    import lightning_simulator.cron as simulated

    import airflow_provider_lightning.schedules.cron as provided

    assert Path(provided.__file__).read_bytes() == Path(simulated.__file__).read_bytes()
