"""LightningJobOperator: submit a Lightning job and wait for it (deferrable)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_lightning.links import JOB_URL_KEY, LightningJobLink
from airflow_provider_lightning.operators.base import (
    LightningBaseOperator,
    first_try_since_clear,
    is_template,
    run_name,
    task_key,
    try_name,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_lightning.api.jobs import JobRequest
    from airflow_provider_lightning.api.state import ResourceState
    from airflow_provider_lightning.triggers.contract import WaitEvent


class LightningJobOperator(LightningBaseOperator):
    """Run a Lightning AI job (a container image or a Studio snapshot) and wait until it ends.

    The job name is ``<name>-<8 hex>`` (stable for the task instance), so a retried task re-attaches
    to the job an earlier try submitted when it is still pending or running, returns when it already
    completed, and submits anew only when it failed or was stopped. A task a user *cleared* runs its job
    again: a job completed before the clear is not re-used (one still running is re-attached to). On Airflow
    3.3+ the submitted job's id is also kept in the task state store (key ``lightning_job``), so a retry finds
    it by id even when the worker died before anything else was recorded; the name lookup is the fallback.

    :param command: shell command to run; required for Studio jobs.
    :param image: container image for a container job (exclusive with ``studio``).
    :param studio: name of the Studio whose snapshot the job runs in (exclusive with ``image``).
    :param entrypoint: container entrypoint (image jobs); ``sh -c`` when a command is given.
    :param machine: machine name (``"CPU"``, ``"A100"``, ``"H100_X_8"``) or slug (``"lit-a100-1"``).
    :param name: base of the job name (default ``<dag_id>-<task_id>``).
    :param env: environment variables for the job: str to str, or str to ``{"fromSecret": "SECRET_NAME"}``
        for a value read from a teamspace secret when the job starts (see ``LightningSetSecretOperator``); the
        wire's list form ``[{"name": ..., "value" | "fromSecret": ...}]`` is accepted too.
    :param interruptible: use an interruptible (spot) machine.
    :param cluster_id: cloud account; default the connection's ``cluster_id``, else Lightning chooses.
    :param max_run_attempts: platform-side attempts for the job (1 = no platform retry).
    :param path_mappings: ``{"/container/path": "connection[:path]"}`` data connection mounts.
    :param tags: tag names to put on the job.
    :param image_secret_ref: teamspace secret with registry credentials (image jobs).
    :param allow_custom_machine: accept an unknown machine string as a raw cloud instance type.
    :param wait_for_completion: wait until the job ends (otherwise return after submission).
    :param timeout: wall-clock limit (seconds or timedelta) on the wait; when it passes the job is stopped
        and the task fails.
    :param stream_logs: copy new job log lines into the task log while waiting.
    :param log_tail_lines: how many last log lines a failure message shows.
    :param reattach: on a retry, re-attach to the job an earlier try submitted.
    :param num_machines: machines to run on; 2 or more runs a multi-machine (MMT) job
        (see ``LightningMultiMachineJobOperator``).
    :param artifacts_destination: where an image job's artifacts persist, ``<connection type>:<connection
        name>:<path>`` (a Studio job's always go to the drive folder ``jobs/<job name>``).
    :param read_result: return the JSON the job wrote to ``$LIGHTNING_ARTIFACTS_DIR/$AIRFLOW_LIGHTNING_RESULT_FILE``
        as the task's XCom value (rank 0's for a multi-machine job); on failure it is shown in the error.
    :param max_result_bytes: the largest result accepted (default 64 KiB).

    Also takes the arguments every Lightning operator shares (``lightning_conn_id``, ``teamspace``,
    ``deferrable``, ``poll_interval``), see :class:`~airflow_provider_lightning.operators.base.LightningBaseOperator`.
    """

    template_fields: Sequence[str] = (
        *LightningBaseOperator.template_fields,
        "command", "image", "studio", "entrypoint", "machine", "name", "env", "cluster_id",
        "path_mappings", "tags", "image_secret_ref", "artifacts_destination",
    )
    template_fields_renderers = {"command": "bash", "env": "json", "path_mappings": "json"}
    operator_extra_links = (LightningJobLink(),)
    external_id_key: ClassVar[str] = "lightning_job"  # task state store key of the submitted job (Airflow 3.3+)

    def __init__(
        self,
        *,
        command: str = "",
        image: str | None = None,
        studio: str | None = None,
        entrypoint: str | None = None,
        machine: str = "CPU",
        name: str | None = None,
        env: Mapping[str, Any] | None = None,
        interruptible: bool = False,
        cluster_id: str = "",
        max_run_attempts: int | None = None,
        path_mappings: Mapping[str, str] | None = None,
        tags: Sequence[str] | None = None,
        image_secret_ref: str = "",
        allow_custom_machine: bool = False,
        wait_for_completion: bool = True,
        stream_logs: bool = True,
        log_tail_lines: int = 20,
        reattach: bool = True,
        num_machines: int = 1,
        artifacts_destination: str = "",
        read_result: bool = False,
        max_result_bytes: int = 64 * 1024,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.artifacts_destination = artifacts_destination
        self.read_result = bool(read_result)
        self.max_result_bytes = max_result_bytes
        self.num_machines = num_machines
        self.command = command
        self.image = image
        self.studio = studio
        self.entrypoint = entrypoint
        self.machine = machine
        self.name = name
        self.env = env
        self.interruptible = interruptible
        self.cluster_id = cluster_id
        self.max_run_attempts = max_run_attempts
        self.path_mappings = path_mappings
        self.tags = tags
        self.image_secret_ref = image_secret_ref
        self.allow_custom_machine = allow_custom_machine
        self.wait_for_completion = wait_for_completion
        self.stream_logs = stream_logs
        self.log_tail_lines = log_tail_lines
        self.reattach = reattach
        self._request(check_templates=False)  # fail at parse time on what is already known

    # -- request -------------------------------------------------------------------------------

    def _request(self, *, check_templates: bool = True, name: str = "placeholder") -> JobRequest:
        """Build the validated request; with ``check_templates=False`` Jinja values get placeholders.

        Template fields are stored in ``__init__`` exactly as given (Airflow renders them in place) and
        normalised only here, on the literal (parse time) or rendered (run time) values.
        """
        from airflow_provider_lightning.api.jobs import JobRequest
        from airflow_provider_lightning.api.names import MAX_NAME_LENGTH, validate_name

        def value(v: Any, placeholder: Any) -> Any:
            return placeholder if not check_templates and is_template(v) else v

        env: Any = dict(self.env) if isinstance(self.env, Mapping) else self.env
        if isinstance(env, (list, tuple)):  # the wire's [{"name", "value" | "fromSecret"}] form
            from airflow_provider_lightning.api.jobs import from_entries

            env = from_entries(env)
        if not check_templates and isinstance(env, Mapping):
            env = {
                k: {**v, "fromSecret": value(v["fromSecret"], "x")} if isinstance(v, Mapping) and "fromSecret" in v
                else value(v, "x")
                for k, v in env.items()
            }
        elif not check_templates and is_template(env):
            env = {}
        destination = value(self.artifacts_destination or "", "s3:placeholder:path")
        if self.read_result:
            from airflow_provider_lightning.api.results import RESULT_ENV, RESULT_FILE, check_max_bytes

            check_max_bytes(self.max_result_bytes)
            if not (self.studio or destination):
                raise ValueError(
                    "read_result needs the job's files to persist: run it from a Studio (studio=...) or give an image "
                    "job artifacts_destination='<connection type>:<connection name>:<path>'"
                )
            if env is None or isinstance(env, Mapping):
                env = {**(env or {}), RESULT_ENV: RESULT_FILE}
        if self.name and not (not check_templates and is_template(self.name)):
            validate_name(self.name, "name")
            if len(self.name) > MAX_NAME_LENGTH - 13:
                raise ValueError(f"name {self.name!r} is longer than {MAX_NAME_LENGTH - 13} characters")
        return JobRequest(
            name=name,
            command=value(self.command, "x"),
            machine=value(self.machine, "CPU"),
            image=value(self.image or "", "image"),
            studio=value(self.studio or "", "studio"),
            entrypoint=self.entrypoint,
            env=env,
            interruptible=self.interruptible,
            cluster_id=self.cluster_id,
            max_run_attempts=self.max_run_attempts,
            path_mappings=dict(self.path_mappings) if isinstance(self.path_mappings, Mapping)
            else (self.path_mappings or {}),
            tags=list(self.tags) if isinstance(self.tags, (list, tuple)) else (self.tags or []),
            image_secret_ref=self.image_secret_ref,
            allow_custom_machine=self.allow_custom_machine,
            num_machines=self.num_machines,
            artifacts_destination=destination,
        ).validated()

    # -- execution -----------------------------------------------------------------------------

    def _attach_or_submit(self, context: Context, request: JobRequest) -> tuple[ResourceState, bool]:
        """The job to wait on, and whether it was submitted by an earlier try (re-attached).

        A retry re-attaches to the job of the latest earlier try while it is active, or when it completed and
        the task was not cleared since; otherwise it submits a new job named for this try. The earlier job is
        found through the task state store (Airflow 3.3+), else by its try name (see ``operators.resumable``).
        """
        from dataclasses import replace

        from airflow_provider_lightning.api.phases import Phase
        from airflow_provider_lightning.operators.resumable import Submission, remember_submission

        hook = self._get_hook()
        ti = context["ti"]
        try_number = int(getattr(ti, "try_number", 1) or 1)
        earlier = self._earlier_submission(context, request, try_number) if self.reattach else None
        if earlier is not None:
            found, by_try = earlier
            first_try = first_try_since_clear(ti, self.retries)
            if found.phase.is_active or (found.phase is Phase.COMPLETED and by_try >= first_try):
                self.log.info(
                    "Re-attaching to job %s (%s) submitted by try %d; it is %s",
                    found.name, found.id, by_try, found.phase.value,
                )
                return found, True
            if found.phase is Phase.COMPLETED:
                self.log.info("The job of try %d completed, but the task was cleared since (its tries start "
                              "again at %d): submitting a new one", by_try, first_try)
            else:
                self.log.info("The job of try %d ended %s; submitting a new one", by_try, found.phase.value)
        job = hook.submit_job(replace(request, name=try_name(request.name, try_number)))
        self.log.info(
            "Submitted %s %s (id %s) on %d x %s", request.kind.label, job.name, job.id, request.num_machines,
            request.machine,
        )
        remember_submission(context, self.external_id_key, Submission(job.id, job.name, try_number))
        return job, False

    def _earlier_submission(
        self, context: Context, request: JobRequest, try_number: int
    ) -> tuple[ResourceState, int] | None:
        """The job the latest earlier try submitted and that try's number; None when there is none."""
        from dataclasses import replace

        from airflow_provider_lightning.operators.resumable import stored_submission

        hook = self._get_hook()
        stored = stored_submission(context, self.external_id_key)
        if stored is not None and stored.try_number < try_number:
            found = hook.run(replace(request.kind.get(hook.project_id, stored.id), none_if_missing=True))
            if found is not None:
                self.log.info("The task state store holds job %s (%s) of try %d", stored.name, stored.id,
                              stored.try_number)
                return found, stored.try_number
            self.log.info("Job %s of try %d (from the task state store) no longer exists; looking up by name",
                          stored.id, stored.try_number)
        for earlier in range(try_number - 1, 0, -1):
            named = hook.find_job(try_name(request.name, earlier), kind=request.kind)
            if named is not None:
                return named, earlier
        return None

    @classmethod
    def release_orphaned_work(cls, arguments: Any, context: Context) -> list[str]:
        """Stop this task instance's jobs still pending or running (see ``operators.orphans``); what was done."""
        from airflow_provider_lightning.api.jobs import JOB, MMT, job_page, mmt_list
        from airflow_provider_lightning.operators.orphans import job_name_pattern, release_listed

        if not arguments.get("wait_for_completion", True):
            return []  # the job was meant to outlive the task
        pattern = job_name_pattern(task_key(context))

        def is_mine(page: Any, resource_id: str) -> bool:
            state = page.state(resource_id)
            return state is not None and state.phase.is_active and bool(pattern.search(state.name))

        return release_listed(arguments, [
            (JOB, lambda project, token: job_page(project, "running", token, 500)),
            (JOB, lambda project, token: job_page(project, "pending", token, 500)),
            (MMT, lambda project, token: mmt_list(project)),
        ], is_mine)

    def execute(self, context: Context) -> Any:
        from airflow_provider_lightning.triggers.contract import EventStatus, Ownership

        self._page_url = ""
        ti = context["ti"]
        request = self._request(name=run_name(self.name or f"{ti.dag_id}-{ti.task_id}", context))
        job, reattached = self._attach_or_submit(context, request)
        url = self._get_hook().job_url(job, studio_name=request.studio)
        ti.xcom_push(key="job_id", value=job.id)
        ti.xcom_push(key="job_name", value=job.name)
        if request.kind.name == "job":
            ti.xcom_push(key="artifacts_path", value=self._artifacts_folder(job.name))
        self.publish_url(context, JOB_URL_KEY, url)
        self.log.info("%s page: %s", request.kind.label, url)
        spec = self.wait_spec(
            request.kind.name, job.id, ["completed"],
            stream_logs=self.stream_logs,
            log_tail_lines=self.log_tail_lines,
            log_cursor={"reattached": reattached},
            owns=Ownership.STOP,
            resource_name=job.name,
            url=url,
        )
        self._lineage_event = spec.event(EventStatus.SUCCESS, job, "submitted")  # for OpenLineage, until it ends
        if not self.wait_for_completion:
            return self._result(job, url)
        if job.phase.is_terminal:  # re-attached to a finished job: no need to wait
            status = EventStatus.SUCCESS if job.phase.is_success else EventStatus.FAILED
            message = f"{request.kind.label} {job.name} ended in phase {job.phase.value}: {job.message}"
            return self.execute_complete(context, spec.event(status, job, message).to_payload())
        return self.wait(context, spec)

    def complete(self, context: Context, event: WaitEvent) -> dict[str, Any]:
        """The job summary (what the task returns)."""
        from airflow_provider_lightning.api.registry import kind_named

        self._lineage_event = event  # what get_openlineage_facets_on_complete reports
        state = event.resource
        if state is None:
            from airflow.providers.common.compat.sdk import AirflowException

            raise AirflowException(f"The Lightning trigger reported success without the job's state: {event!r}")
        result = self._result(state, event.url)
        self.log.info("%s %s completed in %s s (cost %s)", kind_named(event.kind).label, state.name,
                      result["duration_seconds"], result["total_cost"])
        result["artifacts_path"] = self._artifacts_path(event)
        if not self.read_result:
            return result
        from airflow.providers.common.compat.sdk import AirflowException

        from airflow_provider_lightning.api.results import RESULT_FILE

        found, value = self._get_hook().read_job_result(event.resource_id, kind=event.kind,
                                                        max_bytes=self.max_result_bytes)
        if not found:
            raise AirflowException(
                f"{kind_named(event.kind).label} {state.name} completed without writing a result: read_result=True "
                f"expects JSON in $LIGHTNING_ARTIFACTS_DIR/{RESULT_FILE} (see $AIRFLOW_LIGHTNING_RESULT_FILE). "
                f"Job page: {event.url}"
            )
        self.log.info("Result of %s: %s", state.name, _short(value))
        return value

    def fail(self, event: WaitEvent) -> Any:
        self._lineage_event = event  # what get_openlineage_facets_on_failure reports
        if self.read_result and event.resource_id:
            from dataclasses import replace

            event = replace(event, message=event.message + self._failure_result(event))
        return super().fail(event)

    def _failure_result(self, event: WaitEvent) -> str:
        """The result a failed job wrote (a ``@task.lightning`` function's remote traceback), for the error."""
        from airflow_provider_lightning.api.results import describe_error

        try:
            found, value = self._get_hook().read_job_result(event.resource_id, kind=event.kind,
                                                            max_bytes=self.max_result_bytes)
        except Exception as error:  # the job's own failure is what matters; say why there is no result
            self.log.warning("Could not read the failed job's result: %s", error)
            return ""
        if not found:
            return ""
        remote = describe_error(value)
        return f"\n{remote}\n" if remote else f"; result written by the job: {_short(value)}"

    def _artifacts_folder(self, job_name: str) -> str | None:
        from airflow_provider_lightning.api.drive import artifacts_folder

        return artifacts_folder(job_name, studio_job=bool(self.studio),
                                destination=self.artifacts_destination or "")

    def _artifacts_path(self, event: WaitEvent) -> str | dict[str, str | None] | None:
        """The drive folder of the job's artifacts (one per machine job name for a multi-machine job)."""
        if event.kind == "job":
            return self._artifacts_folder(event.resource_name)
        try:
            return self._get_hook().job_artifacts_folders(event.resource_id, kind=event.kind)
        except Exception as error:  # informative only: never fail a completed job for it
            self.log.warning("Could not list the machines' artifact folders: %s", error)
            return None

    # -- OpenLineage ---------------------------------------------------------------------------

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage facets of the job: a ``lightningRun`` run facet, the mounted data connections as inputs and
        a Studio job's artifact folder as output (see ``airflow_provider_lightning.openlineage``).

        Returns an ``OperatorLineage``; None before a job was submitted or without the OpenLineage provider.
        """
        from airflow_provider_lightning.openlineage import job_lineage

        return job_lineage(self, task_instance)

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Any:
        """The same facets for a failed task, with the job's last known phase."""
        return self.get_openlineage_facets_on_complete(task_instance)

    @staticmethod
    def _result(state: ResourceState, url: str) -> dict[str, Any]:
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


def _short(value: Any, limit: int = 500) -> str:
    import json

    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[:limit] + "..."

