"""Map Lightning schedules to Airflow DAG schedules and back.

Lightning side: a schedule (``/v1/projects/{projectId}/schedules``, reference section 9 and
appendix A.7) has ``cronExpression``, ``timezone`` (IANA), ``parallelRuns``, ``displayName``,
``resourceType``, ``resourceId``, ``actionType`` and ``command``.

Airflow side: a ``CronTriggerTimetable`` (fires at the cron instants, like POSIX cron; not the
data-interval timetable, which fires one interval late) in the schedule's time zone, plus
``max_active_runs=1`` when parallel runs are off.

From Airflow 3.2 on ``airflow.sdk.CronTriggerTimetable`` (module
``airflow.sdk.definitions.timetables.trigger``) is the DAG-authoring class; on serialisation it
becomes the scheduler's ``airflow.timetables.trigger.CronTriggerTimetable`` with the same
expression and time zone, which is what computes the runs. :func:`to_airflow` returns the SDK
class (the core class on Airflow 3.1, which has no SDK timetables); :func:`from_airflow` accepts both.

Both directions go through :func:`~airflow_provider_lightning.schedules.validation.validate_cron`,
so both sides see the same normalised 5-field expression, and schedules whose fire times could
differ around DST changes are rejected (see that module for the rule).

Import-light: nothing from Airflow or pendulum is imported until :func:`to_airflow` is called
or :func:`from_airflow` is given an Airflow object.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from airflow_provider_lightning.schedules.errors import ScheduleError, UnknownTimezoneError, UnsupportedScheduleError
from airflow_provider_lightning.schedules.validation import (
    DEFAULT_HORIZON_YEARS,
    ValidatedCron,
    check_timezone,
    parse_cron,
    validate_cron,
)

__all__ = [
    "ACTION_TYPES",
    "AIRFLOW_PRESETS",
    "RESOURCE_TYPES",
    "AirflowSchedule",
    "LightningSchedule",
    "from_airflow",
    "to_airflow",
]

RESOURCE_TYPES = ("UNSPECIFIED", "PIPELINE", "CLOUDSPACE_STUDIO", "KUBERNETES_JOB")
ACTION_TYPES = ("UNSPECIFIED_ACTION", "START", "STOP")

#: Airflow's cron presets (``airflow.utils.dates.cron_presets`` / SDK ``CRON_PRESETS``) that are
#: not also Lightning aliases.
AIRFLOW_PRESETS = {"@quarterly": "0 0 1 */3 *"}
_NON_CRON_PRESETS = {
    "@once": "runs exactly once",
    "@continuous": "starts a new run as soon as the previous one finishes",
    "@none": "is never scheduled",
}


def _first(data: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        if key in data and data[key] is not None:
            return data[key]
    return None


def _as_bool(value: Any, argument: str) -> bool:
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "false", "1", "0", ""}:
        return value.strip().lower() in {"true", "1"}
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ScheduleError(f"{argument} must be a boolean, got {value!r}")


def _as_str(value: Any, argument: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise ScheduleError(f"{argument} must be a string, got {type(value).__name__} {value!r}")


@dataclass(frozen=True, kw_only=True)
class LightningSchedule:
    """A Lightning schedule (the fields of ``V1Schedule`` this provider uses).

    Construction validates the cron syntax and the time zone and normalises the expression
    (``@daily`` -> ``0 0 * * *``); the DST agreement check runs in :meth:`validate`,
    :func:`to_airflow` and :func:`from_airflow` because it depends on the current date.
    """

    cron_expression: str
    timezone: str = "UTC"
    parallel_runs: bool = False
    name: str | None = None  # wire: displayName (falls back to name)
    resource_type: str | None = None  # UNSPECIFIED, PIPELINE, CLOUDSPACE_STUDIO, KUBERNETES_JOB
    resource_id: str | None = None
    parent_resource_id: str | None = None
    action_type: str | None = None  # UNSPECIFIED_ACTION, START, STOP
    command: str | None = None
    # read-only server fields
    id: str | None = None
    project_id: str | None = None
    state: str | None = None
    next_fire: str | None = None  # wire: next (RFC3339)
    total: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        tz = check_timezone(self.timezone)
        cron = parse_cron(self.cron_expression, tz)
        object.__setattr__(self, "cron_expression", cron.expression)
        object.__setattr__(self, "timezone", tz)
        if not isinstance(self.parallel_runs, bool):
            raise ScheduleError(f"parallel_runs must be a bool, got {self.parallel_runs!r}")
        if self.resource_type is not None and self.resource_type not in RESOURCE_TYPES:
            raise ScheduleError(f"resource_type {self.resource_type!r} is not one of {', '.join(RESOURCE_TYPES)}")
        if self.action_type is not None and self.action_type not in ACTION_TYPES:
            raise ScheduleError(f"action_type {self.action_type!r} is not one of {', '.join(ACTION_TYPES)}")

    # ------------------------------------------------------------------ wire format
    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> LightningSchedule:
        """Read a ``V1Schedule`` (or a create/update body); camelCase and snake_case keys both work."""
        if not isinstance(data, Mapping):
            raise ScheduleError(f"schedule must be a JSON object, got {type(data).__name__}")
        cron = _first(data, "cronExpression", "cron_expression", "cron")
        if cron is None:
            raise ScheduleError("schedule has no cronExpression")
        timezone = _first(data, "timezone", "timeZone", "time_zone")
        if timezone is None or (isinstance(timezone, str) and not timezone.strip()):
            timezone = "UTC"  # the SDK's pipeline Schedule documents UTC as the default
        total = _first(data, "total")
        try:
            total_int = int(total) if total is not None else None
        except (TypeError, ValueError):
            raise ScheduleError(f"total must be an integer, got {total!r}") from None
        known = {
            "cronExpression", "cron_expression", "cron", "timezone", "timeZone", "time_zone", "parallelRuns",
            "parallel_runs", "displayName", "display_name", "name", "resourceType", "resource_type", "resourceId",
            "resource_id", "parentResourceId", "parent_resource_id", "actionType", "action_type", "command", "id",
            "projectId", "project_id", "state", "next", "next_fire", "total",
        }  # fmt: skip
        return cls(
            cron_expression=cron,
            timezone=timezone,
            parallel_runs=_as_bool(_first(data, "parallelRuns", "parallel_runs"), "parallelRuns"),
            name=_as_str(_first(data, "displayName", "display_name", "name"), "displayName"),
            resource_type=_as_str(_first(data, "resourceType", "resource_type"), "resourceType"),
            resource_id=_as_str(_first(data, "resourceId", "resource_id"), "resourceId"),
            parent_resource_id=_as_str(_first(data, "parentResourceId", "parent_resource_id"), "parentResourceId"),
            action_type=_as_str(_first(data, "actionType", "action_type"), "actionType"),
            command=_as_str(_first(data, "command"), "command"),
            id=_as_str(_first(data, "id"), "id"),
            project_id=_as_str(_first(data, "projectId", "project_id"), "projectId"),
            state=_as_str(_first(data, "state"), "state"),
            next_fire=_as_str(_first(data, "next", "next_fire"), "next"),
            total=total_int,
            extra={k: v for k, v in data.items() if k not in known},
        )

    def to_api_body(self) -> dict[str, Any]:
        """The ``SchedulesServiceCreateScheduleBody`` / update body (unset optional fields omitted)."""
        body: dict[str, Any] = {
            "cronExpression": self.cron_expression,
            "timezone": self.timezone,
            "parallelRuns": self.parallel_runs,
        }
        optional = {
            "displayName": self.name,
            "resourceType": self.resource_type,
            "resourceId": self.resource_id,
            "parentResourceId": self.parent_resource_id,
            "actionType": self.action_type,
            "command": self.command,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        return body

    # ------------------------------------------------------------------ helpers
    def validate(self, *, since: datetime | None = None, years: int = DEFAULT_HORIZON_YEARS) -> ValidatedCron:
        """Run the full check, including DST agreement; returns ``(expression, timezone)``."""
        return validate_cron(self.cron_expression, self.timezone, since=since, years=years)


@dataclass(frozen=True)
class AirflowSchedule:
    """What a DAG needs: the timetable and ``max_active_runs`` (1 when parallel runs are off)."""

    timetable: Any  # airflow.sdk.CronTriggerTimetable
    max_active_runs: int | None
    cron_expression: str
    timezone: str

    def dag_kwargs(self) -> dict[str, Any]:
        """``schedule``, ``catchup=False`` and, when parallel runs are off, ``max_active_runs=1``.

        ``max_active_runs`` is left out when parallel runs are on, so the DAG's default
        (``[core] max_active_runs_per_dag``) applies.
        """
        kwargs: dict[str, Any] = {"schedule": self.timetable, "catchup": False}
        if self.max_active_runs is not None:
            kwargs["max_active_runs"] = self.max_active_runs
        return kwargs


def to_airflow(
    schedule: LightningSchedule | Mapping[str, Any],
    *,
    since: datetime | None = None,
    years: int = DEFAULT_HORIZON_YEARS,
) -> AirflowSchedule:
    """Map a Lightning schedule (object or wire dict) to an Airflow schedule.

    :raises ScheduleError: (``ValueError``) invalid cron, unknown time zone, or DST ambiguity.
    """
    if isinstance(schedule, Mapping):
        schedule = LightningSchedule.from_api(schedule)
    if not isinstance(schedule, LightningSchedule):
        raise ScheduleError(f"schedule must be a LightningSchedule or a V1Schedule dict, got {type(schedule).__name__}")
    expression, timezone = schedule.validate(since=since, years=years)

    import pendulum

    from airflow_provider_lightning.version_compat import cron_trigger_timetable

    timetable = cron_trigger_timetable()(expression, timezone=pendulum.timezone(timezone))
    return AirflowSchedule(
        timetable=timetable,
        max_active_runs=None if schedule.parallel_runs else 1,
        cron_expression=expression,
        timezone=timezone,
    )


# --------------------------------------------------------------------------- Airflow -> Lightning
def _loaded(module: str, name: str) -> type | None:
    mod = sys.modules.get(module)
    cls = getattr(mod, name, None) if mod is not None else None
    return cls if isinstance(cls, type) else None


def _cron_timetable_classes() -> tuple[type, ...]:
    """Airflow's cron timetable classes that are already imported (an object's class always is)."""
    found = []
    for module, name in (
        ("airflow.sdk.definitions.timetables.trigger", "CronTriggerTimetable"),
        ("airflow.sdk.definitions.timetables.interval", "CronDataIntervalTimetable"),
        ("airflow.timetables.trigger", "CronTriggerTimetable"),
        ("airflow.timetables.interval", "CronDataIntervalTimetable"),
    ):
        cls = _loaded(module, name)
        if cls is not None:
            found.append(cls)
    return tuple(found)


def _timezone_name(tz: Any) -> str:
    """An IANA name for a pendulum/zoneinfo time zone (fixed offsets become ``Etc/GMT±N``)."""
    if isinstance(tz, str):
        return tz
    offset_of = getattr(tz, "offset", None)
    name = getattr(tz, "name", None) or getattr(tz, "key", None)
    if type(tz).__name__ == "FixedTimezone" and isinstance(offset_of, int):
        if offset_of == 0:
            return "UTC"
        if offset_of % 3600 == 0 and abs(offset_of) <= 14 * 3600:
            hours = offset_of // 3600
            return f"Etc/GMT{'-' if hours > 0 else '+'}{abs(hours)}"  # POSIX sign is inverted
        raise UnknownTimezoneError(
            f"timezone: the timetable's fixed offset {name or offset_of!r} has no IANA name; use an IANA time zone"
        )
    if isinstance(name, str) and name:
        return name
    raise UnknownTimezoneError(f"timezone: cannot find the IANA name of the timetable's time zone {tz!r}")


def _reject(schedule: Any, why: str) -> UnsupportedScheduleError:
    shown = repr(schedule) if schedule is None or isinstance(schedule, (str, timedelta)) else type(schedule).__name__
    return UnsupportedScheduleError(
        f"schedule {shown} cannot be expressed as a Lightning cron schedule: {why}. "
        "Use a cron expression or a CronTriggerTimetable."
    )


def from_airflow(
    schedule: Any,
    timezone: str | None = None,
    *,
    since: datetime | None = None,
    years: int = DEFAULT_HORIZON_YEARS,
) -> ValidatedCron:
    """Map an Airflow schedule to a Lightning ``(cron_expression, timezone)``.

    :param schedule: a cron string or preset (``@daily``, ``@quarterly``...), a
        ``CronTriggerTimetable`` or ``CronDataIntervalTimetable`` (SDK or core), or an
        :class:`AirflowSchedule`.
    :param timezone: IANA name for a cron string (default ``UTC``, Airflow's default). For a
        timetable it must be omitted or equal the timetable's own time zone.
    :raises UnsupportedScheduleError: ``@once``, ``@continuous``, ``None``, timedelta/relativedelta,
        Delta/Once/Continuous/Null/Events/Multiple-cron/partition timetables, asset schedules.
    :raises ScheduleError: invalid cron, unknown time zone, or DST ambiguity (``ValueError``).
    """
    if isinstance(schedule, AirflowSchedule):
        schedule = schedule.timetable
    if schedule is None:
        raise _reject(schedule, "it is never scheduled")
    if isinstance(schedule, str):
        text = schedule.strip()
        lowered = text.lower()
        if lowered in _NON_CRON_PRESETS:
            raise _reject(schedule, f"{lowered} {_NON_CRON_PRESETS[lowered]}")
        expression = AIRFLOW_PRESETS.get(lowered, text)
        return validate_cron(
            expression, "UTC" if timezone is None else timezone, since=since, years=years, argument="schedule"
        )
    if isinstance(schedule, timedelta) or type(schedule).__name__ == "relativedelta":
        raise _reject(schedule, "timedelta schedules run at a fixed interval from the start date, not on a cron")
    classes = _cron_timetable_classes()
    if classes and type(schedule) in classes:
        own_expression: Any = getattr(schedule, "expression", None) or getattr(schedule, "_expression", None)
        tz_obj = getattr(schedule, "timezone", None)
        if tz_obj is None:
            tz_obj = getattr(schedule, "_timezone", None)
        own = _timezone_name(tz_obj) if tz_obj is not None else "UTC"
        if timezone is not None and check_timezone(timezone) != own:
            raise ScheduleError(
                f"timezone {timezone!r} conflicts with the timetable's own time zone {own!r}; "
                "pass timezone=None (or the same name)"
            )
        own_expression = AIRFLOW_PRESETS.get(str(own_expression).strip().lower(), own_expression)
        return validate_cron(own_expression, own, since=since, years=years, argument="schedule")
    name = type(schedule).__name__
    if "Asset" in name or (
        isinstance(schedule, (list, tuple, set, frozenset)) and all("Asset" in type(item).__name__ for item in schedule)
    ):
        raise _reject(schedule, "asset-triggered schedules run on data events, not on a cron")
    if name.endswith("Timetable"):
        reasons = {
            "OnceTimetable": "@once runs exactly once",
            "ContinuousTimetable": "@continuous starts a new run as soon as the previous one finishes",
            "NullTimetable": "it is never scheduled",
            "DeltaTriggerTimetable": "timedelta schedules run at a fixed interval, not on a cron",
            "DeltaDataIntervalTimetable": "timedelta schedules run at a fixed interval, not on a cron",
            "MultipleCronTriggerTimetable": "it combines several crons; create one Lightning schedule per cron",
            "CronPartitionTimetable": "partitioned timetables carry partition keys Lightning does not have",
            "EventsTimetable": "it fires at a fixed list of instants",
        }
        raise _reject(schedule, reasons.get(name, f"{name} is not a cron timetable"))
    raise _reject(schedule, f"a {name} is not a cron expression or a cron timetable")
