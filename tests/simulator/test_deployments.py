"""Deployments: lifecycle, releases, stop/restart, failure knobs, replica jobs and logs, and the served endpoint."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from lightning_simulator import LightningSimulator

PENDING = "DEPLOYMENT_STATE_PENDING"
RUNNING = "DEPLOYMENT_STATE_RUNNING"
FAILED = "DEPLOYMENT_STATE_FAILED"
STOPPED = "DEPLOYMENT_STATE_STOPPED"


def deployment_body(name: str, **overrides: Any) -> dict[str, Any]:
    """A create body like the SDK's ``Deployment(name).start(image=..., ports=[8000], ...)`` sends.

    No command (the image's own): its replicas run no process and the endpoint echoes requests (see
    test_deployment_processes.py for replicas that run their command).
    """
    body: dict[str, Any] = {
        "name": name,
        "replicas": 1,
        "autoscaling": {
            "enabled": True,
            "minReplicas": 0,
            "maxReplicas": 1,
            "targetMetric": [{"name": "CPU", "target": "90"}],
        },
        "endpoint": {"ports": ["8000"]},
        "spec": {"image": "ghcr.io/acme/srv:1", "command": "", "instanceName": "cpu-4", "env": []},
        "strategy": {"type": "rolling_update", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
    }
    body.update(overrides)
    return body


def deps_path(sim: LightningSimulator) -> str:
    return f"/v1/projects/{sim.project_id}/deployments"


def create(client: httpx.Client, sim: LightningSimulator, name: str, **overrides: Any) -> dict[str, Any]:
    resp = client.post(deps_path(sim), json=deployment_body(name, **overrides))
    assert resp.status_code == 200, resp.text
    return resp.json()


def put(client: httpx.Client, sim: LightningSimulator, dep: dict[str, Any]) -> dict[str, Any]:
    resp = client.put(f"{deps_path(sim)}/{dep['id']}", json=dep)
    assert resp.status_code == 200, resp.text
    return resp.json()


def fetch(client: httpx.Client, sim: LightningSimulator, dep_id: str) -> dict[str, Any]:
    resp = client.get(f"{deps_path(sim)}/{dep_id}")
    assert resp.status_code == 200, resp.text
    return resp.json()


def releases(client: httpx.Client, sim: LightningSimulator, dep_id: str) -> list[dict[str, Any]]:
    return client.get(f"{deps_path(sim)}/{dep_id}/releases").json()["releases"]


def replica_jobs(client: httpx.Client, sim: LightningSimulator, dep_id: str) -> list[dict[str, Any]]:
    resp = client.get(f"/v1/projects/{sim.project_id}/jobs", params={"deploymentId": dep_id})
    assert resp.status_code == 200, resp.text
    return resp.json()["jobs"]


def running(sim: LightningSimulator, dep_id: str, ready: int = 1) -> dict[str, Any]:
    """Wait until the deployment runs with ``ready`` ready replicas and no replica left to replace."""
    return sim.wait_for_deployment(
        dep_id,
        lambda d: (
            d["currentState"] == RUNNING
            and d["status"]["readyReplicas"] == ready
            and d["status"]["pendingReplicas"] == d["status"]["deletingReplicas"] == 0
        ),
        timeout=10,
    )


def test_create_starts_pending_then_becomes_running_with_a_served_url(
    client: httpx.Client, sim: LightningSimulator
) -> None:
    created = create(client, sim, "api")
    assert created["id"].startswith("dep_")
    assert created["name"] == "api" and created["projectId"] == sim.project_id and created["userId"] == sim.user_id
    assert created["currentState"] == PENDING and created["desiredState"] == RUNNING
    assert created["status"]["pendingReplicas"] == 1 and created["status"]["readyReplicas"] == 0
    assert created["status"]["firstJobStateCurrentRelease"] == "pending"
    assert created["status"]["urls"] == [] and created["releaseId"].startswith("rel_")
    assert created["spec"]["clusterId"] == "lightning-public-prod"  # filled in like the platform does
    assert created["endpoint"]["auth"]["enabled"] is False  # always an object (the SDK reads .auth.user_api_key)

    dep = running(sim, created["id"])
    url = f"{sim.url}/serve/{created['id']}"
    assert dep["status"]["urls"] == [url] and dep["endpoint"]["urls"] == [url]
    assert dep["status"]["firstJobStateCurrentRelease"] == "running" and dep["replicas"] == 1
    assert fetch(client, sim, created["id"])["status"] == client.get(f"{deps_path(sim)}/{created['id']}/status").json()
    assert [d["id"] for d in sim.deployments()] == [created["id"]]
    assert sim.get_deployment("api")["id"] == created["id"]
    admin = httpx.get(f"{sim.url}/__admin/deployments").json()["deployments"]
    assert [d["name"] for d in admin] == ["api"]


def test_desired_replicas_follow_min_replicas_when_autoscaling_and_replicas_otherwise(
    client: httpx.Client, sim: LightningSimulator
) -> None:
    auto = create(client, sim, "auto", autoscaling={"enabled": True, "minReplicas": "2", "maxReplicas": "3"})
    fixed = create(client, sim, "fixed", autoscaling=None, replicas=3)
    assert running(sim, auto["id"], ready=2)["replicas"] == 1  # top-level replicas as sent
    dep = running(sim, fixed["id"], ready=3)
    assert dep["replicas"] == 3
    assert dep["autoscaling"]["enabled"] is False and dep["autoscaling"]["maxReplicas"] == "3"
    assert sorted(j["name"] for j in replica_jobs(client, sim, fixed["id"])) == [f"fixed-r1-{i}" for i in range(3)]


def test_int64_fields_are_sent_as_strings_and_accepted_as_numbers_or_strings(
    client: httpx.Client, sim: LightningSimulator
) -> None:
    dep = create(
        client,
        sim,
        "int64",
        autoscaling={"enabled": True, "minReplicas": "1", "maxReplicas": 3, "idleThresholdSeconds": 600},
        endpoint={"ports": [8000, "8080"]},
        strategy={"type": "rolling_update", "rollingUpdate": {"maxSurge": "2", "maxUnavailable": 0}},
        spec={"image": "img:1", "requestedRunDurationSeconds": 3600},
    )
    auto = dep["autoscaling"]
    assert (auto["minReplicas"], auto["maxReplicas"], auto["idleThresholdSeconds"]) == ("1", "3", "600")
    assert dep["endpoint"]["ports"] == ["8000", "8080"]
    assert dep["strategy"]["rollingUpdate"] == {"maxSurge": "2", "maxUnavailable": "0", "shutdownDelayMinutes": 0}
    assert dep["spec"]["requestedRunDurationSeconds"] == "3600"
    assert isinstance(dep["replicas"], int) and isinstance(dep["status"]["readyReplicas"], int)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"name": ""}, "deployment name is required"),
        ({"spec": {"command": "serve"}}, "either spec.image or spec.cloudspaceId must be set"),
        ({"endpoint": {"ports": []}}, "endpoint.ports needs at least one port"),
        ({"endpoint": {"ports": ["99999"]}}, "must be between 1 and 65535"),
        ({"autoscaling": {"enabled": True, "minReplicas": 3, "maxReplicas": 2}}, "minReplicas must not exceed"),
        ({"endpoint": {"ports": ["8000"], "auth": {"enabled": True}}}, "sets no token"),
        ({"spec": {"image": "i", "env": [{"name": "LIGHTNING_SIM_DEPLOYMENT", "value": "boom"}]}}, "LIGHTNING_SIM"),
    ],
)
def test_create_rejects_invalid_bodies_with_the_standard_error_body(
    client: httpx.Client, sim: LightningSimulator, overrides: dict[str, Any], message: str
) -> None:
    resp = client.post(deps_path(sim), json={**deployment_body("bad"), **overrides})
    assert resp.status_code == 400, resp.text
    body = resp.json()
    assert body["code"] == 3 and body["details"] == [] and message in body["message"]


STUDIO_SERVER = """
import http.server, os
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"served from the Studio folder")
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""


