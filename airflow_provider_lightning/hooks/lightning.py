"""LightningHook: authenticated access to the Lightning AI REST API from Airflow."""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any, TypeVar

import httpx
from airflow.providers.common.compat.sdk import BaseHook

from airflow_provider_lightning import CONN_TYPE, DEFAULT_CONN_ID, __version__, get_provider_info
from airflow_provider_lightning.api import deployments, jobs, logs, studios, teamspaces, wire
from airflow_provider_lightning.api import secrets as secret_api
from airflow_provider_lightning.api.errors import LightningApiError, LightningConfigError
from airflow_provider_lightning.api.jobs import JOB
from airflow_provider_lightning.api.machines import resolve_machine
from airflow_provider_lightning.api.phases import Phase
from airflow_provider_lightning.api.registry import kind_named
from airflow_provider_lightning.api.resources import ResourceKind
from airflow_provider_lightning.api.state import ResourceState
from airflow_provider_lightning.api.teamspaces import Teamspace
from airflow_provider_lightning.api.transport import Operation, RetryPolicy, Transport
from airflow_provider_lightning.hooks.drive import LightningDriveMixin
from airflow_provider_lightning.hooks.settings import ConnectionSettings
from airflow_provider_lightning.triggers.contract import WaitEvent, WaitSpec

T = TypeVar("T")
M = TypeVar("M", jobs.JobRequest, deployments.DeploymentSpec)

NEW_INSTANCE_WAIT = 60.0  # seconds start_studio waits to see the instance its start request created


def _not_found_error() -> type[Exception]:
    from airflow.providers.common.compat.sdk import AirflowNotFoundException

    return AirflowNotFoundException


def _connection_type_info() -> dict[str, Any]:
    """This provider's ``connection-types`` entry in its provider info."""
    (info,) = [c for c in get_provider_info()["connection-types"] if c["connection-type"] == CONN_TYPE]
    return info


def _mask(secrets: list[str]) -> None:
    try:
        from airflow.sdk.log import mask_secret
    except ImportError:  # pragma: no cover
        return
    for secret in secrets:
        mask_secret(secret)


async def _amask(secrets: list[str]) -> None:
    """:func:`_mask` from an event loop (triggers): the blocking supervisor call must not run on the loop."""
    try:
        from airflow.sdk.log import amask_secret
    except ImportError:  # Airflow < 3.3: the blocking call, in a worker thread
        await asyncio.to_thread(_mask, secrets)
        return
    for secret in secrets:
        await amask_secret(secret)


