"""Lightning schedules <-> Airflow schedules (``airflow_provider_lightning.schedules``).

The central property: for every schedule :func:`validate_cron` accepts, the next 20 fire times
of Airflow's ``CronTriggerTimetable`` (the timetable :func:`to_airflow` builds, converted to the
scheduler-side class exactly as DAG serialisation does) equal the simulator's stdlib
``Cron.fire_times``, including starts next to DST transitions. Rejected schedules carry a
clear error.
"""

from __future__ import annotations

import math
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pendulum
import pytest
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_2_PLUS
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from airflow_provider_lightning.schedules import (
    AirflowSchedule,
    DSTAmbiguityError,
    InvalidCronError,
    LightningSchedule,
    ScheduleError,
    UnknownTimezoneError,
    UnsupportedScheduleError,
    ValidatedCron,
    from_airflow,
    to_airflow,
    validate_cron,
)
from airflow_provider_lightning.schedules.cron import Cron, CronError
from airflow_provider_lightning.schedules.validation import transitions

UTC = timezone.utc
FIRE_TIMES = 20
PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

DST_ZONES = [
    "Europe/Berlin",
    "America/New_York",
    "Australia/Sydney",
    "America/Sao_Paulo",  # DST until 2019, transitions at midnight
    "Europe/London",
    "America/Santiago",  # transitions at 24:00 / 00:00
    "Australia/Lord_Howe",  # 30-minute DST
    "Pacific/Chatham",  # +12:45 / +13:45
]
ZONES = ["UTC", "Asia/Kolkata", *DST_ZONES]
SINCE_2026 = datetime(2026, 1, 1, tzinfo=UTC)


# make test-floor runs Airflow 3.1, where the Task SDK has no timetables yet: DAGs take the core classes there.
needs_sdk_timetables = pytest.mark.skipif(
    not AIRFLOW_V_3_2_PLUS, reason="needs Airflow 3.2+: the Task SDK's timetables (airflow.sdk.CronTriggerTimetable, "
    "CronDataIntervalTimetable) arrived in 3.2; the core classes Airflow 3.1 uses are tested unconditionally")


