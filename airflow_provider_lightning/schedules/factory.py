"""Lightning schedules -> Airflow DAGs, from a snapshot file (no network while DAG files are parsed).

* :func:`sync_snapshot` (the CLI ``python -m airflow_provider_lightning.schedules sync`` and
  ``LightningSyncSchedulesOperator``) reads the teamspace's schedules from the API and writes a JSON
  snapshot; optionally it pauses the Lightning-side schedules so nothing fires twice, and
  :func:`restore_schedules` resumes exactly those.
* :func:`dags_from_snapshot` builds one DAG per schedule: same cron, same time zone
  (``CronTriggerTimetable``), ``max_active_runs=1`` when parallel runs are off, and a task that does
  what the schedule did (run the command in the Studio, start or stop the Studio, or trigger the
  pipeline schedule's run). A schedule that cannot be mapped (invalid, ambiguous around DST, or
  targeting nothing) is skipped with one :class:`.LightningScheduleWarning` naming it and the reason;
  the sync lists those schedules under ``"unmappable"``.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import warnings
from pathlib import Path
from typing import Any

from airflow_provider_lightning.schedules.errors import LightningScheduleWarning, ScheduleError
from airflow_provider_lightning.schedules.mapping import AirflowSchedule, LightningSchedule, to_airflow

SNAPSHOT_VERSION = 1


def _write_atomically(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
    os.replace(tmp, path)


def sync_snapshot(hook: Any, path: str | Path, *, pause: bool = False) -> dict[str, Any]:
    """Read every schedule of the hook's teamspace, write the snapshot to ``path`` and return it.

    The snapshot's ``"unmappable"`` lists (``name``, ``id``, ``reason``) the schedules written that
    :func:`dags_from_snapshot` cannot turn into a DAG; :func:`unmappable_message` words one for a warning.

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
        paused_now = pause and wire.text(raw, "state") == "running"
        if paused_now:
            raw = hook.run(api.set_state(project_id, raw, "stopped"))
        entries.append(_snapshot_entry(raw, studios, paused_now))
    snapshot = {
        "version": SNAPSHOT_VERSION,
        "teamspace": hook.teamspace.slug,
        "lightning_conn_id": hook.lightning_conn_id,
        "synced_at": pendulum.now("UTC").isoformat(),
        "schedules": entries,
        "unmappable": _unmappable(entries),
    }
    _write_atomically(Path(path), snapshot)
    return snapshot


def _snapshot_entry(raw: dict[str, Any], studios: dict[str, dict[str, Any]], paused_by_sync: bool) -> dict[str, Any]:
    """One schedule of the snapshot, with the name and machine of the Studio it targets.

    :param raw: the schedule as the API returned it.
    :param studios: the teamspace's Studios by id.
    :param paused_by_sync: whether this sync paused the schedule.
    """
    from airflow_provider_lightning.api import wire

    studio = studios.get(wire.text(raw, "resource_id"), {})
    compute = wire.field(wire.field(studio, "code_config", {}), "compute_config", {})
    return {
        "schedule": raw,
        "studio_name": wire.text(studio, "name"),
        "studio_machine": wire.text(compute, "name"),
        "paused_by_sync": paused_by_sync,
    }


def _unmappable(entries: list[Any]) -> list[dict[str, str]]:
    """``{name, id, reason}`` of each snapshot entry that cannot become a DAG.

    :param entries: the snapshot's schedules.
    """
    found = []
    for entry in entries:
        try:
            _mapped(entry)
        except ScheduleError as error:
            raw = _raw(entry)
            found.append({"name": _label(raw), "id": str(raw.get("id") or ""), "reason": str(error)})
    return found


def unmappable_message(item: dict[str, str]) -> str:
    """The warning for a schedule that cannot become a DAG.

    :param item: ``{name, reason}`` as listed in a snapshot's ``"unmappable"``.
    """
    return f"Lightning schedule {item['name']!r} is not mapped to an Airflow DAG: {item['reason']}"


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


def _raw(entry: Any) -> dict[str, Any]:
    """The ``V1Schedule`` of a snapshot entry (``{}`` when the entry has none).

    :param entry: one schedule of the snapshot.
    """
    raw = entry.get("schedule") if isinstance(entry, dict) else None
    return raw if isinstance(raw, dict) else {}


def _label(raw: dict[str, Any]) -> str:
    """How messages name a schedule: its name, else its display name, else its id.

    :param raw: the schedule as the API returned it.
    """
    return str(raw.get("name") or raw.get("displayName") or raw.get("id") or "<unnamed>")


def _mapped(entry: Any) -> tuple[LightningSchedule, AirflowSchedule]:
    """The entry's schedule and its Airflow schedule; ScheduleError says why it cannot become a DAG.

    :param entry: one schedule of the snapshot.
    """
    if not isinstance(entry, dict) or not isinstance(entry.get("schedule"), dict):
        raise ScheduleError("the snapshot entry has no schedule object")
    schedule = LightningSchedule.from_api(entry["schedule"])
    _check_target(schedule, entry.get("studio_name") or "")
    return schedule, to_airflow(schedule)


def _check_target(schedule: LightningSchedule, studio_name: str) -> None:
    """Raise ScheduleError unless a task can do what the schedule does.

    :param schedule: the schedule.
    :param studio_name: the name of the Studio it targets (empty when that Studio does not exist).
    """
    if schedule.resource_type == "CLOUDSPACE_STUDIO":
        if not studio_name:
            raise ScheduleError(f"it targets Studio {schedule.resource_id!r}, which does not exist")
        if schedule.action_type not in ("START", "STOP") and not schedule.command:
            raise ScheduleError("it has no command and no START/STOP action: it does nothing")
    elif schedule.resource_type != "PIPELINE":
        raise ScheduleError(f"it targets {schedule.resource_type or 'nothing'}, which has no DAG mapping")


