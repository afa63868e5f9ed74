"""LightningHook: authenticated access to the Lightning AI REST API from Airflow."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, TypeVar

import httpx
from airflow.sdk import BaseHook

from airflow_provider_lightning import CONN_TYPE, DEFAULT_CONN_ID, __version__
from airflow_provider_lightning.api import deployments, jobs, logs, studios, teamspaces
from airflow_provider_lightning.api.errors import LightningApiError, LightningConfigError
from airflow_provider_lightning.api.resources import JOB, ResourceKind, ResourceState, kind_named
from airflow_provider_lightning.api.teamspaces import Teamspace
from airflow_provider_lightning.api.transport import Operation, RetryPolicy, Transport
from airflow_provider_lightning.hooks.settings import ConnectionSettings

T = TypeVar("T")


def _not_found_error() -> type[Exception]:
    try:
        from airflow.sdk.exceptions import AirflowNotFoundException
    except ImportError:  # pragma: no cover - older Airflow
        from airflow.exceptions import AirflowNotFoundException
    return AirflowNotFoundException


def _mask(secrets: list[str]) -> None:
    try:
        from airflow.sdk.log import mask_secret
    except ImportError:  # pragma: no cover
        return
    for secret in secrets:
        mask_secret(secret)


class LightningHook(BaseHook):
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

    def _settings_from(self, conn: Any, extra: dict[str, Any] | None) -> ConnectionSettings:
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
            from airflow.providers.common.compat.connection import (
                get_async_connection,
                get_async_extra_dejson,
            )

            try:
                conn = await get_async_connection(self.lightning_conn_id, hook=self)
                extra = await get_async_extra_dejson(conn)
            except Exception as error:
                if not self._missing_conn_ok(error):
                    raise
                conn, extra = None, None
            self._settings = self._settings_from(conn, extra)
        return self._settings

    @property
    def user_agent(self) -> str:
        try:
            from airflow import __version__ as airflow_version
        except ImportError:  # pragma: no cover
            airflow_version = "unknown"
        return f"airflow-provider-lightning/{__version__} apache-airflow/{airflow_version} httpx/{httpx.__version__}"

    def _make_transport(self, settings: ConnectionSettings) -> Transport:
        return Transport(
            settings.base_url,
            {"Authorization": settings.auth_header(), "User-Agent": self.user_agent},
            timeout=httpx.Timeout(settings.read_timeout, connect=settings.connect_timeout),
            retry=self._retry or RetryPolicy(max_attempts=settings.max_attempts),
            verify=settings.verify,
            auth_hint=settings.auth_hint(),
            http_transport=self._http_transport,
            async_http_transport=self._async_http_transport,
        )

    @property
    def transport(self) -> Transport:
        if self._transport is None:
            self._transport = self._make_transport(self.settings)
        return self._transport

    def get_conn(self) -> Transport:
        """The transport (one keep-alive client per hook)."""
        return self.transport

    # -- running calls (the only sync/async pair) ---------------------------------------------

    def run(self, operation: Operation[T]) -> T:
        """Run an API call or flow synchronously."""
        return self.transport.run(operation)

    async def arun(self, operation: Operation[T]) -> T:
        """Run an API call or flow on the event loop."""
        if self._transport is None:
            self._transport = self._make_transport(await self.aget_settings())
        return await self._transport.arun(operation)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    async def aclose(self) -> None:
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
        return self.teamspace.project_id

    def test_connection(self) -> tuple[bool, str]:
        """Check the credentials with ``GET /v1/auth/whoami`` (the UI's Test button)."""
        try:
            me = self.run(teamspaces.whoami())
        except (LightningApiError, LightningConfigError, httpx.HTTPError) as error:
            return False, f"Lightning connection {self.lightning_conn_id!r} failed: {error}"
        who = me.get("username") or me.get("userId") or "unknown user"
        return True, f"Connected to {self.settings.base_url} as {who}"

    # -- jobs ----------------------------------------------------------------------------------

    def submit_job(self, request: jobs.JobRequest) -> ResourceState:
        """Create a job, multi-machine when ``num_machines >= 2`` (never twice, even when the answer is lost)."""
        request = request.validated()
        cloudspace_id = self.studio_id(request.studio) if request.studio else ""
        body = request.body(cloudspace_id=cloudspace_id, default_cluster_id=self.settings.cluster_id)
        return self.run(jobs.create_job(self.project_id, body))

    def studio_id(self, name: str) -> str:
        """The id of the Studio named ``name``; LightningConfigError when the teamspace has none."""
        studio = self.run(studios.find_studio(self.project_id, name))
        if studio is None:
            raise LightningConfigError(f"Studio {name!r} does not exist in teamspace {self.teamspace.slug}")
        return str(studio.get("id", ""))

    def get_job(self, job_id: str) -> ResourceState:
        return self.get(JOB, job_id)

    def find_job(self, name: str, kind: ResourceKind = JOB) -> ResourceState | None:
        """Find a job (or, with ``kind=MMT``, a multi-machine job) by exact name."""
        return self.run(kind.find(self.project_id, name))

    def get(self, kind: ResourceKind, resource_id: str) -> ResourceState:
        """Read any resource kind by id."""
        return self.run(kind.get(self.project_id, resource_id))

    def machines(self, mmt_id: str) -> list[ResourceState]:
        """The per-machine sub-jobs of a multi-machine job, ordered by rank."""
        return sorted(self.run(jobs.list_jobs(self.project_id, multi_machine_job_id=mmt_id)), key=jobs.rank_of)

    def list_jobs(self, **filters: Any) -> list[ResourceState]:
        """List jobs; filters: ``state``, ``standalone``, ``cloudspace_id``, ``limit`` ..."""
        return self.run(jobs.list_jobs(self.project_id, **filters))

    def stop_job(self, job_id: str) -> ResourceState:
        return self.run(JOB.stop(self.project_id, job_id))

    def delete_job(self, job_id: str, cloudspace_id: str = "") -> None:
        self.run(jobs.delete_job(self.project_id, job_id, cloudspace_id))

    def stop(self, kind: ResourceKind, resource_id: str) -> ResourceState | None:
        """Stop any resource kind unless it already ended; returns its state after the request."""
        state = self.run(kind.get(self.project_id, resource_id))
        if state.phase.is_terminal:
            return state
        return self.run(kind.stop(self.project_id, resource_id))

    def job_logs(self, job_id: str, cursor: logs.LogCursor | None = None) -> tuple[list[logs.LogLine], logs.LogCursor]:
        """Log lines after ``cursor`` (page-logs) and the cursor to continue from."""
        return self.run(logs.new_lines(self.project_id, "jobIds", job_id, cursor or logs.LogCursor(), max_pages=50))

    def download_job_logs(self, job_id: str, cloudspace_id: str = "") -> str:
        """The full log of a finished job (download-logs signed URL, fetched without credentials)."""
        url = self.run(jobs.download_logs_url(self.project_id, job_id, cloudspace_id))
        if not url:
            return ""
        url = url if "://" in url else self.settings.base_url + url
        with httpx.Client(timeout=self.transport.timeout, verify=self.settings.verify) as client:
            response = client.get(url)
        response.raise_for_status()
        import re

        return "\n".join(re.sub(r"^\[.*?\] ", "", ln) for ln in response.text.splitlines())

    def job_url(self, job: ResourceState, studio_name: str = "") -> str:
        """The job's (or multi-machine job's) page in the Lightning web UI."""
        app_id = kind_named(job.kind).app_id
        return teamspaces.job_url(self.settings.base_url, self.teamspace, job.name, studio_name, app_id)

    # -- deployments ---------------------------------------------------------------------------

    def upsert_deployment(self, spec: deployments.DeploymentSpec) -> deployments.Upserted:
        """Create the deployment, or update it only where ``spec`` differs (no new release when unchanged)."""
        spec = spec.validated()
        cloudspace_id = self.studio_id(spec.studio) if spec.studio else ""
        body = spec.body(cloudspace_id=cloudspace_id, default_cluster_id=self.settings.cluster_id)
        return self.run(deployments.upsert(self.project_id, body))

    def find_deployment(self, name_or_id: str) -> ResourceState | None:
        """A deployment by id (``dep_...``, as the SDK treats it) or by exact name; None when there is none."""
        kind = deployments.DEPLOYMENT
        if name_or_id.startswith("dep_"):
            return self.run(replace(kind.get(self.project_id, name_or_id), none_if_missing=True))
        return self.run(kind.find(self.project_id, name_or_id))

    def delete_deployment(self, deployment_id: str) -> bool:
        """Delete a deployment; False when it was already gone."""
        return self.run(deployments.DEPLOYMENT.delete(self.project_id, deployment_id)) is not None