def test_a_studio_deployment_needs_a_command_and_no_image(client: httpx.Client, sim: LightningSimulator) -> None:
    studio = sim.add_studio("serve-studio")["id"]
    no_command = {"cloudspaceId": studio, "spec": {"instanceName": "cpu-4"}}
    resp = client.post(deps_path(sim), json=deployment_body("studio-dep", **no_command))
    assert resp.status_code == 400 and "command is required" in resp.json()["message"]
    (sim.studio_dir("serve-studio") / "serve.py").write_text(STUDIO_SERVER)
    dep = create(client, sim, "studio-dep", cloudspaceId=studio, spec={"command": "python serve.py"})
    assert dep["cloudspaceId"] == studio == dep["spec"]["cloudspaceId"] and dep["spec"]["image"] == ""
    url = running(sim, dep["id"])["status"]["urls"][0]
    assert httpx.get(f"{url}/").text == "served from the Studio folder"  # run in a copy of the Studio's folder


def test_a_second_deployment_with_the_same_name_is_refused(client: httpx.Client, sim: LightningSimulator) -> None:
    create(client, sim, "twice")
    resp = client.post(deps_path(sim), json=deployment_body("twice"))
    assert resp.status_code == 409 and "already exists" in resp.json()["message"]


def test_put_of_the_unchanged_fetched_object_creates_no_release(client: httpx.Client, sim: LightningSimulator) -> None:
    probe = {"httpGet": {"path": "/health", "port": 8000}, "failureThreshold": 3600, "timeoutSeconds": 30}
    env = [{"name": "A", "value": "1"}]
    created = create(client, sim, "same", spec={"image": "img:1", "env": env, "readinessProbe": probe})
    dep = running(sim, created["id"])
    again = put(client, sim, dep)  # what the SDK sends: read-only fields included
    assert again["releaseId"] == created["releaseId"] and len(releases(client, sim, dep["id"])) == 1
    assert again["status"]["readyReplicas"] == 1 and again["currentState"] == RUNNING
    as_strings = {**dep, "replicas": 1, "autoscaling": {**dep["autoscaling"], "maxReplicas": 1, "minReplicas": "0"}}
    assert put(client, sim, as_strings)["releaseId"] == created["releaseId"]


