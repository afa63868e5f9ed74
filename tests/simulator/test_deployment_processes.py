"""Deployment replicas that run their command: PORT, readiness, the proxied endpoint, failures and killing.

A model server loads a checkpoint from the teamspace drive, checks a token from a teamspace secret and listens on
``$PORT``; the served endpoint forwards requests to it. Replicas without a command (test_deployments.py) echo.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from lightning_simulator import LightningSimulator
from lightning_simulator.runner import group_alive

from .helpers import wait_until
from .test_deployments import FAILED, PENDING, RUNNING, create, deps_path, put, replica_jobs, running, stop_body

SERVER = r"""
import http.server, json, os, sys, time
from pathlib import Path
print("loading checkpoint", os.environ.get("CHECKPOINT", "-"), flush=True)
model = json.loads(Path(os.environ["CHECKPOINT"]).read_text()) if os.environ.get("CHECKPOINT") else {}
token = os.environ.get("MODEL_TOKEN", "")
time.sleep(float(os.environ.get("STARTUP_DELAY", "0")))

class Handler(http.server.BaseHTTPRequestHandler):
    def answer(self, status, body, extra=()):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for key, value in extra:
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/health":
            flag = os.environ.get("READY_FLAG", "")
            healthy = not flag or Path(flag).exists()
            return self.answer(200 if healthy else 503, {"healthy": healthy})
        if self.path == "/crash":
            print("crashing on request", flush=True)
            os._exit(7)
        self.answer(200, {"path": self.path, "version": os.environ.get("VERSION", "")})

    def do_POST(self):
        if self.headers.get("X-Model-Token") != token:
            return self.answer(403, {"error": "bad model token"})
        inputs = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["inputs"]
        print(f"predicting {len(inputs)} inputs", flush=True)
        self.answer(
            200,
            {
                "outputs": [model["w"] * x + model["b"] for x in inputs],
                "model": model,
                "path": self.path,
                "sawAuthorization": "Authorization" in self.headers,
                "contentType": self.headers.get("Content-Type"),
            },
            [("X-Model-Version", "7")],
        )

    def log_message(self, *args):
        pass

print("serving on port", os.environ["PORT"], flush=True)
http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""
SERVE = f"python3 -c {shlex.quote(SERVER)}"
HEALTH = {"httpGet": {"path": "/health", "port": 8000}}


def server_spec(*env: dict[str, str], command: str = SERVE, **spec: Any) -> dict[str, Any]:
    """An image spec running the model server (with a health check on container port 8000)."""
    return {"image": "python:3.11", "command": command, "readinessProbe": HEALTH, "env": list(env), **spec}


def log_lines(client: httpx.Client, sim: LightningSimulator, dep_id: str) -> list[str]:
    logs = client.get(f"/v1/projects/{sim.project_id}/page-logs", params={"deploymentId": dep_id}).json()
    return [e["message"] for e in logs["entries"]]


def pid_of(sim: LightningSimulator, dep_id: str) -> int:
    replica = sim.deployment_replica(dep_id)
    assert replica is not None and replica["pid"] is not None
    return int(replica["pid"])


