"""Multi-machine jobs: one real sub-job per rank, derived MMT state, stop, failure, logs, events."""

from __future__ import annotations

from pathlib import Path

import httpx
from lightning_simulator import LightningSimulator
from lightning_simulator.runner import group_alive

from .helpers import mmt_body, wait_mmt, wait_state, wait_until

PENDING = "MultiMachineJob_STATE_PENDING"
RUNNING = "MultiMachineJob_STATE_RUNNING"
STOP = "MultiMachineJob_STATE_STOP"
STOPPED = "MultiMachineJob_STATE_STOPPED"
COMPLETED = "MultiMachineJob_STATE_COMPLETED"
FAILED = "MultiMachineJob_STATE_FAILED"

ENV_DUMP = (
    'echo "rank=$NODE_RANK world=$WORLD_SIZE nodes=$NUM_NODES master=$MASTER_ADDR:$MASTER_PORT '
    'job=$LIGHTNING_JOB_NAME mmt=$LIGHTNING_MMT_ID"'
)


def mmts_path(sim: LightningSimulator) -> str:
    return f"/v1/projects/{sim.project_id}/multi-machine-jobs"


def subjobs(client: httpx.Client, sim: LightningSimulator, mmt_id: str) -> list[dict]:
    resp = client.get(f"/v1/projects/{sim.project_id}/jobs", params={"multiMachineJobId": mmt_id})
    assert resp.status_code == 200, resp.text
    return sorted(resp.json()["jobs"], key=lambda j: j["spec"]["rank"])


def messages(client: httpx.Client, sim: LightningSimulator, **params: str) -> list[str]:
    resp = client.get(f"/v1/projects/{sim.project_id}/page-logs", params=params)
    assert resp.status_code == 200, resp.text
    return [e["message"] for e in resp.json()["entries"]]


def test_two_machine_job_runs_every_rank_with_its_env_and_completes(
    client: httpx.Client, sim: LightningSimulator
) -> None:
    body = mmt_body("ddp", ENV_DUMP, machines=2)
    body["max_run_attempts"] = 1  # snake_case is accepted too
    created = client.post(mmts_path(sim), json=body).json()
    assert created["id"].startswith("mmt-") and len(created["id"]) == len("mmt-") + 12
    assert created["name"] == "ddp" and created["machines"] == 2
    assert created["state"] == PENDING and created["desiredState"] == RUNNING
    assert created["status"]["pendingMachines"] == "2" and created["status"]["readyMachines"] == "0"
    assert created["projectId"] == sim.project_id and created["userId"] == sim.user_id
    assert created["currentRunAttempt"] == 1 and created["maxRunAttempts"] == 1
    assert created["spec"]["clusterId"] and created["spec"]["image"] == "python:3.11"

    mmt = wait_mmt(client, f"{mmts_path(sim)}/{created['id']}")
    assert mmt["state"] == COMPLETED, mmt
    assert mmt["status"]["startedAt"] and mmt["status"]["stoppedAt"] and mmt["message"] == ""
    assert mmt["totalCost"] > 0

    ranks = subjobs(client, sim, created["id"])
    assert [(j["name"], j["spec"]["rank"], j["state"]) for j in ranks] == [
        ("ddp-0", 0, "completed"),
        ("ddp-1", 1, "completed"),
    ]
    assert all(j["multiMachineJobId"] == created["id"] for j in ranks)
    assert client.get(f"/v1/projects/{sim.project_id}/jobs/{ranks[1]['id']}").json()["spec"]["rank"] == 1
    standalone = client.get(f"/v1/projects/{sim.project_id}/jobs", params={"standalone": "true"}).json()["jobs"]
    assert standalone == []
    assert [m["id"] for m in sim.mmts()] == [created["id"]]
    assert sim.get_mmt(created["id"])["state"] == COMPLETED

    lines = sorted(messages(client, sim, mmtId=created["id"]))
    port = lines[0].split(":")[-1].split()[0]
    assert int(port) > 0
    assert lines == [
        f"rank={r} world=2 nodes=2 master=127.0.0.1:{port} job=ddp-{r} mmt={created['id']}" for r in (0, 1)
    ]
    listed = client.get(mmts_path(sim)).json()["multiMachineJobs"]
    assert [m["id"] for m in listed] == [created["id"]]
    assert client.get(f"{mmts_path(sim)}/ddp/getbyname").json()["id"] == created["id"]
    events = client.get(f"{mmts_path(sim)}/{created['id']}/events").json()["events"]
    assert [e["action"] for e in events] == ["Create", "CreateJob", "CreateJob", "Run", "Complete"]
    assert {e["multiMachineJobId"] for e in events} == {created["id"]}
    assert events[1]["jobId"] == ranks[0]["id"]
    assert events[-1]["type"] == "MULTI_MACHINE_JOB_EVENT_TYPE_INFO"


