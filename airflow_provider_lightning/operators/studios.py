"""Studio operators: start, stop, and run a command in a Studio (all deferrable).

There is no switch-machine operator: the API's switch is two waits (the requested machine restores,
then a confirm, then the Studio comes back), so stop the Studio and start it on the new machine instead.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow_provider_lightning import DEFAULT_CONN_ID
from airflow_provider_lightning.operators.base import (
    LightningBaseOperator,
    default_deferrable,
    seconds,
)

NEW_INSTANCE_WAIT = 60.0  # seconds to see the instance a start request created (before deferring)


class LightningStudioBaseOperator(LightningBaseOperator):
    """What the Studio operators share: the Studio lookup, starting it, and waiting on its phase.

    :param studio_name: name of the Studio in the teamspace.
    :param teamspace: teamspace (``owner/name``) overriding the connection's.
    :param lightning_conn_id: Airflow connection id of type ``lightning``.
    :param deferrable: wait in the triggerer (default ``[operators] default_deferrable``).
    :param poll_interval: seconds between two status reads while waiting.
    :param timeout: limit (seconds or timedelta) on the wait; None waits forever.
    """

    template_fields: Sequence[str] = ("studio_name", "teamspace")

    def __init__(
        self,
        *,
        studio_name: str,
        teamspace: str | None = None,
        lightning_conn_id: str = DEFAULT_CONN_ID,
        deferrable: bool | None = None,
        poll_interval: float | timedelta = 5.0,
        timeout: float | timedelta | None = timedelta(minutes=30),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not studio_name:
            raise ValueError("studio_name is required")
        self.studio_name = studio_name
        self.teamspace = teamspace
        self.lightning_conn_id = lightning_conn_id
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self.poll_interval = seconds(poll_interval, "poll_interval", allow_none=False)
        self.timeout = seconds(timeout, "timeout")
        self._started_id = ""  # the Studio this task started (stopped again when the task is killed)

    def on_kill(self) -> None:
        """Stop the Studio if this task started it (blocking mode; a deferred task's trigger does it)."""
        if not self._started_id:
            return
        from airflow_provider_lightning.api import studios

        hook = self._get_hook()
        try:
            hook.run(studios.stop(hook.project_id, self._started_id))
            self.log.warning("Task killed: stopping Studio %s, which this task started", self.studio_name)
        except Exception as error:
            self.log.error("Could not stop Studio %s: %s", self.studio_name, error)

    def _studio(self) -> tuple[str, Any]:
        """The Studio's id and current state; LightningConfigError names a Studio that does not exist."""
        from airflow_provider_lightning.api.studios import STUDIO

        hook = self._get_hook()
        studio_id = hook.studio_id(self.studio_name)
        return studio_id, hook.get(STUDIO, studio_id)

    def _start(self, studio_id: str, state: Any, machine: str, interruptible: bool, max_runtime: int | None) -> bool:
        """Start the Studio on ``machine`` unless it already runs there; True when this call started it."""
        from airflow.sdk.exceptions import AirflowException

        from airflow_provider_lightning.api import studios
        from airflow_provider_lightning.api.phases import Phase

        hook = self._get_hook()
        if state.phase in (Phase.RUNNING, Phase.PENDING):
            current = studios.machine_of(state)
            if current and current != machine:
                raise AirflowException(
                    f"Studio {self.studio_name} is {state.phase.value} on {current}, not {machine}; stop it first "
                    "(LightningStudioStopOperator), then start it on the new machine"
                )
            self.log.info("Studio %s is already %s on %s", self.studio_name, state.phase.value, current or machine)
            return False
        if state.phase is Phase.STOPPING:
            raise AirflowException(f"Studio {self.studio_name} is stopping; start it again once it has stopped")
        old = studios.instance_id(state)
        hook.run(studios.start(hook.project_id, studio_id, machine, interruptible, max_runtime))
        self.log.info("Starting Studio %s on %s", self.studio_name, machine)
        deadline = time.monotonic() + NEW_INSTANCE_WAIT
        while time.monotonic() < deadline:  # the SDK's rule: wait for the new instance, ignore the old one
            state = hook.get(studios.STUDIO, studio_id)
            if studios.instance_id(state) not in ("", old):
                self._started_id = studio_id
                return True
            time.sleep(min(1.0, self.poll_interval or 1.0))
        raise AirflowException(f"Studio {self.studio_name} did not get a new instance within {NEW_INSTANCE_WAIT:.0f} s")

    def _trigger(self, resource_id: str, target: str, *, kind: str = "studio", stop_on_kill: bool = False,
                 stream_logs: bool = False) -> Any:
        return self.phase_trigger(
            kind, resource_id, [target], self.timeout,
            stream_logs=stream_logs,
            stop_on_kill=stop_on_kill,
            resource_name=self.studio_name,
        )

    def _phase_reached(self, event: Any, what: str) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowException

        if not isinstance(event, dict) or event.get("status") != "success":
            message = event.get("message", "") if isinstance(event, dict) else repr(event)
            raise AirflowException(f"Studio {self.studio_name} {what}: {message}")
        resource = event.get("resource") or {}
        self.log.info("Studio %s is %s", self.studio_name, resource.get("phase"))
        return {"studio_name": self.studio_name, "studio_id": event.get("resource_id"), "phase": resource.get("phase")}


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

    def execute(self, context: Any) -> Any:
        studio_id, state = self._studio()
        started = self._start(studio_id, state, self.machine, self.interruptible, self.max_runtime_seconds)
        trigger = self._trigger(studio_id, "running", stop_on_kill=started)
        if not self.wait_for_running:
            return {"studio_name": self.studio_name, "studio_id": studio_id, "phase": state.phase.value}
        return self.wait(context, trigger)

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> Any:
        """Resume after the wait: the Studio's summary, or fail with the instance's status message."""
        return self._phase_reached(event, "did not start")


class LightningStudioStopOperator(LightningStudioBaseOperator):
    """Stop a Studio and wait until it has stopped.

    :param wait_for_stopped: wait until the Studio has stopped (otherwise return after the stop request).
    """

    def __init__(self, *, wait_for_stopped: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.wait_for_stopped = wait_for_stopped

    def execute(self, context: Any) -> Any:
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
        return self.wait(context, self._trigger(studio_id, "stopped"))

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> Any:
        """Resume after the wait: the Studio's summary, or fail with the reason."""
        return self._phase_reached(event, "did not stop")


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

    template_fields: Sequence[str] = ("studio_name", "teamspace", "command")
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

    def execute(self, context: Any) -> Any:
        from airflow.sdk.exceptions import AirflowException

        from airflow_provider_lightning.api.phases import Phase

        studio_id, state = self._studio()
        started = False
        if state.phase is not Phase.RUNNING:
            if not self.start_studio and state.phase is not Phase.PENDING:
                raise AirflowException(
                    f"Studio {self.studio_name} is {state.phase.value}; start it first (LightningStudioStartOperator) "
                    "or pass start_studio=True"
                )
            started = self._start(studio_id, state, self.machine, False, None)
            trigger = self._trigger(studio_id, "running", stop_on_kill=started)
            return self.wait(context, trigger, "run_command", started=started)
        return self.run_command(context, None, started=started)

    def run_command(self, context: Any, event: dict[str, Any] | None = None, started: bool = False) -> Any:
        """Run the command detached (after the Studio runs) and wait for its exit code."""
        from airflow_provider_lightning.api import studios

        if event is not None:
            try:
                self._phase_reached(event, "did not start")
            except Exception:
                self._stop_if_started(started)
                raise
        hook = self._get_hook()
        studio_id = hook.studio_id(self.studio_name)
        session = hook.run(studios.execute(hook.project_id, studio_id, self.command))
        self.log.info("Running in Studio %s (session %s): %s", self.studio_name, session, self.command)
        trigger = self._trigger(studios.command_id(studio_id, session), "completed", kind=studios.STUDIO_COMMAND.name,
                                stop_on_kill=started and self.stop_studio, stream_logs=self.stream_logs)
        trigger.log_tail_lines = self.output_tail_lines
        return self.wait(context, trigger, started=started)

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None, started: bool = False) -> Any:
        """Resume after the command: its exit code and output, or fail with the code and the output tail."""
        from airflow.sdk.exceptions import AirflowException

        self._stop_if_started(started)
        resource = (event or {}).get("resource") or {}
        if (event or {}).get("status") == "success":
            self.log.info("Command finished in Studio %s with exit code 0", self.studio_name)
            return {"studio_name": self.studio_name, "exit_code": 0}
        tail = "\n".join(f"    {line}" for line in (event or {}).get("log_tail") or [])
        reason = resource.get("message") or (event or {}).get("message", "")
        raise AirflowException(
            f"Command failed in Studio {self.studio_name}: {reason}" + (f"\nLast output lines:\n{tail}" if tail else "")
        )

    def _stop_if_started(self, started: bool) -> None:
        if not (started and self.stop_studio):
            return
        from airflow_provider_lightning.api import studios

        hook = self._get_hook()
        try:
            hook.run(studios.stop(hook.project_id, hook.studio_id(self.studio_name)))
            self.log.info("Stopping Studio %s, which this task started", self.studio_name)
        except Exception as error:  # never mask the command's own outcome
            self.log.error("Could not stop Studio %s: %s", self.studio_name, error)
