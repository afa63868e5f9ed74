"""Deployment operators: upsert and wait until ready, stop (scale to zero) and wait, delete."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow_provider_lightning.links import LightningDeploymentLink
from airflow_provider_lightning.operators.base import LightningBaseOperator, is_template, seconds, task_key

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_lightning.api.deployments import DeploymentSpec
    from airflow_provider_lightning.api.state import ResourceState
    from airflow_provider_lightning.triggers.contract import WaitEvent

DEPLOYMENT_URL_KEY = LightningDeploymentLink.xcom_key_for_url


def _summary(state: ResourceState, web_url: str, **extra: Any) -> dict[str, Any]:
    """What the operators return (and so push as ``return_value``)."""
    from airflow_provider_lightning.api.deployments import release_of, urls_of

    urls = urls_of(state)
    return {
        "deployment_id": state.id,
        "deployment_name": state.name,
        "phase": state.phase.value,
        "state": state.raw_state,
        "urls": urls,
        "url": urls[0] if urls else "",
        "release_id": release_of(state),
        "web_url": web_url,
        **extra,
    }


class LightningDeploymentOperator(LightningBaseOperator):
    """Create or update a Lightning deployment by name, then wait until it serves.

    Upsert: a missing deployment is created; an existing one is updated only where this spec differs
    (fields the spec does not set are kept), so running the task twice with the same spec changes
    nothing and creates no release. A stopped deployment is started again. The wait ends when ready
    replicas reach the desired count and the deployment has a URL; it fails on ``DEPLOYMENT_STATE_FAILED``
    or when replicas keep failing past ``failing_grace_period``, with the server's message.

    Returns (and pushes as XCom ``return_value``) ``deployment_id``, ``deployment_name``, ``urls``,
    ``url`` (the first URL), ``release_id``, ``action`` (created / updated / unchanged) and ``changes``.
    When the task is killed or times out, a deployment this task *created* is deleted (killed) or scaled
    to zero (timeout); one that was stopped and that this task started again is scaled back to zero (so a
    retry of a failed first try leaves nothing running either); a deployment that was serving before the
    task is never torn down.

    :param deployment_name: deployment name, the upsert key.
    :param image: container image (exclusive with ``studio``).
    :param studio: Studio to deploy from (exclusive with ``image``; needs ``command``).
    :param command: command that starts the server.
    :param entrypoint: container entrypoint (image deployments only).
    :param machine: machine per replica (``"CPU"``, ``"L4"``, ``"A100"`` or a slug).
    :param interruptible: run replicas on interruptible (spot) machines.
    :param env: environment variables (str to str).
    :param secrets: ``{"ENV_NAME": "teamspace-secret-name"}``: env values read from teamspace secrets.
    :param ports: ports the server listens on (at least one).
    :param replicas: fixed replica count (default 1 when ``autoscale`` is not given).
    :param autoscale: ``{"min_replicas", "max_replicas", "metric": "CPU"|"GPU"|"RPM", "threshold": 0-100}``.
    :param health_check: ``{"http": {"path": "/health", "port": 8000}}`` or ``{"exec": "command"}``, plus
        optional ``failure_threshold``, ``initial_delay_seconds``, ``interval_seconds``, ``timeout_seconds``.
    :param auth: endpoint auth: ``{"token": ...}``, ``{"username": ..., "password": ...}`` or
        ``{"user_api_key": True}`` (callers send their Lightning API key); values are masked in logs.
    :param rolling_update: ``{"max_surge": 1, "max_unavailable": 0}`` for rolling out new releases.
    :param cluster_id: cloud account; default the connection's ``cluster_id``, else Lightning chooses.
    :param include_credentials: give replicas the deploying user's Lightning credentials.
    :param max_runtime: stop replicas after this long (seconds or timedelta).
    :param allow_custom_machine: accept an unknown machine string as a raw cloud instance type.
    :param wait_for_ready: wait until the deployment serves (otherwise return after the upsert).
    :param timeout: limit (seconds or timedelta) on the wait for ready (default 30 minutes); None waits forever.
    :param failing_grace_period: how long replicas may keep failing without any becoming ready before the
        task fails (seconds or timedelta).
    :param stream_logs: copy new replica log lines into the task log while waiting.

    Also takes the arguments every Lightning operator shares (``lightning_conn_id``, ``teamspace``,
    ``deferrable``, ``poll_interval``, default 10 s), see
    :class:`~airflow_provider_lightning.operators.base.LightningBaseOperator`.
    """

    template_fields: Sequence[str] = (
        *LightningBaseOperator.template_fields,
        "deployment_name", "image", "studio", "command", "entrypoint", "machine", "env", "secrets", "cluster_id",
    )
    default_poll_interval = 10.0
    default_timeout = timedelta(minutes=30)
    template_fields_renderers = {"command": "bash", "env": "json", "secrets": "json"}
    operator_extra_links = (LightningDeploymentLink(),)

    def __init__(
        self,
        *,
        deployment_name: str,
        image: str | None = None,
        studio: str | None = None,
        command: str = "",
        entrypoint: str | None = None,
        machine: str = "CPU",
        interruptible: bool = False,
        env: Mapping[str, str] | None = None,
        secrets: Mapping[str, str] | None = None,
        ports: Sequence[int] | int = (8000,),
        replicas: int | None = None,
        autoscale: Mapping[str, Any] | None = None,
        health_check: Mapping[str, Any] | None = None,
        auth: Mapping[str, Any] | None = None,
        rolling_update: Mapping[str, Any] | None = None,
        cluster_id: str = "",
        include_credentials: bool = True,
        max_runtime: float | timedelta | None = None,
        allow_custom_machine: bool = False,
        wait_for_ready: bool = True,
        failing_grace_period: float | timedelta = timedelta(minutes=5),
        stream_logs: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.deployment_name = deployment_name
        self.image = image
        self.studio = studio
        self.command = command
        self.entrypoint = entrypoint
        self.machine = machine
        self.interruptible = interruptible
        self.env = env  # template fields: stored as given, normalised in _spec after rendering
        self.secrets = secrets
        self.ports: Any = [ports] if isinstance(ports, int) else ports
        self.replicas = replicas
        self.autoscale = autoscale
        self.health_check = health_check
        self.auth = auth
        self.rolling_update = rolling_update
        self.cluster_id = cluster_id
        self.include_credentials = include_credentials
        runtime = seconds(max_runtime, "max_runtime")
        self.max_runtime_seconds = None if runtime is None else int(runtime)
        self.allow_custom_machine = allow_custom_machine
        self.wait_for_ready = wait_for_ready
        self.failing_grace_period = seconds(failing_grace_period, "failing_grace_period", allow_none=False)
        self.stream_logs = stream_logs
        self._spec(check_templates=False)  # fail at parse time on what is already known

    def _spec(self, *, check_templates: bool = True) -> DeploymentSpec:
        """The validated spec; with ``check_templates=False`` Jinja values get placeholders."""
        from airflow_provider_lightning.api.deployments import DeploymentSpec

        def value(v: Any, placeholder: Any) -> Any:
            return placeholder if not check_templates and is_template(v) else v

        def mapping(v: Any) -> Any:
            if isinstance(v, Mapping):
                return {k: value(x, "x") for k, x in v.items()}
            return {} if not check_templates and is_template(v) else v

        return DeploymentSpec(
            name=value(self.deployment_name, "placeholder"),
            image=value(self.image or "", "image"),
            studio=value(self.studio or "", "studio"),
            command=value(self.command, "x"),
            entrypoint=self.entrypoint,
            machine=value(self.machine, "CPU"),
            interruptible=self.interruptible,
            env=mapping(self.env),
            secrets=mapping(self.secrets),
            ports=self.ports,
            replicas=self.replicas,
            autoscale=self.autoscale,
            health_check=self.health_check,
            auth=self.auth,
            rolling_update=self.rolling_update,
            cluster_id=self.cluster_id,
            include_credentials=self.include_credentials,
            max_runtime_seconds=self.max_runtime_seconds,
            allow_custom_machine=self.allow_custom_machine,
        ).validated()

    def execute(self, context: Context) -> Any:
        from airflow_provider_lightning.api.deployments import DEPLOYMENT
        from airflow_provider_lightning.api.phases import Phase
        from airflow_provider_lightning.triggers.contract import EventStatus

        self._page_url = ""
        spec = self._spec()
        hook = self._get_hook()  # upsert_deployment masks the endpoint token / password
        ti = context["ti"]
        map_index = getattr(ti, "map_index", -1)
        note = f"Created by Airflow task {ti.dag_id}.{ti.task_id}" + (
            f"[{map_index}]" if isinstance(map_index, int) and map_index >= 0 else "")
        # The marker in the release notes keeps "this task created it" when the worker dies: a retry that finds
        # the deployment (crash-looping, say) still owns it and scales it to zero when it fails.
        upserted = hook.upsert_deployment(spec, owner=task_key(context), owner_note=f"{note}, run {ti.run_id}")
        state = upserted.state
        changes = f" ({', '.join(upserted.changes)})" if upserted.changes else ""
        self.log.info("Deployment %s (%s) %s%s", state.name, state.id, upserted.action, changes)
        if upserted.ours and upserted.action != "created":
            self.log.info("Deployment %s was created by an earlier try of this task: this task owns it", state.name)
        web_url = hook.job_url(state)
        ti.xcom_push(key="deployment_id", value=state.id)
        ti.xcom_push(key="deployment_name", value=state.name)
        self.publish_url(context, DEPLOYMENT_URL_KEY, web_url)
        wait = self.wait_spec(
            DEPLOYMENT.name, state.id, [Phase.RUNNING.value],
            stream_logs=self.stream_logs,
            owns=self.owns_for(created=upserted.ours, started=upserted.started),
            failing_grace=self.failing_grace_period,
            resource_name=state.name,
            url=web_url,
            results={"action": upserted.action, "changes": list(upserted.changes), "created": upserted.ours},
        )
        if not self.wait_for_ready or (upserted.action == "unchanged" and state.phase is Phase.RUNNING):
            return self._done(context, state, wait.event(EventStatus.SUCCESS, state, "ready"))
        return self.wait(context, wait)

    @classmethod
    def release_orphaned_work(cls, arguments: Any, context: Context) -> list[str]:
        """Scale to zero the deployments this task instance created (its owner key in their release notes) that
        still run (see ``operators.orphans``); what was done."""
        from airflow_provider_lightning.api.deployments import DEPLOYMENT, deployment_page, owner_of
        from airflow_provider_lightning.operators.orphans import release_listed

        key = task_key(context)
        return release_listed(arguments, [(DEPLOYMENT, lambda project, token: deployment_page(project, token, 100))],
                              lambda page, resource_id: owner_of(page.entries[resource_id]) == key)

    def complete(self, context: Context, event: WaitEvent) -> dict[str, Any]:
        """The deployment's URLs, release and upsert outcome (what the task returns)."""
        from airflow_provider_lightning.api.deployments import urls_of

        assert event.resource is not None
        self.log.info("Deployment %s is ready at %s", event.resource.name, ", ".join(urls_of(event.resource)))
        return self._done(context, event.resource, event)

    def describe_failure(self, event: WaitEvent) -> str:
        return f"Deployment {event.resource_name or self.deployment_name} is not ready"

    def fail(self, event: WaitEvent) -> Any:
        self._lineage_event = event  # what get_openlineage_facets_on_failure reports
        if not event.owns.owned:
            from dataclasses import replace

            event = replace(event, message=event.message + "; the deployment existed before this task and was left "
                            "as it is")
        return super().fail(event)

    def ownership_phrase(self, event: WaitEvent) -> str:
        if event.results.get("created") or event.results.get("action") == "created":
            return "created"
        return "started again (it was stopped before)"

    def _done(self, context: Context, state: ResourceState, event: WaitEvent) -> dict[str, Any]:
        self._lineage_event = event  # what get_openlineage_facets_on_complete reports
        result = _summary(state, event.url, action=event.results.get("action", ""),
                          changes=list(event.results.get("changes", [])))
        context["ti"].xcom_push(key="urls", value=result["urls"])
        return result

    # -- OpenLineage ---------------------------------------------------------------------------

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage facets of the deployment: a ``lightningRun`` run facet with its endpoint URLs (no datasets;
        see ``airflow_provider_lightning.openlineage``).

        Returns an ``OperatorLineage``; None before the upsert or without the OpenLineage provider.
        """
        from airflow_provider_lightning.openlineage import deployment_lineage

        return deployment_lineage(self, task_instance)

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Any:
        """The same facets for a failed task, with the deployment's last known phase."""
        return self.get_openlineage_facets_on_complete(task_instance)


