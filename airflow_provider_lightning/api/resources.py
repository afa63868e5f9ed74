"""Resource descriptions: what a Lightning resource kind looks like to the generic phase trigger.

A :class:`ResourceKind` knows its paths, how to read its phase from a response, how to stop it and its
web URL. Jobs, MMT runs, deployments and Studios all "change phase until terminal"; adding a kind is
adding one description here, not another trigger.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from airflow_provider_lightning.api import wire
from airflow_provider_lightning.api.errors import LightningApiError
from airflow_provider_lightning.api.phases import Phase
from airflow_provider_lightning.api.transport import AMBIGUOUS_ERRORS, ApiCall, Flow, Operation


@dataclass(frozen=True)
class ResourceState:
    """A snapshot of one remote resource, read tolerantly from the API's JSON."""

    kind: str
    id: str
    name: str
    phase: Phase
    raw_state: str
    message: str = ""
    created_at: str | None = None
    started_at: str | None = None
    stopped_at: str | None = None
    total_cost: float | None = None
    cloudspace_id: str = ""
    failing: bool = False
    detail: dict[str, Any] = field(default_factory=dict)  # small JSON values a kind carries in events (urls)
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        """A small JSON-safe summary (what trigger events and XCom carry)."""
        data = asdict(self)
        data.pop("raw")
        data["phase"] = self.phase.value
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ResourceState:
        """Rebuild from :meth:`to_json` output."""
        data = dict(data)
        data["phase"] = Phase(data["phase"])
        return cls(**data)

    @property
    def duration_seconds(self) -> float | None:
        """Seconds between start and stop, when both are known."""
        if not (self.started_at and self.stopped_at):
            return None
        from datetime import datetime

        import pendulum

        try:  # the API's values: a hostile answer may hold any string (a bare time, a duration, garbage)
            start, stop = pendulum.parse(self.started_at), pendulum.parse(self.stopped_at)
        except (ValueError, TypeError, OverflowError, pendulum.parsing.exceptions.ParserError):
            return None
        if not (isinstance(start, datetime) and isinstance(stop, datetime)):
            return None
        return round((stop - start).total_seconds(), 3)


# -- jobs --------------------------------------------------------------------------------------

_JOB_STATES: dict[str, Phase] = {
    "pending": Phase.PENDING,
    "creating": Phase.PENDING,
    "queued": Phase.PENDING,
    "running": Phase.RUNNING,
    "restarting": Phase.RUNNING,
    "stopping": Phase.STOPPING,
    "stop": Phase.STOPPING,
    "delete": Phase.STOPPING,
    "complete": Phase.STOPPING,  # exited, logs still being collected: not terminal
    "fail": Phase.STOPPING,
    "stopped": Phase.STOPPED,
    "deleted": Phase.STOPPED,
    "unspecified": Phase.PENDING,
    "cancelled": Phase.STOPPED,
    "completed": Phase.COMPLETED,
    "succeeded": Phase.COMPLETED,
    "failed": Phase.FAILED,
}


def job_phase(raw_state: str) -> Phase:
    """Map a raw job state (``running``, or the seed form ``JOB_STATE_RUNNING``) to a :class:`Phase`.

    Unknown values map to PENDING, as the SDK does: never terminal, so nothing is abandoned.
    """
    key = raw_state.strip().lower()
    for prefix in ("multimachinejob_state_", "multi_machine_job_state_", "job_state_", "state_"):
        if key.startswith(prefix):
            key = key[len(prefix):]
    return _JOB_STATES.get(key, Phase.PENDING)


def _raw_state(data: dict[str, Any]) -> str:
    state = wire.field(data, "state")
    if isinstance(state, str) and state:
        return state
    status = wire.field(data, "status")
    if isinstance(status, dict):
        return wire.text(status, "phase") or wire.text(status, "state")
    return ""


def read_job(data: Any, kind: str = "job") -> ResourceState:
    """Read a ``V1Job`` (camelCase, or the seed documents' snake_case with ``status.phase``)."""
    if not isinstance(data, dict) or not wire.text(data, "id"):
        raise ValueError(f"a {kind} has no id")
    raw_state = _raw_state(data)
    spec = wire.field(data, "spec", {})
    status = wire.field(data, "status", {})
    return ResourceState(
        kind=kind,
        id=wire.text(data, "id"),
        name=wire.text(data, "name"),
        phase=job_phase(raw_state),
        raw_state=raw_state,
        message=wire.text(data, "server_error") or wire.text(data, "message") or wire.text(status, "message"),
        created_at=wire.timestamp(data, "created_at"),
        started_at=wire.timestamp(data, "started_at") or wire.timestamp(status, "started_at"),
        stopped_at=wire.timestamp(data, "stopped_at") or wire.timestamp(status, "stopped_at"),
        total_cost=wire.number(data, "total_cost"),
        cloudspace_id=wire.text(spec, "cloudspace_id") or wire.text(data, "cloudspace_id"),
        raw=data,
    )


def read_mmt(data: Any) -> ResourceState:
    """Read a ``V1MultiMachineJob`` (state ``MultiMachineJob_STATE_*``, times under ``status``)."""
    return read_job(data, kind="mmt")


