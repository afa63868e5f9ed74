"""Sensors that wait for existing Lightning work to reach a phase."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseSensorOperator

from airflow_provider_lightning import DEFAULT_CONN_ID
from airflow_provider_lightning.api.phases import Phase
from airflow_provider_lightning.links import LightningDeploymentLink, LightningJobLink, LightningMultiMachineJobLink
from airflow_provider_lightning.operators.base import default_deferrable, make_hook

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_lightning.api.resources import ResourceKind
    from airflow_provider_lightning.api.state import ResourceState
    from airflow_provider_lightning.hooks.lightning import LightningHook
    from airflow_provider_lightning.triggers.contract import WaitEvent


class LightningJobSensor(BaseSensorOperator):
    """Wait for an existing Lightning job (by name or id) to reach a target phase.

    Fails at once when the job ends in a phase that can never match (for example ``failed`` while
    waiting for ``completed``). It never stops the job it watches.

    :param job_name: name of the job to watch (exclusive with ``job_id``).
    :param job_id: id of the job to watch (exclusive with ``job_name``).
    :param target_phase: phase (or list of phases) that ends the wait: ``pending``, ``running``,
        ``completed``, ``failed`` or ``stopped``.
    :param teamspace: teamspace (``owner/name``) overriding the connection's.
    :param lightning_conn_id: Airflow connection id of type ``lightning``.
    :param deferrable: wait in the triggerer (default ``[operators] default_deferrable``).
    :param stream_logs: copy the job's new log lines into the task log while deferred.
    """

    template_fields: Sequence[str] = ("job_name", "job_id", "teamspace", "lightning_conn_id")
    operator_extra_links: tuple[Any, ...] = (LightningJobLink(),)
    kind_name = "job"
    restartable = False  # a stopped resource of this kind can run again (keep waiting instead of failing)
    log_tail_lines = 20  # how many last log lines a failure message shows

    def __init__(
        self,
        *,
        job_name: str | None = None,
        job_id: str | None = None,
        target_phase: str | Sequence[str] = "completed",
        teamspace: str | None = None,
        lightning_conn_id: str = DEFAULT_CONN_ID,
        deferrable: bool | None = None,
        stream_logs: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if bool(job_name) == bool(job_id):
            raise ValueError("give exactly one of job_name= or job_id=")
        if isinstance(target_phase, (str, Phase)):
            phases = [target_phase]
        elif isinstance(target_phase, (list, tuple, set, frozenset)):
            phases = list(target_phase)
        else:
            raise ValueError(f"target_phase must be a phase name or a list of them, got {target_phase!r}")
        if not phases:
            raise ValueError("target_phase must name at least one phase")
        self.target_phases = [Phase.parse(p).value for p in phases]
        self.job_name = job_name  # template fields: stored as given
        self.job_id = job_id
        self.teamspace = teamspace
        self.lightning_conn_id = lightning_conn_id
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self.stream_logs = stream_logs
        self._hook: Any = None
        self._page_url: str | None = None

    def _get_hook(self) -> LightningHook:
        if self._hook is None:
            self._hook = make_hook(self.lightning_conn_id, self.teamspace)
        return self._hook

    @property
    def kind(self) -> ResourceKind:
        from airflow_provider_lightning.api.registry import kind_named

        return kind_named(self.kind_name)

    def _state(self, context: Context) -> ResourceState:
        """The watched resource's state; the first read also publishes its page for the extra link."""
        from airflow_provider_lightning.api.errors import LightningConfigError

        hook = self._get_hook()
        if self.job_id:
            state = hook.get(self.kind, self.job_id)
        else:
            found = hook.find_job(self.job_name or "", kind=self.kind)
            if found is None:
                raise LightningConfigError(
                    f"no {self.kind.label} named {self.job_name!r} in teamspace {hook.teamspace.slug}"
                )
            state, self.job_id = found, found.id
        if self._page_url is None:
            self._page_url = self._url(state)
            if self.operator_extra_links:
                context["ti"].xcom_push(key=self.operator_extra_links[0].xcom_key_for_url, value=self._page_url)
        return state

    def _url(self, state: ResourceState) -> str:
        """The resource's page in the Lightning web UI ("" for kinds without one)."""
        return self._get_hook().job_url(state) if self.kind.web_app is not None else ""

    def _check(self, state: ResourceState) -> bool:
        """True when the target is reached; AirflowFailException (page, log tail) when it can never be."""
        from airflow.providers.common.compat.sdk import AirflowFailException

        label = self.kind.label
        if state.phase.value in self.target_phases:
            self.log.info("%s %s is %s", label, state.name, state.phase.value)
            return True
        if state.phase.is_terminal and (not self.restartable or state.phase is Phase.FAILED):
            from airflow_provider_lightning.triggers.contract import EventStatus, WaitEvent

            event = WaitEvent(
                status=EventStatus.FAILED, kind=self.kind_name, resource_id=state.id, resource_name=state.name,
                url=self._page_url or "", resource=state, log_tail=tuple(self._log_tail(state)),
                message=self._never_message(state),
            )
            raise AirflowFailException(self._failure_text(event))
        self.log.info("%s %s is %s; waiting for %s", label, state.name, state.phase.value, self.target_phases)
        return False

    def _never_message(self, state: ResourceState) -> str:
        return (f"{self.kind.label} {state.name} ended in phase {state.phase.value}, which can never become "
                f"{' or '.join(self.target_phases)}: {state.message or state.raw_state}")

    def _log_tail(self, state: ResourceState) -> list[str]:
        """The last log lines of a resource that ended (best effort: a failed read gives none)."""
        selector = self.kind.logs.selector
        if not selector:
            return []
        from airflow_provider_lightning.api import logs

        hook = self._get_hook()
        try:
            lines, _ = hook.run(logs.new_lines(hook.project_id, selector, state.id, logs.LogCursor(), max_pages=20))
        except Exception as error:  # the failure itself must still be reported
            self.log.warning("Could not read the logs of %s %s: %s", self.kind.label, state.name, error)
            return []
        return [line.render() for line in lines][-self.log_tail_lines:]

    def _failure_text(self, event: WaitEvent) -> str:
        label = self.kind.label.removeprefix("Lightning ").capitalize()
        return event.describe(page_label=f"{label} page")

    def poke(self, context: Context) -> bool:
        return self._check(self._state(context))

    def execute(self, context: Context) -> Any:
        self._page_url = None
        if not self.deferrable:
            return super().execute(context)
        state = self._state(context)
        if self._check(state):
            return state.to_json()
        from airflow_provider_lightning.operators.base import deadline_after
        from airflow_provider_lightning.triggers.contract import WaitSpec
        from airflow_provider_lightning.triggers.lightning import LightningPhaseTrigger

        spec = WaitSpec(
            kind=self.kind_name,
            resource_id=state.id,
            project_id=self._get_hook().project_id,
            lightning_conn_id=self.lightning_conn_id,
            target_phases=tuple(self.target_phases),
            poll_interval=self.poke_interval,
            deadline=deadline_after(float(self.timeout)) if self.timeout else None,
            stream_logs=self.stream_logs,
            log_tail_lines=self.log_tail_lines,
            resource_name=state.name or self.job_name or "",
            url=self._page_url or "",
            fail_on_terminal=not self.restartable,
        )
        self.defer(trigger=LightningPhaseTrigger.for_spec(spec), method_name="execute_complete")

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        """Resume after the wait: the resource's state, or fail with the reason, its page and its log tail."""
        from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, AirflowSensorTimeout

        from airflow_provider_lightning.triggers.contract import EventStatus, validate_execute_complete_event

        decoded = validate_execute_complete_event(event)
        self._page_url = decoded.url or self._page_url
        if decoded.succeeded:
            return decoded.resource.to_json() if decoded.resource is not None else None
        text = self._failure_text(decoded)
        if decoded.status is EventStatus.TIMEOUT:
            raise AirflowSensorTimeout(text)
        if decoded.status is EventStatus.FAILED:
            raise AirflowFailException(text)
        raise AirflowException(text)


