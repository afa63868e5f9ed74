"""Schedule operators, the snapshot sync and the DAG factory against the simulator (simulated clock)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pendulum
import pytest
from airflow.sdk.exceptions import AirflowException
from task_context import context

from airflow_provider_lightning.hooks.lightning import LightningHook
from airflow_provider_lightning.operators.schedules import (
    LightningDeleteScheduleOperator,
    LightningScheduleOperator,
    LightningTriggerScheduleRunOperator,
)
from airflow_provider_lightning.operators.studios import LightningStudioStartOperator
from airflow_provider_lightning.schedules import ScheduleError
from airflow_provider_lightning.schedules.factory import dags_from_snapshot, restore_schedules, sync_snapshot


@pytest.fixture
def studio(sim) -> str:
    name = f"studio-{uuid.uuid4().hex[:6]}"
    sim.add_studio(name)
    return name


def schedule_op(studio: str, name: str | None = None, **kw):
    defaults = {"task_id": "schedule", "schedule_name": name or f"sched-{uuid.uuid4().hex[:6]}",
                "schedule": "0 3 * * *", "timezone": "Europe/Berlin", "studio_name": studio,
                "command": "echo nightly >> runs.txt"}
    return LightningScheduleOperator(**{**defaults, **kw})


def find(sim, name: str) -> dict:
    (found,) = [s for s in sim.store.schedule_service.list_schedules(sim.project_id, {})["schedules"] if s["name"] == name]
    return found


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"schedule": "61 * * * *"}, "minute"),
        ({"timezone": "Europe/Berlinn"}, "Europe/Berlin"),
        ({"command": None}, "command is required when action='run'"),
        ({"action": "start"}, "command cannot be combined"),
        ({"studio_name": ""}, "must target a Studio"),
        ({"schedule": "@once"}, "@once"),
        ({"schedule": "30 2 * * *"}, "daylight|DST|02:30"),
    ],
)
def test_bad_schedule_arguments_fail_when_the_dag_is_parsed(kw, message):
    with pytest.raises(ValueError, match=message):
        schedule_op("some-studio", **kw)


def test_schedule_is_upserted_by_name(sim, studio):
    name = f"sched-{uuid.uuid4().hex[:6]}"
    assert schedule_op(studio, name).execute(context())["action"] == "created"
    assert schedule_op(studio, name).execute(context())["action"] == "unchanged"
    updated = schedule_op(studio, name, schedule="@daily").execute(context())
    assert updated["action"] == "updated" and updated["cron_expression"] == "0 0 * * *"
    stored = find(sim, name)
    assert (stored["cronExpression"], stored["timezone"], stored["parallelRuns"]) == ("0 0 * * *", "Europe/Berlin",
                                                                                       False)


def test_schedule_for_a_missing_studio_names_the_studio(sim):
    with pytest.raises(ValueError, match="Studio 'ghost-studio' does not exist"):
        schedule_op("ghost-studio").execute(context())


def test_run_now_runs_the_command_in_the_studio_and_delete_removes_the_schedule(sim, studio):
    name = f"sched-{uuid.uuid4().hex[:6]}"
    LightningStudioStartOperator(task_id="start", studio_name=studio, poll_interval=0.2, deferrable=False).execute(
        context())
    schedule_op(studio, name, command="echo from-schedule").execute(context())
    run = LightningTriggerScheduleRunOperator(task_id="run", schedule_name=name, poll_interval=0.2,
                                              deferrable=False).execute(context())
    assert run["state"] == "succeeded"
    schedule_op(studio, name, command="echo boom; exit 4").execute(context())
    with pytest.raises(AirflowException, match="boom"):
        LightningTriggerScheduleRunOperator(task_id="run", schedule_name=name, poll_interval=0.2,
                                            deferrable=False).execute(context())
    assert LightningDeleteScheduleOperator(task_id="del", schedule_name=name).execute(context())["deleted"]
    assert LightningDeleteScheduleOperator(task_id="del", schedule_name=name).execute(context()) is None


def test_sync_pauses_lightning_schedules_builds_matching_dags_and_restore_resumes(sim, studio, tmp_path):
    nightly, hourly = f"nightly-{uuid.uuid4().hex[:6]}", f"hourly-{uuid.uuid4().hex[:6]}"
    schedule_op(studio, nightly).execute(context())
    schedule_op(studio, hourly, schedule="15 * * * *", timezone="UTC", parallel_runs=True).execute(context())
    snapshot_path = tmp_path / "schedules.json"
    snapshot = sync_snapshot(LightningHook(), snapshot_path, pause=True)
    names = {entry["schedule"]["name"]: entry for entry in snapshot["schedules"]}
    assert names[nightly]["paused_by_sync"] and find(sim, nightly)["state"] == "stopped"

    dags = dags_from_snapshot(snapshot_path)
    nightly_dag = dags[f"lightning_schedule_{nightly}"]
    timetable = nightly_dag.timetable
    assert timetable.expression == "0 3 * * *" and timetable.timezone.name == "Europe/Berlin"
    assert nightly_dag.max_active_runs == 1 and nightly_dag.catchup is False
    (task,) = nightly_dag.tasks
    assert task.task_type == "LightningStudioCommandOperator" and task.studio_name == studio
    assert dags[f"lightning_schedule_{hourly}"].max_active_runs != 1

    assert restore_schedules(LightningHook(), snapshot_path) >= 2
    assert find(sim, nightly)["state"] == "running"


def test_mapped_dag_and_lightning_schedule_fire_at_the_same_instants(sim, studio, tmp_path):
    from airflow.serialization.encoders import coerce_to_core_timetable
    from airflow.timetables.base import DataInterval, TimeRestriction

    name = f"fire-{uuid.uuid4().hex[:6]}"
    schedule_op(studio, name, schedule="0 9,17 * * 1-5", timezone="America/New_York").execute(context())
    start = sim.clock_now()
    sim.advance_clock(8 * 24 * 3600)
    fired = sorted(datetime.fromisoformat(r["scheduledAt"].replace("Z", "+00:00"))
                   for r in sim.schedule_runs(name))
    assert len(fired) >= 10  # 8 days hold at least 5 weekdays, with 2 fires each

    sync_snapshot(LightningHook(), tmp_path / "s.json")
    dag = dags_from_snapshot(tmp_path / "s.json")[f"lightning_schedule_{name}"]
    timetable = coerce_to_core_timetable(dag.timetable)
    last = pendulum.instance(start.astimezone(UTC))
    expected = []
    while len(expected) < len(fired):
        info = timetable.next_dagrun_info(last_automated_data_interval=DataInterval(last, last),
                                          restriction=TimeRestriction(earliest=None, latest=None, catchup=True))
        last = info.run_after
        expected.append(datetime.fromtimestamp(last.timestamp(), UTC))
    assert fired == expected


def test_snapshot_entry_that_targets_nothing_is_a_clear_parse_error(tmp_path):
    import json

    bad = {"version": 1, "schedules": [{"studio_name": "", "schedule": {
        "name": "orphan", "cronExpression": "0 1 * * *", "timezone": "UTC", "resourceType": "CLOUDSPACE_STUDIO",
        "resourceId": "cs-gone", "command": "echo"}}]}
    (tmp_path / "s.json").write_text(json.dumps(bad))
    with pytest.raises(ScheduleError, match="'orphan' targets Studio 'cs-gone', which does not exist"):
        dags_from_snapshot(tmp_path / "s.json")
    with pytest.raises(ScheduleError, match="does not exist; write it with"):
        dags_from_snapshot(tmp_path / "missing.json")


def test_sync_cli_writes_a_snapshot_and_parsing_the_dags_makes_no_request(sim, studio, tmp_path):
    import os
    import subprocess
    import sys

    name = f"cli-{uuid.uuid4().hex[:6]}"
    schedule_op(studio, name).execute(context())
    out = tmp_path / "snap.json"
    proc = subprocess.run([sys.executable, "-m", "airflow_provider_lightning.schedules", "sync", "--output", str(out)],
                          env=os.environ.copy(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "schedules of sim-org/sim-teamspace" in proc.stdout
    before = len(sim.request_log)
    dags = dags_from_snapshot(out)
    assert f"lightning_schedule_{name}" in dags and len(sim.request_log) == before