def timetable_attr(timetable: object, name: str) -> object:
    """``expression`` / ``timezone`` of a cron timetable (Airflow 3.1's core class keeps them underscored)."""
    return getattr(timetable, name) if hasattr(timetable, name) else getattr(timetable, f"_{name}")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def local(times: list[datetime], tz: str) -> list[str]:
    return [t.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M%z") for t in times]


def core_timetable(schedule: AirflowSchedule) -> object:
    """The scheduler-side timetable, converted exactly as DAG serialisation does."""
    from airflow.timetables.trigger import CronTriggerTimetable

    try:
        from airflow.serialization.encoders import coerce_to_core_timetable
    except ImportError:  # Airflow 3.1: the DAG's timetable already is the core one
        core = schedule.timetable
    else:
        core = coerce_to_core_timetable(schedule.timetable)
    assert isinstance(core, CronTriggerTimetable)
    return core


def airflow_fire_times(timetable: object, after: datetime, count: int) -> list[datetime]:
    from airflow.timetables.base import DataInterval, TimeRestriction

    last = pendulum.instance(after.astimezone(UTC))
    out: list[datetime] = []
    for _ in range(count):
        info = timetable.next_dagrun_info(  # type: ignore[attr-defined]
            last_automated_data_interval=DataInterval(last, last),
            restriction=TimeRestriction(earliest=None, latest=None, catchup=True),
        )
        assert info is not None
        last = info.run_after
        out.append(datetime.fromtimestamp(last.timestamp(), UTC))
    return out


def airflow_first_run(timetable: object, earliest: datetime) -> datetime:
    """The first run of a fresh DAG whose start date is *earliest* (catchup on)."""
    from airflow.timetables.base import TimeRestriction

    info = timetable.next_dagrun_info(  # type: ignore[attr-defined]
        last_automated_data_interval=None,
        restriction=TimeRestriction(earliest=pendulum.instance(earliest), latest=None, catchup=True),
    )
    assert info is not None
    return datetime.fromtimestamp(info.run_after.timestamp(), UTC)


# --------------------------------------------------------------------------- strategies
def _general_field(low: int, high: int) -> st.SearchStrategy[str]:
    single = st.integers(low, high).map(str)
    ranges = st.tuples(st.integers(low, high), st.integers(0, high - low), st.integers(1, 6)).map(
        lambda t: f"{t[0]}-{min(high, t[0] + t[1])}" + (f"/{t[2]}" if t[2] > 1 else "")
    )
    steps = st.integers(2, max(2, (high - low) // 2)).map(lambda s: f"*/{s}")
    part = st.one_of(single, ranges, steps)
    return st.one_of(part, st.lists(part, min_size=2, max_size=3).map(",".join))


MINUTES = st.one_of(
    st.sampled_from(["0", "30", "*/15", "*/20", "5,35", "*", "45", "0-59/7", "10-20", "59"]), _general_field(0, 59)
)
HOURS = st.one_of(
    st.sampled_from(["*", "*", "*/2", "0", "1", "2", "3", "1-3", "0,12", "2-4/2", "9", "*/6", "23", "0-23", "*/1"]),
    _general_field(0, 23),
)
DAYS_OF_MONTH = st.one_of(
    st.sampled_from(["*", "*", "*", "1", "*/2", "13", "25-31", "1-7", "29", "31", "1-31"]), _general_field(1, 31)
)
MONTHS = st.one_of(
    st.sampled_from(["*", "*", "*", "3", "10", "MAR,OCT", "apr", "11", "*/3", "1-6", "SEP-NOV"]),
    _general_field(1, 12),
)
DAYS_OF_WEEK = st.one_of(
    st.sampled_from(["*", "*", "*", "0", "7", "SUN", "1-5", "MON-FRI", "6,7", "5-7", "sat", "0-6"]),
    _general_field(0, 7),
)
ALIASES = st.sampled_from(["@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"])


@st.composite
def expressions(draw: st.DrawFn) -> str:
    if draw(st.integers(0, 7)) == 0:
        return draw(ALIASES)
    fields = [draw(MINUTES), draw(HOURS), draw(DAYS_OF_MONTH), draw(MONTHS), draw(DAYS_OF_WEEK)]
    if draw(st.integers(0, 9)) == 0:
        fields.insert(0, "0")  # 6 fields with a zero seconds field
    return " ".join(fields)


_TRANSITIONS = {tz: [tr.instant for tr in transitions(tz, utc(2001, 1, 1), utc(2040, 12, 31))] for tz in ZONES}


@st.composite
def starts(draw: st.DrawFn, tz: str) -> datetime:
    near = _TRANSITIONS[tz]
    if near and draw(st.booleans()):
        base = draw(st.sampled_from(near))
        offset = timedelta(minutes=draw(st.integers(-36 * 60, 36 * 60)))
        if draw(st.booleans()):
            offset += timedelta(seconds=draw(st.integers(0, 59)))
        return base + offset
    naive = draw(st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2040, 12, 31)))
    return naive.replace(tzinfo=UTC, microsecond=0)


@st.composite
def schedules(draw: st.DrawFn) -> tuple[str, str, datetime]:
    tz = draw(st.sampled_from(ZONES))
    return draw(expressions()), tz, draw(starts(tz))


def _years_covering(after: datetime, last: datetime) -> int:
    return max(1, math.ceil((last - after).days / 365) + 1)


# --------------------------------------------------------------------------- the property
@PROPERTY
@given(case=schedules())
def test_accepted_schedules_fire_at_the_same_instants_in_airflow_and_lightning(
    case: tuple[str, str, datetime],
) -> None:
    expression, tz, after = case
    try:
        cron = Cron.parse(expression, tz)
    except CronError as exc:
        assert "never fires" in str(exc)
        event("never fires")
        return
    ours = cron.fire_times(after, FIRE_TIMES)
    years = _years_covering(after, ours[-1])  # the DST check must cover every compared fire time
    try:
        schedule = to_airflow(LightningSchedule(cron_expression=expression, timezone=tz), since=after, years=years)
    except DSTAmbiguityError as exc:
        event(f"rejected: DST in {tz}")
        message = str(exc)
        assert tz in message and "daylight-saving" in message and "UTC" in message
        assert transitions(tz, after - timedelta(days=1), after + timedelta(days=366 * years + 2))
        return
    event("accepted with DST transitions" if _TRANSITIONS[tz] else "accepted")
    assert schedule.cron_expression == cron.expression
    timetable = core_timetable(schedule)
    assert local(airflow_fire_times(timetable, after, FIRE_TIMES), tz) == local(ours, tz)
    # a fresh DAG starting at `after`: Airflow's first run is `after` itself when it is a fire time
    assert airflow_first_run(timetable, after) == cron.next_after(after - timedelta(microseconds=1))


def _lightning_prev(cron: Cron, at: datetime, days: int) -> datetime | None:
    """The last Lightning fire time ``<= at`` within *days* days (None if there is none)."""
    t = cron.next_after(at - timedelta(days=days))
    if t > at:
        return None
    while (n := cron.next_after(t)) <= at:
        t = n
    return t


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=schedules())
def test_without_catchup_airflow_picks_a_lightning_fire_time(case: tuple[str, str, datetime]) -> None:
    """``catchup=False`` (what ``dag_kwargs`` sets) also looks backwards from "now" (``_get_prev``)."""
    from unittest import mock

    from airflow.timetables.base import TimeRestriction

    expression, tz, now = case
    try:
        cron = Cron.parse(expression, tz)
        schedule = to_airflow(
            LightningSchedule(cron_expression=expression, timezone=tz), since=now - timedelta(days=41)
        )
    except (CronError, DSTAmbiguityError):
        return
    previous = _lightning_prev(cron, now, 40)
    if previous is None:
        return
    timetable = core_timetable(schedule)
    with mock.patch("airflow.timetables.trigger.utcnow", return_value=pendulum.instance(now)):
        info = timetable.next_dagrun_info(  # type: ignore[attr-defined]
            last_automated_data_interval=None,
            restriction=TimeRestriction(earliest=None, latest=None, catchup=False),
        )
    assert info is not None
    run = datetime.fromtimestamp(info.run_after.timestamp(), UTC)
    assert run in (previous, cron.next_after(now))