class LightningMultiMachineJobSensor(LightningJobSensor):
    """Wait for an existing Lightning multi-machine job (by name or id) to reach a target phase.

    Same parameters as :class:`LightningJobSensor`; ``job_name``/``job_id`` name the multi-machine job.
    """

    operator_extra_links = (LightningMultiMachineJobLink(),)
    kind_name = "mmt"


class LightningDeploymentSensor(LightningJobSensor):
    """Wait until an existing Lightning deployment is ready (serving) or stopped (no replica left).

    Fails at once when the deployment fails, or is stopped while waiting for ``ready``.

    :param deployment_name: name of the deployment (exclusive with ``deployment_id``).
    :param deployment_id: id (``dep_...``) of the deployment (exclusive with ``deployment_name``).
    :param target_state: ``"ready"`` or ``"stopped"``.
    :param teamspace: teamspace (``owner/name``) overriding the connection's.
    :param lightning_conn_id: Airflow connection id of type ``lightning``.
    :param deferrable: wait in the triggerer (default ``[operators] default_deferrable``).
    """

    template_fields: Sequence[str] = ("deployment_name", "deployment_id", "teamspace", "lightning_conn_id")
    operator_extra_links = (LightningDeploymentLink(),)
    kind_name = "deployment"
    TARGETS = {"ready": Phase.RUNNING.value, "stopped": Phase.STOPPED.value}

    def __init__(
        self,
        *,
        deployment_name: str | None = None,
        deployment_id: str | None = None,
        target_state: str = "ready",
        **kwargs: Any,
    ) -> None:
        if not isinstance(target_state, str) or target_state not in self.TARGETS:
            raise ValueError(f"target_state must be 'ready' or 'stopped', got {target_state!r}")
        if bool(deployment_name) == bool(deployment_id):
            raise ValueError("give exactly one of deployment_name= or deployment_id=")
        super().__init__(job_name=deployment_name, job_id=deployment_id, target_phase=self.TARGETS[target_state],
                         **kwargs)
        self.target_state = target_state

    @property
    def deployment_name(self) -> str | None:
        return self.job_name

    @deployment_name.setter
    def deployment_name(self, value: str | None) -> None:
        self.job_name = value

    @property
    def deployment_id(self) -> str | None:
        return self.job_id

    @deployment_id.setter
    def deployment_id(self, value: str | None) -> None:
        self.job_id = value


