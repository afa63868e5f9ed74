"""What every "submit, then wait for a phase" operator shares: naming, validation, defer and complete."""

from __future__ import annotations

import hashlib
import math
import re
import time
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseOperator

from airflow_provider_lightning.api.names import MAX_NAME_LENGTH


def default_deferrable() -> bool:
    """``[operators] default_deferrable`` from the Airflow configuration (False when unset)."""
    from airflow.sdk import conf

    return conf.getboolean("operators", "default_deferrable", fallback=False)


def is_template(value: Any) -> bool:
    """Whether a value still holds Jinja (validated only after rendering)."""
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def seconds(value: float | int | timedelta | None, what: str, *, allow_none: bool = True) -> float | None:
    """Read a positive duration (seconds or timedelta); ValueError names the argument."""
    if value is None:
        if allow_none:
            return None
        raise ValueError(f"{what} is required")
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{what} must be a number of seconds or a timedelta, got {value!r}")
    if not math.isfinite(value):  # a NaN deadline never passes, an infinite one is not a limit
        raise ValueError(f"{what} must be a finite number of seconds, got {value!r}")
    if value <= 0:
        raise ValueError(f"{what} must be positive, got {value!r}")
    return float(value)


_BAD = re.compile(r"[^A-Za-z0-9._-]+")


def run_name(base: str, context: Any) -> str:
    """A job name unique to this task instance and stable across its tries.

    ``<base>-<8 hex>``, where the hex is a digest of dag id, task id, run id and map index: a retry
    finds the job an earlier try submitted, and two DAG runs never share a name.
    """
    ti = context["ti"]
    key = f"{ti.dag_id}\x00{ti.task_id}\x00{ti.run_id}\x00{getattr(ti, 'map_index', -1)}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:8]
    clean = _BAD.sub("-", base).strip("-._") or "airflow"
    return f"{clean[: MAX_NAME_LENGTH - 13]}-{digest}"


def try_name(name: str, try_number: int) -> str:
    """Name of the submission made by try ``try_number`` (try 1 keeps the plain name)."""
    return name if try_number <= 1 else f"{name}-t{try_number}"


def first_try_since_clear(ti: Any, retries: int | None) -> int:
    """The first try of the task instance since a user last cleared it (1 if it never was).

    Clearing sets ``max_tries`` to the tries made so far plus ``retries``; automatic retries leave it alone.
    Airflow computes the same number for sensors in reschedule mode.
    """
    max_tries = getattr(ti, "max_tries", None)
    if not isinstance(max_tries, int) or max_tries < 0:
        return 1
    return max(1, max_tries - int(retries or 0) + 1)


def deadline_after(timeout: float | None) -> float | None:
    return None if timeout is None else time.time() + timeout


class LightningBaseOperator(BaseOperator):
    """What Lightning operators share: the hook, and waiting on a trigger in the triggerer or the worker.

    Subclasses set ``lightning_conn_id``, ``teamspace`` and ``deferrable`` (see their parameters).
    """

    ui_color = "#792ee5"
    ui_fgcolor = "#ffffff"
    lightning_conn_id: str
    teamspace: str | None
    deferrable: bool
    _hook: Any = None

    def _get_hook(self) -> Any:
        """The operator's LightningHook (one per task run, so one HTTP client)."""
        if self._hook is None:
            from airflow_provider_lightning.hooks.lightning import LightningHook

            self._hook = LightningHook(self.lightning_conn_id, teamspace=self.teamspace)
        return self._hook

    def phase_trigger(self, kind: str, resource_id: str, targets: list[str], timeout: float | None,
                      **kwargs: Any) -> Any:
        """A LightningPhaseTrigger for this operator's connection, teamspace and ``poll_interval``."""
        from airflow_provider_lightning.triggers.lightning import LightningPhaseTrigger

        return LightningPhaseTrigger(
            kind=kind,
            resource_id=resource_id,
            project_id=self._get_hook().project_id,
            lightning_conn_id=self.lightning_conn_id,
            target_phases=targets,
            poll_interval=getattr(self, "poll_interval", None) or 15.0,
            deadline=deadline_after(timeout),
            **kwargs,
        )

    def wait(self, context: Any, trigger: Any, method_name: str = "execute_complete", **kwargs: Any) -> Any:
        """Wait on ``trigger``: defer when deferrable, else run the same wait here; then call ``method_name``."""
        if self.deferrable:
            self.defer(trigger=trigger, method_name=method_name, kwargs=kwargs or None)
        return getattr(self, method_name)(context, trigger.run_sync(self._get_hook().settings), **kwargs)