@dataclass(frozen=True)
class ResourceKind:
    """How one kind of Lightning resource is read, polled and stopped.

    :param name: short kind name used in trigger kwargs (``"job"``).
    :param label: human name for messages (``"Lightning job"``).
    :param collection: path segment under ``/v1/projects/{projectId}/``.
    :param read: parses the resource JSON into a :class:`ResourceState`.
    :param stop_body: body of the ``PUT`` that asks the resource to stop.
    :param log_selector: query parameter of ``/page-logs`` that selects this resource's logs.
    :param find_path: path under the collection that finds a resource by name (``{name}`` is filled in).
    :param find_query: query parameter carrying the name, when the name is not in the path.
    :param app_id: ``app_id`` of the resource's page in the web UI.
    :param has_machines: the resource runs several machines whose sub-jobs carry a ``rank``.
    :param stop_flow: builds the stop operation when a fixed ``stop_body`` is not enough (read, then write).
    :param status_path: path under the resource read for its phase (``codestatus``); empty reads the resource.
    :param resource_path: builds the resource path from (project id, resource id) when it is not
        ``collection/id`` (a Studio command session).
    :param output_field: the resource's answer carries its whole output in this field; the trigger streams
        the new part of it instead of reading page-logs.
    """

    name: str
    label: str
    collection: str
    read: Callable[[Any], ResourceState]
    stop_body: dict[str, Any]
    log_selector: str
    find_path: str = ""
    find_query: str = ""
    app_id: str = ""
    has_machines: bool = False
    stop_flow: Callable[[str, str], Operation[ResourceState]] | None = None
    status_path: str = ""
    resource_path: Callable[[str, str], str] | None = None
    output_field: str = ""

    def path(self, project_id: str, resource_id: str = "") -> str:
        if resource_id and self.resource_path is not None:
            return self.resource_path(project_id, resource_id)
        base = f"/v1/projects/{wire.seg(project_id)}/{self.collection}"
        return f"{base}/{wire.seg(resource_id)}" if resource_id else base

    def get(self, project_id: str, resource_id: str) -> ApiCall[ResourceState]:
        """Read one resource's phase by id."""
        suffix = f"/{self.status_path}" if self.status_path else ""
        return ApiCall("GET", self.path(project_id, resource_id) + suffix, parse=self.read)

    def find(self, project_id: str, name: str) -> ApiCall[ResourceState | None]:
        """Find one resource by exact name; None when there is none."""
        path = self.path(project_id) + "/" + self.find_path.format(name=wire.seg(name))
        params = {self.find_query: name} if self.find_query else None
        return ApiCall("GET", path, params=params, parse=self.read, none_if_missing=True)

    def stop(self, project_id: str, resource_id: str) -> Operation[ResourceState]:
        """Ask the resource to stop (idempotent: stopping a stopped resource changes nothing)."""
        if self.stop_flow is not None:
            return self.stop_flow(project_id, resource_id)
        return ApiCall("PUT", self.path(project_id, resource_id), json=self.stop_body, parse=self.read)

    def delete(self, project_id: str, resource_id: str) -> ApiCall[Any]:
        """Delete the resource (a 404 answer means it is already gone: None)."""
        return ApiCall("DELETE", self.path(project_id, resource_id), json={}, none_if_missing=True)

    def create(self, project_id: str, body: dict[str, Any], *, max_attempts: int = 3) -> Flow[ResourceState]:
        """Flow: create a resource named ``body["name"]`` never twice.

        The POST itself is retried only when the server certainly did not see it. After an ambiguous
        failure (timeout, dropped connection, 5xx) the resource is looked up by name before posting
        again: the server never answers 409 on a name clash, it would create a second, suffixed one.
        """
        for attempt in range(1, max_attempts + 1):
            try:
                created = yield ApiCall("POST", self.path(project_id), json=body, parse=self.read, idempotent=False)
                return created  # type: ignore[no-any-return]
            except LightningApiError as error:
                if not error.retryable or attempt == max_attempts:
                    raise
            except AMBIGUOUS_ERRORS:
                if attempt == max_attempts:
                    raise
            existing = yield self.find(project_id, body["name"])
            if existing is not None:
                return existing  # type: ignore[no-any-return]
        raise AssertionError("unreachable")  # pragma: no cover


JOB = ResourceKind(
    name="job",
    label="Lightning job",
    collection="jobs",
    read=read_job,
    stop_body={"state": "stop"},
    log_selector="jobIds",
    find_path="find",
    find_query="name",
    app_id="jobs",
)

MMT = ResourceKind(
    name="mmt",
    label="Lightning multi-machine job",
    collection="multi-machine-jobs",
    read=read_mmt,
    stop_body={"desiredState": "MultiMachineJob_STATE_STOP"},
    log_selector="mmtId",
    find_path="{name}/getbyname",
    app_id="mmt",
    has_machines=True,
)

KINDS: dict[str, ResourceKind] = {kind.name: kind for kind in (JOB, MMT)}
# Kinds described in their own module; it registers itself in KINDS when imported.
_KIND_MODULES = {
    "deployment": "airflow_provider_lightning.api.deployments",
    "studio": "airflow_provider_lightning.api.studios",
    "studio_command": "airflow_provider_lightning.api.studios",
    "schedule_run": "airflow_provider_lightning.api.schedules",
}


def kind_named(name: str) -> ResourceKind:
    """Look a kind up by name; ValueError lists the known kinds."""
    if name not in KINDS and name in _KIND_MODULES:
        import importlib

        importlib.import_module(_KIND_MODULES[name])
    try:
        return KINDS[name]
    except KeyError:
        known = ", ".join(sorted({*KINDS, *_KIND_MODULES}))
        raise ValueError(f"unknown Lightning resource kind {name!r}; known: {known}") from None
