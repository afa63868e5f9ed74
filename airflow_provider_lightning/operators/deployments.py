"""Deployment operators: upsert and wait until ready, stop (scale to zero) and wait, delete."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from airflow_provider_lightning import DEFAULT_CONN_ID
from airflow_provider_lightning.links import LightningDeploymentLink
from airflow_provider_lightning.operators.base import (
    LightningBaseOperator,
    default_deferrable,
    is_template,
    seconds,
)

DEPLOYMENT_URL_KEY = LightningDeploymentLink.xcom_key_for_url


def _summary(state: Any, web_url: str, **extra: Any) -> dict[str, Any]:
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


def _raise_for(event: Any, what: str) -> Any:
    """The ResourceState of a success event; AirflowException with the server's reason otherwise."""
    from airflow.sdk.exceptions import AirflowException

    from airflow_provider_lightning.api.resources import ResourceState

    if not isinstance(event, dict) or event.get("status") not in ("success", "failed", "timeout", "error"):
        raise AirflowException(f"Unexpected event from the Lightning trigger: {event!r}")
    if event["status"] == "success" and event.get("resource"):
        return ResourceState.from_json(event["resource"])
    tail = event.get("log_tail") or []
    log_part = "\nLast log lines:\n" + "\n".join(f"    {line}" for line in tail) if tail else ""
    raise AirflowException(f"{what}: {event.get('message', '')}{log_part}")


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
    :param teamspace: teamspace (``owner/name``) overriding the connection's.
    :param lightning_conn_id: Airflow connection id of type ``lightning``.
    :param wait_for_ready: wait until the deployment serves (otherwise return after the upsert).
    :param deferrable: wait in the triggerer instead of a worker slot (default ``[operators] default_deferrable``).
    :param poll_interval: seconds between two status reads while waiting.
    :param timeout: limit (seconds or timedelta) on the wait for ready; None waits forever.
    :param failing_grace_period: how long replicas may keep failing without any becoming ready before the
        task fails (seconds or timedelta).
    :param stream_logs: copy new replica log lines into the task log while waiting.
    """

    template_fields: Sequence[str] = (
        "deployment_name", "image", "studio", "command", "entrypoint", "machine", "env", "secrets", "cluster_id",
        "teamspace",
    )
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
        teamspace: str | None = None,
        lightning_conn_id: str = DEFAULT_CONN_ID,
        wait_for_ready: bool = True,
        deferrable: bool | None = None,
        poll_interval: float | timedelta = 10.0,
        timeout: float | timedelta | None = timedelta(minutes=30),
        failing_grace_period: float | timedelta = timedelta(minutes=5),
        stream_logs: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.deployment_name = deployment_name
        self.image = image or ""
        self.studio = studio or ""
        self.command = command
        self.entrypoint = entrypoint
        self.machine = machine
        self.interruptible = interruptible
        self.env = dict(env) if isinstance(env, Mapping) else env
        self.secrets = dict(secrets) if isinstance(secrets, Mapping) else secrets
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
        self.teamspace = teamspace
        self.lightning_conn_id = lightning_conn_id
        self.wait_for_ready = wait_for_ready
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self.poll_interval = seconds(poll_interval, "poll_interval", allow_none=False)
        self.timeout = seconds(timeout, "timeout")
        self.failing_grace_period = seconds(failing_grace_period, "failing_grace_period", allow_none=False)
        self.stream_logs = stream_logs
        self._deployment_id = ""
        self._created = False
        self._started = False  # a stopped (scaled to zero) deployment this task started again
        self._spec(check_templates=False)  # fail at parse time on what is already known

    def _spec(self, *, check_templates: bool = True) -> Any:
        """The validated spec; with ``check_templates=False`` Jinja values get placeholders."""
        from airflow_provider_lightning.api.deployments import DeploymentSpec

        def value(v: Any, placeholder: Any) -> Any:
            return placeholder if not check_templates and is_template(v) else v

        def mapping(v: Any) -> Any:
            if not check_templates and isinstance(v, Mapping):
                return {k: value(x, "x") for k, x in v.items()}
            return {} if not check_templates and is_template(v) else v

        return DeploymentSpec(
            name=value(self.deployment_name, "placeholder"),
            image=value(self.image, "image"),
            studio=value(self.studio, "studio"),
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

    def execute(self, context: Any) -> Any:
        from airflow.sdk.log import mask_secret

        from airflow_provider_lightning.api.deployments import DEPLOYMENT
        from airflow_provider_lightning.api.phases import Phase

        spec = self._spec()
        for key in ("token", "password"):
            if spec.auth and spec.auth.get(key):
                mask_secret(spec.auth[key])
        hook = self._get_hook()
        upserted = hook.upsert_deployment(spec)
        state = upserted.state
        self._deployment_id, self._created, self._started = state.id, upserted.action == "created", upserted.started
        changes = f" ({', '.join(upserted.changes)})" if upserted.changes else ""
        self.log.info("Deployment %s (%s) %s%s", state.name, state.id, upserted.action, changes)
        web_url = hook.job_url(state)
        ti = context["ti"]
        ti.xcom_push(key="deployment_id", value=state.id)
        ti.xcom_push(key="deployment_name", value=state.name)
        ti.xcom_push(key=DEPLOYMENT_URL_KEY, value=web_url)
        outcome = {"action": upserted.action, "changes": list(upserted.changes), "web_url": web_url,
                   "started": upserted.started}
        if not self.wait_for_ready or (upserted.action == "unchanged" and state.phase is Phase.RUNNING):
            return self._done(context, state, outcome)
        trigger = self.phase_trigger(
            DEPLOYMENT.name, state.id, [Phase.RUNNING.value], self.timeout,
            stream_logs=self.stream_logs,
            stop_on_kill=self._created or self._started,
            kill_action="delete" if self._created else "stop",  # a deployment it started goes back to zero
            failing_grace=self.failing_grace_period,
            resource_name=state.name,
        )
        return self.wait(context, trigger, outcome=outcome)

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None, outcome: Any = None) -> Any:
        """Resume after the wait: return the URLs, or fail with the server's reason."""
        outcome = outcome or {}
        self._deployment_id = (event or {}).get("resource_id") or self._deployment_id
        self._created = self._created or outcome.get("action") == "created"
        self._started = self._started or bool(outcome.get("started"))
        from airflow.sdk.exceptions import AirflowException

        from airflow_provider_lightning.api.deployments import urls_of

        try:
            state = _raise_for(event, f"Deployment {self.deployment_name} is not ready")
        except AirflowException as error:
            page = outcome.get("web_url", "")
            raise AirflowException(f"{error}{self._teardown(event)}. Deployment page: {page}") from None
        self.log.info("Deployment %s is ready at %s", state.name, ", ".join(urls_of(state)))
        return self._done(context, state, outcome)

    def _done(self, context: Any, state: Any, outcome: dict[str, Any]) -> dict[str, Any]:
        result = _summary(state, outcome.get("web_url", ""), action=outcome.get("action", ""),
                          changes=outcome.get("changes", []))
        context["ti"].xcom_push(key="urls", value=result["urls"])
        return result

    def _teardown(self, event: Any) -> str:
        """After a timeout or failure: scale to zero a deployment this task created or started again (it was
        stopped before); a deployment that was serving before the task is left as it is."""
        status = (event or {}).get("status")
        owned = self._created or self._started
        if not (owned and self._deployment_id and status in ("timeout", "failed")):
            return "" if owned else "; the deployment existed before this task and was left as it is"
        from airflow_provider_lightning.api.deployments import DEPLOYMENT

        try:
            hook = self._get_hook()
            hook.run(DEPLOYMENT.stop(hook.project_id, self._deployment_id))  # also when FAILED: replicas may retry
        except Exception as stop_error:  # never mask the original failure
            return f"; scaling the deployment this task {self._whose} to zero failed: {stop_error}"
        return f"; the deployment this task {self._whose} was scaled to zero"

    @property
    def _whose(self) -> str:
        return "created" if self._created else "started again (it was stopped before)"

    def on_kill(self) -> None:
        """Delete the deployment if this task created it, scale it back to zero if this task started it again
        (non-deferrable mode; the trigger handles deferral)."""
        if not ((self._created or self._started) and self._deployment_id):
            return
        try:
            hook = self._get_hook()
            if self._created:
                hook.delete_deployment(self._deployment_id)
                self.log.warning("Task killed: deleted deployment %s that this task created", self._deployment_id)
            else:
                from airflow_provider_lightning.api.deployments import DEPLOYMENT

                hook.run(DEPLOYMENT.stop(hook.project_id, self._deployment_id))
                self.log.warning("Task killed: scaled deployment %s back to zero (it was stopped before this task)",
                                 self._deployment_id)
        except Exception as error:
            self.log.error("Could not tear down deployment %s: %s", self._deployment_id, error)