@PROPERTY
@given(case=schedules())
def test_mapping_round_trip_keeps_cron_and_timezone(case: tuple[str, str, datetime]) -> None:
    expression, tz, after = case
    try:
        schedule = LightningSchedule(cron_expression=expression, timezone=tz, parallel_runs=False)
        airflow = to_airflow(schedule, since=after, years=2)
    except (InvalidCronError, DSTAmbiguityError):
        return
    back = from_airflow(airflow.timetable, since=after, years=2)
    assert back == (schedule.cron_expression, schedule.timezone)
    assert from_airflow(core_timetable(airflow), since=after, years=2) == back
    again = LightningSchedule.from_api(schedule.to_api_body())
    assert again == schedule
    assert airflow.max_active_runs == 1


# --------------------------------------------------------------------------- examples: mapping
def test_daily_alias_maps_to_midnight_cron() -> None:
    assert validate_cron("@daily") == ("0 0 * * *", "UTC")
    airflow = to_airflow(LightningSchedule(cron_expression="@daily", timezone="Europe/Berlin"))
    assert airflow.cron_expression == "0 0 * * *"
    assert timetable_attr(airflow.timetable, "expression") == "0 0 * * *"
    assert timetable_attr(airflow.timetable, "timezone") == pendulum.timezone("Europe/Berlin")


def test_airflow_presets_map_to_explicit_cron() -> None:
    assert from_airflow("@daily") == ("0 0 * * *", "UTC")
    assert from_airflow("@hourly", "Europe/Berlin") == ("0 * * * *", "Europe/Berlin")
    assert from_airflow("@quarterly", "Asia/Kolkata") == ("0 0 1 */3 *", "Asia/Kolkata")


def test_sunday_as_0_and_7_gives_the_same_airflow_schedule() -> None:
    zero = to_airflow(LightningSchedule(cron_expression="0 6 * * 0", timezone="America/New_York"))
    seven = to_airflow(LightningSchedule(cron_expression="0 6 * * 7", timezone="America/New_York"))
    assert zero.cron_expression == seven.cron_expression == "0 6 * * 0"
    times = airflow_fire_times(core_timetable(seven), utc(2024, 1, 1), 3)
    assert local(times, "America/New_York") == [
        "2024-01-07 06:00-0500",
        "2024-01-14 06:00-0500",
        "2024-01-21 06:00-0500",
    ]


