"""Lightning schedules (``/schedules``) and their runs: the API calls, upsert by name, and the run kind.

A schedule run is described as the resource kind ``schedule_run`` (id ``<cloudspace>:<schedule>:<run>``),
so the generic phase trigger waits on a run started now and streams its output.
"""

from __future__ import annotations

import copy
from typing import Any

from airflow_provider_lightning.api import wire
from airflow_provider_lightning.api.phases import Phase
from airflow_provider_lightning.api.resources import KINDS, ResourceKind, ResourceState
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
# Fields the upsert owns; everything else the server keeps (id, next, total, createdAt ...).
UPSERT_FIELDS = ("cronExpression", "timezone", "parallelRuns", "displayName", "resourceType", "resourceId",
                 "actionType", "command", "state")


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


def upsert_schedule(project_id: str, body: dict[str, Any]) -> Flow[tuple[dict[str, Any], str]]:
    """Flow: create the schedule named ``body["displayName"]`` or update the fields that differ.

    Returns the schedule and ``"created"``, ``"updated"`` or ``"unchanged"``.
    """
    existing = yield from find_schedule(project_id, body["displayName"])
    if existing is None:
        created = yield ApiCall("POST", _base(project_id), json={**body, "name": body["displayName"]},
                                idempotent=False)
        return created, "created"
    wanted = {k: v for k, v in body.items() if k in UPSERT_FIELDS}
    if all(_same(v, wire.field(existing, wire.snake(k))) for k, v in wanted.items()):
        return existing, "unchanged"
    merged = copy.deepcopy(existing)
    merged.update(wanted)
    for read_only in ("id", "projectId", "next", "total", "createdAt", "updatedAt"):
        merged.pop(read_only, None)
    schedule_id = wire.text(existing, "id")
    updated = yield ApiCall("PUT", f"{_base(project_id)}/{wire.seg(schedule_id)}", json=merged)
    return updated, "updated"


def _same(wanted: Any, actual: Any) -> bool:
    if isinstance(wanted, bool) or isinstance(actual, bool):
        return bool(wanted) == (str(actual).lower() == "true" if isinstance(actual, str) else bool(actual))
    return (wanted or "") == (actual or "")


def delete_schedule(project_id: str, schedule_id: str) -> ApiCall[Any]:
    return ApiCall("DELETE", f"{_base(project_id)}/{wire.seg(schedule_id)}", json={}, none_if_missing=True)


def set_state(project_id: str, schedule: dict[str, Any], state: str) -> ApiCall[dict[str, Any]]:
    """Pause (``"stopped"``) or resume (``"running"``) a schedule with a full-object ``PUT``."""
    body = {k: v for k, v in schedule.items() if k not in ("id", "projectId", "next", "total")}
    body["state"] = state
    return ApiCall("PUT", f"{_base(project_id)}/{wire.seg(wire.text(schedule, 'id'))}", json=body)


# -- runs --------------------------------------------------------------------------------------


def run_id(cloudspace_id: str, schedule_id: str, run: str) -> str:
    """The id of a schedule run as the trigger carries it."""
    return f"{cloudspace_id}:{schedule_id}:{run}"


def _run_path(project_id: str, resource_id: str) -> str:
    cloudspace_id, schedule_id, run = resource_id.split(":", 2)
    return (f"/v1/projects/{wire.seg(project_id)}/cloudspaces/{wire.seg(cloudspace_id)}/schedules/"
            f"{wire.seg(schedule_id)}/runs/{wire.seg(run)}")


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
    stop_body={},
    log_selector="",
    resource_path=_run_path,
    output_field="output",
)
KINDS[SCHEDULE_RUN.name] = SCHEDULE_RUN
