"""Job lifecycle, lookups, listing and logs over real HTTP."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from lightning_simulator import LightningSimulator
from lightning_simulator.runner import group_alive

from .helpers import image_job, wait_state, wait_until


def page_logs(client: httpx.Client, sim: LightningSimulator, *job_ids: str, **params: str) -> dict:
    query: list[tuple[str, str | int | float | bool | None]] = [("jobIds", j) for j in job_ids]
    query += list(params.items())
    resp = client.get(f"/v1/projects/{sim.project_id}/page-logs", params=query)
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_successful_job_goes_pending_running_completed_with_output_in_page_logs(
    client: httpx.Client, sim: LightningSimulator, jobs_path: str
) -> None:
    created = client.post(jobs_path, json=image_job("hello", "python -c \"print(1)\"")).json()
    assert created["state"] == "pending"
    assert created["id"].startswith("job-") and len(created["id"]) == len("job-") + 12
    assert created["startedAt"] is None and created["stoppedAt"] is None
    assert created["spec"]["instanceName"] == "cpu-4"
    assert created["spec"]["entrypoint"] == "sh -c"
    assert created["spec"]["requestedRunDurationSeconds"] == "0"  # int64 as a string
    job = wait_state(client, f"{jobs_path}/{created['id']}")
    assert job["state"] == "completed"
    assert job["startedAt"] and job["stoppedAt"] and job["message"] == ""
    assert isinstance(job["totalCost"], float) and job["totalCost"] > 0
    assert job["multiMachineJobId"] == "" and job["deploymentId"] == "" and job["urls"] == []

    logs = page_logs(client, sim, created["id"])
    assert [e["message"] for e in logs["entries"]] == ["1"]
    entry = logs["entries"][0]
    assert entry["line"] == "1"
    assert entry["resourceId"] == created["id"]
    assert entry["timestamp"].endswith("Z") and len(entry["timestamp"].split(".")[1]) == 10  # 9 digits + Z
    assert logs["nextPageToken"] == "" and logs["followUrl"] == ""


def test_non_zero_exit_fails_the_job_with_the_exit_code(
    client: httpx.Client, sim: LightningSimulator, jobs_path: str
) -> None:
    created = client.post(jobs_path, json=image_job("boom", "echo about to fail; exit 3")).json()
    job = wait_state(client, f"{jobs_path}/{created['id']}")
    assert job["state"] == "failed"
    assert "exit" in job["message"] and "code 3" in job["message"]
    assert job["serverError"] == job["message"]
    assert [e["message"] for e in page_logs(client, sim, job["id"])["entries"]] == ["about to fail"]


def test_stop_moves_through_stop_stopping_to_stopped_and_kills_the_process_group(
    client: httpx.Client, sim: LightningSimulator, jobs_path: str
) -> None:
    created = client.post(jobs_path, json=image_job("sleeper", "sleep 300 & sleep 300; wait")).json()
    path = f"{jobs_path}/{created['id']}"
    wait_state(client, path, ("running",))
    wait_until(lambda: sim.job_pid(created["id"]) is not None)
    pgid = sim.job_pid(created["id"])
    assert pgid is not None
    assert group_alive(pgid)

    stopped = client.put(path, json={"state": "stop"})
    assert stopped.status_code == 200
    assert stopped.json()["state"] == "stop"
    seen = {wait_state(client, path, ("stopping", "stopped"))["state"]}
    job = wait_state(client, path, ("stopped",))
    seen.add(job["state"])
    assert job["stoppedAt"]
    assert not group_alive(pgid)  # every process of the job is gone (zombies aside)


def test_stop_on_a_finished_job_is_ignored(client: httpx.Client, jobs_path: str) -> None:
    created = client.post(jobs_path, json=image_job("quick", "true")).json()
    done = wait_state(client, f"{jobs_path}/{created['id']}")
    again = client.put(f"{jobs_path}/{created['id']}", json={"state": "stop"}).json()
    assert again["state"] == "completed"
    assert again["stoppedAt"] == done["stoppedAt"]


def test_stop_while_pending_never_runs_the_command(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    with LightningSimulator(pending_seconds=0.5, stop_seconds=0.02) as s:
        c = httpx.Client(base_url=s.url, headers={"Authorization": s.auth_header})
        path = f"/v1/projects/{s.project_id}/jobs"
        job = c.post(path, json=image_job("pending-stop", f"touch {marker}")).json()
        assert c.put(f"{path}/{job['id']}", json={"state": "stop"}).json()["state"] == "stop"
        assert wait_state(c, f"{path}/{job['id']}", ("stopped",))["startedAt"] is None
        time.sleep(0.6)
        assert not marker.exists()


def test_name_clash_creates_the_job_under_a_suffixed_name(client: httpx.Client, jobs_path: str) -> None:
    names = [client.post(jobs_path, json=image_job("train", "true")).json()["name"] for _ in range(3)]
    assert names == ["train", "train-1", "train-2"]


def test_find_by_name_returns_the_job_or_404(client: httpx.Client, sim: LightningSimulator, jobs_path: str) -> None:
    created = client.post(jobs_path, json=image_job("findme", "true")).json()
    found = client.get(f"{jobs_path}/find", params={"name": "findme"})
    assert found.json()["id"] == created["id"]
    missing = client.get(f"{jobs_path}/find", params={"name": "nope"})
    assert missing.status_code == 404
    assert missing.reason_phrase == "Not Found"
    assert missing.json()["code"] == 5
    assert "not found" in missing.json()["message"]
    by_slug = client.get(f"/v1/projects/{sim.owner_name}/{sim.teamspace_name}/jobs/findme")
    assert by_slug.json()["id"] == created["id"]
    dash = client.get(
        "/v1/projects/-/-/jobs/findme",
        params={"projectOwnerName": sim.owner_name, "projectName": sim.teamspace_name, "projectId": ""},
    )
    assert dash.json()["id"] == created["id"]
    assert client.get(f"{jobs_path}/job-000000000000").status_code == 404


def test_list_filters_and_pages_newest_first(client: httpx.Client, sim: LightningSimulator, jobs_path: str) -> None:
    ok = [client.post(jobs_path, json=image_job(f"ok-{i}", "true")).json()["id"] for i in range(3)]
    bad = client.post(jobs_path, json=image_job("bad", "exit 1")).json()["id"]
    studio_id = client.get(f"/v1/projects/{sim.project_id}/cloudspaces", params={"name": "sim-studio"}).json()[
        "cloudspaces"
    ][0]["id"]
    in_studio = client.post(
        jobs_path, json={"name": "studio", "spec": {"cloudspaceId": studio_id, "command": "true"}}
    ).json()["id"]
    for job_id in [*ok, bad, in_studio]:
        wait_state(client, f"{jobs_path}/{job_id}")

    everything = client.get(jobs_path, params={"standalone": "True", "cloudspaceId": ""}).json()
    assert [j["id"] for j in everything["jobs"]] == [in_studio, bad, *reversed(ok)]
    assert everything["nextPageToken"] == ""

    assert [j["id"] for j in client.get(jobs_path, params={"state": "failed"}).json()["jobs"]] == [bad]
    assert [j["id"] for j in client.get(jobs_path, params={"cloudspaceId": studio_id}).json()["jobs"]] == [in_studio]
    assert client.get(jobs_path, params={"userId": "someone-else"}).json()["jobs"] == []
    assert client.get(jobs_path, params={"multiMachineJobId": "mmt-1"}).json()["jobs"] == []
    assert len(client.get(jobs_path, params={"userId": sim.user_id, "standalone": "true"}).json()["jobs"]) == 5

    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        page = client.get(jobs_path, params={"limit": 2, "pageToken": token}).json()
        seen += [j["id"] for j in page["jobs"]]
        pages += 1
        token = page["nextPageToken"]
        if not token:
            break
    assert pages == 3
    assert seen == [in_studio, bad, *reversed(ok)]


def test_snake_case_request_body_is_accepted(client: httpx.Client, jobs_path: str) -> None:
    body = {
        "name": "snake",
        "spec": {
            "image": "python:3.11",
            "command": "echo $GREETING",
            "entrypoint": "sh -c",
            "instance_name": "lit-t4-1",
            "cluster_id": "",
            "max_run_attempts": "2",
            "requested_run_duration_seconds": 60,
            "spot": "True",
            "env": [{"name": "GREETING", "value": "hi"}],
            "path_mappings": [{"container_path": "/data", "connection_name": "s3", "connection_path": "x"}],
        },
    }
    job = client.post(jobs_path, json=body).json()
    spec = job["spec"]
    assert spec["instanceName"] == "lit-t4-1"
    assert spec["maxRunAttempts"] == 2
    assert spec["requestedRunDurationSeconds"] == "60"
    assert spec["spot"] is True
    assert spec["pathMappings"] == [{"connectionName": "s3", "connectionPath": "x", "containerPath": "/data"}]
    assert spec["clusterId"]  # the server picked the cloud account
    assert wait_state(client, f"{jobs_path}/{job['id']}")["state"] == "completed"


def test_download_logs_url_serves_plain_text_without_auth(
    client: httpx.Client, sim: LightningSimulator, jobs_path: str
) -> None:
    job = client.post(jobs_path, json=image_job("dl", "echo one; echo two")).json()
    wait_state(client, f"{jobs_path}/{job['id']}")
    resp = client.get(
        f"{jobs_path}/{job['id']}/download-logs", params={"cloudspaceId": "", "deploymentId": "", "rank": 0}
    )
    url = resp.json()["url"]
    text = httpx.get(url).text  # no Authorization header
    lines = text.splitlines()
    assert [line.split("] ", 1)[1] for line in lines] == ["one", "two"]
    assert all(line.startswith("[") and "Z] " in line for line in lines)
    assert httpx.get(url.split("?")[0]).status_code == 403  # unsigned


def test_legacy_page_logs_point_at_json_pages_with_snake_case_entries(
    client: httpx.Client, jobs_path: str
) -> None:
    job = client.post(jobs_path, json=image_job("legacy", "echo a; echo b")).json()
    wait_state(client, f"{jobs_path}/{job['id']}")
    pages = client.get(f"{jobs_path}/{job['id']}/page-logs", params={"cloudspaceId": ""}).json()["pages"]
    assert pages[0]["pageNumber"] == "0" and pages[0]["totalLines"] == "2"
    entries = client.get(pages[0]["url"]).json()
    assert [e["message"] for e in entries] == ["a", "b"]
    assert entries[0]["resource_id"] == job["id"]
    assert set(entries[0]["timestamp"]) == {"seconds", "nanos"}


def test_logs_are_recorded_live_while_the_command_runs(
    client: httpx.Client, sim: LightningSimulator, jobs_path: str
) -> None:
    job = client.post(jobs_path, json=image_job("live", "echo first; sleep 30")).json()
    wait_until(lambda: len(page_logs(client, sim, job["id"])["entries"]) == 1)
    assert client.get(f"{jobs_path}/{job['id']}").json()["state"] == "running"
    client.put(f"{jobs_path}/{job['id']}", json={"state": "stop"})
    wait_state(client, f"{jobs_path}/{job['id']}", ("stopped",))


def test_page_logs_paging_and_filters(client: httpx.Client, sim: LightningSimulator, jobs_path: str) -> None:
    cmd = "for i in 1 2 3 4 5; do echo line $i; done; echo ERROR bad thing; echo WARNING careful"
    job = client.post(jobs_path, json=image_job("many", cmd)).json()
    wait_state(client, f"{jobs_path}/{job['id']}")
    messages: list[str] = []
    lines: list[int] = []
    token = ""
    while True:
        page = page_logs(client, sim, job["id"], pageSize="3", pageToken=token)
        messages += [e["message"] for e in page["entries"]]
        lines += [int(e["line"]) for e in page["entries"]]
        token = page["nextPageToken"]
        if not token:
            break
    assert len(messages) == 7 and lines == list(range(1, 8))
    assert [e["message"] for e in page_logs(client, sim, job["id"], query="line 4")["entries"]] == ["line 4"]
    assert [e["severity"] for e in page_logs(client, sim, job["id"], severity="warning")["entries"]] == [
        "error",
        "warning",
    ]
    all_entries = page_logs(client, sim, job["id"])["entries"]
    since = all_entries[5]["timestamp"]
    assert [e["message"] for e in page_logs(client, sim, job["id"], since=since)["entries"]] == messages[5:]
    far_future = "2999-01-01T00:00:00+00:00"
    assert page_logs(client, sim, job["id"], since=far_future)["entries"] == []
    assert client.get(f"/v1/projects/{sim.project_id}/page-logs").status_code == 400


def test_non_utf8_output_is_replaced_not_fatal(client: httpx.Client, sim: LightningSimulator, jobs_path: str) -> None:
    job = client.post(jobs_path, json=image_job("bytes", "printf 'ok \\377\\376 done\\n'")).json()
    assert wait_state(client, f"{jobs_path}/{job['id']}")["state"] == "completed"
    assert page_logs(client, sim, job["id"])["entries"][0]["message"] == "ok \ufffd\ufffd done"


def test_job_env_and_scratch_folder(client: httpx.Client, sim: LightningSimulator, jobs_path: str) -> None:
    cmd = 'echo "$LIGHTNING_JOB_ID $LIGHTNING_JOB_NAME $FOO"; pwd'
    job = client.post(jobs_path, json=image_job("env", cmd, env=[{"name": "FOO", "value": "bar"}])).json()
    wait_state(client, f"{jobs_path}/{job['id']}")
    first, cwd = [e["message"] for e in page_logs(client, sim, job["id"])["entries"]]
    assert first == f"{job['id']} env bar"
    assert Path(cwd).resolve() == (sim.work_dir / "jobs" / job["id"]).resolve()


def test_studio_job_runs_with_set_e_in_a_copy_of_the_studio_folder(
    client: httpx.Client, sim: LightningSimulator, jobs_path: str
) -> None:
    studio = sim.add_studio("my-studio")
    (sim.studio_dir("my-studio") / "data.txt").write_text("from studio\n")
    spec = {"cloudspaceId": studio["id"], "command": "cat data.txt\necho changed > data.txt\nfalse\necho unreachable"}
    job = client.post(jobs_path, json={"name": "in-studio", "spec": spec}).json()
    done = wait_state(client, f"{jobs_path}/{job['id']}")
    assert done["state"] == "failed" and "code 1" in done["message"]
    assert [e["message"] for e in page_logs(client, sim, job["id"])["entries"]] == ["from studio"]
    assert (sim.studio_dir("my-studio") / "data.txt").read_text() == "from studio\n"  # a copy was used
    listed = client.get(f"/v1/projects/{sim.project_id}/cloudspaces", params={"name": "my-studio"}).json()
    assert [s["id"] for s in listed["cloudspaces"]] == [studio["id"]]
    assert client.get(f"/v1/projects/{sim.project_id}/cloudspaces/{studio['id']}").json()["name"] == "my-studio"
    missing = client.post(jobs_path, json={"name": "x", "spec": {"cloudspaceId": "studio-nope", "command": "true"}})
    assert missing.status_code == 404


def test_rename_and_delete(client: httpx.Client, sim: LightningSimulator, jobs_path: str) -> None:
    client.post(jobs_path, json=image_job("taken", "true"))
    job = client.post(jobs_path, json=image_job("long", "sleep 60")).json()
    renamed = client.put(f"{jobs_path}/{job['id']}", json={"name": "taken"}).json()
    assert renamed["name"] == "taken-1"
    wait_until(lambda: sim.job_pid(job["id"]) is not None)
    pgid = sim.job_pid(job["id"])
    assert pgid is not None
    resp = client.request("DELETE", f"{jobs_path}/{job['id']}", params={"cloudspaceId": ""}, json={})
    assert resp.status_code == 200 and resp.json() == {}
    assert client.get(f"{jobs_path}/{job['id']}").status_code == 404
    wait_until(lambda: not group_alive(pgid))


def test_job_time_limit_fails_the_job() -> None:
    with LightningSimulator(pending_seconds=0, job_time_limit=0.3) as s:
        c = httpx.Client(base_url=s.url, headers={"Authorization": s.auth_header})
        path = f"/v1/projects/{s.project_id}/jobs"
        job = c.post(path, json=image_job("slow", "sleep 30")).json()
        done = wait_state(c, f"{path}/{job['id']}")
        assert done["state"] == "failed"
        assert "time limit" in done["message"]


def test_timed_jobs_finish_on_a_timer_without_a_process() -> None:
    with LightningSimulator(pending_seconds=0.01, timed_jobs=True) as s:
        c = httpx.Client(base_url=s.url, headers={"Authorization": s.auth_header})
        path = f"/v1/projects/{s.project_id}/jobs"
        outcomes = {}
        for code in (0, 4):
            env = [{"name": "SIM_DURATION_SECONDS", "value": "0.1"}, {"name": "SIM_EXIT_CODE", "value": str(code)}]
            outcomes[code] = c.post(path, json=image_job(f"timed-{code}", "exit 99", env=env)).json()["id"]
        many = [
            c.post(
                path,
                json=image_job(
                    "bulk",
                    "exit 99",
                    env=[{"name": "SIM_DURATION_SECONDS", "value": "0.2"}, {"name": "SIM_EXIT_CODE", "value": "0"}],
                ),
            ).json()["id"]
            for _ in range(200)
        ]
        assert wait_state(c, f"{path}/{outcomes[0]}")["state"] == "completed"
        failed = wait_state(c, f"{path}/{outcomes[4]}")
        assert failed["state"] == "failed" and "code 4" in failed["message"]
        assert s.job_pid(outcomes[0]) is None
        logs = c.get(f"/v1/projects/{s.project_id}/page-logs", params={"jobIds": outcomes[0]}).json()["entries"]
        assert len(logs) == 1
        wait_until(lambda: all(s.get_job(j)["state"] == "completed" for j in many))  # type: ignore[index]


def test_tags_are_normalised_workload_tags(client: httpx.Client, jobs_path: str) -> None:
    job = client.post(jobs_path, json={**image_job("tagged", "true"), "tags": ["Nightly  Run", "x"]}).json()
    assert [t["name"] for t in job["tags"]] == ["nightly run", "x"]
    assert all(t["id"].startswith("tag-") for t in job["tags"])
    path = jobs_path.replace("/jobs", f"/workloads/job/{job['id']}/tags")
    assert [t["name"] for t in client.put(path, json={"tags": ["y"]}).json()["tags"]] == ["y"]
    tag_id = client.get(f"{jobs_path}/{job['id']}").json()["tags"][0]["id"]
    assert [j["id"] for j in client.get(jobs_path, params={"tagIds": tag_id}).json()["jobs"]] == [job["id"]]


def test_invalid_requests_are_rejected_with_400(client: httpx.Client, jobs_path: str) -> None:
    assert client.post(jobs_path, json={"spec": {"image": "x"}}).status_code == 400  # no name
    assert client.post(jobs_path, json={"name": "x", "spec": {}}).status_code == 400  # no image nor studio
    bad_json = client.post(jobs_path, content=b"{not json", headers={"Content-Type": "application/json"})
    assert bad_json.status_code == 400 and bad_json.json()["code"] == 3
    job = client.post(jobs_path, json=image_job("ok", "true")).json()
    assert client.put(f"{jobs_path}/{job['id']}", json={"state": "running"}).status_code == 400
