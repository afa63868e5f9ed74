"""Studio operators: start, stop, and run a command in a Studio (all deferrable).

There is no switch-machine operator: the API's switch is two waits (the requested machine restores,
then a confirm, then the Studio comes back), so stop the Studio and start it on the new machine instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow_provider_lightning.operators.base import LightningBaseOperator, seconds

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_lightning.triggers.contract import WaitEvent, WaitSpec



class LightningStudioBaseOperator(LightningBaseOperator):
    """What the Studio operators share: the Studio lookup, starting it, and waiting on its phase.

    :param studio_name: name of the Studio in the teamspace.
    :param timeout: limit (seconds or timedelta) on the wait (default 30 minutes); None waits forever.

    Also takes the shared arguments (``lightning_conn_id``, ``teamspace``, ``deferrable``, ``poll_interval``,
    default 5 s) of :class:`~airflow_provider_lightning.operators.base.LightningBaseOperator`.
    """

    template_fields: Sequence[str] = (*LightningBaseOperator.template_fields, "studio_name")
    failure_verb = "did not start"  # what a failed wait means, for the error message
    default_poll_interval = 5.0
    default_timeout = timedelta(minutes=30)

    def __init__(self, *, studio_name: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not studio_name:
            raise ValueError("studio_name is required")
        self.studio_name = studio_name

    def _studio(self) -> tuple[str, Any]:
        """The Studio's id and current state; LightningConfigError names a Studio that does not exist."""
        from airflow_provider_lightning.api.studios import STUDIO

        hook = self._get_hook()
        studio_id = hook.studio_id(self.studio_name)
        return studio_id, hook.get(STUDIO, studio_id)

    def _start(self, studio_id: str, state: Any, machine: str, interruptible: bool, max_runtime: int | None) -> bool:
        """Start the Studio on ``machine`` unless it already runs there (the hook's rule); True when this task
        started it, and from the start request on a kill stops it."""
        from airflow.providers.common.compat.sdk import AirflowException

        from airflow_provider_lightning.api.errors import LightningConfigError

        def owned() -> None:
            self._owned = self._studio_spec(studio_id, "running", started=True)

        try:
            _, started = self._get_hook().ensure_studio_started(
                studio_id, state, name=self.studio_name, machine=machine, interruptible=interruptible,
                max_runtime=max_runtime, on_requested=owned,
            )
        except LightningConfigError as error:
            raise AirflowException(str(error)) from None
        return started

    def _studio_spec(self, studio_id: str, target: str, *, started: bool = False) -> WaitSpec:
        """A wait on the Studio's phase; a Studio this task started is owned (stopped on kill or failure)."""
        return self.wait_spec("studio", studio_id, [target], stream_logs=False, resource_name=self.studio_name,
                              owns=self.owns_for(started=started), results={"started": started})

    def describe_failure(self, event: WaitEvent) -> str:
        return f"Studio {self.studio_name} {self.failure_verb}"

    def complete(self, context: Context, event: WaitEvent) -> dict[str, Any]:
        """The Studio's summary."""
        phase = event.phase.value if event.phase else ""
        self.log.info("Studio %s is %s", self.studio_name, phase)
        return {"studio_name": self.studio_name, "studio_id": event.resource_id, "phase": phase}


class LightningStudioStartOperator(LightningStudioBaseOperator):
    """Start a Studio on a machine and wait until it runs (files restored), without holding a worker.

    A Studio already running on that machine is left alone; one running on another machine is an error.

    :param machine: machine name (``"CPU"``, ``"L4"``, ``"A100"``) or slug.
    :param interruptible: run on an interruptible (spot) machine.
    :param max_runtime: stop the Studio after this long (seconds or timedelta).
    :param wait_for_running: wait until the Studio runs (otherwise return after the start request).
    """

    def __init__(
        self,
        *,
        machine: str = "CPU",
        interruptible: bool = False,
        max_runtime: float | timedelta | None = None,
        wait_for_running: bool = True,
        **kwargs: Any,
    ) -> None:
        from airflow_provider_lightning.api.machines import resolve_machine

        super().__init__(**kwargs)
        self.machine = resolve_machine(machine)
        self.interruptible = interruptible
        runtime = seconds(max_runtime, "max_runtime")
        self.max_runtime_seconds = None if runtime is None else int(runtime)
        self.wait_for_running = wait_for_running

    def execute(self, context: Context) -> Any:
        studio_id, state = self._studio()
        started = self._start(studio_id, state, self.machine, self.interruptible, self.max_runtime_seconds)
        if not self.wait_for_running:
            return {"studio_name": self.studio_name, "studio_id": studio_id, "phase": state.phase.value}
        return self.wait(context, self._studio_spec(studio_id, "running", started=started))