def test_one_failing_rank_fails_the_mmt_and_stops_the_other_ranks(
    client: httpx.Client, sim: LightningSimulator
) -> None:
    command = '[ "$NODE_RANK" = 1 ] && sleep 0.3 && exit 3; sleep 300'
    created = client.post(mmts_path(sim), json=mmt_body("flaky", command, machines=3)).json()
    path = f"{mmts_path(sim)}/{created['id']}"
    wait_mmt(client, path, (RUNNING,))
    ranks = subjobs(client, sim, created["id"])
    wait_until(lambda: all(sim.job_pid(j["id"]) for j in ranks))
    pgids = [sim.job_pid(j["id"]) for j in ranks]

    mmt = wait_mmt(client, path)
    assert mmt["state"] == FAILED
    assert mmt["message"] == "machine rank 1 (flaky-1) failed: command exited with code 3"
    assert mmt["status"]["message"] == mmt["message"]
    assert mmt["status"]["failingMachines"] == "1" and mmt["status"]["readyMachines"] == "0"
    assert mmt["desiredState"] == RUNNING
    states = {j["name"]: (j["state"], j["serverError"], j["message"]) for j in subjobs(client, sim, created["id"])}
    assert states["flaky-1"][:2] == ("failed", "Job failed: command exited with code 3")
    for other in ("flaky-0", "flaky-2"):
        assert states[other][0] == "stopped"
        assert "rank 1" in states[other][2]
    assert not any(group_alive(p) for p in pgids if p)
    events = client.get(f"{path}/events").json()["events"]
    warning = next(e for e in events if e["reason"] == "MachineFailed")
    assert warning["jobId"] == ranks[1]["id"] and warning["type"] == "MULTI_MACHINE_JOB_EVENT_TYPE_WARNING"


def test_stop_goes_stop_then_stopped_and_kills_every_rank(client: httpx.Client, sim: LightningSimulator) -> None:
    created = client.post(mmts_path(sim), json=mmt_body("long", "sleep 300 & sleep 300; wait")).json()
    path = f"{mmts_path(sim)}/{created['id']}"
    running = wait_mmt(client, path, (RUNNING,))
    assert running["status"]["readyMachines"] == "2" and running["status"]["startedAt"]
    ranks = subjobs(client, sim, created["id"])
    wait_until(lambda: all(sim.job_pid(j["id"]) for j in ranks))
    pgids = [sim.job_pid(j["id"]) for j in ranks]
    assert all(group_alive(p) for p in pgids if p)

    resp = client.put(path, json={"desiredState": "MultiMachineJob_STATE_STOP"})
    assert resp.status_code == 200
    assert (resp.json()["state"], resp.json()["desiredState"]) == (STOP, STOP)
    mmt = wait_mmt(client, path)
    assert mmt["state"] == STOPPED and mmt["status"]["stoppedAt"]
    assert mmt["status"]["deletingMachines"] == "0"
    assert [j["state"] for j in subjobs(client, sim, created["id"])] == ["stopped", "stopped"]
    assert not any(group_alive(p) for p in pgids if p)
    again = client.put(path, json={"desiredState": "MultiMachineJob_STATE_STOP"})  # terminal: ignored
    assert again.status_code == 200 and again.json()["state"] == STOPPED
    assert client.put(path, json={"desiredState": "MultiMachineJob_STATE_COMPLETED"}).status_code == 400


def test_lookups_of_missing_mmts_are_404_and_bad_bodies_400(client: httpx.Client, sim: LightningSimulator) -> None:
    missing = client.get(f"{mmts_path(sim)}/nope/getbyname")
    assert missing.status_code == 404 and missing.reason_phrase == "Not Found"
    assert "not found" in missing.json()["message"]
    assert client.get(f"{mmts_path(sim)}/mmt-000000000000").status_code == 404
    assert client.get(f"/v1/projects/{sim.project_id}/page-logs", params={"mmtId": "mmt-x"}).status_code == 404
    assert client.post(mmts_path(sim), json=mmt_body("zero", "true", machines=0)).status_code == 400
    assert client.post(mmts_path(sim), json={"name": "x", "machines": 2, "spec": {}}).status_code == 400
    first = client.post(mmts_path(sim), json=mmt_body("same", "true")).json()
    second = client.post(mmts_path(sim), json=mmt_body("same", "true")).json()
    assert (first["name"], second["name"]) == ("same", "same-1")  # never 409
    assert [j["name"] for j in subjobs(client, sim, second["id"])] == ["same-1-0", "same-1-1"]


