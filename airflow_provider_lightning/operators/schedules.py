"""Schedule operators: upsert a Lightning schedule from a DAG-style cron, delete it, run it now, sync a snapshot."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow_provider_lightning import DEFAULT_CONN_ID
from airflow_provider_lightning.operators.base import (
    LightningBaseOperator,
    default_deferrable,
    seconds,
)

ACTIONS = {"run": "UNSPECIFIED_ACTION", "start": "START", "stop": "STOP"}


class _ScheduleOperator(LightningBaseOperator):
    """Shared arguments: the schedule's name, teamspace and connection."""

    template_fields: Sequence[str] = ("schedule_name", "teamspace")

    def __init__(
        self,
        *,
        schedule_name: str,
        teamspace: str | None = None,
        lightning_conn_id: str = DEFAULT_CONN_ID,
        deferrable: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not schedule_name or not isinstance(schedule_name, str):
            raise ValueError("schedule_name is required")
        self.schedule_name = schedule_name
        self.teamspace = teamspace
        self.lightning_conn_id = lightning_conn_id
        self.deferrable = default_deferrable() if deferrable is None else deferrable

    def _find(self) -> dict[str, Any] | None:
        from airflow_provider_lightning.api import schedules

        hook = self._get_hook()
        return hook.run(schedules.find_schedule(hook.project_id, self.schedule_name))


class LightningScheduleOperator(_ScheduleOperator):
    """Create or update (by name) a Lightning schedule from a DAG-style cron schedule.

    The cron is checked when the DAG is parsed (syntax, time zone, and daylight-saving changes that
    would make Lightning and Airflow fire at different instants). Running the task twice with the same
    arguments changes nothing.

    :param schedule_name: name of the schedule (the upsert key).
    :param schedule: a cron expression, a preset (``@daily``) or a ``CronTriggerTimetable``.
    :param timezone: IANA time zone of a cron string (default UTC); a timetable carries its own.
    :param studio_name: the Studio the schedule acts on.
    :param command: shell command to run in the Studio (``action="run"``).
    :param action: ``"run"`` (run ``command``), ``"start"`` or ``"stop"`` the Studio.
    :param parallel_runs: allow a run to start while the previous one still runs.
    :param paused: create or leave the schedule paused (``state: stopped``).
    :param teamspace: teamspace (``owner/name``) overriding the connection's.
    :param lightning_conn_id: Airflow connection id of type ``lightning``.
    """

    template_fields: Sequence[str] = ("schedule_name", "studio_name", "command", "teamspace")

    def __init__(
        self,
        *,
        schedule: Any,
        timezone: str | None = None,
        studio_name: str,
        command: str | None = None,
        action: str = "run",
        parallel_runs: bool = False,
        paused: bool = False,
        **kwargs: Any,
    ) -> None:
        from airflow_provider_lightning.schedules import from_airflow

        super().__init__(**kwargs)
        self.cron_expression, self.timezone = from_airflow(schedule, timezone)
        if not isinstance(action, str) or action not in ACTIONS:
            raise ValueError(f"action must be one of {', '.join(ACTIONS)}, got {action!r}")
        if not studio_name:
            raise ValueError("studio_name is required: a schedule must target a Studio")
        if action == "run" and not (isinstance(command, str) and command.strip()):
            raise ValueError("command is required when action='run' (the schedule would do nothing)")
        if action != "run" and command:
            raise ValueError(f"command cannot be combined with action={action!r}")
        self.studio_name = studio_name
        self.command = command or ""
        self.action = action
        self.parallel_runs = parallel_runs
        self.paused = paused

    def execute(self, context: Any) -> Any:
        from airflow_provider_lightning.api import schedules
        from airflow_provider_lightning.schedules import LightningSchedule

        hook = self._get_hook()
        body = LightningSchedule(
            cron_expression=self.cron_expression,
            timezone=self.timezone,
            parallel_runs=self.parallel_runs,
            name=self.schedule_name,
            resource_type="CLOUDSPACE_STUDIO",
            resource_id=hook.studio_id(self.studio_name),
            action_type=ACTIONS[self.action],
            command=self.command or None,
        ).to_api_body()
        body["state"] = "stopped" if self.paused else "running"
        schedule, outcome = hook.run(schedules.upsert_schedule(hook.project_id, body))
        self.log.info("Schedule %s (%s %s) %s; next run %s", self.schedule_name, self.cron_expression,
                      self.timezone, outcome, schedule.get("next") or "-")
        return {"schedule_id": schedule.get("id"), "schedule_name": self.schedule_name, "action": outcome,
                "cron_expression": self.cron_expression, "timezone": self.timezone, "next": schedule.get("next")}


class LightningDeleteScheduleOperator(_ScheduleOperator):
    """Delete a Lightning schedule by name.

    :param schedule_name: name of the schedule.
    :param missing_ok: succeed when there is no such schedule (default True: deleting is idempotent).
    """

    def __init__(self, *, missing_ok: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.missing_ok = missing_ok

    def execute(self, context: Any) -> Any:
        from airflow.sdk.exceptions import AirflowException

        from airflow_provider_lightning.api import schedules

        schedule = self._find()
        if schedule is None:
            if not self.missing_ok:
                raise AirflowException(f"no Lightning schedule named {self.schedule_name!r}")
            self.log.info("No schedule named %s: nothing to delete", self.schedule_name)
            return None
        hook = self._get_hook()
        hook.run(schedules.delete_schedule(hook.project_id, schedule["id"]))
        self.log.info("Deleted schedule %s (%s)", self.schedule_name, schedule["id"])
        return {"schedule_id": schedule["id"], "deleted": True}


class LightningTriggerScheduleRunOperator(_ScheduleOperator):
    """Run a Lightning schedule now and (optionally) wait for the run, streaming its output.

    :param schedule_name: name of the schedule.
    :param wait_for_completion: wait until the run ends; fail when it fails.
    :param poll_interval: seconds between two reads of the run.
    :param timeout: limit (seconds or timedelta) on the wait.
    """

    def __init__(
        self,
        *,
        wait_for_completion: bool = True,
        poll_interval: float | timedelta = 5.0,
        timeout: float | timedelta | None = timedelta(hours=6),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.wait_for_completion = wait_for_completion
        self.poll_interval = seconds(poll_interval, "poll_interval", allow_none=False)
        self.timeout = seconds(timeout, "timeout")

    def execute(self, context: Any) -> Any:
        from airflow.sdk.exceptions import AirflowException

        from airflow_provider_lightning.api import schedules

        schedule = self._find()
        if schedule is None:
            raise AirflowException(f"no Lightning schedule named {self.schedule_name!r}")
        hook = self._get_hook()
        resource = str(schedule.get("resourceId") or "")
        run = hook.run(schedules.trigger_run(hook.project_id, resource, schedule["id"]))
        self.log.info("Started run %s of schedule %s", run.id, self.schedule_name)
        if not self.wait_for_completion:
            return {"run_id": run.id, "state": run.raw_state}
        trigger = self.phase_trigger(
            schedules.SCHEDULE_RUN.name, schedules.run_id(resource, schedule["id"], run.id), ["completed"],
            self.timeout, resource_name=self.schedule_name,
        )
        return self.wait(context, trigger)

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> Any:
        """Resume after the run: its id and state, or fail with the run's output tail."""
        from airflow.sdk.exceptions import AirflowException

        event = event or {}
        resource = event.get("resource") or {}
        if event.get("status") == "success":
            return {"run_id": resource.get("id"), "state": resource.get("raw_state")}
        tail = "\n".join(f"    {line}" for line in event.get("log_tail") or [])
        output = f"\nOutput:\n{tail}" if tail else ""
        raise AirflowException(f"{event.get('message', 'schedule run failed')}{output}")


class LightningSyncSchedulesOperator(LightningBaseOperator):
    """Write the teamspace's schedules to a snapshot file that ``dags_from_snapshot`` turns into DAGs.

    DAG files then make no network call while parsed. With ``pause``, the Lightning-side schedules are
    paused so they do not fire twice; ``python -m airflow_provider_lightning.schedules restore`` resumes them.

    :param output_path: where to write the snapshot (JSON).
    :param pause: pause the Lightning-side schedules that are running.
    :param teamspace: teamspace (``owner/name``) overriding the connection's.
    :param lightning_conn_id: Airflow connection id of type ``lightning``.
    """

    template_fields: Sequence[str] = ("output_path", "teamspace")

    def __init__(
        self,
        *,
        output_path: str,
        pause: bool = False,
        teamspace: str | None = None,
        lightning_conn_id: str = DEFAULT_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.output_path = output_path
        self.pause = pause
        self.teamspace = teamspace
        self.lightning_conn_id = lightning_conn_id
        self.deferrable = False

    def execute(self, context: Any) -> Any:
        from airflow_provider_lightning.schedules.factory import sync_snapshot

        snapshot = sync_snapshot(self._get_hook(), self.output_path, pause=self.pause)
        self.log.info("Wrote %d schedules to %s", len(snapshot["schedules"]), self.output_path)
        return {"path": self.output_path, "schedules": len(snapshot["schedules"])}