def test_a_new_image_makes_a_new_release_that_rolls_out_while_the_old_replica_serves(
    client: httpx.Client, sim: LightningSimulator
) -> None:
    created = create(client, sim, "roll")
    dep = running(sim, created["id"])
    url = dep["status"]["urls"][0]
    sim.config.pending_seconds = 0.5  # time to look at the rollout half-way
    dep["spec"]["image"] = "ghcr.io/acme/srv:2"
    updated = put(client, sim, dep)
    assert updated["releaseId"] != created["releaseId"]
    assert updated["status"]["firstJobStateCurrentRelease"] == "pending"
    assert updated["status"]["readyReplicas"] == 1 and updated["status"]["pendingReplicas"] == 1
    assert updated["currentState"] == RUNNING
    assert httpx.get(f"{url}/which").json()["release"] == 1  # the old replica keeps serving meanwhile

    done = running(sim, created["id"])
    assert done["status"]["firstJobStateCurrentRelease"] == "running"
    assert httpx.get(f"{url}/which").json()["release"] == 2
    listed = releases(client, sim, created["id"])
    assert [(r["version"], r["spec"]["image"]) for r in listed] == [
        (2, "ghcr.io/acme/srv:2"),
        (1, "ghcr.io/acme/srv:1"),
    ]
    assert listed[0]["id"] == updated["releaseId"] and listed[0]["firstJobState"] == "running"
    jobs = replica_jobs(client, sim, created["id"])
    assert [(j["name"], j["state"], j["releaseId"]) for j in jobs] == [
        ("roll-r2-0", "running", listed[0]["id"]),
        ("roll-r1-0", "stopped", listed[1]["id"]),
    ]
    events = client.get(f"{deps_path(sim)}/{created['id']}/events").json()["events"]
    assert "release 2 created: image changed" in [e["message"] for e in events]
    only_v2 = client.get(f"{deps_path(sim)}/{created['id']}/events", params={"releaseId": listed[0]["id"]}).json()
    assert {e["releaseId"] for e in only_v2["events"]} == {listed[0]["id"]}