class _ExistingDeploymentOperator(LightningBaseOperator):
    """Shared by the stop and delete operators: find an existing deployment by name or id."""

    template_fields: Sequence[str] = (*LightningBaseOperator.template_fields, "deployment_name")
    operator_extra_links = (LightningDeploymentLink(),)

    def __init__(self, *, deployment_name: str, missing_ok: bool, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not deployment_name:
            raise ValueError("deployment_name is required (a deployment name, or its dep_... id)")
        self.deployment_name = deployment_name
        self.missing_ok = missing_ok

    def _find(self, context: Context) -> ResourceState | None:
        """The deployment, or None when it does not exist and ``missing_ok``; pushes its page URL."""
        from airflow.providers.common.compat.sdk import AirflowException

        hook = self._get_hook()
        state = hook.find_deployment(self.deployment_name)
        if state is None:
            message = f"no Lightning deployment {self.deployment_name!r} in teamspace {hook.teamspace.slug}"
            if not self.missing_ok:
                raise AirflowException(message)
            self.log.info("Nothing to do: %s", message)
            self._page_url = ""
            return None
        self.publish_url(context, DEPLOYMENT_URL_KEY, hook.job_url(state))
        return state


class LightningStopDeploymentOperator(_ExistingDeploymentOperator):
    """Stop a deployment the way the SDK does (scale to zero), then wait until no replica is left.

    :param deployment_name: name (or ``dep_...`` id) of the deployment.
    :param missing_ok: succeed when the deployment does not exist.
    :param wait_for_stopped: wait until no replica is left.
    :param timeout: limit (seconds or timedelta) on that wait (default 10 minutes).

    Also takes the shared arguments (``lightning_conn_id``, ``teamspace``, ``deferrable``, ``poll_interval``,
    default 5 s) of :class:`~airflow_provider_lightning.operators.base.LightningBaseOperator`.
    """

    default_poll_interval = 5.0
    default_timeout = timedelta(minutes=10)

    def __init__(self, *, deployment_name: str, missing_ok: bool = False, wait_for_stopped: bool = True,
                 **kwargs: Any) -> None:
        super().__init__(deployment_name=deployment_name, missing_ok=missing_ok, **kwargs)
        self.wait_for_stopped = wait_for_stopped

    def execute(self, context: Context) -> Any:
        from airflow_provider_lightning.api.deployments import DEPLOYMENT
        from airflow_provider_lightning.api.phases import Phase

        state = self._find(context)
        if state is None:
            return None
        hook = self._get_hook()
        state = hook.stop(DEPLOYMENT, state.id) or state
        self.log.info("Scaling deployment %s (%s) to zero; it is %s", state.name, state.id, state.phase.value)
        web_url = self._page_url or ""
        if state.phase is Phase.STOPPED or not self.wait_for_stopped:
            return _summary(state, web_url)
        return self.wait(context, self.wait_spec(DEPLOYMENT.name, state.id, [Phase.STOPPED.value], stream_logs=False,
                                                 resource_name=state.name, url=web_url))

    def describe_failure(self, event: WaitEvent) -> str:
        return f"Deployment {event.resource_name or self.deployment_name} did not stop"

    def complete(self, context: Context, event: WaitEvent) -> dict[str, Any]:
        """The stopped deployment's summary."""
        assert event.resource is not None
        self.log.info("Deployment %s is stopped: no replica left", event.resource.name)
        return _summary(event.resource, event.url)


class LightningDeleteDeploymentOperator(_ExistingDeploymentOperator):
    """Delete a deployment (its replicas stop and its URL goes away).

    :param deployment_name: name (or ``dep_...`` id) of the deployment.
    :param missing_ok: succeed when the deployment does not exist (default True: deleting is idempotent).

    Also takes ``lightning_conn_id`` and ``teamspace``, see
    :class:`~airflow_provider_lightning.operators.base.LightningBaseOperator`.
    """

    def __init__(self, *, deployment_name: str, missing_ok: bool = True, **kwargs: Any) -> None:
        super().__init__(deployment_name=deployment_name, missing_ok=missing_ok, **kwargs)

    def execute(self, context: Context) -> Any:
        state = self._find(context)
        if state is None:
            return None
        deleted = self._get_hook().delete_deployment(state.id)
        self.log.info("Deployment %s (%s) %s", state.name, state.id, "deleted" if deleted else "was already gone")
        return {"deployment_id": state.id, "deployment_name": state.name, "deleted": deleted}