class LightningStudioSensor(LightningJobSensor):
    """Wait until a Studio runs (its files restored) or has stopped; it never starts or stops the Studio.

    :param studio_name: name of the Studio.
    :param target_state: ``"running"`` or ``"stopped"``.
    :param teamspace: teamspace (``owner/name``) overriding the connection's.
    :param lightning_conn_id: Airflow connection id of type ``lightning``.
    :param deferrable: wait in the triggerer (default ``[operators] default_deferrable``).
    """

    template_fields: Sequence[str] = ("studio_name", "teamspace", "lightning_conn_id")
    operator_extra_links: tuple[Any, ...] = ()
    kind_name = "studio"
    restartable = True

    def __init__(self, *, studio_name: str, target_state: str = "running", **kwargs: Any) -> None:
        if target_state not in ("running", "stopped"):
            raise ValueError(f"target_state must be 'running' or 'stopped', got {target_state!r}")
        super().__init__(job_name=studio_name, target_phase=target_state, **kwargs)
        self.target_state = target_state

    @property
    def studio_name(self) -> str | None:
        return self.job_name

    @studio_name.setter
    def studio_name(self, value: str | None) -> None:
        self.job_name = value

    def _state(self, context: Context) -> ResourceState:
        from airflow_provider_lightning.api.studios import STUDIO

        hook = self._get_hook()
        if not self.job_id:
            self.job_id = hook.studio_id(self.studio_name or "")
        return replace(hook.get(STUDIO, self.job_id), id=self.job_id, name=self.studio_name or "")