@pytest.mark.parametrize(
    ("change", "applied"),
    [
        (
            {"replicas": 2, "autoscaling": {"enabled": True, "minReplicas": "2", "maxReplicas": "2"}},
            lambda d: d["replicas"] == 2 and d["autoscaling"]["minReplicas"] == "2",
        ),
        ({"endpoint": {"ports": ["8000", 9000]}}, lambda d: d["endpoint"]["ports"] == ["8000", "9000"]),
        (
            {"endpoint": {"ports": ["8000"], "auth": {"enabled": True, "token": "t"}}},
            lambda d: d["endpoint"]["auth"]["token"] == "t",
        ),
        ({"name": "renamed"}, lambda d: d["name"] == "renamed"),
    ],
)
def test_scale_ports_auth_and_name_changes_create_no_release(
    client: httpx.Client, sim: LightningSimulator, change: dict[str, Any], applied: Callable[[dict[str, Any]], bool]
) -> None:
    created = create(client, sim, "steady")
    dep = running(sim, created["id"])
    updated = put(client, sim, {**dep, **change})
    assert applied(updated)
    assert updated["releaseId"] == created["releaseId"] and len(releases(client, sim, created["id"])) == 1
    wanted = int(updated["autoscaling"]["minReplicas"]) or 1
    assert running(sim, created["id"], ready=wanted)["releaseId"] == created["releaseId"]


def stop_body(dep: dict[str, Any], max_replicas: Any) -> dict[str, Any]:
    """What the SDK's ``Deployment.stop()`` PUTs: the fetched object with min and max replicas 0."""
    return {**dep, "autoscaling": {**dep["autoscaling"], "minReplicas": 0, "maxReplicas": max_replicas}}


@pytest.mark.parametrize("max_replicas", [0, "0"])
def test_stop_drains_the_replicas_to_zero_and_restart_brings_them_back(
    client: httpx.Client, sim: LightningSimulator, max_replicas: Any
) -> None:
    created = create(client, sim, "stoppable", autoscaling={"enabled": True, "minReplicas": 2, "maxReplicas": 2})
    dep = running(sim, created["id"], ready=2)
    stopping = put(client, sim, stop_body(dep, max_replicas))
    assert stopping["replicas"] == 1 and stopping["status"]["deletingReplicas"] == 2  # draining
    stopped = sim.wait_for_deployment(created["id"], "STOPPED", timeout=10)
    assert stopped["replicas"] == 0 and stopped["desiredState"] == STOPPED
    assert stopped["status"]["readyReplicas"] == stopped["status"]["deletingReplicas"] == 0
    assert stopped["status"]["urls"] == dep["status"]["urls"]  # the URL is kept while stopped
    assert stopped["autoscaling"]["maxReplicas"] == "0"
    assert httpx.get(f"{dep['status']['urls'][0]}/health").status_code == 503
    assert {j["state"] for j in replica_jobs(client, sim, created["id"])} == {"stopped"}

    restart = {**stopped, "desiredState": RUNNING, "replicas": 1}
    restart["autoscaling"] = {**stopped["autoscaling"], "minReplicas": 0, "maxReplicas": 1}  # like Deployment.start()
    restarted = put(client, sim, restart)
    assert restarted["currentState"] == PENDING and restarted["status"]["pendingReplicas"] == 1
    back = running(sim, created["id"])
    assert back["replicas"] == 1 and back["releaseId"] == created["releaseId"]
    assert httpx.get(f"{dep['status']['urls'][0]}/health").json() == {"status": "ok"}
    actions = [e["action"] for e in client.get(f"{deps_path(sim)}/{created['id']}/events").json()["events"]]
    assert actions.count("Stop") == 1 and actions.count("Start") == 1


