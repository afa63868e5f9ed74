"""LightningJobOperator: submit a Lightning job and wait for it (deferrable)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from airflow_provider_lightning import DEFAULT_CONN_ID
from airflow_provider_lightning.links import JOB_URL_KEY, LightningJobLink
from airflow_provider_lightning.operators.base import (
    LightningBaseOperator,
    default_deferrable,
    first_try_since_clear,
    is_template,
    run_name,
    seconds,
    try_name,
)


class LightningJobOperator(LightningBaseOperator):
    """Run a Lightning AI job (a container image or a Studio snapshot) and wait until it ends.

    The job name is ``<name>-<8 hex>`` (stable for the task instance), so a retried task re-attaches
    to the job an earlier try submitted when it is still pending or running, returns when it already
    completed, and submits anew only when it failed or was stopped. A task a user *cleared* runs its job
    again: a job completed before the clear is not re-used (one still running is re-attached to).

    :param command: shell command to run; required for Studio jobs.
    :param image: container image for a container job (exclusive with ``studio``).
    :param studio: name of the Studio whose snapshot the job runs in (exclusive with ``image``).
    :param entrypoint: container entrypoint (image jobs); ``sh -c`` when a command is given.
    :param machine: machine name (``"CPU"``, ``"A100"``, ``"H100_X_8"``) or slug (``"lit-a100-1"``).
    :param name: base of the job name (default ``<dag_id>-<task_id>``).
    :param env: environment variables for the job (str to str).
    :param interruptible: use an interruptible (spot) machine.
    :param cluster_id: cloud account; default the connection's ``cluster_id``, else Lightning chooses.
    :param max_run_attempts: platform-side attempts for the job (1 = no platform retry).
    :param path_mappings: ``{"/container/path": "connection[:path]"}`` data connection mounts.
    :param tags: tag names to put on the job.
    :param image_secret_ref: teamspace secret with registry credentials (image jobs).
    :param allow_custom_machine: accept an unknown machine string as a raw cloud instance type.
    :param teamspace: teamspace (``owner/name``) overriding the connection's.
    :param lightning_conn_id: Airflow connection id of type ``lightning``.
    :param wait_for_completion: wait until the job ends (otherwise return after submission).
    :param deferrable: wait in the triggerer instead of a worker slot (default ``[operators] default_deferrable``).
    :param poll_interval: seconds between two status reads while waiting.
    :param timeout: wall-clock limit (seconds or timedelta) on the wait; when it passes the job is stopped
        and the task fails.
    :param stream_logs: copy new job log lines into the task log while waiting.
    :param log_tail_lines: how many last log lines a failure message shows.
    :param reattach: on a retry, re-attach to the job an earlier try submitted.
    :param num_machines: machines to run on; 2 or more runs a multi-machine (MMT) job
        (see ``LightningMultiMachineJobOperator``).
    """

    template_fields: Sequence[str] = (
        "command", "image", "studio", "entrypoint", "machine", "name", "env", "cluster_id",
        "path_mappings", "tags", "teamspace", "image_secret_ref",
    )
    template_fields_renderers = {"command": "bash", "env": "json", "path_mappings": "json"}
    operator_extra_links = (LightningJobLink(),)

    def __init__(
        self,
        *,
        command: str = "",
        image: str | None = None,
        studio: str | None = None,
        entrypoint: str | None = None,
        machine: str = "CPU",
        name: str | None = None,
        env: Mapping[str, str] | None = None,
        interruptible: bool = False,
        cluster_id: str = "",
        max_run_attempts: int | None = None,
        path_mappings: Mapping[str, str] | None = None,
        tags: Sequence[str] | None = None,
        image_secret_ref: str = "",
        allow_custom_machine: bool = False,
        teamspace: str | None = None,
        lightning_conn_id: str = DEFAULT_CONN_ID,
        wait_for_completion: bool = True,
        deferrable: bool | None = None,
        poll_interval: float | timedelta = 15.0,
        timeout: float | timedelta | None = None,
        stream_logs: bool = True,
        log_tail_lines: int = 20,
        reattach: bool = True,
        num_machines: int = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.num_machines = num_machines
        self.command = command
        self.image = image or ""
        self.studio = studio or ""
        self.entrypoint = entrypoint
        self.machine = machine
        self.name = name or ""
        self.env = dict(env) if isinstance(env, Mapping) else env
        self.interruptible = interruptible
        self.cluster_id = cluster_id
        self.max_run_attempts = max_run_attempts
        self.path_mappings = dict(path_mappings) if isinstance(path_mappings, Mapping) else (path_mappings or {})
        self.tags = list(tags) if isinstance(tags, (list, tuple)) else (tags or [])
        self.image_secret_ref = image_secret_ref
        self.allow_custom_machine = allow_custom_machine
        self.teamspace = teamspace
        self.lightning_conn_id = lightning_conn_id
        self.wait_for_completion = wait_for_completion
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self.poll_interval = seconds(poll_interval, "poll_interval", allow_none=False)
        self.timeout = seconds(timeout, "timeout")
        self.stream_logs = stream_logs
        self.log_tail_lines = log_tail_lines
        self.reattach = reattach
        self._job_id: str | None = None
        self._kind = "mmt" if isinstance(num_machines, int) and num_machines > 1 else "job"
        self._hook: Any = None
        self._request(check_templates=False)  # fail at parse time on what is already known

    # -- request -------------------------------------------------------------------------------

    def _request(self, *, check_templates: bool = True, name: str = "placeholder") -> Any:
        """Build the validated request; with ``check_templates=False`` Jinja values get placeholders."""
        from airflow_provider_lightning.api.jobs import JobRequest
        from airflow_provider_lightning.api.names import MAX_NAME_LENGTH, validate_name

        def value(v: Any, placeholder: Any) -> Any:
            return placeholder if not check_templates and is_template(v) else v

        env: Any = self.env
        if not check_templates and isinstance(env, Mapping):
            env = {k: value(v, "x") for k, v in env.items()}
        elif not check_templates and is_template(env):
            env = {}
        if self.name and not (not check_templates and is_template(self.name)):
            validate_name(self.name, "name")
            if len(self.name) > MAX_NAME_LENGTH - 13:
                raise ValueError(f"name {self.name!r} is longer than {MAX_NAME_LENGTH - 13} characters")
        return JobRequest(
            name=name,
            command=value(self.command, "x"),
            machine=value(self.machine, "CPU"),
            image=value(self.image, "image"),
            studio=value(self.studio, "studio"),
            entrypoint=self.entrypoint,
            env=env,
            interruptible=self.interruptible,
            cluster_id=self.cluster_id,
            max_run_attempts=self.max_run_attempts,
            path_mappings=self.path_mappings,
            tags=self.tags,
            image_secret_ref=self.image_secret_ref,
            allow_custom_machine=self.allow_custom_machine,
            num_machines=self.num_machines,
        ).validated()

    # -- execution -----------------------------------------------------------------------------

    def _attach_or_submit(self, context: Any, request: Any) -> Any:
        from airflow_provider_lightning.api.phases import Phase

        hook = self._get_hook()
        ti = context["ti"]
        try_number = int(getattr(ti, "try_number", 1) or 1)
        first_try = first_try_since_clear(ti, self.retries)
        if self.reattach:
            for earlier in range(try_number - 1, 0, -1):
                found = hook.find_job(try_name(request.name, earlier), kind=request.kind)
                if found is None:
                    continue
                if found.phase.is_active or (found.phase is Phase.COMPLETED and earlier >= first_try):
                    self.log.info(
                        "Re-attaching to job %s (%s) submitted by try %d; it is %s",
                        found.name, found.id, earlier, found.phase.value,
                    )
                    return found
                if found.phase is Phase.COMPLETED:
                    self.log.info("The job of try %d completed, but the task was cleared since (its tries start "
                                  "again at %d): submitting a new one", earlier, first_try)
                else:
                    self.log.info("The job of try %d ended %s; submitting a new one", earlier, found.phase.value)
                break
        from dataclasses import replace

        job = hook.submit_job(replace(request, name=try_name(request.name, try_number)))
        self.log.info(
            "Submitted %s %s (id %s) on %d x %s", request.kind.label, job.name, job.id, request.num_machines,
            request.machine,
        )
        return job

    def execute(self, context: Any) -> Any:

        base = self.name or f"{context['ti'].dag_id}-{context['ti'].task_id}"
        request = self._request(name=run_name(base, context))
        job = self._attach_or_submit(context, request)
        self._job_id, self._kind = job.id, request.kind.name
        url = self._get_hook().job_url(job, studio_name=request.studio)
        ti = context["ti"]
        ti.xcom_push(key="job_id", value=job.id)
        ti.xcom_push(key="job_name", value=job.name)
        ti.xcom_push(key=JOB_URL_KEY, value=url)
        self.log.info("%s page: %s", request.kind.label, url)

        if not self.wait_for_completion:
            return self._result(job, url)
        trigger = self.phase_trigger(
            request.kind.name, job.id, ["completed"], self.timeout,
            stream_logs=self.stream_logs,
            log_tail_lines=self.log_tail_lines,
            stop_on_kill=True,
            resource_name=job.name,
        )
        if job.phase.is_terminal:  # re-attached to a finished job: no need to wait
            return self.execute_complete(context, _terminal_event(job))
        return self.wait(context, trigger, url=url)

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None, url: str = "") -> Any:
        """Resume after the wait: return the job summary, or stop/raise with the job's reason."""
        from airflow.sdk.exceptions import AirflowException

        from airflow_provider_lightning.api.resources import ResourceState, kind_named
        from airflow_provider_lightning.triggers.lightning import FAILED, SUCCESS, TIMEOUT

        if not isinstance(event, dict) or event.get("status") not in (SUCCESS, FAILED, TIMEOUT, "error"):
            raise AirflowException(f"Unexpected event from the Lightning trigger: {event!r}")
        self._job_id = event.get("resource_id") or self._job_id
        self._kind = event.get("kind") or self._kind
        kind = kind_named(self._kind)
        state = ResourceState.from_json(event["resource"]) if event.get("resource") else None
        url = url or (context["ti"].xcom_pull(key=JOB_URL_KEY, task_ids=self.task_id) if context else "") or ""
        status, message = event["status"], event.get("message", "")
        if status == SUCCESS and state is not None:
            result = self._result(state, url)
            self.log.info(
                "%s %s completed in %s s (cost %s)", kind.label, state.name, result["duration_seconds"],
                result["total_cost"],
            )
            return result
        if status == TIMEOUT and self._job_id:
            message += self._stop_after_timeout(kind)
            raise AirflowException(f"Timed out after {self.timeout:.0f} s: {message}. Job page: {url}")
        tail = event.get("log_tail") or []
        details = "\n".join(f"    {line}" for line in tail)
        log_part = f"\nLast {len(tail)} log lines:\n{details}" if tail else ""
        raise AirflowException(f"{message}. Job page: {url}{log_part}")

    # Pauses between rounds of stopping a timed-out job when the API keeps failing (each round already retries
    # with the connection's max_attempts): an outage of a few seconds must not leave the job running.
    STOP_RETRY_PAUSES: tuple[float, ...] = (5.0, 15.0)

    def _stop_after_timeout(self, kind: Any) -> str:
        """Stop the job whose wait timed out; the text to add to the timeout message (never raises)."""
        import time

        import httpx

        from airflow_provider_lightning.api.errors import LightningApiError

        error: Exception | None = None
        for pause in (*self.STOP_RETRY_PAUSES, None):
            try:
                self._get_hook().stop(kind, self._job_id)
                return "; the job was stopped"
            except Exception as err:  # never mask the timeout itself
                error = err
                transient = isinstance(err, httpx.HTTPError) or (
                    isinstance(err, LightningApiError) and (err.retryable or err.status == 0)
                )
                if pause is None or not transient:
                    break
                self.log.warning("Stopping %s %s failed (%s); trying again in %.0f s", kind.label, self._job_id,
                                 err, pause)
                time.sleep(pause)
        return f"; stopping the job failed: {error}"

    def on_kill(self) -> None:
        """Stop the job this task started (non-deferrable mode; the trigger handles deferred tasks)."""
        if not self._job_id:
            return
        from airflow_provider_lightning.api.resources import kind_named

        try:
            self._get_hook().stop(kind_named(self._kind), self._job_id)
            self.log.warning("Task killed: stopped %s %s", kind_named(self._kind).label, self._job_id)
        except Exception as error:
            self.log.error("Could not stop Lightning job %s: %s", self._job_id, error)

    @staticmethod
    def _result(state: Any, url: str) -> dict[str, Any]:
        return {
            "job_id": state.id,
            "job_name": state.name,
            "phase": state.phase.value,
            "state": state.raw_state,
            "url": url,
            "created_at": state.created_at,
            "started_at": state.started_at,
            "stopped_at": state.stopped_at,
            "duration_seconds": state.duration_seconds,
            "total_cost": state.total_cost,
        }


def _terminal_event(state: Any) -> dict[str, Any]:
    from airflow_provider_lightning.triggers.lightning import FAILED, SUCCESS

    return {
        "status": SUCCESS if state.phase.is_success else FAILED,
        "kind": state.kind,
        "resource_id": state.id,
        "resource": state.to_json(),
        "message": f"{state.kind} {state.name} ended in phase {state.phase.value}: {state.message}",
        "log_tail": [],
    }
