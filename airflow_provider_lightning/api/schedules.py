"""Lightning schedules (``/schedules``) and their runs: the API calls, upsert by name, and the run kind.

A schedule run is described as the resource kind ``schedule_run`` (id ``<cloudspace>:<schedule>:<run>``),
so the generic phase trigger waits on a run started now and streams its output; its id is a :class:`RunRef`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from airflow_provider_lightning.api import wire
from airflow_provider_lightning.api.phases import Phase
from airflow_provider_lightning.api.resources import LogSource, ResourceKind
from airflow_provider_lightning.api.state import ResourceState
from airflow_provider_lightning.api.transport import ApiCall, Flow

_RUN_PHASES = {
    "pending": Phase.PENDING,
    "queued": Phase.PENDING,
    "running": Phase.RUNNING,
    "succeeded": Phase.COMPLETED,
    "completed": Phase.COMPLETED,
    "failed": Phase.FAILED,
    "stopped": Phase.STOPPED,
    "cancelled": Phase.STOPPED,
}
# The fields of ``SchedulesServiceCreateScheduleBody`` (reference A.7): a create sends these and nothing else.
CREATE_FIELDS = ("actionType", "command", "cronExpression", "displayName", "parallelRuns", "parentResourceId",
                 "resourceId", "resourceType", "timezone")
# Left out of a full-object update: the path names the schedule and project; the server computes the rest.
NOT_SENT_ON_UPDATE = ("id", "projectId", "next", "total", "createdAt", "updatedAt")


def _base(project_id: str) -> str:
    return f"/v1/projects/{wire.seg(project_id)}/schedules"


def schedule_name(data: dict[str, Any]) -> str:
    """A schedule's name: ``name``, else ``displayName``."""
    return wire.text(data, "name") or wire.text(data, "display_name")


def list_schedules(project_id: str, *, resource_id: str = "", limit: int = 1000) -> ApiCall[list[dict[str, Any]]]:
    """Every schedule of the teamspace (the list answer has no page token), optionally for one resource."""
    params = {"limit": limit, "resourceId": resource_id or None}

    def parse(body: Any) -> list[dict[str, Any]]:
        items = wire.field(body, "schedules", [])
        return [s for s in items if isinstance(s, dict)] if isinstance(items, list) else []

    return ApiCall("GET", _base(project_id), params=params, parse=parse)


def find_schedule(project_id: str, name: str) -> Flow[dict[str, Any] | None]:
    """Flow: the schedule named ``name`` (or with that display name); None when there is none."""
    schedules = yield list_schedules(project_id)
    exact = [s for s in schedules if wire.text(s, "name") == name]
    return (exact or [s for s in schedules if wire.text(s, "display_name") == name] or [None])[0]


def create_schedule(project_id: str, body: dict[str, Any]) -> ApiCall[dict[str, Any]]:
    """Create a schedule (``POST``); the server names it and sets its state.

    :param project_id: the teamspace's project id.
    :param body: the schedule, with only ``SchedulesServiceCreateScheduleBody`` fields.
    """
    _check_create_body(body)
    return ApiCall("POST", _base(project_id), json=dict(body), idempotent=False)


def _check_create_body(body: dict[str, Any]) -> None:
    """Raise ValueError when ``body`` has no ``displayName`` or fields the create body does not have."""
    extra = sorted(set(body) - set(CREATE_FIELDS))
    if extra:
        raise ValueError(f"{', '.join(extra)} cannot be sent when creating a schedule: the create body has only "
                         f"{', '.join(CREATE_FIELDS)} (pass the state separately)")
    if not body.get("displayName"):
        raise ValueError("a schedule body needs a displayName (the upsert key)")


def update_schedule(project_id: str, schedule: dict[str, Any], changes: dict[str, Any]) -> ApiCall[dict[str, Any]]:
    """Update a schedule with a full-object ``PUT``: its current fields with ``changes`` applied.

    :param project_id: the teamspace's project id.
    :param schedule: the schedule as the server last returned it (its ``id`` names it).
    :param changes: the fields to change (camelCase).
    """
    body = {k: v for k, v in copy.deepcopy(schedule).items() if k not in NOT_SENT_ON_UPDATE}
    body.update(changes)
    return ApiCall("PUT", f"{_base(project_id)}/{wire.seg(wire.text(schedule, 'id'))}", json=body)


