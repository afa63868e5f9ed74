"""Schedule operators, the snapshot sync and the DAG factory against the simulator (simulated clock)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
import warnings
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pendulum
import pytest
from airflow.sdk.exceptions import AirflowException
from task_context import context

from airflow_provider_lightning.api import schedules as schedules_api
from airflow_provider_lightning.hooks.lightning import LightningHook
from airflow_provider_lightning.operators.schedules import (
    LightningDeleteScheduleOperator,
    LightningScheduleOperator,
    LightningSyncSchedulesOperator,
    LightningTriggerScheduleRunOperator,
)
from airflow_provider_lightning.operators.studios import LightningStudioStartOperator
from airflow_provider_lightning.schedules import LightningSchedule, LightningScheduleWarning, ScheduleError
from airflow_provider_lightning.schedules.factory import dags_from_snapshot, restore_schedules, sync_snapshot

EXAMPLES = Path(__file__).resolve().parents[2] / "example_dags"
# SchedulesServiceCreateScheduleBody, as listed in the API reference (appendix A.7).
CREATE_BODY_FIELDS = {"actionType", "command", "cronExpression", "displayName", "parallelRuns", "parentResourceId",
                      "resourceId", "resourceType", "timezone"}
BERLIN_DST_GAP = {"cronExpression": "30 2 * * *", "timezone": "Europe/Berlin"}  # 02:30 is skipped in spring


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
    (found,) = [s for s in sim.store.schedules.list_schedules(sim.project_id, {})["schedules"] if s["name"] == name]
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


def studio_entry(name: str, studio_name: str = "sim-studio", **fields) -> dict:
    """A snapshot entry for a Studio schedule running a command (``fields`` override the schedule's)."""
    schedule = {"name": name, "displayName": name, "id": f"sched-{name}", "cronExpression": "0 1 * * *",
                "timezone": "UTC", "resourceType": "CLOUDSPACE_STUDIO", "resourceId": "cs-1", "command": "echo",
                **fields}
    return {"schedule": schedule, "studio_name": studio_name, "studio_machine": "cpu-4", "paused_by_sync": False}


def write_snapshot(path: Path, *entries: dict) -> Path:
    path.write_text(json.dumps({"version": 1, "lightning_conn_id": "lightning_default", "schedules": list(entries)}))
    return path


def schedule_warnings(caught) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, LightningScheduleWarning)]