class _ExistingDeploymentOperator(LightningBaseOperator):
    """Shared by the stop and delete operators: find an existing deployment by name or id."""

    template_fields: Sequence[str] = ("deployment_name", "teamspace")
    operator_extra_links = (LightningDeploymentLink(),)

    def __init__(
        self,
        *,
        deployment_name: str,
        missing_ok: bool,
        teamspace: str | None = None,
        lightning_conn_id: str = DEFAULT_CONN_ID,
        deferrable: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not deployment_name:
            raise ValueError("deployment_name is required (a deployment name, or its dep_... id)")
        self.deployment_name = deployment_name
        self.missing_ok = missing_ok
        self.teamspace = teamspace
        self.lightning_conn_id = lightning_conn_id
        self.deferrable = default_deferrable() if deferrable is None else deferrable

    def _find(self, context: Any) -> Any:
        """The deployment, or None when it does not exist and ``missing_ok``; pushes its page URL."""
        from airflow.sdk.exceptions import AirflowException

        hook = self._get_hook()
        state = hook.find_deployment(self.deployment_name)
        if state is None:
            message = f"no Lightning deployment {self.deployment_name!r} in teamspace {hook.teamspace.slug}"
            if not self.missing_ok:
                raise AirflowException(message)
            self.log.info("Nothing to do: %s", message)
            return None
        context["ti"].xcom_push(key=DEPLOYMENT_URL_KEY, value=hook.job_url(state))
        return state


class LightningStopDeploymentOperator(_ExistingDeploymentOperator):
    """Stop a deployment the way the SDK does (scale to zero), then wait until no replica is left.

    :param deployment_name: name (or ``dep_...`` id) of the deployment.
    :param missing_ok: succeed when the deployment does not exist.
    :param wait_for_stopped: wait until no replica is left.
    :param timeout: limit (seconds or timedelta) on that wait.
    :param poll_interval: seconds between two status reads while waiting.
    :param deferrable: wait in the triggerer (default ``[operators] default_deferrable``).
    :param teamspace: teamspace (``owner/name``) overriding the connection's.
    :param lightning_conn_id: Airflow connection id of type ``lightning``.
    """

    def __init__(
        self,
        *,
        deployment_name: str,
        missing_ok: bool = False,
        wait_for_stopped: bool = True,
        timeout: float | timedelta | None = timedelta(minutes=10),
        poll_interval: float | timedelta = 5.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(deployment_name=deployment_name, missing_ok=missing_ok, **kwargs)
        self.wait_for_stopped = wait_for_stopped
        self.timeout = seconds(timeout, "timeout")
        self.poll_interval = seconds(poll_interval, "poll_interval", allow_none=False)

    def execute(self, context: Any) -> Any:
        from airflow_provider_lightning.api.deployments import DEPLOYMENT
        from airflow_provider_lightning.api.phases import Phase

        state = self._find(context)
        if state is None:
            return None
        hook = self._get_hook()
        state = hook.stop(DEPLOYMENT, state.id) or state
        self.log.info("Scaling deployment %s (%s) to zero; it is %s", state.name, state.id, state.phase.value)
        if state.phase is Phase.STOPPED or not self.wait_for_stopped:
            return _summary(state, hook.job_url(state))
        trigger = self.phase_trigger(
            DEPLOYMENT.name, state.id, [Phase.STOPPED.value], self.timeout,
            stream_logs=False,
            resource_name=state.name,
        )
        return self.wait(context, trigger)

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> Any:
        """Resume after the wait: the stopped deployment's summary, or fail naming what is left."""
        state = _raise_for(event, f"Deployment {self.deployment_name} did not stop")
        self.log.info("Deployment %s is stopped: no replica left", state.name)
        return _summary(state, self._get_hook().job_url(state))


class LightningDeleteDeploymentOperator(_ExistingDeploymentOperator):
    """Delete a deployment (its replicas stop and its URL goes away).

    :param deployment_name: name (or ``dep_...`` id) of the deployment.
    :param missing_ok: succeed when the deployment does not exist (default True: deleting is idempotent).
    :param teamspace: teamspace (``owner/name``) overriding the connection's.
    :param lightning_conn_id: Airflow connection id of type ``lightning``.
    """

    def __init__(self, *, deployment_name: str, missing_ok: bool = True, **kwargs: Any) -> None:
        super().__init__(deployment_name=deployment_name, missing_ok=missing_ok, **kwargs)

    def execute(self, context: Any) -> Any:
        state = self._find(context)
        if state is None:
            return None
        deleted = self._get_hook().delete_deployment(state.id)
        self.log.info("Deployment %s (%s) %s", state.name, state.id, "deleted" if deleted else "was already gone")
        return {"deployment_id": state.id, "deployment_name": state.name, "deleted": deleted}