def test_mmt_tags_are_workload_tags(client: httpx.Client, sim: LightningSimulator) -> None:
    body = {**mmt_body("tagged", "true"), "tags": ["Nightly  Run"]}
    created = client.post(mmts_path(sim), json=body).json()
    assert [t["name"] for t in created["tags"]] == ["nightly run"]
    path = f"/v1/projects/{sim.project_id}/workloads/multi_machine_job/{created['id']}/tags"
    assert [t["name"] for t in client.put(path, json={"tags": ["other"]}).json()["tags"]] == ["other"]
    assert [t["name"] for t in client.get(f"{mmts_path(sim)}/{created['id']}").json()["tags"]] == ["other"]


def test_page_logs_by_mmt_merge_every_rank_in_time_order(client: httpx.Client, sim: LightningSimulator) -> None:
    command = 'for i in 1 2 3; do echo "rank $NODE_RANK line $i"; sleep 0.05; done'
    created = client.post(mmts_path(sim), json=mmt_body("logs", command)).json()
    wait_mmt(client, f"{mmts_path(sim)}/{created['id']}")
    ranks = subjobs(client, sim, created["id"])
    ids = [j["id"] for j in ranks]

    entries = client.get(f"/v1/projects/{sim.project_id}/page-logs", params={"mmtId": created["id"]}).json()["entries"]
    assert len(entries) == 6
    assert [e["timestamp"] for e in entries] == sorted(e["timestamp"] for e in entries)
    for rank, job_id in enumerate(ids):
        own = [e for e in entries if e["resourceId"] == job_id]
        assert [(e["message"], e["line"]) for e in own] == [(f"rank {rank} line {i}", str(i)) for i in (1, 2, 3)]
    assert messages(client, sim, jobIds=ids[1]) == [f"rank 1 line {i}" for i in (1, 2, 3)]

    for job_id, rank in ((ids[1], "0"), (created["id"], "1")):  # a sub-job, or the MMT id plus rank
        url = client.get(f"/v1/projects/{sim.project_id}/jobs/{job_id}/download-logs", params={"rank": rank})
        text = httpx.get(url.json()["url"]).text
        assert [ln.split("] ", 1)[1] for ln in text.splitlines()] == [f"rank 1 line {i}" for i in (1, 2, 3)]


def test_studio_mmt_runs_each_rank_in_its_own_copy_of_the_studio(
    client: httpx.Client, sim: LightningSimulator
) -> None:
    studio = sim.add_studio("ddp-studio")
    (sim.studio_dir("ddp-studio") / "data.txt").write_text("shared\n")
    spec = {"cloudspaceId": studio["id"], "command": 'echo "$NODE_RANK $(cat data.txt)"\necho mine > data.txt'}
    created = client.post(mmts_path(sim), json={"name": "s", "machines": 2, "spec": spec}).json()
    assert created["cloudspaceId"] == studio["id"]
    assert wait_mmt(client, f"{mmts_path(sim)}/{created['id']}")["state"] == COMPLETED
    assert sorted(messages(client, sim, mmtId=created["id"])) == ["0 shared", "1 shared"]
    assert (sim.studio_dir("ddp-studio") / "data.txt").read_text() == "shared\n"
    by_studio = client.get(mmts_path(sim), params={"cloudspaceId": studio["id"]}).json()["multiMachineJobs"]
    assert [m["id"] for m in by_studio] == [created["id"]]
    assert client.get(mmts_path(sim), params={"cloudspaceId": "other"}).json() == {"multiMachineJobs": []}


def test_delete_kills_the_ranks_and_forgets_them(client: httpx.Client, sim: LightningSimulator) -> None:
    created = client.post(mmts_path(sim), json=mmt_body("doomed", "sleep 300")).json()
    wait_mmt(client, f"{mmts_path(sim)}/{created['id']}", (RUNNING,))
    ranks = subjobs(client, sim, created["id"])
    wait_until(lambda: all(sim.job_pid(j["id"]) for j in ranks))
    pgids = [sim.job_pid(j["id"]) for j in ranks]
    rejected = client.delete(f"/v1/projects/{sim.project_id}/jobs/{ranks[0]['id']}")
    assert rejected.status_code == 400  # a machine cannot be deleted on its own

    assert client.request("DELETE", f"{mmts_path(sim)}/{created['id']}", json={}).json() == {}
    assert client.get(f"{mmts_path(sim)}/{created['id']}").status_code == 404
    assert client.get(f"/v1/projects/{sim.project_id}/jobs/{ranks[0]['id']}").status_code == 404
    wait_until(lambda: not any(group_alive(p) for p in pgids if p), timeout=5)


