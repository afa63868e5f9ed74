"""Schedules, their runs and the simulated clock over real HTTP."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from lightning_simulator import LightningSimulator

from .helpers import wait_until

RUNNING = "CLOUD_SPACE_INSTANCE_STATE_RUNNING"
STOPPED = "CLOUD_SPACE_INSTANCE_STATE_STOPPED"
EPOCH = "2035-01-15T00:00:00Z"  # a Monday in winter: Europe/Berlin is UTC+1


def studio_id(sim: LightningSimulator, name: str = "sim-studio") -> str:
    return sim.store.studios.find(name).id


def schedules_path(sim: LightningSimulator) -> str:
    return f"/v1/projects/{sim.project_id}/schedules"


def runs_path(sim: LightningSimulator, schedule: dict[str, Any]) -> str:
    return f"/v1/projects/{sim.project_id}/cloudspaces/{schedule['resourceId']}/schedules/{schedule['id']}/runs"


def studio_schedule(sim: LightningSimulator, command: str, cron: str = "*/5 * * * *", **fields: Any) -> dict[str, Any]:
    """A create body for a schedule running ``command`` in ``sim-studio``."""
    return {
        "cronExpression": cron,
        "timezone": "UTC",
        "displayName": "nightly",
        "resourceId": studio_id(sim),
        "resourceType": "CLOUDSPACE_STUDIO",
        "parentResourceId": "",
        "actionType": "UNSPECIFIED_ACTION",
        "command": command,
        "parallelRuns": False,
        **fields,
    }


def create(client: httpx.Client, sim: LightningSimulator, body: dict[str, Any]) -> dict[str, Any]:
    resp = client.post(schedules_path(sim), json=body)
    assert resp.status_code == 200, resp.text
    return resp.json()


def set_clock(sim: LightningSimulator, when: str) -> None:
    resp = httpx.post(f"{sim.url}/__admin/clock", json={"set": when})
    assert resp.status_code == 200, resp.text


def advance(sim: LightningSimulator, seconds: float) -> None:
    resp = httpx.post(f"{sim.url}/__admin/clock", json={"advance_seconds": seconds})
    assert resp.status_code == 200, resp.text


def start_studio(client: httpx.Client, sim: LightningSimulator) -> None:
    path = f"/v1/projects/{sim.project_id}/cloudspaces/{studio_id(sim)}/start"
    assert client.post(path, json={"computeConfig": {"name": "cpu-4", "spot": False}}).status_code == 200
    sim.wait_for_studio("sim-studio", RUNNING, timeout=10)


def wait_runs_ended(sim: LightningSimulator, schedule_id: str, count: int) -> list[dict[str, Any]]:
    """Wait until the schedule has ``count`` runs, all ended; returns them."""

    def ended() -> bool:
        runs = sim.schedule_runs(schedule_id)
        return len(runs) == count and all(r["state"] in ("succeeded", "failed") for r in runs)

    wait_until(ended)
    return sim.schedule_runs(schedule_id)


def test_schedule_crud_round_trip_with_next_and_total(client: httpx.Client, sim: LightningSimulator) -> None:
    set_clock(sim, EPOCH)
    created = create(client, sim, studio_schedule(sim, "echo hi"))
    assert created["id"].startswith("sched-")
    assert (created["name"], created["displayName"]) == ("nightly", "nightly")
    assert created["state"] == "running"
    assert created["next"] == "2035-01-15T00:05:00.000000000Z"
    assert created["total"] == 0
    assert created["createdAt"].startswith("2035-01-15T00:00:")  # on the simulated clock
    assert created["clusterId"] == "lightning-public-prod"
    path = f"{schedules_path(sim)}/{created['id']}"
    assert client.get(path).json() == created

    assert create(client, sim, studio_schedule(sim, "true"))["name"] == "nightly-1"  # names stay unique
    listed = client.get(schedules_path(sim), params={"resourceId": studio_id(sim)}).json()["schedules"]
    assert [s["name"] for s in listed] == ["nightly-1", "nightly"]
    assert client.get(schedules_path(sim), params={"resourceId": "other"}).json() == {"schedules": []}

    updated = client.put(path, json={"cronExpression": "0 * * * *", "command": "echo changed", "state": "stopped"})
    assert updated.status_code == 200, updated.text
    assert (updated.json()["cronExpression"], updated.json()["command"]) == ("0 * * * *", "echo changed")
    assert updated.json()["state"] == "stopped" and updated.json()["next"] is None
    assert client.get(schedules_path(sim), params={"state": "stopped"}).json()["schedules"][0]["id"] == created["id"]
    resumed = client.put(path, json={"state": "running"}).json()
    assert resumed["next"] == "2035-01-15T01:00:00.000000000Z"

    deleted = client.request("DELETE", path, json={})
    assert deleted.json() == {"id": created["id"], "projectId": sim.project_id, "resourceId": studio_id(sim)}
    assert client.get(path).status_code == 404


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"cronExpression": "61 * * * *"}, "schedule '61 * * * *' in time zone 'UTC': minute field"),
        ({"cronExpression": ""}, "cronExpression is required"),
        ({"timezone": "Mars/Olympus"}, "not a known IANA time zone"),
        ({"resourceId": ""}, "resourceId is required"),
        ({"resourceId": "studio-nope"}, "cloudspace 'studio-nope' not found"),
        ({"resourceType": "SPACESHIP"}, "resourceType must be one of"),
        ({"command": " "}, "command is required"),
        ({"actionType": "RESTART"}, "actionType must be one of"),
    ],
)
def test_invalid_schedules_are_rejected_with_400(
    client: httpx.Client, sim: LightningSimulator, change: dict[str, Any], message: str
) -> None:
    resp = client.post(schedules_path(sim), json={**studio_schedule(sim, "true"), **change})
    assert resp.status_code == 400
    assert resp.json()["code"] == 3
    assert message in resp.json()["message"]
    assert client.get(schedules_path(sim)).json() == {"schedules": []}


def test_update_to_an_unknown_state_is_rejected_with_400(client: httpx.Client, sim: LightningSimulator) -> None:
    schedule = create(client, sim, studio_schedule(sim, "true"))
    resp = client.put(f"{schedules_path(sim)}/{schedule['id']}", json={"state": "paused"})
    assert resp.status_code == 400
    assert "state must be" in resp.json()["message"]
    assert client.get(f"{schedules_path(sim)}/{schedule['id']}").json()["state"] == "running"


def test_lenient_create_ignores_fields_outside_the_create_body() -> None:
    # Strict mode (the default) answers 400 to these fields; --lenient lets them reach the store, which drops them.
    with LightningSimulator(strict=False, pending_seconds=0.05, stop_seconds=0.05, seed=1) as sim:
        with httpx.Client(base_url=sim.url, headers={"Authorization": sim.auth_header}, timeout=10) as client:
            created = create(client, sim, studio_schedule(sim, "true", name="chosen-name", state="stopped", total=7))
    assert (created["name"], created["displayName"]) == ("nightly", "nightly")
    assert (created["state"], created["total"]) == ("running", 0)
    assert created["next"] is not None


def test_clock_advance_fires_once_per_cron_instant_in_the_schedule_timezone(
    client: httpx.Client, sim: LightningSimulator
) -> None:
    start_studio(client, sim)
    set_clock(sim, EPOCH)
    body = studio_schedule(sim, "echo fired >> fires.txt", cron="30 9 * * *", timezone="Europe/Berlin")
    schedule = create(client, sim, body)
    assert schedule["next"] == "2035-01-15T08:30:00.000000000Z"  # 09:30 in Berlin (UTC+1)

    advance(sim, 3 * 86400)
    runs = wait_runs_ended(sim, schedule["id"], 3)
    assert [r["scheduledAt"] for r in runs] == [f"2035-01-{day}T08:30:00.000000000Z" for day in (15, 16, 17)]
    assert {(r["state"], r["exitCode"], r["command"]) for r in runs} == {("succeeded", 0, "echo fired >> fires.txt")}
    assert (sim.studio_dir("sim-studio") / "fires.txt").read_text() == "fired\n" * 3
    current = client.get(f"{schedules_path(sim)}/{schedule['id']}").json()
    assert current["total"] == 3
    assert current["next"] == "2035-01-18T08:30:00.000000000Z"
    assert client.get(runs_path(sim, schedule)).json()["scheduleRuns"] == runs
    assert [c["command"] for c in sim.studio_commands("sim-studio")] == ["echo fired >> fires.txt"] * 3


def test_the_ticking_clock_fires_a_schedule_by_itself_when_it_reaches_next(
    client: httpx.Client, sim: LightningSimulator
) -> None:
    set_clock(sim, "2035-01-15T00:04:58.5Z")
    body = {"cronExpression": "*/5 * * * *", "displayName": "p", "resourceId": "pip-1", "resourceType": "PIPELINE"}
    schedule = create(client, sim, body)
    assert schedule["next"] == "2035-01-15T00:05:00.000000000Z"
    (run,) = wait_runs_ended(sim, schedule["id"], 1)  # no clock move: the timer fired it
    assert run["scheduledAt"] == "2035-01-15T00:05:00.000000000Z"


def test_paused_schedule_does_not_fire_and_resumes_without_catching_up(
    client: httpx.Client, sim: LightningSimulator
) -> None:
    set_clock(sim, EPOCH)
    created = create(client, sim, studio_schedule(sim, "true"))
    schedule = client.put(f"{schedules_path(sim)}/{created['id']}", json={"state": "stopped"}).json()
    assert (schedule["state"], schedule["next"]) == ("stopped", None)
    advance(sim, 86400)
    assert sim.schedule_runs(schedule["id"]) == []
    resumed = client.put(f"{schedules_path(sim)}/{schedule['id']}", json={"state": "running"}).json()
    assert resumed["next"] == "2035-01-16T00:05:00.000000000Z"
    assert resumed["total"] == 0


def test_manual_trigger_runs_the_command_now_and_records_output(client: httpx.Client, sim: LightningSimulator) -> None:
    start_studio(client, sim)
    schedule = create(client, sim, studio_schedule(sim, "echo manual; echo run >&2"))
    triggered = client.post(runs_path(sim, schedule), json={})
    assert triggered.status_code == 200, triggered.text
    run = triggered.json()
    assert run["scheduleId"] == schedule["id"] and run["state"] in ("running", "succeeded")
    (done,) = wait_runs_ended(sim, schedule["id"], 1)
    assert (done["state"], done["exitCode"], done["output"]) == ("succeeded", 0, "manual\nrun\n")
    assert done["sessionName"] and done["stoppedAt"]
    assert client.get(f"{runs_path(sim, schedule)}/{run['id']}").json() == done
    assert client.get(f"{runs_path(sim, schedule)}/run-nope").status_code == 404
    elsewhere = f"/v1/projects/{sim.project_id}/cloudspaces/studio-other/schedules/{schedule['id']}/runs"
    assert client.post(elsewhere, json={}).status_code == 404


def test_failing_command_and_stopped_studio_fail_the_run(client: httpx.Client, sim: LightningSimulator) -> None:
    schedule = create(client, sim, studio_schedule(sim, "echo broken; exit 2"))
    stopped_run = client.post(runs_path(sim, schedule), json={}).json()
    assert stopped_run["state"] == "failed"
    assert "Studio 'sim-studio' is not running" in stopped_run["output"]

    start_studio(client, sim)
    client.post(runs_path(sim, schedule), json={})
    runs = wait_runs_ended(sim, schedule["id"], 2)
    assert (runs[1]["state"], runs[1]["exitCode"], runs[1]["output"]) == ("failed", 2, "broken\n")


@pytest.mark.parametrize("parallel", [False, True])
def test_parallel_runs_false_makes_each_fire_wait_for_the_previous_run(
    client: httpx.Client, sim: LightningSimulator, parallel: bool
) -> None:
    start_studio(client, sim)
    set_clock(sim, EPOCH)
    command = "while [ ! -f go ]; do sleep 0.02; done; echo done"
    schedule = create(client, sim, studio_schedule(sim, command, cron="* * * * *", parallelRuns=parallel))
    advance(sim, 180)
    runs = sim.schedule_runs(schedule["id"])
    assert len(runs) == 3
    expected = ["running"] * 3 if parallel else ["running", "pending", "pending"]
    assert [r["state"] for r in runs] == expected

    (sim.studio_dir("sim-studio") / "go").touch()
    runs = wait_runs_ended(sim, schedule["id"], 3)
    assert [r["state"] for r in runs] == ["succeeded"] * 3
    if not parallel:  # one after the other, in fire order
        assert runs[0]["stoppedAt"] <= runs[1]["startedAt"] and runs[1]["stoppedAt"] <= runs[2]["startedAt"]


def test_start_and_stop_actions_drive_the_studio(client: httpx.Client, sim: LightningSimulator) -> None:
    set_clock(sim, EPOCH)
    start = create(client, sim, studio_schedule(sim, "", cron="0 8 * * *", actionType="START", displayName="up"))
    stop = create(client, sim, studio_schedule(sim, "", cron="0 18 * * *", actionType="STOP", displayName="down"))
    advance(sim, 9 * 3600)
    sim.wait_for_studio("sim-studio", RUNNING, timeout=10)
    (started,) = sim.schedule_runs(start["id"])
    assert (started["state"], started["output"]) == ("succeeded", "Studio 'sim-studio' is starting on cpu-4")
    advance(sim, 10 * 3600)
    sim.wait_for_studio("sim-studio", STOPPED, timeout=10)
    assert sim.schedule_runs(stop["id"])[0]["output"] == "Studio 'sim-studio' is stopping"


def test_clock_admin_endpoints_and_python_api_only_move_forward(sim: LightningSimulator) -> None:
    before = httpx.get(f"{sim.url}/__admin/clock").json()
    assert before["offsetSeconds"] == 0
    moved = sim.advance_clock(3600)
    assert moved - datetime.now(timezone.utc) > timedelta(minutes=59)
    assert sim.clock_now() >= moved
    backward = httpx.post(f"{sim.url}/__admin/clock", json={"set": "2020-01-01T00:00:00Z"})
    assert backward.status_code == 400 and "never goes backward" in backward.json()["message"]
    assert httpx.post(f"{sim.url}/__admin/clock", json={"advanceSeconds": 1, "set": EPOCH}).status_code == 400
    with pytest.raises(ValueError, match="never goes backward"):
        sim.advance_clock(-1)
    target = datetime(2040, 6, 1, tzinfo=timezone.utc)
    assert sim.set_clock(target) >= target
    assert httpx.get(f"{sim.url}/__admin/clock").json()["now"].startswith("2040-06-01T00:00:")


def test_missed_instants_are_replayed_at_most_a_hundred_at_a_time(client: httpx.Client, sim: LightningSimulator) -> None:
    set_clock(sim, EPOCH)
    body = {"cronExpression": "* * * * *", "displayName": "pipe", "resourceId": "pip-1", "resourceType": "PIPELINE"}
    schedule = create(client, sim, body)
    advance(sim, 86400)
    runs = sim.schedule_runs("pipe")
    assert len(runs) == 100
    assert runs[-1]["scheduledAt"] == "2035-01-15T01:40:00.000000000Z"
    assert runs[0]["state"] == "succeeded" and "not simulated" in runs[0]["output"]
    assert client.get(f"{schedules_path(sim)}/{schedule['id']}").json()["next"] == "2035-01-16T00:01:00.000000000Z"


def test_schedules_runs_and_the_clock_survive_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    settings = {"state_file": state, "pending_seconds": 0.05, "stop_seconds": 0.05, "work_dir": tmp_path / "work"}
    with LightningSimulator(**settings) as first, httpx.Client(
        base_url=first.url, headers={"Authorization": first.auth_header}
    ) as client:
        start_studio(client, first)
        set_clock(first, EPOCH)
        schedule = create(client, first, studio_schedule(first, "echo persisted", cron="0 * * * *"))
        advance(first, 2 * 3600)
        runs = wait_runs_ended(first, schedule["id"], 2)
    with LightningSimulator(**settings) as second, httpx.Client(
        base_url=second.url, headers={"Authorization": second.auth_header}
    ) as client:
        assert second.clock_now() >= datetime(2035, 1, 15, 2, tzinfo=timezone.utc)
        assert second.schedule_runs(schedule["id"]) == runs
        again = client.get(f"{schedules_path(second)}/{schedule['id']}").json()
        assert (again["total"], again["next"]) == (2, "2035-01-15T03:00:00.000000000Z")
        assert second.studio_phase("sim-studio") == RUNNING
        assert [c["output"] for c in second.studio_commands("sim-studio")] == ["persisted\n"] * 2