class LightningStudioStopOperator(LightningStudioBaseOperator):
    """Stop a Studio and wait until it has stopped.

    :param wait_for_stopped: wait until the Studio has stopped (otherwise return after the stop request).
    """

    def __init__(self, *, wait_for_stopped: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.wait_for_stopped = wait_for_stopped

    failure_verb = "did not stop"

    def execute(self, context: Context) -> Any:
        from airflow_provider_lightning.api import studios
        from airflow_provider_lightning.api.phases import Phase

        studio_id, state = self._studio()
        if state.phase is Phase.STOPPED:
            self.log.info("Studio %s is already stopped", self.studio_name)
            return {"studio_name": self.studio_name, "studio_id": studio_id, "phase": state.phase.value}
        self._get_hook().run(studios.stop(self._get_hook().project_id, studio_id))
        self.log.info("Stopping Studio %s", self.studio_name)
        if not self.wait_for_stopped:
            return {"studio_name": self.studio_name, "studio_id": studio_id, "phase": Phase.STOPPING.value}
        return self.wait(context, self._studio_spec(studio_id, "stopped"))


class LightningStudioCommandOperator(LightningStudioBaseOperator):
    """Run a shell command in a Studio, stream its output into the task log, fail on a non-zero exit code.

    The command runs detached (the long-running way), so a deferrable task waits in the triggerer.
    Files the command writes stay in the Studio for the next command.

    :param command: shell command to run in the Studio's home folder.
    :param start_studio: start the Studio first when it is not running (on ``machine``).
    :param machine: machine to start the Studio on when ``start_studio`` is set.
    :param stop_studio: stop the Studio afterwards (success or failure) when this task started it.
    :param stream_logs: copy the command's output into the task log while it runs.
    :param output_tail_lines: how many last output lines a failure message shows.
    """

    template_fields: Sequence[str] = (*LightningStudioBaseOperator.template_fields, "command")
    tail_label = "output lines"
    template_fields_renderers = {"command": "bash"}

    def __init__(
        self,
        *,
        command: str,
        start_studio: bool = False,
        machine: str = "CPU",
        stop_studio: bool = False,
        stream_logs: bool = True,
        output_tail_lines: int = 20,
        poll_interval: float | timedelta = 2.0,
        **kwargs: Any,
    ) -> None:
        from airflow_provider_lightning.api.machines import resolve_machine

        super().__init__(poll_interval=poll_interval, **kwargs)
        if not isinstance(command, str) or not command.strip():
            raise ValueError("command must be a non-empty shell command")
        self.command = command
        self.start_studio = start_studio
        self.machine = resolve_machine(machine)
        self.stop_studio = stop_studio
        self.stream_logs = stream_logs
        self.output_tail_lines = output_tail_lines

    def execute(self, context: Context) -> Any:
        from airflow.providers.common.compat.sdk import AirflowException

        from airflow_provider_lightning.api.phases import Phase

        studio_id, state = self._studio()
        if state.phase is Phase.RUNNING:
            return self._run_command(context, studio_id, started=False)
        if not self.start_studio and state.phase is not Phase.PENDING:
            raise AirflowException(
                f"Studio {self.studio_name} is {state.phase.value}; start it first (LightningStudioStartOperator) "
                "or pass start_studio=True"
            )
        started = self._start(studio_id, state, self.machine, False, None)
        return self.wait(context, self._studio_spec(studio_id, "running", started=started), "run_command")

    def run_command(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        """Resume once the Studio runs: run the command detached and wait for its exit code."""
        from airflow_provider_lightning.triggers.contract import validate_execute_complete_event

        decoded = validate_execute_complete_event(event)
        if not decoded.succeeded:
            self.fail(decoded)  # stops a Studio this task started
        return self._run_command(context, decoded.resource_id, started=bool(decoded.results.get("started")))

    def _run_command(self, context: Context, studio_id: str, *, started: bool) -> Any:
        from airflow_provider_lightning.api import studios

        hook = self._get_hook()
        session = hook.run(studios.execute(hook.project_id, studio_id, self.command))
        self.log.info("Running in Studio %s (session %s): %s", self.studio_name, session, self.command)
        spec = self.wait_spec(
            studios.STUDIO_COMMAND.name, studios.CommandRef(studio_id, session).id, ["completed"],
            stream_logs=self.stream_logs,
            log_tail_lines=self.output_tail_lines,
            resource_name=self.studio_name,
            owns=self.owns_for(started=started and self.stop_studio),  # stopping a command stops its Studio
            results={"started": started},
        )
        return self.wait(context, spec)

    def describe_failure(self, event: WaitEvent) -> str:
        return f"Command failed in Studio {self.studio_name}" if event.kind == "studio_command" else \
            super().describe_failure(event)

    def fail(self, event: WaitEvent) -> Any:
        from dataclasses import replace

        reason = event.resource.message if event.resource is not None and event.resource.message else event.message
        return super().fail(replace(event, message=reason))

    def complete(self, context: Context, event: WaitEvent) -> dict[str, Any]:
        """The command's exit code; a Studio this task started is stopped when ``stop_studio`` is set."""
        note = self.release_owned(event)
        self.log.info("Command finished in Studio %s with exit code 0%s", self.studio_name, note)
        return {"studio_name": self.studio_name, "exit_code": 0}
