"""Lightning schedules -> Airflow DAGs, from a snapshot file (no network while DAG files are parsed).

* :func:`sync_snapshot` (the CLI ``python -m airflow_provider_lightning.schedules sync`` and
  ``LightningSyncSchedulesOperator``) reads the teamspace's schedules from the API and writes a JSON
  snapshot; optionally it pauses the Lightning-side schedules so nothing fires twice, and
  :func:`restore_schedules` resumes exactly those.
* :func:`dags_from_snapshot` builds one DAG per schedule: same cron, same time zone
  (``CronTriggerTimetable``), ``max_active_runs=1`` when parallel runs are off, and a task that does
  what the schedule did (run the command in the Studio, start or stop the Studio, or trigger the
  pipeline schedule's run).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from airflow_provider_lightning.schedules.errors import ScheduleError
from airflow_provider_lightning.schedules.mapping import LightningSchedule, to_airflow

SNAPSHOT_VERSION = 1


def _write_atomically(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
    os.replace(tmp, path)


def sync_snapshot(hook: Any, path: str | Path, *, pause: bool = False) -> dict[str, Any]:
    """Read every schedule of the hook's teamspace, write the snapshot to ``path`` and return it.

    :param hook: a ``LightningHook``.
    :param path: the snapshot file to write (atomically).
    :param pause: pause (``state: stopped``) the Lightning-side schedules that are running.
    """
    import pendulum

    from airflow_provider_lightning.api import schedules as api
    from airflow_provider_lightning.api import wire

    project_id = hook.project_id
    studios = hook.run(_list_studios(project_id))
    entries = []
    for raw in hook.run(api.list_schedules(project_id)):
        studio = studios.get(wire.text(raw, "resource_id"), {})
        paused_now = pause and wire.text(raw, "state") == "running"
        if paused_now:
            raw = hook.run(api.set_state(project_id, raw, "stopped"))
        entries.append(
            {
                "schedule": raw,
                "studio_name": wire.text(studio, "name"),
                "studio_machine": wire.text(
                    wire.field(wire.field(studio, "code_config", {}), "compute_config", {}), "name"
                ),
                "paused_by_sync": paused_now,
            }
        )
    snapshot = {
        "version": SNAPSHOT_VERSION,
        "teamspace": hook.teamspace.slug,
        "lightning_conn_id": hook.lightning_conn_id,
        "synced_at": pendulum.now("UTC").isoformat(),
        "schedules": entries,
    }
    _write_atomically(Path(path), snapshot)
    return snapshot


def _list_studios(project_id: str) -> Any:
    from airflow_provider_lightning.api import wire
    from airflow_provider_lightning.api.transport import ApiCall

    def parse(body: Any) -> dict[str, dict[str, Any]]:
        spaces = wire.field(body, "cloudspaces", [])
        return {wire.text(s, "id"): s for s in spaces if isinstance(s, dict)} if isinstance(spaces, list) else {}

    return ApiCall("GET", f"/v1/projects/{wire.seg(project_id)}/cloudspaces", params={"limit": "1000"}, parse=parse)


def restore_schedules(hook: Any, path: str | Path) -> int:
    """Resume the Lightning-side schedules the snapshot at ``path`` paused; returns how many."""
    from airflow_provider_lightning.api import schedules as api

    snapshot = load_snapshot(path)
    current = {s.get("id"): s for s in hook.run(api.list_schedules(hook.project_id))}
    resumed = 0
    for entry in snapshot["schedules"]:
        schedule = current.get(entry["schedule"].get("id"))
        if entry.get("paused_by_sync") and schedule is not None and schedule.get("state") != "running":
            hook.run(api.set_state(hook.project_id, schedule, "running"))
            resumed += 1
    return resumed


def load_snapshot(path: str | Path) -> dict[str, Any]:
    """Read and check a snapshot file; ScheduleError says what is wrong with it."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ScheduleError(
            f"schedule snapshot {path} does not exist; write it with "
            "`python -m airflow_provider_lightning.schedules sync --output ...`"
        ) from None
    except ValueError as error:
        raise ScheduleError(f"schedule snapshot {path} is not valid JSON: {error}") from None
    if (
        not isinstance(data, dict)
        or data.get("version") != SNAPSHOT_VERSION
        or not isinstance(data.get("schedules"), list)
    ):
        raise ScheduleError(f"schedule snapshot {path} is not a version {SNAPSHOT_VERSION} snapshot")
    return data


