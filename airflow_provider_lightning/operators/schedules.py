"""Schedule operators: upsert a Lightning schedule from a DAG-style cron, delete it, run it now, sync a snapshot."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow_provider_lightning.operators.base import LightningBaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_lightning.triggers.contract import WaitEvent

ACTIONS = {"run": "UNSPECIFIED_ACTION", "start": "START", "stop": "STOP"}


class _ScheduleOperator(LightningBaseOperator):
    """Shared arguments: the schedule's name, plus the connection and teamspace of every Lightning operator."""

    template_fields: Sequence[str] = (*LightningBaseOperator.template_fields, "schedule_name")

    def __init__(self, *, schedule_name: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not schedule_name or not isinstance(schedule_name, str):
            raise ValueError("schedule_name is required")
        self.schedule_name = schedule_name

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

    template_fields: Sequence[str] = (*_ScheduleOperator.template_fields, "studio_name", "command")

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
        self.command = command
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
        state = "stopped" if self.paused else "running"
        schedule, outcome = hook.run(schedules.upsert_schedule(hook.project_id, body, state=state))
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
        from airflow.providers.common.compat.sdk import AirflowException

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

    The Lightning API has no call that stops a run; a run ends when the Studio it runs in stops. So a killed
    or timed-out task stops that Studio only with ``stop_studio_on_kill``, and otherwise says in its log that
    the run goes on.

    :param schedule_name: name of the schedule.
    :param wait_for_completion: wait until the run ends; fail when it fails.
    :param stop_studio_on_kill: stop the schedule's Studio (ending the run) when the task is killed or times out.
    :param timeout: limit (seconds or timedelta) on the wait (default 6 hours).

    Also takes the shared arguments (``lightning_conn_id``, ``teamspace``, ``deferrable``, ``poll_interval``,
    default 5 s) of :class:`~airflow_provider_lightning.operators.base.LightningBaseOperator`.
    """

    default_poll_interval = 5.0
    default_timeout = timedelta(hours=6)

    def __init__(self, *, wait_for_completion: bool = True, stop_studio_on_kill: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.wait_for_completion = wait_for_completion
        self.stop_studio_on_kill = stop_studio_on_kill
        self._run_label = ""

    def execute(self, context: Context) -> Any:
        from airflow.providers.common.compat.sdk import AirflowException

        from airflow_provider_lightning.api import schedules
        from airflow_provider_lightning.triggers.contract import Ownership

        schedule = self._find()
        if schedule is None:
            raise AirflowException(f"no Lightning schedule named {self.schedule_name!r}")
        hook = self._get_hook()
        resource = str(schedule.get("resourceId") or "")
        run = hook.run(schedules.trigger_run(hook.project_id, resource, schedule["id"]))
        self._run_label = f"run {run.id} of schedule {self.schedule_name}"
        self.log.info("Started %s", self._run_label)
        if not self.wait_for_completion:
            return {"run_id": run.id, "state": run.raw_state}
        spec = self.wait_spec(
            schedules.SCHEDULE_RUN.name, schedules.RunRef(resource, schedule["id"], run.id).id, ["completed"],
            resource_name=self.schedule_name,
            owns=Ownership.STOP if self.stop_studio_on_kill else Ownership.NONE,
        )
        return self.wait(context, spec)

    def on_kill(self) -> None:
        """Stop the Studio the run executes in with ``stop_studio_on_kill``; otherwise say the run goes on."""
        if not self.stop_studio_on_kill and self._run_label:
            self.log.warning("Task killed: the Lightning API cannot stop a schedule run, so %s goes on until its "
                             "command ends (set stop_studio_on_kill=True to stop its Studio instead)", self._run_label)
        super().on_kill()

    def describe_failure(self, event: WaitEvent) -> str:
        return f"Run of schedule {self.schedule_name} failed"

    def fail(self, event: WaitEvent) -> Any:
        if not event.owns.owned and event.status.value == "timeout":
            from dataclasses import replace

            event = replace(event, message=event.message + "; the run goes on (the API cannot stop a schedule run)")
        return super().fail(event)

    def complete(self, context: Context, event: WaitEvent) -> dict[str, Any]:
        """The run's id and state."""
        resource = event.resource
        return {"run_id": resource.id if resource else "", "state": resource.raw_state if resource else ""}


class LightningSyncSchedulesOperator(LightningBaseOperator):
    """Write the teamspace's schedules to a snapshot file that ``dags_from_snapshot`` turns into DAGs.

    DAG files then make no network call while parsed. With ``pause``, the Lightning-side schedules are
    paused so they do not fire twice; ``python -m airflow_provider_lightning.schedules restore`` resumes them.

    :param output_path: where to write the snapshot (JSON).
    :param pause: pause the Lightning-side schedules that are running.

    Also takes ``lightning_conn_id`` and ``teamspace``, see
    :class:`~airflow_provider_lightning.operators.base.LightningBaseOperator`.
    """

    template_fields: Sequence[str] = (*LightningBaseOperator.template_fields, "output_path")

    def __init__(self, *, output_path: str, pause: bool = False, deferrable: Any = None, **kwargs: Any) -> None:
        super().__init__(deferrable=False, **kwargs)  # it never waits: ``deferrable`` is accepted and ignored
        self.output_path = output_path
        self.pause = pause

    def execute(self, context: Any) -> Any:
        from airflow_provider_lightning.schedules.factory import sync_snapshot, unmappable_message

        snapshot = sync_snapshot(self._get_hook(), self.output_path, pause=self.pause)
        self.log.info("Wrote %d schedules to %s", len(snapshot["schedules"]), self.output_path)
        for item in snapshot["unmappable"]:
            self.log.warning("%s", unmappable_message(item))
        return {"path": self.output_path, "schedules": len(snapshot["schedules"]),
                "unmappable": [item["name"] for item in snapshot["unmappable"]]}
