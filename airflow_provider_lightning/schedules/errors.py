"""Exceptions (all ``ValueError`` subclasses) and the warning of :mod:`airflow_provider_lightning.schedules`."""

from __future__ import annotations

__all__ = [
    "DSTAmbiguityError",
    "InvalidCronError",
    "LightningScheduleWarning",
    "ScheduleError",
    "UnknownTimezoneError",
    "UnsupportedScheduleError",
]


class ScheduleError(ValueError):
    """A schedule that cannot be mapped between Lightning and Airflow."""


class InvalidCronError(ScheduleError):
    """The cron expression is not valid (the message names the field and the reason)."""


class UnknownTimezoneError(ScheduleError):
    """The time zone is not a known IANA name (the message suggests close names)."""


class DSTAmbiguityError(ScheduleError):
    """The cron can fire in a DST gap or fold where Airflow and Lightning are not proven to agree."""


class UnsupportedScheduleError(ScheduleError):
    """An Airflow schedule that a Lightning cron schedule cannot express (``@once``, assets, timedelta...)."""


class LightningScheduleWarning(UserWarning):
    """A Lightning schedule that cannot become an Airflow DAG, so it is skipped (the message says why).

    Emitted while a DAG file is parsed, so Airflow shows it among the file's import warnings.
    """