def test_unmappable_schedules_are_skipped_with_one_warning_each_and_the_others_become_dags(tmp_path):
    snapshot = write_snapshot(tmp_path / "s.json", studio_entry("good"), studio_entry("berlin-night", **BERLIN_DST_GAP),
                              studio_entry("orphan", studio_name="", resourceId="cs-gone"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dags = dags_from_snapshot(snapshot)
    assert set(dags) == {"lightning_schedule_good"}
    dst, orphan = schedule_warnings(caught)
    assert dst.startswith("Lightning schedule 'berlin-night' is not mapped to an Airflow DAG: ")
    assert "'30 2 * * *' in timezone 'Europe/Berlin'" in dst and "daylight-saving gap" in dst
    assert orphan == ("Lightning schedule 'orphan' is not mapped to an Airflow DAG: "
                      "it targets Studio 'cs-gone', which does not exist")
    assert {w.filename for w in caught if issubclass(w.category, LightningScheduleWarning)} == {__file__}


def test_strict_snapshot_raises_naming_the_first_unmappable_schedule(tmp_path):
    snapshot = write_snapshot(tmp_path / "s.json", studio_entry("good"),
                              studio_entry("orphan", studio_name="", resourceId="cs-gone"))
    with pytest.raises(ScheduleError, match="schedule 'orphan': it targets Studio 'cs-gone', which does not exist"):
        dags_from_snapshot(snapshot, strict=True)


def test_schedules_that_do_nothing_or_target_unmapped_resources_are_reported(tmp_path):
    snapshot = write_snapshot(tmp_path / "s.json", studio_entry("idle", command=""),
                              studio_entry("k8s", resourceType="KUBERNETES_JOB"), {"studio_name": "x"})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert dags_from_snapshot(snapshot) == {}
    assert [message.split(": ", 1)[1] for message in schedule_warnings(caught)] == [
        "it has no command and no START/STOP action: it does nothing",
        "it targets KUBERNETES_JOB, which has no DAG mapping",
        "the snapshot entry has no schedule object",
    ]


def test_missing_snapshot_raises_unless_missing_ok(tmp_path):
    with pytest.raises(ScheduleError, match="does not exist; write it with"):
        dags_from_snapshot(tmp_path / "missing.json")
    assert dags_from_snapshot(tmp_path / "missing.json", missing_ok=True) == {}


def load_dagbag(folder: Path):
    from airflow.dag_processing.dagbag import DagBag

    with warnings.catch_warnings(record=True):  # keeps out of the test's output what DagBag re-emits
        return DagBag(dag_folder=str(folder))


def test_airflow_imports_the_mappable_dags_and_shows_the_others_as_import_warnings(tmp_path):
    write_snapshot(tmp_path / "schedules.json", studio_entry("good"), studio_entry("berlin-night", **BERLIN_DST_GAP))
    dag_file = tmp_path / "lightning_dags.py"
    dag_file.write_text(
        "from pathlib import Path\n"
        "from airflow_provider_lightning.schedules.factory import dags_from_snapshot\n"
        "globals().update(dags_from_snapshot(Path(__file__).with_name('schedules.json')))\n"
    )
    dagbag = load_dagbag(tmp_path)
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == {"lightning_schedule_good"}
    (shown,) = dagbag.captured_warnings[str(dag_file)]
    assert shown.startswith(f"{dag_file}:3: airflow_provider_lightning.schedules.errors.LightningScheduleWarning: "
                            "Lightning schedule 'berlin-night' is not mapped to an Airflow DAG: ")


def test_example_schedules_file_imports_its_manage_dag_when_no_snapshot_exists(tmp_path):
    shutil.copy(EXAMPLES / "example_lightning_schedules.py", tmp_path)  # no lightning_schedules.json next to it
    dagbag = load_dagbag(tmp_path)
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == {"example_lightning_schedule_manage"}
    assert dagbag.captured_warnings == {}
    sync = dagbag.dags["example_lightning_schedule_manage"].get_task("sync_snapshot")
    assert sync.output_path == str(tmp_path / "lightning_schedules.json")


@pytest.fixture
def berlin_night(sim, studio):
    """A Lightning schedule at 02:30 in Berlin (a time the spring change skips), created past the operator's check."""
    hook = LightningHook()
    body = LightningSchedule(cron_expression="30 2 * * *", timezone="Europe/Berlin",
                             name=f"berlin-night-{uuid.uuid4().hex[:6]}", resource_type="CLOUDSPACE_STUDIO",
                             resource_id=hook.studio_id(studio), command="echo night").to_api_body()
    created, _ = hook.run(schedules_api.upsert_schedule(hook.project_id, body))
    yield created
    hook.run(schedules_api.delete_schedule(hook.project_id, created["id"]))


def test_sync_lists_the_schedules_that_cannot_become_dags_and_the_cli_and_operator_warn(
        sim, studio, berlin_night, tmp_path, capsys):
    name = berlin_night["name"]
    snapshot = sync_snapshot(LightningHook(), tmp_path / "s.json")
    (listed,) = [item for item in snapshot["unmappable"] if item["name"] == name]
    assert listed["id"] == berlin_night["id"] and "daylight-saving gap" in listed["reason"]
    assert json.loads((tmp_path / "s.json").read_text())["unmappable"] == snapshot["unmappable"]

    proc = subprocess.run([sys.executable, "-m", "airflow_provider_lightning.schedules", "sync", "--output",
                           str(tmp_path / "cli.json")], env=os.environ.copy(), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert f"warning: Lightning schedule {name!r} is not mapped to an Airflow DAG: " in proc.stderr
    assert "'30 2 * * *' in timezone 'Europe/Berlin' is ambiguous around daylight-saving changes" in proc.stderr

    capsys.readouterr()
    result = LightningSyncSchedulesOperator(task_id="sync", output_path=str(tmp_path / "op.json")).execute(context())
    assert name in result["unmappable"]
    assert f"Lightning schedule {name!r} is not mapped to an Airflow DAG" in capsys.readouterr().out  # the task log


class RecordingTransport(httpx.HTTPTransport):
    """Sends every request to the server and keeps ``(method, path, JSON body)`` of each."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[str, str, object]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        self.sent.append((request.method, request.url.path, body))
        return super().handle_request(request)

    def schedule_writes(self) -> list[tuple[str, object]]:
        return [(method, body) for method, path, body in self.sent
                if "/schedules" in path and method in ("POST", "PUT")]


def studio_schedule_body(hook: LightningHook, studio: str, name: str) -> dict:
    """The create body LightningScheduleOperator builds."""
    return LightningSchedule(cron_expression="0 3 * * *", timezone="Europe/Berlin", name=name,
                             resource_type="CLOUDSPACE_STUDIO", resource_id=hook.studio_id(studio),
                             action_type="UNSPECIFIED_ACTION", command="echo nightly").to_api_body()


def test_paused_schedule_is_created_with_the_create_body_only_then_paused_with_a_full_update(sim, studio):
    recorder = RecordingTransport()
    hook = LightningHook(http_transport=recorder)
    name = f"paused-{uuid.uuid4().hex[:6]}"
    body = studio_schedule_body(hook, studio, name)
    schedule, outcome = hook.run(schedules_api.upsert_schedule(hook.project_id, body, state="stopped"))
    (post, posted), (put, updated) = recorder.schedule_writes()
    assert (outcome, post, put) == ("created", "POST", "PUT")
    assert set(posted) <= CREATE_BODY_FIELDS and posted["displayName"] == name
    assert updated["state"] == "stopped" and updated["name"] == name and "id" not in updated
    assert (schedule["state"], find(sim, name)["state"]) == ("stopped", "stopped")


def test_running_schedule_is_created_without_an_update_and_an_identical_upsert_sends_nothing(sim, studio):
    recorder = RecordingTransport()
    hook = LightningHook(http_transport=recorder)
    name = f"running-{uuid.uuid4().hex[:6]}"
    body = studio_schedule_body(hook, studio, name)
    assert hook.run(schedules_api.upsert_schedule(hook.project_id, body, state="running"))[1] == "created"
    assert [method for method, _ in recorder.schedule_writes()] == ["POST"]
    assert hook.run(schedules_api.upsert_schedule(hook.project_id, body, state="running"))[1] == "unchanged"
    assert [method for method, _ in recorder.schedule_writes()] == ["POST"]


def test_upsert_refuses_fields_the_create_body_does_not_have(sim, studio):
    hook = LightningHook()
    name = f"bad-{uuid.uuid4().hex[:6]}"
    body = {**studio_schedule_body(hook, studio, name), "state": "stopped", "name": "x"}
    with pytest.raises(ValueError, match="name, state cannot be sent when creating a schedule"):
        hook.run(schedules_api.upsert_schedule(hook.project_id, body))
    assert hook.run(schedules_api.find_schedule(hook.project_id, name)) is None


def test_schedule_operator_pauses_and_resumes_through_the_upsert(sim, studio):
    name = f"sched-{uuid.uuid4().hex[:6]}"
    assert schedule_op(studio, name, paused=True).execute(context())["action"] == "created"
    assert find(sim, name)["state"] == "stopped"
    assert schedule_op(studio, name, paused=True).execute(context())["action"] == "unchanged"
    assert schedule_op(studio, name).execute(context())["action"] == "updated"
    assert find(sim, name)["state"] == "running"


def test_sync_cli_writes_a_snapshot_and_parsing_the_dags_makes_no_request(sim, studio, tmp_path):
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