def _dag_id(prefix: str, name: str) -> str:
    return prefix + (re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "schedule")


def _task(entry: dict[str, Any], schedule: LightningSchedule, conn_id: str) -> Any:
    """The task that does what the schedule did."""
    name = schedule.name or schedule.id or "schedule"
    studio = entry.get("studio_name") or ""
    if schedule.resource_type == "CLOUDSPACE_STUDIO":
        if not studio:
            raise ScheduleError(f"schedule {name!r} targets Studio {schedule.resource_id!r}, which does not exist")
        common: dict[str, Any] = {"studio_name": studio, "lightning_conn_id": conn_id}
        if schedule.action_type == "START":
            from airflow_provider_lightning.operators.studios import LightningStudioStartOperator

            return LightningStudioStartOperator(
                task_id="start_studio", machine=entry.get("studio_machine") or "CPU", **common
            )
        if schedule.action_type == "STOP":
            from airflow_provider_lightning.operators.studios import LightningStudioStopOperator

            return LightningStudioStopOperator(task_id="stop_studio", **common)
        if not schedule.command:
            raise ScheduleError(f"schedule {name!r} has no command and no START/STOP action: it targets nothing")
        from airflow_provider_lightning.operators.studios import LightningStudioCommandOperator

        return LightningStudioCommandOperator(task_id="run_command", command=schedule.command, **common)
    if schedule.resource_type == "PIPELINE":
        from airflow_provider_lightning.operators.schedules import LightningTriggerScheduleRunOperator

        return LightningTriggerScheduleRunOperator(
            task_id="run_pipeline", schedule_name=name, lightning_conn_id=conn_id
        )
    raise ScheduleError(f"schedule {name!r} targets {schedule.resource_type or 'nothing'}, which has no DAG mapping")


def dags_from_snapshot(
    path: str | Path,
    *,
    dag_id_prefix: str = "lightning_schedule_",
    lightning_conn_id: str | None = None,
    tags: tuple[str, ...] = ("lightning", "schedule"),
) -> dict[str, Any]:
    """One DAG per schedule in the snapshot at ``path``, keyed by dag id (reads the file only).

    :param path: snapshot written by :func:`sync_snapshot`.
    :param dag_id_prefix: prefix of the generated dag ids.
    :param lightning_conn_id: connection the tasks use (default: the one the snapshot was synced with).
    :param tags: tags of the generated DAGs.
    :raises ScheduleError: a schedule that is invalid, ambiguous around DST or targets nothing (named).
    """
    import pendulum
    from airflow.sdk import DAG

    snapshot = load_snapshot(path)
    conn_id = lightning_conn_id or snapshot.get("lightning_conn_id") or "lightning_default"
    start: Any = pendulum.parse(snapshot.get("synced_at") or "2026-01-01T00:00:00+00:00")
    dags: dict[str, Any] = {}
    for entry in snapshot["schedules"]:
        raw = entry.get("schedule") or {}
        try:
            schedule = LightningSchedule.from_api(raw)
            airflow_schedule = to_airflow(schedule)
        except ScheduleError as error:
            raise ScheduleError(f"schedule {raw.get('name') or raw.get('displayName')!r}: {error}") from None
        name = schedule.name or str(raw.get("name") or schedule.id)
        dag_id = _dag_id(dag_id_prefix, name)
        with DAG(
            dag_id=dag_id,
            start_date=start,
            tags=list(tags),
            doc_md=f"Mapped from Lightning schedule `{name}` ({schedule.cron_expression}, {schedule.timezone}).",
            **airflow_schedule.dag_kwargs(),
        ) as dag:
            _task(entry, schedule, conn_id)
        dags[dag_id] = dag
    return dags