def test_timed_mmt_fails_on_sim_fail_rank_without_processes() -> None:
    with LightningSimulator(pending_seconds=0.01, stop_seconds=0.01, timed_jobs=True) as s:
        c = httpx.Client(base_url=s.url, headers={"Authorization": s.auth_header})
        path = f"/v1/projects/{s.project_id}/multi-machine-jobs"
        env = [{"name": "SIM_DURATION_SECONDS", "value": "0.1"}, {"name": "SIM_EXIT_CODE", "value": "4"}]
        ok = c.post(path, json=mmt_body("timed-ok", "exit 99", machines=3, env=env)).json()
        failing = [*env, {"name": "SIM_FAIL_RANK", "value": "2"}]
        bad = c.post(path, json=mmt_body("timed-bad", "exit 99", machines=3, env=failing)).json()
        assert not s.store.jobs.runner.running()
        every_rank_fails = wait_mmt(c, f"{path}/{ok['id']}")
        assert every_rank_fails["state"] == FAILED and every_rank_fails["message"].endswith("exited with code 4")
        result = wait_mmt(c, f"{path}/{bad['id']}")
        assert result["state"] == FAILED
        assert result["message"] == "machine rank 2 (timed-bad-2) failed: command exited with code 4"
        assert [j["state"] for j in s.mmt_jobs(bad["id"])] == ["stopped", "stopped", "failed"]
        bad_values = [{"name": "SIM_DURATION_SECONDS", "value": "x"}, {"name": "SIM_EXIT_CODE", "value": "1"}]
        assert c.post(path, json=mmt_body("bad", "true", env=bad_values)).status_code == 400
        assert s.mmts()[0]["name"] == "timed-bad"  # nothing half-created


def test_state_file_keeps_mmts_and_their_ranks(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    with LightningSimulator(state_file=state, pending_seconds=0.01) as first:
        c = httpx.Client(base_url=first.url, headers={"Authorization": first.auth_header})
        path = f"/v1/projects/{first.project_id}/multi-machine-jobs"
        done = c.post(path, json=mmt_body("kept", 'echo "kept $NODE_RANK"')).json()
        wait_mmt(c, f"{path}/{done['id']}")
        interrupted = c.post(path, json=mmt_body("cut", "sleep 30")).json()
        wait_mmt(c, f"{path}/{interrupted['id']}", (RUNNING,))
    with LightningSimulator(state_file=state, pending_seconds=0.01) as second:
        c = httpx.Client(base_url=second.url, headers={"Authorization": second.auth_header})
        kept = c.get(f"{path}/kept/getbyname").json()
        assert (kept["id"], kept["state"]) == (done["id"], COMPLETED)
        assert sorted(messages(c, second, mmtId=done["id"])) == ["kept 0", "kept 1"]
        cut = c.get(f"{path}/{interrupted['id']}").json()
        assert cut["state"] == FAILED  # its commands were killed when the first simulator shut down
        assert "failed: the simulator shut down while the command was running" in cut["message"]
        assert c.post(path, json=mmt_body("kept", "true")).json()["name"] == "kept-1"
        jobs = c.get(f"/v1/projects/{second.project_id}/jobs", params={"multiMachineJobId": done["id"]}).json()
        assert sorted(j["name"] for j in jobs["jobs"]) == ["kept-0", "kept-1"]


def test_stopping_one_rank_stops_the_whole_mmt(client: httpx.Client, sim: LightningSimulator) -> None:
    created = client.post(mmts_path(sim), json=mmt_body("one", "sleep 300")).json()
    path = f"{mmts_path(sim)}/{created['id']}"
    wait_mmt(client, path, (RUNNING,))
    rank0 = subjobs(client, sim, created["id"])[0]
    client.put(f"/v1/projects/{sim.project_id}/jobs/{rank0['id']}", json={"state": "stop"})
    mmt = wait_mmt(client, path)
    assert mmt["state"] == STOPPED and "rank 0 (one-0) was stopped" in mmt["message"]
    assert wait_state(client, f"/v1/projects/{sim.project_id}/jobs/{rank0['id']}")["state"] == "stopped"
    assert [j["state"] for j in subjobs(client, sim, created["id"])] == ["stopped", "stopped"]
    rename = client.put(f"/v1/projects/{sim.project_id}/jobs/{rank0['id']}", json={"name": "renamed"})
    assert rename.status_code == 400  # only standalone jobs can be renamed