def test_delete_forgets_the_deployment(client: httpx.Client, sim: LightningSimulator) -> None:
    created = create(client, sim, "doomed")
    url = running(sim, created["id"])["status"]["urls"][0]
    resp = client.request("DELETE", f"{deps_path(sim)}/{created['id']}", json={})
    assert resp.status_code == 200 and resp.json() == {}
    gone = client.get(f"{deps_path(sim)}/{created['id']}")
    assert gone.status_code == 404 and gone.reason_phrase == "Not Found" and "not found" in gone.json()["message"]
    assert client.get(f"{deps_path(sim)}/doomed/getbyname").status_code == 404
    assert httpx.get(f"{url}/health").status_code == 404
    assert sim.get_deployment(created["id"]) is None and sim.deployments() == []
    assert create(client, sim, "doomed")["id"] != created["id"]  # the name is free again


def knob(mode: str) -> dict[str, Any]:
    """A spec whose replicas fail or crash-loop (the ``LIGHTNING_SIM_DEPLOYMENT`` knob)."""
    probe = {"httpGet": {"path": "/healthz", "port": 8000}}
    return {"image": "img:1", "readinessProbe": probe, "env": [{"name": "LIGHTNING_SIM_DEPLOYMENT", "value": mode}]}


def test_fail_mode_fails_the_replicas_and_the_deployment(client: httpx.Client, sim: LightningSimulator) -> None:
    created = create(client, sim, "broken", spec=knob("fail"))
    dep = sim.wait_for_deployment(created["id"], "FAILED", timeout=10)
    assert dep["status"]["failingReplicas"] == 1 and dep["status"]["readyReplicas"] == 0
    assert dep["status"]["message"] == "replica 0 failed: health check on port 8000 /healthz failed"
    assert dep["status"]["firstJobStateCurrentRelease"] == "failed" and dep["status"]["urls"] == []
    assert [j["state"] for j in replica_jobs(client, sim, created["id"])] == ["failed"]
    events = client.get(f"{deps_path(sim)}/{created['id']}/events").json()["events"]
    assert {e["type"] for e in events if e["action"] in ("ReplicaFailed", "StateChanged")} == {
        "DEPLOYMENT_EVENT_TYPE_WARNING"
    }


def test_a_failing_release_leaves_the_old_replicas_serving(client: httpx.Client, sim: LightningSimulator) -> None:
    created = create(client, sim, "guarded")
    dep = running(sim, created["id"])
    put(client, sim, {**dep, "spec": {**dep["spec"], **knob("fail")}})
    stuck = sim.wait_for_deployment(created["id"], lambda d: d["status"]["failingReplicas"] == 1, timeout=10)
    assert stuck["currentState"] == RUNNING and stuck["status"]["readyReplicas"] == 1
    assert stuck["status"]["firstJobStateCurrentRelease"] == "failed" and "failed" in stuck["status"]["message"]
    assert httpx.get(f"{dep['status']['urls'][0]}/x").json()["release"] == 1


def test_crashloop_mode_never_gets_ready_and_stays_pending(client: httpx.Client, sim: LightningSimulator) -> None:
    created = create(client, sim, "looping", spec=knob("crashloop"))
    dep = sim.wait_for_deployment(created["id"], lambda d: d["status"]["failingReplicas"] == 1, timeout=10)
    for _ in range(3):  # and it stays that way
        assert dep["currentState"] == PENDING and dep["status"]["readyReplicas"] == 0
        assert dep["status"]["failingReplicas"] == 1 and dep["status"]["pendingReplicas"] == 0
        assert "crash-looping" in dep["status"]["message"]
        time.sleep(0.1)
        dep = fetch(client, sim, created["id"])
    logs = client.get(f"/v1/projects/{sim.project_id}/page-logs", params={"deploymentId": created["id"]}).json()
    assert "replica 0 back-off restarting failed container (CrashLoopBackOff)" in [
        e["message"] for e in logs["entries"]
    ]


