"""Lightning cron schedules <-> Airflow DAG schedules.

Import-light (standard library only at import time): DAG files import this on every parse.

* :class:`~airflow_provider_lightning.schedules.mapping.LightningSchedule` -- the wire object
  (``from_api`` / ``to_api_body``).
* :func:`~airflow_provider_lightning.schedules.mapping.to_airflow` -- ``AirflowSchedule`` with a
  ``CronTriggerTimetable`` in the schedule's time zone and ``max_active_runs=1`` when parallel runs are
  off (``dag_kwargs()``).
* :func:`~airflow_provider_lightning.schedules.mapping.from_airflow` -- a cron string, preset or cron
  timetable to ``(cron_expression, timezone)``.
* :func:`~airflow_provider_lightning.schedules.validation.validate_cron` -- normalisation plus the checks
  both directions share (syntax, time zone, and the daylight-saving rule documented in :mod:`.validation`).
"""

from __future__ import annotations

from airflow_provider_lightning.schedules.errors import (
    DSTAmbiguityError,
    InvalidCronError,
    LightningScheduleWarning,
    ScheduleError,
    UnknownTimezoneError,
    UnsupportedScheduleError,
)
from airflow_provider_lightning.schedules.mapping import (
    AirflowSchedule,
    LightningSchedule,
    from_airflow,
    to_airflow,
)
from airflow_provider_lightning.schedules.validation import (
    DSTConflict,
    Transition,
    ValidatedCron,
    find_dst_conflicts,
    validate_cron,
)

__all__ = [
    "AirflowSchedule",
    "DSTAmbiguityError",
    "DSTConflict",
    "InvalidCronError",
    "LightningSchedule",
    "LightningScheduleWarning",
    "ScheduleError",
    "Transition",
    "UnknownTimezoneError",
    "UnsupportedScheduleError",
    "ValidatedCron",
    "find_dst_conflicts",
    "from_airflow",
    "to_airflow",
    "validate_cron",
]