def _task(entry: dict[str, Any], schedule: LightningSchedule, conn_id: str) -> Any:
    """The task that does what the schedule did (its target was checked by :func:`_check_target`).

    :param entry: the snapshot entry (the Studio's name and machine).
    :param schedule: the schedule.
    :param conn_id: connection the task uses.
    """
    if schedule.resource_type == "PIPELINE":
        from airflow_provider_lightning.operators.schedules import LightningTriggerScheduleRunOperator

        return LightningTriggerScheduleRunOperator(
            task_id="run_pipeline", schedule_name=schedule.name or schedule.id or "schedule", lightning_conn_id=conn_id
        )
    common: dict[str, Any] = {"studio_name": entry["studio_name"], "lightning_conn_id": conn_id}
    if schedule.action_type == "START":
        from airflow_provider_lightning.operators.studios import LightningStudioStartOperator

        return LightningStudioStartOperator(
            task_id="start_studio", machine=entry.get("studio_machine") or "CPU", **common
        )
    if schedule.action_type == "STOP":
        from airflow_provider_lightning.operators.studios import LightningStudioStopOperator

        return LightningStudioStopOperator(task_id="stop_studio", **common)
    from airflow_provider_lightning.operators.studios import LightningStudioCommandOperator

    return LightningStudioCommandOperator(task_id="run_command", command=schedule.command or "", **common)


def _skip(entry: Any, error: ScheduleError, *, strict: bool) -> None:
    """Report a schedule that cannot become a DAG: a LightningScheduleWarning, or ScheduleError when strict.

    The warning points at the line of the DAG file that called :func:`dags_from_snapshot`.

    :param entry: the snapshot entry.
    :param error: why it cannot become a DAG.
    :param strict: raise instead of warning.
    """
    label = _label(_raw(entry))
    if strict:
        raise ScheduleError(f"schedule {label!r}: {error}") from None
    warnings.warn(unmappable_message({"name": label, "reason": str(error)}), LightningScheduleWarning, stacklevel=3)


def _dag(
    entry: dict[str, Any], mapped: tuple[LightningSchedule, AirflowSchedule], *, dag_id_prefix: str, conn_id: str,
    start: Any, tags: tuple[str, ...],
) -> Any:
    """The DAG of one mapped schedule: its timetable and the task doing what the schedule did.

    :param entry: the snapshot entry.
    :param mapped: the schedule and its Airflow schedule.
    :param dag_id_prefix: prefix of the dag id.
    :param conn_id: connection the task uses.
    :param start: the DAG's start date.
    :param tags: the DAG's tags.
    """
    from airflow.sdk import DAG

    schedule, airflow_schedule = mapped
    name = schedule.name or str(entry["schedule"].get("name") or schedule.id)
    kwargs = airflow_schedule.dag_kwargs()
    with DAG(
        dag_id=_dag_id(dag_id_prefix, name),
        schedule=kwargs.pop("schedule"),
        start_date=start,
        tags=list(tags),
        doc_md=f"Mapped from Lightning schedule `{name}` ({schedule.cron_expression}, {schedule.timezone}).",
        **kwargs,
    ) as dag:
        _task(entry, schedule, conn_id)
    return dag


def dags_from_snapshot(
    path: str | Path,
    *,
    dag_id_prefix: str = "lightning_schedule_",
    lightning_conn_id: str | None = None,
    tags: tuple[str, ...] = ("lightning", "schedule"),
    strict: bool = False,
    missing_ok: bool = False,
) -> dict[str, Any]:
    """One DAG per schedule in the snapshot at ``path``, keyed by dag id (reads the file only).

    A schedule that cannot be mapped (invalid, ambiguous around DST, or targeting nothing) gets no DAG
    and one :class:`~airflow_provider_lightning.schedules.errors.LightningScheduleWarning` naming it and
    the reason, which Airflow lists among the DAG file's import warnings.

    :param path: snapshot written by :func:`sync_snapshot`.
    :param dag_id_prefix: prefix of the generated dag ids.
    :param lightning_conn_id: connection the tasks use (default: the one the snapshot was synced with).
    :param tags: tags of the generated DAGs.
    :param strict: raise ScheduleError on the first schedule that cannot be mapped instead of warning.
    :param missing_ok: return no DAG when ``path`` does not exist (a DAG file bootstrapping its snapshot).
    :raises ScheduleError: the snapshot is missing (unless ``missing_ok``) or malformed; with ``strict``,
        a schedule that cannot be mapped (named).
    """
    if missing_ok and not Path(path).exists():
        return {}
    import pendulum

    snapshot = load_snapshot(path)
    conn_id = lightning_conn_id or snapshot.get("lightning_conn_id") or "lightning_default"
    start: Any = pendulum.parse(snapshot.get("synced_at") or "2026-01-01T00:00:00+00:00")
    dags: dict[str, Any] = {}
    for entry in snapshot["schedules"]:
        try:
            mapped = _mapped(entry)
        except ScheduleError as error:
            _skip(entry, error, strict=strict)
            continue
        dag = _dag(entry, mapped, dag_id_prefix=dag_id_prefix, conn_id=conn_id, start=start, tags=tags)
        dags[dag.dag_id] = dag
    return dags