def test_the_served_endpoint_answers_health_and_echoes_requests(client: httpx.Client, sim: LightningSimulator) -> None:
    created = create(client, sim, "echo")
    url = running(sim, created["id"])["status"]["urls"][0]
    assert httpx.get(f"{url}/health").json() == {"status": "ok"}
    echo = httpx.post(f"{url}/v1/predict", params={"snake_case": "1", "k": ["a", "b"]}, json={"x": [1, 2]}).json()
    assert echo == {
        "deployment": "echo",
        "deploymentId": created["id"],
        "release": 1,
        "image": "ghcr.io/acme/srv:1",
        "method": "POST",
        "path": "/v1/predict",
        "query": {"snake_case": "1", "k": ["a", "b"]},
        "body": {"x": [1, 2]},
    }
    text = httpx.put(f"{url}/raw", content=b"not json").json()
    assert (text["method"], text["body"]) == ("PUT", "not json")
    assert httpx.get(url).json()["path"] == "/"
    assert httpx.delete(f"{url}/item/7").json()["path"] == "/item/7"
    assert httpx.get(f"{sim.url}/serve/dep_unknown/health").status_code == 404


def test_the_served_endpoint_is_unavailable_while_pending(client: httpx.Client, sim: LightningSimulator) -> None:
    created = create(client, sim, "slow", spec=knob("crashloop"))
    resp = httpx.get(f"{sim.url}/serve/{created['id']}/health")
    assert resp.status_code == 503 and resp.json()["code"] == 14


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    ("auth", "good", "bad"),
    [
        ({"enabled": True, "token": "s3cret"}, "Bearer s3cret", "Bearer wrong"),
        ({"enabled": True, "tokens": ["old", "new"]}, "Bearer new", "Bearer s3cret"),
        ({"enabled": True, "username": "u", "password": "p"}, basic("u", "p"), basic("u", "x")),
        ({"enabled": True, "userApiKey": True}, "Bearer sim-key", "Bearer other-key"),
    ],
)
def test_endpoint_auth_is_enforced(
    client: httpx.Client, sim: LightningSimulator, auth: dict[str, Any], good: str, bad: str
) -> None:
    created = create(client, sim, "guarded-api", endpoint={"ports": ["8000"], "auth": auth})
    url = running(sim, created["id"])["status"]["urls"][0]
    for headers in ({}, {"Authorization": bad}):
        resp = httpx.get(f"{url}/health", headers=headers)
        assert resp.status_code == 401 and resp.json()["code"] == 16
    assert httpx.post(f"{url}/predict", json={}, headers={"Authorization": good}).json()["path"] == "/predict"
    assert httpx.get(f"{url}/health", headers={"Authorization": good}).json() == {"status": "ok"}


def test_list_pages_newest_first_and_lookups_by_name(client: httpx.Client, sim: LightningSimulator) -> None:
    ids = [create(client, sim, f"svc-{i}")["id"] for i in range(3)]
    first = client.get(deps_path(sim), params={"limit": 2}).json()
    assert [d["id"] for d in first["deployments"]] == [ids[2], ids[1]] and first["nextPageToken"]
    rest = client.get(deps_path(sim), params={"limit": 2, "pageToken": first["nextPageToken"]}).json()
    assert [d["id"] for d in rest["deployments"]] == [ids[0]] and rest["nextPageToken"] == ""
    oldest = client.get(deps_path(sim), params={"sortOrder": "asc", "userIds": [sim.user_id]}).json()
    assert [d["id"] for d in oldest["deployments"]] == ids
    assert client.get(deps_path(sim), params={"userIds": "someone-else"}).json()["deployments"] == []

    assert client.get(f"{deps_path(sim)}/svc-1/getbyname").json()["id"] == ids[1]
    missing = client.get(f"{deps_path(sim)}/nope/getbyname")
    assert missing.status_code == 404 and "not found" in missing.json()["message"]
    slug = client.get(f"/v1/projects/{sim.owner_name}/{sim.teamspace_name}/deployments/svc-2")
    assert slug.status_code == 200 and slug.json()["id"] == ids[2]
    assert client.get(f"/v1/projects/other/{sim.teamspace_name}/deployments/svc-2").status_code == 404
    assert httpx.get(f"{sim.url}{deps_path(sim)}").status_code == 401


