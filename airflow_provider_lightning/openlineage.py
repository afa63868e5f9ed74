"""OpenLineage facets of the Lightning runs the operators start (jobs, multi-machine jobs, deployments).

The operators' ``get_openlineage_facets_on_complete`` / ``_on_failure`` call ``job_lineage`` or
``deployment_lineage``, which return an ``OperatorLineage`` with

* a ``lightningRun`` run facet (``LightningRunFacet``): the resource's kind, id, name, web page, teamspace,
  machine, phase, cost when the API reports one, the number of machines of a job, a deployment's endpoint URLs;
* input datasets: the data connections a job mounts (``path_mappings``), named
  ``data-connections/<connection>[/<path>]``;
* output datasets: a Studio job's artifact folder ``jobs/<job name>`` in the teamspace drive (where the SDK's
  ``Job.artifacts_uri`` points); a container or multi-machine job reports none.

Datasets live in the namespace ``lightning://<owner>/<teamspace>``; when the teamspace name is not known (a
connection configured with a ``project_id`` only, in a resumed task) no dataset is reported rather than a made-up
one. Nothing here calls the Lightning API: the operators keep the last state they read.

Import-light: DAG files import the operators on every parse, so ``airflow.providers.openlineage`` and
``openlineage.client`` are imported only inside the functions, when the listener asks; without the OpenLineage
provider the functions return None.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_lightning.triggers.contract import WaitEvent

RUN_FACET_KEY = "lightningRun"
"""The key of ``LightningRunFacet`` in an event's ``run.facets``."""

_NOT_SECRET = ("resourceKind", "resourceId", "phase", "machine", "totalCost", "numMachines")  # never redacted


@dataclass(frozen=True)
class LightningRun:
    """What the facet and the datasets are built from (plain values: no OpenLineage import needed).

    :param kind: resource kind name (``job``, ``mmt``, ``deployment``).
    :param resource_id: its id.
    :param name: its name.
    :param url: its page in the Lightning web UI ("" when unknown).
    :param phase: its last known phase (``completed``, ``failed``, ``running``...; ``unknown`` without a read).
    :param teamspace: ``owner/teamspace`` ("" when not known without an API call).
    :param machine: the machine slug it runs on.
    :param total_cost: its cost as the API reports it, None when it does not.
    :param num_machines: machines of a job (1, or 2 and more for a multi-machine job); None for a deployment.
    :param endpoint_urls: a deployment's serving URLs.
    :param inputs: names of the input datasets in the teamspace's namespace.
    :param outputs: names of the output datasets in the teamspace's namespace.
    """

    kind: str
    resource_id: str
    name: str
    url: str = ""
    phase: str = "unknown"
    teamspace: str = ""
    machine: str = ""
    total_cost: float | None = None
    num_machines: int | None = None
    endpoint_urls: tuple[str, ...] = ()
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()

    @property
    def namespace(self) -> str:
        """``lightning://<owner>/<teamspace>``, or "" when the teamspace is unknown."""
        return f"lightning://{self.teamspace}" if self.teamspace else ""


def connection_dataset_name(connection: str, path: str = "") -> str:
    """Dataset name of a data connection (or a path inside it) mounted into a job."""
    sub = path.strip("/")
    return f"data-connections/{connection}/{sub}" if sub else f"data-connections/{connection}"


def artifacts_dataset_name(job_name: str) -> str:
    """Dataset name of a Studio job's artifact folder in the teamspace drive (``/teamspace/jobs/<name>``)."""
    return f"jobs/{job_name}"


# -- what the operators kept -------------------------------------------------------------------------


def _teamspace(operator: Any) -> str:
    """The operator's ``owner/teamspace``: as resolved by its hook, else as configured; "" when only an id is."""
    try:
        hook = getattr(operator, "_hook", None)
        resolved = getattr(hook, "_teamspace", None)
        if resolved is not None and resolved.owner and resolved.name:
            return f"{resolved.owner}/{resolved.name}"
        from airflow_provider_lightning.api.teamspaces import split_teamspace

        configured = operator.teamspace or operator._get_hook().settings.teamspace
        owner, name = split_teamspace(configured)
        return f"{owner}/{name}"
    except Exception:  # no connection, a project id only, a template left unrendered: no namespace
        return ""


def _machine(operator: Any) -> str:
    from airflow_provider_lightning.api.machines import resolve_machine

    machine = getattr(operator, "machine", "")
    try:
        return resolve_machine(machine, allow_custom=bool(getattr(operator, "allow_custom_machine", False)))
    except ValueError:
        return machine if isinstance(machine, str) else ""


def _seen(operator: Any) -> WaitEvent | None:
    return getattr(operator, "_lineage_event", None)


def _operator_that_ran(operator: Any, task_instance: Any) -> Any:
    """The operator instance whose ``execute`` ran: before Airflow 3.3 the listener is handed the task as parsed,
    while ``execute`` ran on the copy ``ti.task`` (``prepare_for_execution``) that holds the rendered fields."""
    if _seen(operator) is None:
        ran = getattr(task_instance, "task", None)
        if ran is not None and ran is not operator and _seen(ran) is not None:
            return ran
    return operator


def _name(event: WaitEvent) -> str:
    return event.resource_name or (event.resource.name if event.resource is not None else "")