class LightningHook(LightningDriveMixin, BaseHook):
    """Talk to the Lightning AI API through an Airflow connection of type ``lightning``.

    Login is the Lightning user id, password the API key; extras ``teamspace`` (``owner/name``) or
    ``project_id``, ``cluster_id``, ``auth_token``, ``connect_timeout``, ``read_timeout``,
    ``max_attempts``. When ``lightning_default`` does not exist the ``LIGHTNING_*`` environment
    variables that Lightning Studios set are used instead.

    :param lightning_conn_id: Airflow connection id.
    :param teamspace: teamspace (``owner/name``) overriding the connection's.
    :param http_transport: httpx transport for the sync client (tests and benchmarks only).
    :param async_http_transport: httpx transport for the async client (tests and benchmarks only).
    :param retry: retry policy of every request, instead of the connection's ``max_attempts`` with default pauses.
    """

    conn_name_attr = "lightning_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = CONN_TYPE
    hook_name = "Lightning AI"

    # -- connection form (Airflow 3.1) ---------------------------------------------------------
    # Airflow 3.2 and newer build the form from ``conn-fields`` / ``ui-field-behaviour`` in the provider info and
    # never call these; 3.1 calls them (when wtforms is installed, e.g. with the FAB provider). Both are derived
    # from the provider info, so the two forms cannot drift apart.

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """The form's extra fields for Airflow 3.1, built from the provider info's ``conn-fields``.

        A ``password``-format field becomes a PasswordField, an integer an IntegerField, anything else a
        StringField (Airflow 3.1 accepts no float field; the hook reads numbers given as text).
        """
        from flask_appbuilder.fieldwidgets import BS3PasswordFieldWidget, BS3TextFieldWidget
        from flask_babel import lazy_gettext
        from wtforms import IntegerField, PasswordField, StringField
        from wtforms.validators import Optional

        widgets: dict[str, Any] = {}
        for name, spec in _connection_type_info()["conn-fields"].items():
            schema = spec["schema"]
            types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
            if schema.get("format") == "password":
                field, widget = PasswordField, BS3PasswordFieldWidget()
            elif "integer" in types:
                field, widget = IntegerField, BS3TextFieldWidget()
            else:
                field, widget = StringField, BS3TextFieldWidget()
            widgets[name] = field(lazy_gettext(spec["label"]), validators=[Optional()], widget=widget,
                                  description=spec.get("description", ""))
        return widgets

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Hidden, relabelled and placeholder fields for Airflow 3.1: the provider info's ``ui-field-behaviour``
        with the snake_case keys Airflow 3.1 expects."""
        behaviour = _connection_type_info()["ui-field-behaviour"]
        return {
            "hidden_fields": list(behaviour["hidden-fields"]),
            "relabeling": dict(behaviour["relabeling"]),
            "placeholders": dict(behaviour["placeholders"]),
        }

    def __init__(
        self,
        lightning_conn_id: str = DEFAULT_CONN_ID,
        teamspace: str | None = None,
        *,
        http_transport: httpx.BaseTransport | None = None,
        async_http_transport: httpx.AsyncBaseTransport | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        super().__init__()
        self._retry = retry
        self.lightning_conn_id = lightning_conn_id
        self.teamspace_override = teamspace or ""
        self._http_transport = http_transport
        self._async_http_transport = async_http_transport
        self._settings: ConnectionSettings | None = None
        self._transport: Transport | None = None
        self._teamspace: Teamspace | None = None

    # -- connection ----------------------------------------------------------------------------

    def _settings_from(self, conn: Any, extra: dict[str, Any] | None, *, mask: bool = True) -> ConnectionSettings:
        if conn is None:
            settings = ConnectionSettings.from_env(self.lightning_conn_id)
            if settings is None:
                raise LightningConfigError(
                    f"the Airflow connection {self.lightning_conn_id!r} does not exist and the "
                    "LIGHTNING_USER_ID / LIGHTNING_API_KEY environment variables are not set"
                )
            self.log.info(
                "Connection %r is not defined; using the LIGHTNING_USER_ID / LIGHTNING_API_KEY / "
                "LIGHTNING_CLOUD_URL environment variables (%s)",
                self.lightning_conn_id,
                settings.base_url,
            )
        else:
            settings = ConnectionSettings.from_connection(conn, extra)
        if mask:
            _mask(settings.secrets)
        return settings

    def _missing_conn_ok(self, error: Exception) -> bool:
        return isinstance(error, _not_found_error()) and self.lightning_conn_id == DEFAULT_CONN_ID

    @property
    def settings(self) -> ConnectionSettings:
        """Connection settings, read once (sync)."""
        if self._settings is None:
            try:
                conn = self.get_connection(self.lightning_conn_id)
            except Exception as error:
                if not self._missing_conn_ok(error):
                    raise
                conn = None
            self._settings = self._settings_from(conn, None)
        return self._settings

    async def aget_settings(self) -> ConnectionSettings:
        """Connection settings, read once without blocking the event loop (triggers)."""
        if self._settings is None:
            from airflow.providers.common.compat.connection import get_async_connection

            from airflow_provider_lightning.version_compat import get_async_extra_dejson

            try:
                conn = await get_async_connection(self.lightning_conn_id, hook=self)
                extra = await get_async_extra_dejson(conn)
            except Exception as error:
                if not self._missing_conn_ok(error):
                    raise
                conn, extra = None, None
            settings = self._settings_from(conn, extra, mask=False)
            await _amask(settings.secrets)
            self._settings = settings
        return self._settings

    @property
    def user_agent(self) -> str:
        """The ``User-Agent`` header: this provider's, Airflow's and httpx's versions."""
        try:
            from airflow import __version__ as airflow_version
        except ImportError:  # pragma: no cover
            airflow_version = "unknown"
        return f"airflow-provider-lightning/{__version__} apache-airflow/{airflow_version} httpx/{httpx.__version__}"

    def _make_transport(self, settings: ConnectionSettings) -> Transport:
        return Transport(
            settings.base_url,
            {"Authorization": settings.auth_header(), "User-Agent": self.user_agent},
            conn_id=self.lightning_conn_id,
            timeout=httpx.Timeout(settings.read_timeout, connect=settings.connect_timeout),
            retry=self._retry or RetryPolicy(max_attempts=settings.max_attempts, call_timeout=settings.call_timeout),
            verify=settings.verify,
            auth_hint=settings.auth_hint(),
            http_transport=self._http_transport,
            async_http_transport=self._async_http_transport,
        )

    @property
    def transport(self) -> Transport:
        """The HTTP transport (one keep-alive client per hook, made on first use)."""
        if self._transport is None:
            self._transport = self._make_transport(self.settings)
        return self._transport

    def get_conn(self) -> Transport:
        """The transport (one keep-alive client per hook)."""
        return self.transport

    # -- running calls (the only sync/async pair) ---------------------------------------------

    def run(self, operation: Operation[T]) -> T:
        """Run an API call or flow synchronously.

        :param operation: an ``ApiCall`` or a flow (generator of calls) from ``airflow_provider_lightning.api``.
        """
        return self.transport.run(operation)

    async def arun(self, operation: Operation[T]) -> T:
        """Run an API call or flow on the event loop.

        :param operation: an ``ApiCall`` or a flow (generator of calls) from ``airflow_provider_lightning.api``.
        """
        if self._transport is None:
            self._transport = self._make_transport(await self.aget_settings())
        return await self._transport.arun(operation)

    def close(self) -> None:
        """Close the HTTP client (the hook makes a new one if it is used again)."""
        if self._transport is not None:
            self._transport.close()

    async def aclose(self) -> None:
        """Close the async HTTP client."""
        if self._transport is not None:
            await self._transport.aclose()

    def __enter__(self) -> LightningHook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- teamspace -----------------------------------------------------------------------------

    @property
    def teamspace(self) -> Teamspace:
        """The resolved teamspace (project id plus names), resolved once per hook."""
        if self._teamspace is None:
            settings = self.settings
            name = self.teamspace_override or settings.teamspace
            project_id = "" if self.teamspace_override else settings.project_id
            self._teamspace = self.run(teamspaces.resolve(name, project_id))
            self.log.debug("Teamspace %s is project %s", self._teamspace.slug, self._teamspace.project_id)
        return self._teamspace

    @property
    def project_id(self) -> str:
        """The teamspace's project id (resolved once per hook)."""
        return self.teamspace.project_id

    def test_connection(self) -> tuple[bool, str]:
        """Check the credentials (``GET /v1/auth/whoami``), then resolve the teamspace (the UI's Test button)."""
        try:
            me = self.run(teamspaces.whoami())
            who = me.get("username") or me.get("userId") or "unknown user"
            connected = f"Connected to {self.settings.base_url} as {who}"
            if not self._teamspace_configured(me):
                return True, (
                    f"{connected}; no teamspace set: operators will need teamspace='owner/name' "
                    "(or set the connection extra 'teamspace' or 'project_id')"
                )
            found = self.teamspace
        except (LightningApiError, LightningConfigError) as error:
            return False, f"Lightning connection {self.lightning_conn_id!r} failed: {error}"
        return True, f"{connected}, teamspace {found.slug} (project {found.project_id})"

    def _teamspace_configured(self, me: dict[str, Any]) -> bool:
        """Whether there is a teamspace to resolve: set on the hook or connection, or bound to a scoped key."""
        settings = self.settings
        scoped = me.get("projectId") or me.get("project_id")
        return bool(self.teamspace_override or settings.teamspace or settings.project_id or scoped)

    # -- waiting (one implementation for every kind) ------------------------------------------

    def wait(
        self,
        kind: str | ResourceKind,
        resource_id: str,
        *,
        target_phases: str | Sequence[str] = ("completed",),
        timeout: float | timedelta | None = None,
        poll_interval: float | timedelta = 15.0,
        stream_logs: bool = False,
        resource_name: str = "",
        fail_on_terminal: bool = True,
        failing_grace: float | timedelta | None = None,
        log_tail_lines: int = 20,
    ) -> WaitEvent:
        """Block until a resource reaches one of ``target_phases``, running the provider's wait loop here.

        It is the loop the triggerer runs for deferred operators (the same polling, transient-error
        tolerance, log streaming and failure messages), driven in the calling process. It does not raise
        for the resource's outcome: read the returned event. It never stops the resource, not even on a
        timeout. The per-kind methods (:meth:`wait_for_job`, :meth:`wait_for_deployment`,
        :meth:`wait_for_studio`, :meth:`run_in_studio`) call it.

        :param kind: resource kind name (``"job"``, ``"mmt"``, ``"deployment"``, ``"studio"``,
            ``"studio_command"``, ``"schedule_run"``) or a ``ResourceKind``.
        :param resource_id: id of the resource to watch.
        :param target_phases: phase or phases that end the wait successfully (``pending``, ``running``,
            ``completed``, ``failed``, ``stopped``).
        :param timeout: seconds (or a timedelta) to wait at most; None waits until the resource ends.
        :param poll_interval: seconds (or a timedelta) between two reads of the resource.
        :param stream_logs: write the resource's new log lines into this hook's log while waiting.
        :param resource_name: name used in messages instead of the id.
        :param fail_on_terminal: end the wait when the resource ends in a phase that is not a target (False
            keeps waiting through a stopped phase, for resources that can start again, like a Studio).
        :param failing_grace: seconds a resource may report failing replicas before the wait fails; None never.
        :param log_tail_lines: how many last log lines a failure event carries in ``log_tail``.
        :return: the :class:`~airflow_provider_lightning.triggers.contract.WaitEvent`: ``event.succeeded``
            (a target phase was reached), ``event.status`` (``success``, ``failed``, ``timeout``, ``error``),
            ``event.message`` (what happened, the server's reason on failure), ``event.resource`` (the last
            ``ResourceState`` read, or None) and ``event.log_tail`` (the last log lines, on failure).
        """
        from airflow_provider_lightning.triggers.lightning import wait_in_worker

        resolved = kind if isinstance(kind, ResourceKind) else kind_named(kind)
        if not isinstance(resource_id, str) or not resource_id:
            raise ValueError(f"resource_id must be a non-empty id, got {resource_id!r}")
        limit = _seconds(timeout, "timeout")
        spec = WaitSpec(  # built before the teamspace is resolved, so bad arguments fail without a request
            kind=resolved.name,
            resource_id=resource_id,
            project_id="",
            lightning_conn_id=self.lightning_conn_id,
            target_phases=tuple([target_phases] if isinstance(target_phases, str) else target_phases),
            poll_interval=_seconds(poll_interval, "poll_interval", optional=False),  # type: ignore[arg-type]
            stream_logs=bool(stream_logs),
            log_tail_lines=log_tail_lines,
            resource_name=resource_name,
            fail_on_terminal=bool(fail_on_terminal),
            failing_grace=_seconds(failing_grace, "failing_grace", allow_zero=True),
        )
        spec = replace(spec, project_id=self.project_id,
                       deadline=None if limit is None else time.time() + limit)
        self.log.info("Waiting for %s %s to be %s", resolved.label, resource_name or resource_id,
                      " or ".join(spec.target_phases))
        return wait_in_worker(spec, self.settings, self.log)

    # -- jobs ----------------------------------------------------------------------------------

    def submit_job(
        self,
        request: jobs.JobRequest | None = None,
        /,
        *,
        name: str | None = None,
        command: str | None = None,
        machine: str | None = None,
        image: str | None = None,
        studio: str | None = None,
        entrypoint: str | None = None,
        env: Mapping[str, Any] | None = None,
        interruptible: bool | None = None,
        cluster_id: str | None = None,
        max_run_attempts: int | None = None,
        path_mappings: Mapping[str, str] | None = None,
        tags: Sequence[str] | None = None,
        image_secret_ref: str | None = None,
        allow_custom_machine: bool | None = None,
        num_machines: int | None = None,
        artifacts_destination: str | None = None,
    ) -> ResourceState:
        """Create a job, multi-machine when ``num_machines >= 2`` (never twice, even when the answer is lost).

        Give either a ``JobRequest`` or its fields as keyword arguments
        (``hook.submit_job(name="train", image="python:3.12", command="python train.py")``); the arguments
        are validated before any request. It does not wait: see :meth:`wait_for_job`.

        :param request: a :class:`~airflow_provider_lightning.api.jobs.JobRequest` (instead of keyword arguments).
        :param name: job name (the server may suffix it on a clash; read the returned state's ``name``).
        :param command: shell command; required for Studio jobs, optional for image jobs.
        :param machine: machine name (``"CPU"``, ``"L4"``, ``"A100"``) or slug (default ``"CPU"``).
        :param image: container image to run (a container job); exclusive with ``studio``.
        :param studio: name of the Studio whose snapshot the job runs in; exclusive with ``image``.
        :param entrypoint: container entrypoint (image jobs); ``sh -c`` when a command is given.
        :param env: environment variables, str to str, or str to ``{"fromSecret": "SECRET_NAME"}`` (the value of
            a teamspace secret, see :meth:`set_secret`).
        :param interruptible: run on an interruptible (spot) machine.
        :param cluster_id: cloud account to run in; empty lets Lightning choose (or the connection's).
        :param max_run_attempts: attempts Lightning makes itself (1: no platform retry); None leaves it unset.
        :param path_mappings: data connection mounts, ``{"/container/path": "connection[:path]"}``.
        :param tags: tag names.
        :param image_secret_ref: teamspace secret holding the registry credentials (image jobs).
        :param allow_custom_machine: pass an unknown machine string through as a raw instance type.
        :param num_machines: machines to run on; 2 or more makes a multi-machine job (kind ``"mmt"``).
        :param artifacts_destination: where an image job's artifacts persist (``<type>:<connection>:<path>``).
        :return: the created job's state; its ``kind`` is ``"job"``, or ``"mmt"`` for a multi-machine job.
        :raises ValueError: a bad argument (named), before any request.
        :raises TypeError: a ``JobRequest`` and keyword arguments together, or no name.
        """
        given = _given(locals())
        request = _build(jobs.JobRequest, request, given, "submit_job").validated()
        cloudspace_id = self.studio_id(request.studio) if request.studio else ""
        body = request.body(cloudspace_id=cloudspace_id, default_cluster_id=self.settings.cluster_id)
        return self.run(jobs.create_job(self.project_id, body))

    def studio_id(self, name: str) -> str:
        """The id of a Studio; LightningConfigError when the teamspace has none of that name.

        :param name: name of the Studio.
        """
        studio = self.run(studios.find_studio(self.project_id, name))
        if studio is None:
            raise LightningConfigError(f"Studio {name!r} does not exist in teamspace {self.teamspace.slug}")
        return str(studio.get("id", ""))

    def set_secret(self, name: str, value: str) -> secret_api.SetResult:
        """Create the teamspace's generic secret ``name``, or replace its value; the value is never logged.

        Jobs and multi-machine jobs read it as an environment variable with ``env={"ENV_NAME": {"fromSecret": name}}``,
        deployments with ``secrets={"ENV_NAME": name}``.

        :param name: the secret's name (letters, digits and ``_``, not starting with a digit).
        :param value: the value (a string); sent once, in the create or update request body.
        :return: the secret (id, name, type; no value) and ``action`` ``"created"`` or ``"updated"``.
        :raises ValueError: the name is invalid (before any request).
        """
        secret_api.validate_secret_name(name)
        return self.run(secret_api.set_secret(self.project_id, name, value))

    def list_secrets(self) -> list[str]:
        """The names of the teamspace's generic secrets (the API never returns values)."""
        return [s.name for s in self.run(secret_api.list_secrets(self.project_id)) if s.generic]

    def get_job(self, job_id: str | ResourceState, *, kind: str | ResourceKind | None = None) -> ResourceState:
        """Read a job's (or multi-machine job's) current state; LightningApiError 404 when it does not exist.

        :param job_id: the job's id, or the state :meth:`submit_job` returned.
        :param kind: ``"job"`` or ``"mmt"`` (multi-machine); default: the given state's kind, else ``"job"``.
        """
        resolved, resource_id = _job_ref(job_id, kind)
        return self.get(resolved, resource_id)

    def find_job(self, name: str, kind: str | ResourceKind = JOB) -> ResourceState | None:
        """Find a job by exact name; None when there is none.

        :param name: the job's name.
        :param kind: ``"job"``, or ``"mmt"`` to find a multi-machine job (any kind found by name works:
            the sensors find deployments through it).
        """
        resolved = kind if isinstance(kind, ResourceKind) else kind_named(kind)
        return self.run(resolved.find(self.project_id, name))

    def get(self, kind: str | ResourceKind, resource_id: str) -> ResourceState:
        """Read any resource kind by id.

        :param kind: resource kind name (``"job"``, ``"deployment"``, ...) or a ``ResourceKind``.
        :param resource_id: the resource's id.
        """
        resolved = kind if isinstance(kind, ResourceKind) else kind_named(kind)
        return self.run(resolved.get(self.project_id, resource_id))

    def list_jobs(
        self,
        *,
        state: str | None = None,
        standalone: bool | None = None,
        cloudspace_id: str | None = None,
        multi_machine_job_id: str | None = None,
        limit: int | None = None,
        page_size: int = 100,
    ) -> list[ResourceState]:
        """List jobs, newest first, following pages up to ``limit``.

        :param state: only jobs in this raw state (``"running"``, ``"completed"``, ``"stopped"`` ...).
        :param standalone: only jobs that are (True) or are not (False) machines of a multi-machine job.
        :param cloudspace_id: only jobs run from this Studio id.
        :param multi_machine_job_id: only the machines (sub-jobs) of this multi-machine job.
        :param limit: at most this many jobs; None lists them all.
        :param page_size: jobs per request.
        """
        return self.run(jobs.list_jobs(
            self.project_id, state=state, standalone=standalone, cloudspace_id=cloudspace_id,
            multi_machine_job_id=multi_machine_job_id, limit=limit, page_size=page_size,
        ))

    def stop_job(self, job_id: str | ResourceState, *, kind: str | ResourceKind | None = None) -> ResourceState:
        """Ask a job (or multi-machine job) to stop; returns its state after the request (idempotent).

        :param job_id: the job's id, or the state :meth:`submit_job` returned.
        :param kind: ``"job"`` or ``"mmt"`` (multi-machine); default: the given state's kind, else ``"job"``.
        """
        resolved, resource_id = _job_ref(job_id, kind)
        return self.run(resolved.stop(self.project_id, resource_id))  # type: ignore[no-any-return]

    def delete_job(self, job_id: str | ResourceState, cloudspace_id: str = "", *,
                   kind: str | ResourceKind | None = None) -> None:
        """Delete a job (or multi-machine job) and its record.

        :param job_id: the job's id, or the state :meth:`submit_job` returned.
        :param cloudspace_id: the Studio id a Studio job ran from (the API asks for it; "" for image jobs).
        :param kind: ``"job"`` or ``"mmt"`` (multi-machine); default: the given state's kind, else ``"job"``.
        """
        resolved, resource_id = _job_ref(job_id, kind)
        if resolved is JOB:
            self.run(jobs.delete_job(self.project_id, resource_id, cloudspace_id))
        else:
            self.run(resolved.delete(self.project_id, resource_id))

    def wait_for_job(
        self,
        job_id: str | ResourceState,
        *,
        kind: str | ResourceKind | None = None,
        target_phases: str | Sequence[str] = ("completed",),
        timeout: float | timedelta | None = None,
        poll_interval: float | timedelta = 15.0,
        stream_logs: bool = False,
    ) -> WaitEvent:
        """Block until a job (or multi-machine job) reaches a target phase; returns the wait's event.

        A job that ends in another phase (``failed``, ``stopped``) ends the wait at once with
        ``event.succeeded`` False, ``event.message`` naming the reason (``... exit code 3``) and
        ``event.log_tail`` holding its last log lines (per failed machine for a multi-machine job). A
        timeout leaves the job running (``event.status`` is ``timeout``); stop it with :meth:`stop_job`.

        :param job_id: the job's id, or the state :meth:`submit_job` returned (its kind is then used).
        :param kind: ``"job"`` or ``"mmt"`` (multi-machine); default: the given state's kind, else ``"job"``.
        :param target_phases: phase or phases that end the wait successfully (default ``completed``).
        :param timeout: seconds (or a timedelta) to wait at most; None waits until the job ends.
        :param poll_interval: seconds (or a timedelta) between two reads of the job.
        :param stream_logs: write the job's new log lines into this hook's log (the task log) while waiting.
        :return: the WaitEvent: read ``event.succeeded``, ``event.message``, ``event.resource`` (the job's
            last state) and ``event.log_tail``.
        """
        resolved, resource_id = _job_ref(job_id, kind)
        name = job_id.name if isinstance(job_id, ResourceState) else ""
        return self.wait(resolved, resource_id, target_phases=target_phases, timeout=timeout,
                         poll_interval=poll_interval, stream_logs=stream_logs, resource_name=name)

    def stop(self, kind: str | ResourceKind, resource_id: str) -> ResourceState:
        """Stop any resource kind unless it is already at rest; returns its state after the request.

        :param kind: resource kind name or a ``ResourceKind``.
        :param resource_id: the resource's id.
        """
        from airflow_provider_lightning.api.stopping import release

        resolved = kind if isinstance(kind, ResourceKind) else kind_named(kind)
        self.run(release(resolved, self.project_id, resource_id))  # the one stop flow (api.stopping)
        return self.run(resolved.get(self.project_id, resource_id))

    def job_logs(self, job_id: str, cursor: logs.LogCursor | None = None) -> tuple[list[logs.LogLine], logs.LogCursor]:
        """Log lines after ``cursor`` (page-logs) and the cursor to continue from.

        :param job_id: the job's id.
        :param cursor: where an earlier call stopped; None reads from the start.
        """
        return self.run(logs.new_lines(self.project_id, "jobIds", job_id, cursor or logs.LogCursor(), max_pages=50))

    def download_job_logs(self, job_id: str, cloudspace_id: str = "") -> str:
        """The full log of a finished job (download-logs signed URL, fetched without credentials).

        :param job_id: the job's id.
        :param cloudspace_id: the Studio id a Studio job ran from ("" for image jobs).
        """
        url = self.run(jobs.download_logs_url(self.project_id, job_id, cloudspace_id))
        if not url:
            return ""
        url = url if "://" in url else self.settings.base_url + url
        with httpx.Client(timeout=self.transport.timeout, verify=self.settings.verify) as client:
            response = client.get(url)
        response.raise_for_status()
        return "\n".join(re.sub(r"^\[.*?\] ", "", ln) for ln in response.text.splitlines())

    def job_url(self, job: ResourceState, studio_name: str = "") -> str:
        """The page of a job, multi-machine job or deployment in the Lightning web UI.

        :param job: the resource's state (from :meth:`submit_job`, :meth:`get_job`, :meth:`upsert_deployment` ...).
        :param studio_name: the Studio a Studio job ran from ("" for image jobs).
        """
        app_id = kind_named(job.kind).web_app or ""
        return teamspaces.job_url(self.settings.base_url, self.teamspace, job.name, studio_name, app_id)

    # -- deployments ---------------------------------------------------------------------------

    def upsert_deployment(
        self,
        spec: deployments.DeploymentSpec | None = None,
        /,
        *,
        name: str | None = None,
        image: str | None = None,
        studio: str | None = None,
        command: str | None = None,
        entrypoint: str | None = None,
        machine: str | None = None,
        interruptible: bool | None = None,
        env: Mapping[str, str] | None = None,
        secrets: Mapping[str, str] | None = None,
        ports: Sequence[int] | int | None = None,
        replicas: int | None = None,
        autoscale: Mapping[str, Any] | None = None,
        health_check: Mapping[str, Any] | None = None,
        auth: Mapping[str, Any] | None = None,
        rolling_update: Mapping[str, Any] | None = None,
        cluster_id: str | None = None,
        include_credentials: bool | None = None,
        max_runtime_seconds: int | None = None,
        allow_custom_machine: bool | None = None,
        owner: str = "",
        owner_note: str = "",
    ) -> deployments.Upserted:
        """Create the deployment, or update it only where the spec differs (no new release when unchanged).

        Give either a ``DeploymentSpec`` or its fields as keyword arguments
        (``hook.upsert_deployment(name="api", image="ghcr.io/me/api:1", command="python serve.py",
        ports=[8000])``); the arguments are validated before any request. A deployment that was scaled to
        zero is started again. It does not wait: see :meth:`wait_for_deployment`.

        :param spec: a :class:`~airflow_provider_lightning.api.deployments.DeploymentSpec` (instead of keywords).
        :param name: deployment name (the upsert key).
        :param image: container image; exclusive with ``studio``.
        :param studio: name of the Studio to deploy from; exclusive with ``image`` (needs a ``command``).
        :param command: command that starts the server.
        :param entrypoint: container entrypoint (image deployments only).
        :param machine: machine name or slug per replica (default ``"CPU"``).
        :param interruptible: run replicas on interruptible (spot) machines.
        :param env: environment variables, str to str.
        :param secrets: ``{"ENV_NAME": "teamspace-secret-name"}`` injected from teamspace secrets.
        :param ports: ports the server listens on (default ``[8000]``).
        :param replicas: fixed number of replicas (default 1 unless ``autoscale`` is given).
        :param autoscale: ``{"min_replicas", "max_replicas", "metric": CPU|GPU|RPM, "threshold": 0-100}``.
        :param health_check: ``{"http": {"path", "port"}}`` or ``{"exec": "command"}``, plus optional timings.
        :param auth: endpoint auth: ``{"token"}``, ``{"username", "password"}`` or ``{"user_api_key": True}``.
        :param rolling_update: ``{"max_surge": 1, "max_unavailable": 0}`` for new releases.
        :param cluster_id: cloud account; empty lets Lightning choose (or the connection's).
        :param include_credentials: give the replicas your Lightning credentials (default True, as the SDK).
        :param max_runtime_seconds: stop the replicas after this many seconds.
        :param allow_custom_machine: pass an unknown machine string through as a raw instance type.
        :param owner: ownership key (8-64 lowercase hex digits) written into a new deployment's release notes;
            a later upsert with the same key reports the deployment as ``ours`` (survives a dead worker).
        :param owner_note: human-readable text put before that key in the release notes.
        :return: ``Upserted``: ``.state`` (the deployment), ``.action`` (``created``, ``updated`` or
            ``unchanged``), ``.changes`` (changed fields), ``.started`` (it was scaled to zero before) and
            ``.ours`` (created by ``owner``, now or by an earlier call).
        :raises ValueError: a bad argument (named), before any request.
        :raises TypeError: a ``DeploymentSpec`` and keyword arguments together, or no name.
        """
        given = {k: v for k, v in _given(locals()).items() if k not in ("owner", "owner_note")}
        spec = _build(deployments.DeploymentSpec, spec, given, "upsert_deployment").validated()
        if owner:
            deployments.owner_note(owner)  # a bad key is refused before any request
        _mask([str(spec.auth[key]) for key in ("token", "password") if spec.auth and spec.auth.get(key)])
        cloudspace_id = self.studio_id(spec.studio) if spec.studio else ""
        body = spec.body(cloudspace_id=cloudspace_id, default_cluster_id=self.settings.cluster_id)
        return self.run(deployments.upsert(self.project_id, body, owner=owner, note=owner_note))

    def get_deployment(self, deployment_id: str) -> ResourceState:
        """Read a deployment's current state by id; LightningApiError 404 when it does not exist.

        :param deployment_id: the deployment's id (``dep_...``); see :meth:`find_deployment` for names.
        """
        return self.get(deployments.DEPLOYMENT, deployment_id)

    def find_deployment(self, name_or_id: str) -> ResourceState | None:
        """A deployment by id (``dep_...``, as the SDK treats it) or by exact name; None when there is none.

        :param name_or_id: the deployment's name, or its ``dep_...`` id.
        """
        kind = deployments.DEPLOYMENT
        if name_or_id.startswith("dep_"):
            return self.run(replace(kind.get(self.project_id, name_or_id), none_if_missing=True))
        return self.run(kind.find(self.project_id, name_or_id))

    def stop_deployment(self, name_or_id: str) -> ResourceState:
        """Stop a deployment the SDK way, by scaling it to zero; returns its state after the request.

        A deployment already stopped is left alone. It does not wait for the replicas to go:
        see ``wait_for_deployment(..., state="stopped")``. :meth:`upsert_deployment` starts it again.

        :param name_or_id: the deployment's name, or its ``dep_...`` id.
        :raises LightningConfigError: there is no such deployment.
        """
        return self.stop(deployments.DEPLOYMENT, self._deployment(name_or_id).id)

    def delete_deployment(self, deployment_id: str) -> bool:
        """Delete a deployment (its replicas stop and its URL goes away); False when it was already gone.

        :param deployment_id: the deployment's id (``dep_...``).
        """
        return self.run(deployments.DEPLOYMENT.delete(self.project_id, deployment_id)) is not None

    def wait_for_deployment(
        self,
        name_or_id: str,
        *,
        state: str = "ready",
        timeout: float | timedelta | None = None,
        poll_interval: float | timedelta = 5.0,
        failing_grace: float | timedelta | None = 300.0,
        stream_logs: bool = False,
    ) -> WaitEvent:
        """Block until a deployment is ready (serving on its URLs) or stopped; returns the wait's event.

        Waiting for ``ready`` fails when the deployment fails, is stopped, or its replicas keep failing
        for ``failing_grace`` seconds without one becoming ready; ``event.message`` has the server's reason.
        ``event.resource`` is the deployment's last state: its URLs are
        ``event.resource.detail["urls"]``. A timeout or failure leaves the deployment as it is.

        :param name_or_id: the deployment's ``dep_...`` id, or its name.
        :param state: ``"ready"`` (every desired replica serves) or ``"stopped"`` (no replica left).
        :param timeout: seconds (or a timedelta) to wait at most; None waits until it is ready or fails.
        :param poll_interval: seconds (or a timedelta) between two reads of the deployment.
        :param failing_grace: seconds replicas may keep failing before a ``ready`` wait fails; None never.
        :param stream_logs: write the replicas' new log lines into this hook's log while waiting.
        :return: the WaitEvent: read ``event.succeeded``, ``event.message`` and ``event.resource``.
        """
        targets = {"ready": Phase.RUNNING, "stopped": Phase.STOPPED}
        if state not in targets:
            raise ValueError(f"state must be 'ready' or 'stopped', got {state!r}")
        _check_wait(timeout, poll_interval)
        found = self._deployment(name_or_id)
        return self.wait(deployments.DEPLOYMENT, found.id, target_phases=targets[state].value, timeout=timeout,
                         poll_interval=poll_interval, stream_logs=stream_logs, resource_name=found.name,
                         failing_grace=failing_grace if state == "ready" else None)

    def _deployment(self, name_or_id: str) -> ResourceState:
        if not isinstance(name_or_id, str) or not name_or_id:
            raise ValueError(f"a deployment name or id is required, got {name_or_id!r}")
        found = self.find_deployment(name_or_id)
        if found is None:
            raise LightningConfigError(f"no Lightning deployment {name_or_id!r} in teamspace {self.teamspace.slug}")
        return found

    # -- Studios -------------------------------------------------------------------------------

    def get_studio(self, name: str) -> ResourceState:
        """A Studio's current state: ``phase`` is ``stopped``, ``pending`` (starting, files restoring),
        ``running``, ``stopping`` or ``failed``.

        :param name: name of the Studio.
        :raises LightningConfigError: the teamspace has no Studio of that name.
        """
        studio_id = self.studio_id(name)
        return replace(self.get(studios.STUDIO, studio_id), id=studio_id, name=name)

    def start_studio(self, name: str, *, machine: str = "CPU", interruptible: bool = False,
                     max_runtime: int | None = None) -> ResourceState:
        """Start a Studio on a machine; returns once Lightning has accepted the start (the Studio is ``pending``).

        It does not wait until the Studio runs: call :meth:`wait_for_studio` for that. A Studio already
        running (or starting) on that machine is left alone.

        :param name: name of the Studio.
        :param machine: machine name (``"CPU"``, ``"L4"``, ``"A100"``) or slug.
        :param interruptible: run on an interruptible (spot) machine.
        :param max_runtime: stop the Studio after this many seconds; None keeps it running.
        :raises LightningConfigError: no such Studio, or it is running on another machine or still stopping.
        """
        slug = resolve_machine(machine)
        if max_runtime is not None and (isinstance(max_runtime, bool) or not isinstance(max_runtime, int)
                                        or max_runtime < 1):
            raise ValueError(f"max_runtime must be a number of seconds >= 1, got {max_runtime!r}")
        studio_id = self.studio_id(name)
        state = replace(self.get(studios.STUDIO, studio_id), id=studio_id, name=name)
        return self.ensure_studio_started(studio_id, state, name=name, machine=slug, interruptible=interruptible,
                                          max_runtime=max_runtime)[0]

    def ensure_studio_started(
        self, studio_id: str, state: ResourceState, *, name: str, machine: str, interruptible: bool = False,
        max_runtime: int | None = None, on_requested: Callable[[], None] | None = None,
    ) -> tuple[ResourceState, bool]:
        """The SDK's start rule (shared by :meth:`start_studio` and ``LightningStudioStartOperator``).

        A Studio running or starting on ``machine`` is left alone; otherwise the start is requested and accepted
        once a *new* instance shows (the old one is ignored). Returns the state and whether this call started it.

        :param studio_id: the Studio's id.
        :param state: its current state (``get(STUDIO, studio_id)``).
        :param name: its name, for messages.
        :param machine: machine slug (``resolve_machine`` output).
        :param interruptible: run on an interruptible (spot) machine.
        :param max_runtime: stop the Studio after this many seconds; None: no limit.
        :param on_requested: called right after the start request (an operator marks the Studio as its own there).
        :raises LightningConfigError: it runs on another machine, is still stopping, or no new instance showed
            within ``NEW_INSTANCE_WAIT`` seconds.
        """
        if state.phase in (Phase.RUNNING, Phase.PENDING):
            current = studios.machine_of(state)
            if current and current != machine:
                raise LightningConfigError(f"Studio {name} is {state.phase.value} on {current}, not {machine}; stop "
                                           "it first (LightningStudioStopOperator), then start it on the new machine")
            self.log.info("Studio %s is already %s on %s", name, state.phase.value, current or machine)
            return state, False
        if state.phase is Phase.STOPPING:
            raise LightningConfigError(f"Studio {name} is stopping; start it again once it has stopped")
        old = studios.instance_id(state)
        self.run(studios.start(self.project_id, studio_id, machine, interruptible, max_runtime))
        if on_requested is not None:
            on_requested()
        self.log.info("Starting Studio %s on %s", name, machine)
        deadline = time.monotonic() + NEW_INSTANCE_WAIT
        while time.monotonic() < deadline:  # the SDK's rule: the start is accepted once a new instance shows
            state = replace(self.get(studios.STUDIO, studio_id), id=studio_id, name=name)
            if studios.instance_id(state) not in ("", old):
                return state, True
            time.sleep(0.5)
        raise LightningConfigError(f"Studio {name} did not get a new instance within {NEW_INSTANCE_WAIT:.0f} s")

    def stop_studio(self, name: str) -> ResourceState:
        """Ask a Studio to stop; returns its state after the request (a stopped Studio is left alone).

        It does not wait until the Studio has stopped: call ``wait_for_studio(name, "stopped")``.

        :param name: name of the Studio.
        :raises LightningConfigError: the teamspace has no Studio of that name.
        """
        studio_id = self.studio_id(name)
        return replace(self.stop(studios.STUDIO, studio_id), id=studio_id, name=name)

    def wait_for_studio(
        self,
        name: str,
        state: str = "running",
        *,
        timeout: float | timedelta | None = None,
        poll_interval: float | timedelta = 5.0,
    ) -> WaitEvent:
        """Block until a Studio runs (its files restored) or has stopped; returns the wait's event.

        A Studio can start again, so a stopped phase does not end a wait for ``running``: give a
        ``timeout`` unless something starts it (:meth:`start_studio`). A failed instance ends the wait.

        :param name: name of the Studio.
        :param state: ``"running"`` or ``"stopped"``.
        :param timeout: seconds (or a timedelta) to wait at most; None waits forever.
        :param poll_interval: seconds (or a timedelta) between two reads of the Studio.
        :return: the WaitEvent: read ``event.succeeded``, ``event.message`` and ``event.resource``.
        """
        if state not in ("running", "stopped"):
            raise ValueError(f"state must be 'running' or 'stopped', got {state!r}")
        _check_wait(timeout, poll_interval)
        return self.wait(studios.STUDIO, self.studio_id(name), target_phases=state, timeout=timeout,
                         poll_interval=poll_interval, resource_name=name, fail_on_terminal=False)

    def run_in_studio(
        self,
        name: str,
        command: str,
        *,
        timeout: float | timedelta | None = None,
        poll_interval: float | timedelta = 2.0,
        stream_logs: bool = False,
        output_tail_lines: int = 20,
    ) -> dict[str, Any]:
        """Run a shell command in a running Studio (detached) and block until it exits.

        It does not raise for a failing command: read ``result["exit_code"]``. Files the command writes
        stay in the Studio. On a timeout the command keeps running and ``exit_code`` is None.

        :param name: name of the Studio; it must be running (see :meth:`start_studio`, :meth:`wait_for_studio`).
        :param command: shell command, run in the Studio's home folder.
        :param timeout: seconds (or a timedelta) to wait for the exit at most; None waits until it exits.
        :param poll_interval: seconds (or a timedelta) between two reads of the command.
        :param stream_logs: write the command's output into this hook's log while it runs.
        :param output_tail_lines: how many last output lines ``tail`` holds.
        :return: a dict: ``exit_code`` (int, None when the wait ended first), ``succeeded`` (exit code 0),
            ``output`` (everything the command printed), ``tail`` (its last lines), ``message`` (what
            happened, ``... exit code 3`` on failure), ``session`` (the command's session id in the Studio).
        :raises LightningConfigError: no such Studio, or it is not running.
        """
        if not isinstance(command, str) or not command.strip():
            raise ValueError("command must be a non-empty shell command")
        if isinstance(output_tail_lines, bool) or not isinstance(output_tail_lines, int) or output_tail_lines < 0:
            raise ValueError(f"output_tail_lines must be an integer >= 0, got {output_tail_lines!r}")
        _check_wait(timeout, poll_interval)
        state = self.get_studio(name)
        if state.phase is not Phase.RUNNING:
            raise LightningConfigError(f"Studio {name} is {state.phase.value}, not running; start it first "
                                       "(start_studio, then wait_for_studio)")
        session = self.run(studios.execute(self.project_id, state.id, command))
        self.log.info("Running in Studio %s (session %s): %s", name, session, command)
        event = self.wait(studios.STUDIO_COMMAND, studios.CommandRef(state.id, session).id, timeout=timeout,
                          poll_interval=poll_interval, stream_logs=stream_logs, resource_name=name,
                          log_tail_lines=output_tail_lines)
        raw = event.resource.raw if event.resource is not None else {}
        code = wire.number(raw, "exit_code")
        output = wire.text(raw, "output")
        lines = output.splitlines()
        return {
            "exit_code": None if code is None or code == -1 else int(code),
            "succeeded": event.succeeded,
            "output": output,
            "tail": lines[-output_tail_lines:] if output_tail_lines else [],
            "message": event.message,
            "session": session,
        }