def test_day_of_month_or_day_of_week_rule_is_the_same_in_airflow() -> None:
    airflow = to_airflow(LightningSchedule(cron_expression="0 12 13 * FRI", timezone="UTC"))
    after = utc(2024, 9, 1)
    expected = Cron.parse("0 12 13 * 5").fire_times(after, 8)
    assert airflow_fire_times(core_timetable(airflow), after, 8) == expected
    assert utc(2024, 10, 13, 12) in expected  # Sunday the 13th (DOM)
    assert utc(2024, 9, 6, 12) in expected  # Friday the 6th (DOW)


@pytest.mark.parametrize(
    ("cron", "tz"),
    [
        ("0 0 * * *", "UTC"),
        ("*/15 9-17 * * 1-5", "Europe/Berlin"),
        ("@weekly", "America/New_York"),
        ("30 4 1,15 * *", "Australia/Sydney"),
        ("0 0 29 2 *", "Asia/Kolkata"),
        ("0 30 6 * * 1", "Europe/London"),
    ],
)
def test_round_trip_lightning_airflow_lightning_keeps_cron_and_timezone(cron: str, tz: str) -> None:
    schedule = LightningSchedule.from_api({"cronExpression": cron, "timezone": tz, "parallelRuns": False})
    back = from_airflow(to_airflow(schedule))
    assert back == ValidatedCron(schedule.cron_expression, schedule.timezone)
    assert back.timezone == tz
    assert Cron.parse(back.expression, tz) == Cron.parse(cron, tz)


def test_parallel_runs_false_sets_max_active_runs_1() -> None:
    airflow = to_airflow(LightningSchedule(cron_expression="0 * * * *", parallel_runs=False))
    assert airflow.max_active_runs == 1
    assert airflow.dag_kwargs() == {"schedule": airflow.timetable, "max_active_runs": 1, "catchup": False}


def test_parallel_runs_true_leaves_max_active_runs_to_airflow() -> None:
    airflow = to_airflow({"cronExpression": "0 * * * *", "parallelRuns": True})
    assert airflow.max_active_runs is None
    assert airflow.dag_kwargs() == {"schedule": airflow.timetable, "catchup": False}


def test_dag_kwargs_build_a_dag_that_serialises_to_the_same_cron_trigger_timetable() -> None:
    from airflow.sdk import DAG

    try:
        from airflow.serialization.serialized_objects import DagSerialization
    except ImportError:  # Airflow 3.1
        from airflow.serialization.serialized_objects import SerializedDAG as DagSerialization  # type: ignore

    airflow = to_airflow(LightningSchedule(cron_expression="0 9 * * MON-FRI", timezone="Europe/Berlin"))
    kwargs = airflow.dag_kwargs()
    dag = DAG(dag_id="lightning_schedule_mapping", schedule=kwargs.pop("schedule"), **kwargs)
    assert dag.max_active_runs == 1
    assert dag.catchup is False
    data = DagSerialization.to_dict(dag)["dag"]["timetable"]
    assert data["__type"] == "airflow.timetables.trigger.CronTriggerTimetable"
    assert data["__var"]["expression"] == "0 9 * * 1-5"
    assert data["__var"]["timezone"] == "Europe/Berlin"


def test_from_api_reads_camel_and_snake_case() -> None:
    wire = {
        "id": "sch_1",
        "cronExpression": "0 2 * * 1",
        "timezone": "Europe/Berlin",
        "parallelRuns": True,
        "displayName": "nightly",
        "resourceType": "PIPELINE",
        "resourceId": "pip_1",
        "parentResourceId": "pip_0",
        "projectId": "prj_1",
        "state": "running",
        "next": "2026-11-23T01:00:00Z",
        "total": "3",
        "userId": "u_1",
    }
    schedule = LightningSchedule.from_api(wire)
    assert (schedule.id, schedule.name, schedule.total, schedule.next_fire) == (
        "sch_1",
        "nightly",
        3,
        "2026-11-23T01:00:00Z",
    )
    assert schedule.extra == {"userId": "u_1"}
    snake = LightningSchedule.from_api(
        {
            "id": "sch_1",
            "cron_expression": "0 2 * * 1",
            "timezone": "Europe/Berlin",
            "parallel_runs": "true",
            "display_name": "nightly",
            "resource_type": "PIPELINE",
            "resource_id": "pip_1",
            "parent_resource_id": "pip_0",
            "project_id": "prj_1",
            "state": "running",
            "next": "2026-11-23T01:00:00Z",
            "total": 3,
        }
    )
    assert snake == schedule