def _base(operator: Any, event: WaitEvent, **fields: Any) -> LightningRun:
    state = event.resource
    return LightningRun(
        kind=event.kind,
        resource_id=event.resource_id,
        name=_name(event),
        url=event.url or (getattr(operator, "_page_url", "") or ""),
        phase=state.phase.value if state is not None else "unknown",
        teamspace=_teamspace(operator),
        machine=_machine(operator),
        total_cost=state.total_cost if state is not None else None,
        **fields,
    )


def job_run(operator: Any) -> LightningRun | None:
    """What a job (or multi-machine job) operator ran, from the last event it kept; None before a submission."""
    event = _seen(operator)
    if event is None:
        return None
    from airflow_provider_lightning.api.jobs import parse_path_mappings

    try:
        mounts = parse_path_mappings(operator.path_mappings if isinstance(operator.path_mappings, Mapping) else {})
    except ValueError:
        mounts = []
    inputs = tuple(dict.fromkeys(connection_dataset_name(m["connectionName"], m["connectionPath"]) for m in mounts))
    # A Studio job keeps its artifacts in the teamspace drive; a container job only with an artifacts destination
    # (which this provider never sets) and a multi-machine job per machine: no output then.
    studio_job = event.kind == "job" and bool(getattr(operator, "studio", "")) and bool(_name(event))
    outputs = (artifacts_dataset_name(_name(event)),) if studio_job else ()
    return _base(operator, event, num_machines=int(getattr(operator, "num_machines", 1) or 1), inputs=inputs,
                 outputs=outputs)


def deployment_run(operator: Any) -> LightningRun | None:
    """What a deployment operator upserted, from the last event it kept; None before the upsert."""
    event = _seen(operator)
    if event is None:
        return None
    urls = event.resource.detail.get("urls") if event.resource is not None else None
    return _base(operator, event, endpoint_urls=tuple(u for u in urls or () if isinstance(u, str)))


# -- OpenLineage objects (imported lazily) -----------------------------------------------------------


def run_facet_class() -> type:
    """``LightningRunFacet``, an ``openlineage.client.facet_v2.RunFacet`` (ImportError without the client)."""
    cls = globals().get("_FACET_CLASS")
    if cls is not None:
        return cls  # type: ignore[no-any-return]
    import attrs
    from openlineage.client.facet_v2 import RunFacet

    @attrs.define
    class LightningRunFacet(RunFacet):  # type: ignore[misc]
        """The Lightning resource an Airflow task ran (key ``lightningRun`` in ``run.facets``).

        :param resourceKind: ``job``, ``mmt`` (multi-machine job) or ``deployment``.
        :param resourceId: its id.
        :param resourceName: its name.
        :param phase: its last known phase (``completed``, ``failed``, ``running``, ...).
        :param webUrl: its page in the Lightning web UI (the task's extra link).
        :param teamspace: ``owner/teamspace``, when known.
        :param machine: the machine slug (``lit-a100-1``).
        :param totalCost: its cost as the Lightning API reports it, when it does.
        :param numMachines: machines of a job (2 or more for a multi-machine job).
        :param endpointUrls: a deployment's serving URLs.
        """

        resourceKind: str
        resourceId: str
        resourceName: str
        phase: str
        webUrl: str
        teamspace: str | None = None
        machine: str | None = None
        totalCost: float | None = None
        numMachines: int | None = None
        endpointUrls: list[str] | None = None

        _additional_skip_redact = list(_NOT_SECRET)

    LightningRunFacet.__module__ = __name__
    LightningRunFacet.__qualname__ = "LightningRunFacet"
    globals()["_FACET_CLASS"] = LightningRunFacet
    return LightningRunFacet


def __getattr__(name: str) -> Any:
    """``LightningRunFacet`` is built on first access (it needs ``openlineage.client``)."""
    if name == "LightningRunFacet":
        return run_facet_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def operator_lineage(run: LightningRun | None) -> Any:
    """The ``OperatorLineage`` for ``run``; None when there is no run or the OpenLineage provider is missing."""
    if run is None:
        return None
    try:
        from airflow.providers.openlineage.extractors import OperatorLineage
        from openlineage.client.event_v2 import Dataset

        facet_class = run_facet_class()
    except ImportError:
        return None
    facet = facet_class(
        resourceKind=run.kind,
        resourceId=run.resource_id,
        resourceName=run.name,
        phase=run.phase,
        webUrl=run.url,
        teamspace=run.teamspace or None,
        machine=run.machine or None,
        totalCost=run.total_cost,
        numMachines=run.num_machines,
        endpointUrls=list(run.endpoint_urls) or None,
    )
    namespace = run.namespace
    return OperatorLineage(
        inputs=[Dataset(namespace=namespace, name=name) for name in run.inputs] if namespace else [],
        outputs=[Dataset(namespace=namespace, name=name) for name in run.outputs] if namespace else [],
        run_facets={RUN_FACET_KEY: facet},
    )


def job_lineage(operator: Any, task_instance: Any = None) -> Any:
    """``OperatorLineage`` of a job or multi-machine job operator's run (None: nothing submitted, or no provider)."""
    return operator_lineage(job_run(_operator_that_ran(operator, task_instance)))


def deployment_lineage(operator: Any, task_instance: Any = None) -> Any:
    """``OperatorLineage`` of a deployment operator's upsert (None: nothing upserted, or no provider)."""
    return operator_lineage(deployment_run(_operator_that_ran(operator, task_instance)))