def test_replica_jobs_and_their_logs(client: httpx.Client, sim: LightningSimulator) -> None:
    created = create(client, sim, "logged", autoscaling={"enabled": True, "minReplicas": 2, "maxReplicas": 2})
    running(sim, created["id"], ready=2)
    jobs = replica_jobs(client, sim, created["id"])
    assert sorted(j["name"] for j in jobs) == ["logged-r1-0", "logged-r1-1"]
    assert {(j["state"], j["deploymentId"], j["releaseId"]) for j in jobs} == {
        ("running", created["id"], created["releaseId"])
    }
    assert jobs[0]["spec"]["image"] == "ghcr.io/acme/srv:1" and jobs[0]["id"].startswith("job-")
    assert client.get(f"/v1/projects/{sim.project_id}/jobs").json()["jobs"] == []  # not standalone jobs
    by_state = {"deploymentId": created["id"], "state": "pending"}
    assert client.get(f"/v1/projects/{sim.project_id}/jobs", params=by_state).json()["jobs"] == []

    logs_path = f"/v1/projects/{sim.project_id}/page-logs"
    entries = client.get(logs_path, params={"deploymentId": created["id"]}).json()["entries"]
    assert {e["resourceId"] for e in entries} == {j["id"] for j in jobs}
    messages = [e["message"] for e in entries]
    assert "replica 0 pulling image ghcr.io/acme/srv:1" in messages and "replica 1 serving on port 8000" in messages
    one = client.get(logs_path, params={"deploymentId": created["id"], "jobIds": jobs[0]["id"]}).json()["entries"]
    assert {e["resourceId"] for e in one} == {jobs[0]["id"]}

    link = client.get(
        f"/v1/projects/{sim.project_id}/jobs/{jobs[0]['id']}/download-logs",
        params={"deploymentId": created["id"], "rank": 0, "cloudspaceId": ""},
    ).json()["url"]
    assert "serving on port 8000" in httpx.get(link).text


def test_deployments_survive_a_restart_with_a_state_file(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    with LightningSimulator(state_file=state, pending_seconds=0.05, stop_seconds=0.05) as first:
        c = httpx.Client(base_url=first.url, headers={"Authorization": first.auth_header})
        kept = create(c, first, "kept")
        running(first, kept["id"])
        events = c.get(f"{deps_path(first)}/{kept['id']}/events").json()["events"]
        first.config.pending_seconds = 60  # the next replica is still provisioning when the simulator stops
        pending = create(c, first, "resumed")

    with LightningSimulator(state_file=state, pending_seconds=0.05, stop_seconds=0.05) as second:
        c = httpx.Client(base_url=second.url, headers={"Authorization": second.auth_header})
        again = running(second, kept["id"])
        assert again["releaseId"] == kept["releaseId"] and again["status"]["urls"] == [
            f"{second.url}/serve/{kept['id']}"
        ]
        assert c.get(f"{deps_path(second)}/{kept['id']}/events").json()["events"][: len(events)] == events
        assert httpx.get(f"{second.url}/serve/{kept['id']}/health").json() == {"status": "ok"}
        assert running(second, pending["id"])["name"] == "resumed"  # its replica came up after the restart
        assert c.get(f"{deps_path(second)}/kept/getbyname").json()["id"] == kept["id"]
        logs = c.get(f"/v1/projects/{second.project_id}/page-logs", params={"deploymentId": kept["id"]}).json()
        assert "replica 0 serving on port 8000" in [e["message"] for e in logs["entries"]]