def test_from_api_defaults_timezone_to_utc_and_parallel_runs_to_false() -> None:
    schedule = LightningSchedule.from_api({"cronExpression": "@hourly", "timezone": ""})
    assert (schedule.cron_expression, schedule.timezone, schedule.parallel_runs) == ("0 * * * *", "UTC", False)


def test_to_api_body_is_the_create_body() -> None:
    schedule = LightningSchedule(
        cron_expression="0 6 * * *",
        timezone="Europe/Berlin",
        parallel_runs=False,
        name="studio nightly",
        resource_type="CLOUDSPACE_STUDIO",
        resource_id="cs_1",
        action_type="START",
        command="python train.py",
        id="sch_9",
        state="running",
    )
    assert schedule.to_api_body() == {
        "cronExpression": "0 6 * * *",
        "timezone": "Europe/Berlin",
        "parallelRuns": False,
        "displayName": "studio nightly",
        "resourceType": "CLOUDSPACE_STUDIO",
        "resourceId": "cs_1",
        "actionType": "START",
        "command": "python train.py",
    }


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        ({"timezone": "UTC"}, "no cronExpression"),
        ({"cronExpression": "0 0 * * *", "parallelRuns": "maybe"}, "parallelRuns"),
        ({"cronExpression": "0 0 * * *", "resourceType": "VM"}, "resource_type"),
        ({"cronExpression": "0 0 * * *", "actionType": "RESTART"}, "action_type"),
        ({"cronExpression": "0 0 * * *", "total": "many"}, "total"),
    ],
)
def test_from_api_rejects_bad_fields_by_name(wire: dict[str, object], message: str) -> None:
    with pytest.raises(ScheduleError, match=message):
        LightningSchedule.from_api(wire)


# --------------------------------------------------------------------------- examples: errors
def test_invalid_cron_error_names_the_argument_and_field() -> None:
    with pytest.raises(InvalidCronError, match=r"cron_expression '61 \* \* \* \*' is invalid: minute field"):
        LightningSchedule(cron_expression="61 * * * *")
    with pytest.raises(InvalidCronError, match="day-of-week field"):
        validate_cron("0 0 * * 9")
    with pytest.raises(InvalidCronError, match="schedule '0 0 \\* \\*' is invalid"):
        from_airflow("0 0 * *")


def test_unknown_timezone_error_suggests_close_iana_names() -> None:
    with pytest.raises(UnknownTimezoneError, match="timezone 'Europe/Berln'.*did you mean 'Europe/Berlin'"):
        LightningSchedule(cron_expression="0 0 * * *", timezone="Europe/Berln")
    with pytest.raises(UnknownTimezoneError, match="did you mean 'America/New_York'"):
        validate_cron("0 0 * * *", "New York")
    with pytest.raises(UnknownTimezoneError, match="did you mean 'UTC'"):
        validate_cron("0 0 * * *", "utc")


def test_six_fields_with_non_zero_seconds_are_rejected() -> None:
    with pytest.raises(InvalidCronError, match="seconds field of 0"):
        validate_cron("30 0 12 * * *")
    assert validate_cron("0 0 12 * * *") == ("0 12 * * *", "UTC")


def test_every_and_reboot_are_rejected() -> None:
    with pytest.raises(InvalidCronError, match="@every"):
        validate_cron("@every 1h")
    with pytest.raises(InvalidCronError, match="@reboot"):
        to_airflow({"cronExpression": "@reboot"})


def test_gap_hour_in_berlin_is_rejected_naming_the_transition() -> None:
    with pytest.raises(DSTAmbiguityError) as info:
        validate_cron("30 2 * * *", "Europe/Berlin", since=SINCE_2026)
    message = str(info.value)
    assert "2026-03-29" in message and "clocks jump from 02:00 to 03:00" in message
    assert "'UTC'" in message and "outside local times 02:00-03:00" in message
    assert "never shifted silently" in message