def test_a_model_server_loads_its_checkpoint_checks_its_secret_token_and_is_called_through_the_endpoint(
    client: httpx.Client, sim: LightningSimulator
) -> None:
    sim.drive_path("models/m").mkdir(parents=True)
    sim.drive_path("models/m/checkpoint.json").write_text('{"w": 2.0, "b": 1.0}')
    client.post(f"/v1/projects/{sim.project_id}/secrets", json={"name": "MODEL_API_TOKEN", "value": "tok-123"})
    env = [
        {"name": "CHECKPOINT", "value": "/teamspace/models/m/checkpoint.json"},
        {"name": "MODEL_TOKEN", "fromSecret": "MODEL_API_TOKEN"},
        {"name": "STARTUP_DELAY", "value": "1"},  # loads slowly: pending until it listens
    ]
    auth = {"enabled": True, "token": "platform-token"}
    created = create(client, sim, "model", spec=server_spec(*env), endpoint={"ports": ["8000"], "auth": auth})
    wait_until(lambda: any(line.startswith("loading checkpoint") for line in log_lines(client, sim, created["id"])))
    starting = sim.get_deployment(created["id"])
    assert starting["currentState"] == PENDING and starting["status"]["pendingReplicas"] == 1
    platform = {"Authorization": "Bearer platform-token"}
    assert httpx.get(f"{sim.url}/serve/{created['id']}/health", headers=platform).status_code == 503

    dep = running(sim, created["id"])
    url = dep["status"]["urls"][0]
    replica = sim.deployment_replica(created["id"])
    assert replica is not None and replica["port"] and group_alive(replica["pid"])
    headers = {**platform, "X-Model-Token": "tok-123"}
    answer = httpx.post(f"{url}/predict?verbose=1", json={"inputs": [0.0, 1.0, 2.0]}, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/json; charset=utf-8"
    assert answer.headers["x-model-version"] == "7"
    assert answer.json() == {
        "outputs": [1.0, 3.0, 5.0],
        "model": {"w": 2.0, "b": 1.0},  # from the checkpoint on the drive
        "path": "/predict?verbose=1",
        "sawAuthorization": False,  # the platform's credential is not passed on
        "contentType": "application/json",
    }
    wrong = httpx.post(f"{url}/predict", json={"inputs": [1.0]}, headers={**headers, "X-Model-Token": "nope"})
    assert wrong.status_code == 403 and wrong.json() == {"error": "bad model token"}  # the process's answer
    assert httpx.get(f"{url}/health", headers=headers).json() == {"healthy": True}  # not the echo's
    assert httpx.post(f"{url}/predict", json={"inputs": [1.0]}, headers={"X-Model-Token": "tok-123"}).status_code == 401

    lines = log_lines(client, sim, created["id"])
    teamspace = sim.drive_path()
    assert f"loading checkpoint {teamspace}/models/m/checkpoint.json" in lines
    assert f"serving on port {replica['port']}" in lines and "predicting 3 inputs" in lines
    assert f"replica 0 health check GET /health on port 8000 (PORT={replica['port']}) passed: ready" in lines
    assert "tok-123" not in " ".join(lines)


def test_the_replica_stays_pending_until_its_http_health_check_answers_2xx(
    client: httpx.Client, sim: LightningSimulator
) -> None:
    flag = sim.drive_path("ready-flag")
    created = create(client, sim, "warming", spec=server_spec({"name": "READY_FLAG", "value": "/teamspace/ready-flag"}))
    wait_until(lambda: any(line.startswith("serving on port") for line in log_lines(client, sim, created["id"])))
    time.sleep(0.4)  # several probes answered 503
    assert sim.get_deployment(created["id"])["currentState"] == PENDING
    flag.write_text("")
    assert running(sim, created["id"])["status"]["readyReplicas"] == 1


def test_a_command_that_exits_at_once_fails_the_replica_with_its_exit_code_and_output(
    client: httpx.Client, sim: LightningSimulator
) -> None:
    command = "echo 'loading weights'; echo 'no GPU found' >&2; exit 3"
    created = create(client, sim, "crasher", spec=server_spec(command=command))
    dep = sim.wait_for_deployment(created["id"], FAILED, timeout=10)
    message = dep["status"]["message"]
    assert message.startswith("replica 0 failed: the container exited with code 3 before it was ready")
    assert "loading weights" in message and "no GPU found" in message
    assert dep["status"]["failingReplicas"] == 1 and dep["status"]["readyReplicas"] == 0
    [job] = replica_jobs(client, sim, created["id"])
    assert job["state"] == "failed"
    assert "no GPU found" in log_lines(client, sim, created["id"])
    events = client.get(f"{deps_path(sim)}/{created['id']}/events").json()["events"]
    assert ("ReplicaFailed", "ContainerExited") in [(e["action"], e["reason"]) for e in events]
    assert httpx.get(f"{sim.url}/serve/{created['id']}/health").status_code == 503


def test_a_command_that_never_listens_fails_after_the_ready_timeout_and_is_killed(
    client: httpx.Client, sim: LightningSimulator
) -> None:
    sim.config.deployment_ready_timeout = 0.5
    created = create(client, sim, "silent", spec=server_spec(command="echo 'warming up'; sleep 60"))
    dep = sim.wait_for_deployment(created["id"], FAILED, timeout=10)
    message = dep["status"]["message"]
    assert message.startswith("replica 0 failed: not ready after 0.5 s (health check GET /health on port 8000")
    assert "no connection" in message and "was killed by signal 9 (exit code 137)" in message
    assert "warming up" in message


def test_a_process_that_dies_once_ready_fails_its_replica_and_the_endpoint_answers_502_meanwhile(
    client: httpx.Client, sim: LightningSimulator
) -> None:
    created = create(client, sim, "fragile", spec=server_spec())
    url = running(sim, created["id"])["status"]["urls"][0]
    replica = sim.deployment_replica(created["id"])
    assert replica is not None
    crashed = httpx.get(f"{url}/crash")
    assert crashed.status_code == 502 and crashed.json()["code"] == 14
    assert "bad gateway: replica 0 of deployment 'fragile' did not answer" in crashed.json()["message"]
    dep = sim.wait_for_deployment(created["id"], FAILED, timeout=10)
    assert dep["status"]["message"] == (
        "replica 0 failed: the container exited with code 7; last output:\n"
        f"loading checkpoint -\nserving on port {replica['port']}\ncrashing on request"
    )
    wait_until(lambda: not group_alive(replica["pid"]))
    assert httpx.get(f"{url}/x").status_code == 503


def stop_it(client: httpx.Client, sim: LightningSimulator, dep: dict[str, Any]) -> None:
    put(client, sim, stop_body(dep, 0))  # what the SDK's Deployment.stop() sends


def stop_desired(client: httpx.Client, sim: LightningSimulator, dep: dict[str, Any]) -> None:
    put(client, sim, {**dep, "desiredState": "DEPLOYMENT_STATE_STOPPED"})


def delete_it(client: httpx.Client, sim: LightningSimulator, dep: dict[str, Any]) -> None:
    assert client.request("DELETE", f"{deps_path(sim)}/{dep['id']}", json={}).status_code == 200


@pytest.mark.parametrize("action", [stop_it, stop_desired, delete_it], ids=["max-replicas-0", "stopped", "delete"])
def test_stopping_or_deleting_the_deployment_kills_the_process_group(
    client: httpx.Client,
    sim: LightningSimulator,
    action: Callable[[httpx.Client, LightningSimulator, dict[str, Any]], None],
) -> None:
    command = f"sleep 120 & {SERVE}"  # a child of the shell in the same group must go too
    created = create(client, sim, "killable", spec=server_spec(command=command))
    dep = running(sim, created["id"])
    pid = pid_of(sim, created["id"])
    assert group_alive(pid)
    action(client, sim, dep)
    wait_until(lambda: not group_alive(pid))
    if action is not delete_it:
        stopped = sim.wait_for_deployment(created["id"], "STOPPED", timeout=10)
        assert stopped["status"]["readyReplicas"] == 0
        assert [j["state"] for j in replica_jobs(client, sim, created["id"])] == ["stopped"]
        lines = log_lines(client, sim, created["id"])
        assert any(line.startswith("replica 0 container was killed by signal") for line in lines)


def test_a_new_release_starts_a_new_process_and_kills_the_old_one_once_it_is_ready(
    client: httpx.Client, sim: LightningSimulator
) -> None:
    created = create(client, sim, "rolling", spec=server_spec({"name": "VERSION", "value": "1"}))
    url = running(sim, created["id"])["status"]["urls"][0]
    old = pid_of(sim, created["id"])
    assert httpx.get(f"{url}/which").json() == {"path": "/which", "version": "1"}
    dep = sim.get_deployment(created["id"])
    updated = put(client, sim, {**dep, "spec": {**dep["spec"], "env": [{"name": "VERSION", "value": "2"}]}})
    assert updated["releaseId"] != created["releaseId"]
    done = running(sim, created["id"])
    assert done["releaseId"] == updated["releaseId"]
    assert httpx.get(f"{url}/which").json()["version"] == "2"
    new = pid_of(sim, created["id"])
    assert new != old and group_alive(new)
    wait_until(lambda: not group_alive(old))
    assert [j["state"] for j in replica_jobs(client, sim, created["id"])] == ["running", "stopped"]


def test_simulator_stop_kills_replica_processes_and_a_restart_starts_them_again(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    with LightningSimulator(state_file=state, pending_seconds=0.05, stop_seconds=0.05) as first:
        c = httpx.Client(base_url=first.url, headers={"Authorization": first.auth_header})
        created = create(c, first, "durable", spec=server_spec({"name": "VERSION", "value": "1"}))
        running(first, created["id"])
        pid = pid_of(first, created["id"])
    assert not group_alive(pid)

    with LightningSimulator(state_file=state, pending_seconds=0.05, stop_seconds=0.05) as second:
        dep = running(second, created["id"])
        assert pid_of(second, created["id"]) != pid
        assert httpx.get(f"{dep['status']['urls'][0]}/v").json() == {"path": "/v", "version": "1"}


def test_without_deployment_commands_a_replica_with_a_command_still_echoes() -> None:
    with LightningSimulator(pending_seconds=0.05, deployment_commands=False) as sim:
        c = httpx.Client(base_url=sim.url, headers={"Authorization": sim.auth_header})
        created = create(c, sim, "echoing", spec=server_spec())
        url = running(sim, created["id"])["status"]["urls"][0]
        assert httpx.post(f"{url}/predict", json={"x": 1}).json()["path"] == "/predict"
        replica = sim.deployment_replica(created["id"])
        assert replica is not None and replica["pid"] is None and replica["port"] is None
        assert sim.get_deployment(created["id"])["currentState"] == RUNNING