def upsert_schedule(
    project_id: str, body: dict[str, Any], *, state: str | None = None
) -> Flow[tuple[dict[str, Any], str]]:
    """Flow: create the schedule named ``body["displayName"]`` or update the fields that differ.

    A new schedule is created with the create body alone, then updated when the server gave it
    another state than ``state``. Returns the schedule and ``"created"``, ``"updated"`` or ``"unchanged"``.

    :param project_id: the teamspace's project id.
    :param body: the schedule, with only ``SchedulesServiceCreateScheduleBody`` fields.
    :param state: the wanted state (``"running"`` or ``"stopped"``); None keeps the server's.
    """
    _check_create_body(body)
    wanted = dict(body) if state is None else {**body, "state": state}
    existing = yield from find_schedule(project_id, body["displayName"])
    if existing is None:
        created = yield create_schedule(project_id, body)
        if state is not None and not _same(state, wire.field(created, "state")):
            created = yield set_state(project_id, created, state)
        return created, "created"
    changes = _changes(wanted, existing)
    if not changes:
        return existing, "unchanged"
    updated = yield update_schedule(project_id, existing, changes)
    return updated, "updated"


def _changes(wanted: dict[str, Any], schedule: dict[str, Any]) -> dict[str, Any]:
    """The fields of ``wanted`` whose value ``schedule`` does not have."""
    return {k: v for k, v in wanted.items() if not _same(v, wire.field(schedule, wire.snake(k)))}


def _same(wanted: Any, actual: Any) -> bool:
    if isinstance(wanted, bool) or isinstance(actual, bool):
        return bool(wanted) == (str(actual).lower() == "true" if isinstance(actual, str) else bool(actual))
    return (wanted or "") == (actual or "")


def delete_schedule(project_id: str, schedule_id: str) -> ApiCall[Any]:
    return ApiCall("DELETE", f"{_base(project_id)}/{wire.seg(schedule_id)}", json={}, none_if_missing=True)


def set_state(project_id: str, schedule: dict[str, Any], state: str) -> ApiCall[dict[str, Any]]:
    """Pause (``"stopped"``) or resume (``"running"``) a schedule with a full-object ``PUT``.

    :param project_id: the teamspace's project id.
    :param schedule: the schedule as the server last returned it.
    :param state: the new state.
    """
    return update_schedule(project_id, schedule, {"state": state})


# -- runs --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunRef:
    """One run of a schedule; its :attr:`id` (``<cloudspace>:<schedule>:<run>``) is what a wait carries."""

    cloudspace_id: str
    schedule_id: str
    run: str

    @property
    def id(self) -> str:
        return f"{self.cloudspace_id}:{self.schedule_id}:{self.run}"

    @classmethod
    def parse(cls, resource_id: str) -> RunRef:
        parts = resource_id.split(":", 2)
        if len(parts) != 3 or not all(parts):
            raise ValueError(f"a schedule run id is '<cloudspace>:<schedule>:<run>', got {resource_id!r}")
        return cls(*parts)


def _run_path(project_id: str, resource_id: str) -> str:
    ref = RunRef.parse(resource_id)
    return (f"/v1/projects/{wire.seg(project_id)}/cloudspaces/{wire.seg(ref.cloudspace_id)}/schedules/"
            f"{wire.seg(ref.schedule_id)}/runs/{wire.seg(ref.run)}")


def _stop_studio(kind: ResourceKind, project_id: str, resource_id: str) -> ApiCall[Any]:
    """The API cannot stop a run itself; stopping the Studio it runs in ends it."""
    cloudspace = wire.seg(RunRef.parse(resource_id).cloudspace_id)
    return ApiCall("POST", f"/v1/projects/{wire.seg(project_id)}/cloudspaces/{cloudspace}/stop", json={})


def read_run(data: Any) -> ResourceState:
    """Read a ``V1ScheduleRun`` (``state`` pending / running / succeeded / failed)."""
    if not isinstance(data, dict) or not wire.text(data, "id"):
        raise ValueError("a schedule run has no id")
    raw_state = wire.text(data, "state")
    phase = _RUN_PHASES.get(raw_state.lower(), Phase.PENDING)
    code = wire.number(data, "exit_code")
    message = f"exit code {int(code)}" if phase is Phase.FAILED and code is not None else ""
    return ResourceState(kind="schedule_run", id=wire.text(data, "id"), name=wire.text(data, "schedule_id"),
                         phase=phase, raw_state=raw_state, message=message,
                         created_at=wire.timestamp(data, "created_at"),
                         stopped_at=wire.timestamp(data, "stopped_at"), raw=data)


def trigger_run(project_id: str, cloudspace_id: str, schedule_id: str) -> ApiCall[ResourceState]:
    """Start a run of the schedule now (``POST .../runs`` with ``{}``)."""
    path = (f"/v1/projects/{wire.seg(project_id)}/cloudspaces/{wire.seg(cloudspace_id)}/schedules/"
            f"{wire.seg(schedule_id)}/runs")
    return ApiCall("POST", path, json={}, parse=read_run, idempotent=False)


SCHEDULE_RUN = ResourceKind(
    name="schedule_run",
    label="Lightning schedule run",
    collection="schedules",
    read=read_run,
    stopper=_stop_studio,
    logs=LogSource(output_field="output"),
    locate=_run_path,
)