def test_fold_hour_in_new_york_is_rejected() -> None:
    with pytest.raises(DSTAmbiguityError, match="fall back from 02:00 to 01:00"):
        to_airflow(LightningSchedule(cron_expression="30 1 * * 0", timezone="America/New_York"))


def test_fixed_hours_away_from_transitions_are_accepted_in_dst_zones() -> None:
    assert validate_cron("0 9 * * *", "Europe/Berlin") == ("0 9 * * *", "Europe/Berlin")
    # Berlin changes on Sundays, so 02:30 on weekdays never meets a gap or fold
    assert validate_cron("30 2 * * 1-5", "Europe/Berlin") == ("30 2 * * 1-5", "Europe/Berlin")
    assert validate_cron("0 2 1 * *", "Europe/Berlin") == ("0 2 1 * *", "Europe/Berlin")


def test_hourly_cron_across_whole_hour_transitions_is_accepted_and_agrees() -> None:
    airflow = to_airflow(LightningSchedule(cron_expression="*/30 * * * *", timezone="Europe/Berlin"), since=SINCE_2026)
    after = utc(2026, 10, 24, 23, 10)  # 01:10 CEST on the fall-back night
    times = airflow_fire_times(core_timetable(airflow), after, 6)
    assert local(times, "Europe/Berlin") == [
        "2026-10-25 01:30+0200",
        "2026-10-25 02:00+0200",
        "2026-10-25 02:30+0200",
        "2026-10-25 02:00+0100",  # the repeated hour fires again
        "2026-10-25 02:30+0100",
        "2026-10-25 03:00+0100",
    ]
    assert times == Cron.parse("*/30 * * * *", "Europe/Berlin").fire_times(after, 6)


def test_hourly_cron_across_a_30_minute_transition_is_rejected() -> None:
    with pytest.raises(DSTAmbiguityError, match="would fire at 02:15 local time .* instead of the cron's 01:45"):
        validate_cron("45 * * * *", "Australia/Lord_Howe", since=SINCE_2026)


def test_hourly_cron_whose_wait_spans_a_transition_is_rejected() -> None:
    # Airflow steps hourly crons in elapsed time: started on a Sunday before the change it would
    # fire on Monday at 01:00 instead of 00:00
    with pytest.raises(DSTAmbiguityError, match="would fire at 01:00 local time on 2026-03-30"):
        validate_cron("0 * * * 1-5", "Europe/Berlin", since=SINCE_2026)
    with pytest.raises(DSTAmbiguityError, match="runs hourly"):
        validate_cron("0 * * 4 *", "Europe/Berlin")  # hourly in April; the wait spans the March change


def test_hourly_cron_on_the_transition_day_is_accepted_when_it_agrees() -> None:
    # Berlin changes on Sundays at 02:00/03:00; every hour of Sunday steps across cleanly
    assert validate_cron("0 * * * 0", "Europe/Berlin") == ("0 * * * 0", "Europe/Berlin")
    airflow = to_airflow(LightningSchedule(cron_expression="0 * * * SUN", timezone="Europe/Berlin"))
    after = utc(2026, 3, 28, 23, 30)
    expected = Cron.parse("0 * * * 0", "Europe/Berlin").fire_times(after, 30)
    assert airflow_fire_times(core_timetable(airflow), after, 30) == expected


def test_dst_check_looks_forward_from_since() -> None:
    # Sao Paulo had a midnight gap until 2019: @daily was ambiguous then, not any more
    with pytest.raises(DSTAmbiguityError, match="America/Sao_Paulo"):
        validate_cron("@daily", "America/Sao_Paulo", since=utc(2018, 1, 1))
    assert validate_cron("@daily", "America/Sao_Paulo", since=SINCE_2026) == ("0 0 * * *", "America/Sao_Paulo")


def test_zones_without_dst_accept_any_valid_cron() -> None:
    for tz in ("UTC", "Asia/Kolkata", "Etc/GMT-2"):
        assert validate_cron("30 2 * * *", tz) == ("30 2 * * *", tz)


def test_errors_are_value_errors() -> None:
    for cls in (ScheduleError, InvalidCronError, UnknownTimezoneError, DSTAmbiguityError, UnsupportedScheduleError):
        assert issubclass(cls, ValueError)