def _seconds(value: float | timedelta | None, what: str, *, optional: bool = True,
             allow_zero: bool = False) -> float | None:
    """A duration in seconds (a number or a timedelta; None when ``optional``); ValueError names a bad one."""
    if value is None and optional:
        return None
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or (
        value < 0 if allow_zero else value <= 0
    ):
        raise ValueError(f"{what} must be a positive number of seconds or a timedelta, got {value!r}")
    return float(value)


def _check_wait(timeout: float | timedelta | None, poll_interval: float | timedelta) -> None:
    """Check a wait's durations before the requests that come before the wait."""
    _seconds(timeout, "timeout")
    _seconds(poll_interval, "poll_interval", optional=False)


def _job_ref(job: str | ResourceState, kind: str | ResourceKind | None) -> tuple[ResourceKind, str]:
    """The kind (``job`` or ``mmt``) and id of a job given by id or by state."""
    if isinstance(job, ResourceState):
        kind, job = (job.kind if kind is None else kind), job.id
    resolved = kind_named(kind or "job") if not isinstance(kind, ResourceKind) else kind
    if resolved.name not in ("job", "mmt"):
        raise ValueError(f"kind must be 'job' or 'mmt' (a multi-machine job), got {resolved.name!r}")
    if not isinstance(job, str) or not job:
        raise ValueError(f"a job id is required, got {job!r}")
    return resolved, job


def _given(arguments: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments a caller gave (not None), from a method's ``locals()`` taken on entry."""
    return {key: value for key, value in arguments.items()
            if key not in ("self", "request", "spec") and value is not None}


def _build(model: type[M], given_model: M | None, fields: dict[str, Any], method: str) -> M:
    """``given_model`` as it is, or the model built from keyword arguments; TypeError for neither or both."""
    if given_model is not None:
        if not isinstance(given_model, model):
            raise TypeError(f"{method}() takes a {model.__name__} or keyword arguments, "
                            f"got {type(given_model).__name__}")
        if fields:
            raise TypeError(f"{method}() takes a {model.__name__} or keyword arguments, not both "
                            f"(got {', '.join(sorted(fields))} too); use dataclasses.replace() to change a field")
        return given_model
    if "name" not in fields:
        raise TypeError(f"{method}() needs name= (or a {model.__name__})")
    return model(**fields)