# --------------------------------------------------------------------------- examples: from_airflow
def test_from_airflow_rejects_once_and_timedelta() -> None:
    with pytest.raises(UnsupportedScheduleError, match="@once"):
        from_airflow("@once")
    with pytest.raises(UnsupportedScheduleError, match="timedelta"):
        from_airflow(timedelta(hours=1))


def test_from_airflow_rejects_other_non_cron_schedules() -> None:
    from airflow.sdk import Asset
    from dateutil.relativedelta import relativedelta

    try:
        from airflow.sdk import DeltaTriggerTimetable, MultipleCronTriggerTimetable
    except ImportError:  # Airflow 3.1: the core classes
        from airflow.timetables.trigger import DeltaTriggerTimetable, MultipleCronTriggerTimetable  # type: ignore

    cases: list[tuple[object, str]] = [
        ("@continuous", "@continuous"),
        (None, "never scheduled"),
        (relativedelta(months=1), "timedelta"),
        (DeltaTriggerTimetable(timedelta(hours=1)), "fixed interval"),
        (MultipleCronTriggerTimetable("0 1 * * *", "0 2 * * *", timezone="UTC"), "one Lightning schedule per cron"),
        (Asset("s3://bucket/key"), "asset"),
        ([Asset("s3://bucket/a"), Asset("s3://bucket/b")], "asset"),
    ]
    for schedule, message in cases:
        with pytest.raises(UnsupportedScheduleError, match=message):
            from_airflow(schedule)


@needs_sdk_timetables
def test_from_airflow_accepts_cron_timetables_from_the_sdk() -> None:
    from airflow.sdk import CronDataIntervalTimetable as SdkInterval
    from airflow.sdk import CronTriggerTimetable as SdkTrigger

    berlin = pendulum.timezone("Europe/Berlin")
    expected = ("0 6 * * 1-5", "Europe/Berlin")
    assert from_airflow(SdkTrigger("0 6 * * MON-FRI", timezone=berlin)) == expected
    assert from_airflow(SdkInterval("0 6 * * mon-fri", timezone="Europe/Berlin")) == expected


def test_from_airflow_accepts_cron_timetables_from_the_core() -> None:
    from airflow.timetables.interval import CronDataIntervalTimetable as CoreInterval
    from airflow.timetables.trigger import CronTriggerTimetable as CoreTrigger

    berlin = pendulum.timezone("Europe/Berlin")
    expected = ("0 6 * * 1-5", "Europe/Berlin")
    assert from_airflow(CoreTrigger("0 6 * * 1-5", timezone=berlin)) == expected
    assert from_airflow(CoreInterval("0 6 * * 1-5", timezone=berlin), "Europe/Berlin") == expected
    assert from_airflow(CoreTrigger("@daily", timezone=pendulum.UTC)) == ("0 0 * * *", "UTC")


def test_from_airflow_maps_whole_hour_fixed_offsets_to_etc_zones() -> None:
    from airflow.timetables.trigger import CronTriggerTimetable

    assert from_airflow(CronTriggerTimetable("0 6 * * *", timezone=pendulum.FixedTimezone(7200))) == (
        "0 6 * * *",
        "Etc/GMT-2",
    )
    with pytest.raises(UnknownTimezoneError, match="fixed offset"):
        from_airflow(CronTriggerTimetable("0 6 * * *", timezone=pendulum.FixedTimezone(19800)))


def test_from_airflow_rejects_a_conflicting_timezone_argument() -> None:
    from airflow_provider_lightning.version_compat import cron_trigger_timetable

    CronTriggerTimetable = cron_trigger_timetable()
    with pytest.raises(ScheduleError, match="timezone 'Europe/Berlin' conflicts"):
        from_airflow(CronTriggerTimetable("0 6 * * *", timezone="UTC"), "Europe/Berlin")


def test_from_airflow_applies_the_dst_rule() -> None:
    with pytest.raises(DSTAmbiguityError):
        from_airflow("30 2 * * *", "Europe/Berlin")


# --------------------------------------------------------------------------- import weight
def test_package_import_is_light() -> None:
    code = (
        "import sys, airflow_provider_lightning.schedules as s; "
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('airflow', 'pendulum', 'croniter', 'httpx')]; "
        "assert not heavy, heavy; "
        "assert 'lightning_simulator' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
