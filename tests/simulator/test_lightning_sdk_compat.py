"""The official ``lightning-sdk``, unchanged, drives jobs and multi-machine jobs end to end against the simulator.

The SDK keeps process-global state (cached clients, credentials read from the environment), so
it runs in a subprocess whose environment points it at the simulator.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from lightning_simulator import LightningSimulator

pytestmark = [
    pytest.mark.sdk,
    pytest.mark.skipif(
        importlib.util.find_spec("lightning_sdk") is None,
        reason="lightning-sdk is not installed (pip install lightning-sdk) — SDK compatibility not checked",
    ),
]

SDK_FLOW = r'''
import json, time
from lightning_sdk import Job, Machine, Status

out = {}
job = Job.run(
    name="sdk-hello",
    machine=Machine.CPU,
    image="python:3.11",
    command="python -c \"print('hello from sdk')\"",
    teamspace="sim-teamspace",
    org="sim-org",
)
out["first_status"] = str(job.status)
out["name"] = job.name
job.wait(timeout=60, interval=0.5)
out["final_status"] = str(job.status)
out["logs"] = str(job.logs)

again = Job.run(
    name="sdk-hello", machine=Machine.CPU, image="python:3.11", command="true",
    teamspace="sim-teamspace", org="sim-org",
)
out["clash_name"] = again.name

long = Job.run(
    name="sdk-long", machine=Machine.CPU, image="python:3.11", command="sleep 300",
    teamspace="sim-teamspace", org="sim-org",
)
deadline = time.time() + 30
while long.status != Status.Running and time.time() < deadline:
    time.sleep(0.2)
out["long_before_stop"] = str(long.status)
long.stop()
out["long_after_stop"] = str(long.status)

attached = Job("sdk-hello", teamspace="sim-org/sim-teamspace")
out["attached_id"] = attached.id
out["attached_status"] = str(attached.status)
out["attached_machine"] = str(attached.machine.slug)

# multi-machine: Job.run(num_machines=2) goes through the /multi-machine-jobs endpoints
ddp = Job.run(
    name="sdk-ddp", machine=Machine.CPU, image="python:3.11",
    command='echo "rank $NODE_RANK of $WORLD_SIZE"',
    teamspace="sim-teamspace", org="sim-org", num_machines=2,
)
out["mmt_first_status"] = str(ddp.status)
out["mmt_is_multi"] = [ddp.is_multi_machine, ddp.num_machines]
ddp.wait(timeout=60, interval=0.2)
out["mmt_final_status"] = str(ddp.status)
out["mmt_machines"] = [[m.name, m.rank, str(m.status)] for m in ddp.machines]
out["mmt_logs"] = str(ddp.logs)
out["mmt_started"] = ddp.started_at is not None
ddp_attached = Job("sdk-ddp", teamspace="sim-org/sim-teamspace")
out["mmt_attached"] = [ddp_attached.is_multi_machine, str(ddp_attached.status)]

ddp_long = Job.run(
    name="sdk-ddp-long", machine=Machine.CPU, image="python:3.11", command="sleep 300",
    teamspace="sim-teamspace", org="sim-org", num_machines=2,
)
deadline = time.time() + 30
while ddp_long.status != Status.Running and time.time() < deadline:
    time.sleep(0.1)
out["mmt_long_before_stop"] = str(ddp_long.status)
ddp_long.stop()
out["mmt_long_after_stop"] = str(ddp_long.status)
print("RESULT " + json.dumps(out))
'''


def run_sdk(sim: LightningSimulator, flow: str, tmp_path: Path, **extra_env: str) -> dict:
    """Run an SDK script in a subprocess pointed at ``sim`` (clean HOME, no LIGHTNING_* of ours); its RESULT."""
    home = tmp_path / "home"
    home.mkdir()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("LIGHTNING_", "GRID_"))},
        **sim.client_env(),
        "HOME": str(home),
        "LIGHTNING_CREDENTIAL_PATH": str(home / ".lightning" / "credentials.json"),
        **extra_env,
    }
    result = subprocess.run([sys.executable, "-c", flow], capture_output=True, text=True, env=env, cwd=tmp_path,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    line = next(ln for ln in result.stdout.splitlines() if ln.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def test_unchanged_lightning_sdk_runs_waits_reads_logs_and_stops_jobs_and_multi_machine_jobs(tmp_path: Path) -> None:
    with LightningSimulator(pending_seconds=0.1, stop_seconds=0.1, kill_grace=0.5) as sim:
        out = run_sdk(sim, SDK_FLOW, tmp_path)

        assert out["first_status"] in ("Pending", "Running")
        assert out["name"] == "sdk-hello"
        assert out["final_status"] == "Completed"
        assert "hello from sdk" in out["logs"]
        assert out["clash_name"] == "sdk-hello-1"
        assert out["long_before_stop"] == "Running"
        assert out["long_after_stop"] == "Stopped"
        assert out["attached_status"] == "Completed"
        assert out["attached_machine"] == "cpu-4"

        long_job = next(j for j in sim.jobs() if j["name"] == "sdk-long")
        assert long_job["state"] == "stopped"
        assert ("PUT", f"/v1/projects/{sim.project_id}/jobs/{long_job['id']}", 200) in sim.request_log

        assert out["mmt_first_status"] in ("Pending", "Running")
        assert out["mmt_is_multi"] == [True, 2]
        assert out["mmt_final_status"] == "Completed"
        assert out["mmt_machines"] == [["sdk-ddp-0", 0, "Completed"], ["sdk-ddp-1", 1, "Completed"]]
        # the SDK prefixes every merged line with the machine (sub-job) name it found by resourceId
        assert sorted(out["mmt_logs"].splitlines()) == ["[sdk-ddp-0] rank 0 of 2", "[sdk-ddp-1] rank 1 of 2"]
        assert out["mmt_started"] is True
        assert out["mmt_attached"] == [True, "Completed"]  # /jobs/find 404 -> /multi-machine-jobs/{name}/getbyname
        assert out["mmt_long_before_stop"] == "Running"
        # MMTApiV2.stop_job returns as soon as state is ..._STOP, so the SDK may still see Stopping
        assert out["mmt_long_after_stop"] in ("Stopping", "Stopped")
        long_mmt = next(m for m in sim.mmts() if m["name"] == "sdk-ddp-long")
        assert long_mmt["desiredState"] == "MultiMachineJob_STATE_STOP"
        sim.wait_for_mmt(long_mmt["id"], timeout=10)
        assert sim.get_mmt(long_mmt["id"])["state"] == "MultiMachineJob_STATE_STOPPED"
        assert [j["state"] for j in sim.mmt_jobs(long_mmt["id"])] == ["stopped", "stopped"]
        put = ("PUT", f"/v1/projects/{sim.project_id}/multi-machine-jobs/{long_mmt['id']}", 200)
        assert put in sim.request_log

        assert all(r.has_auth for r in sim.request_log.matching(path_prefix="/v1/"))
        expected_404 = {f"/v1/projects/{sim.project_id}/jobs/find?name=sdk-ddp"}  # then the SDK tries the MMT
        assert not [
            r
            for r in sim.request_log
            if r.status >= 400 and r.path.startswith("/v1/") and not (r.status == 404 and r.path in expected_404)
        ]


STUDIO_FLOW = r'''
import json
from lightning_sdk import Studio

out = {}
studio = Studio("sim-studio", teamspace="sim-teamspace", org="sim-org")
out["before"] = str(studio.status)
studio.start()
out["started"] = str(studio.status)
out["machine"] = studio.machine.slug
out["run"] = studio.run("echo hi")
out["files"] = studio.run("echo kept > f.txt", "cat f.txt")
out["failing"] = list(studio.run_with_exit_code("echo bad; exit 4"))
studio.start()  # already running on the same machine: nothing happens
studio.stop()
out["after"] = str(studio.status)
print("RESULT " + json.dumps(out))
'''


def test_unchanged_lightning_sdk_starts_runs_commands_in_and_stops_a_studio(tmp_path: Path) -> None:
    with LightningSimulator(pending_seconds=0.1, stop_seconds=0.1, kill_grace=0.5) as sim:
        # Studio.stop joins the keep-alive thread: keep it short
        out = run_sdk(sim, STUDIO_FLOW, tmp_path, LIGHTNING_KEEPALIVE_FREQUENCY="0.2")

        assert out["before"] == "Stopped"
        assert out["started"] == "Running"
        assert out["machine"] == "cpu-4"
        assert out["run"] == "hi"
        assert out["files"] == "kept"
        assert out["failing"] == ["bad", 4]
        assert out["after"] == "Stopped"
        assert sim.studio_phase("sim-studio") == "CLOUD_SPACE_INSTANCE_STATE_STOPPED"
        assert [c["exitCode"] for c in sim.studio_commands("sim-studio")] == [0, 0, 4]

        base = f"/v1/projects/{sim.project_id}/cloudspaces/{sim.store.studios.find('sim-studio').id}"
        starts = [r for r in sim.request_log if r.method == "POST" and r.path == f"{base}/start"]
        assert [r.status for r in starts] == [200]  # the second start() saw a running Studio and sent nothing
        assert ("POST", f"{base}/stop", 200) in sim.request_log
        assert ("POST", f"{base}/keep-alive", 200) in sim.request_log
        assert not [r for r in sim.request_log if r.status >= 400 and r.path.startswith("/v1/")]


DEPLOYMENT_FLOW = r'''
import json, time
from lightning_sdk import Deployment, Machine
from lightning_sdk.deployment import ApiKeyAuth


def wait(check):
    deadline = time.time() + 30
    while not check() and time.time() < deadline:
        time.sleep(0.1)


out = {}
dep = Deployment("sdk-api", teamspace="sim-teamspace", org="sim-org")
out["existed"] = dep.is_started
dep.start(  # no command: the replicas run no process and the endpoint echoes
    machine=Machine.CPU,
    image="python:3.11",
    ports=[8000],
    env={"GREETING": "hi"},
    auth=ApiKeyAuth(),
)
wait(lambda: dep.running_replicas >= 1)
out["counts"] = [dep.replicas, dep.running_replicas, dep.pending_replicas, dep.failing_replicas, dep.max_replicas]
out["urls"] = dep.urls
out["ports"] = dep.ports
out["health"] = dep.get("health").json()  # ApiKeyAuth: the SDK sends its API key as a Bearer token
out["echo"] = dep.post("predict", json={"x": 1}).json()
out["logs"] = open(dep.download_logs()).read()
out["release_before"] = dep.release_id
dep.update(image="python:3.12")
out["release_after"] = dep.release_id
wait(lambda: dep.get("which").json().get("release") == 2)
out["served_after_update"] = dep.get("which").json()
dep.stop()  # PUT maxReplicas 0, then polls every 5 s until replicas == 0
out["after_stop"] = [dep.replicas, dep.running_replicas, dep.is_stopped]
again = Deployment("sdk-api", teamspace="sim-org/sim-teamspace")
out["again_existed"] = again.is_started
again.start()
wait(lambda: again.running_replicas >= 1)
out["after_restart"] = [again.replicas, again.running_replicas, again.release_id]
print("RESULT " + json.dumps(out))
'''


def test_unchanged_lightning_sdk_starts_updates_calls_stops_and_restarts_a_deployment(tmp_path: Path) -> None:
    with LightningSimulator(pending_seconds=0.1, stop_seconds=0.1) as sim:
        out = run_sdk(sim, DEPLOYMENT_FLOW, tmp_path)

        dep = sim.get_deployment("sdk-api")
        assert dep is not None
        assert out["existed"] is False and out["again_existed"] is True
        assert out["counts"] == [1, 1, 0, 0, 1]
        assert out["urls"] == [f"{sim.url}/serve/{dep['id']}"]
        assert out["ports"] == [8000]
        assert out["health"] == {"status": "ok"}
        assert out["echo"]["path"] == "/predict" and out["echo"]["body"] == {"x": 1} and out["echo"]["release"] == 1
        assert "replica 0 pulling image python:3.11" in out["logs"]
        assert out["release_before"] != out["release_after"]
        assert (out["served_after_update"]["release"], out["served_after_update"]["image"]) == (2, "python:3.12")
        assert out["after_stop"] == [0, 0, False]  # the SDK's is_stopped compares the int64 string "0" with 0
        assert out["after_restart"] == [1, 1, out["release_after"]]

        releases = sim.store.deployments.list_releases(sim.project_id, dep["id"])["releases"]
        assert [(r["version"], r["spec"]["image"]) for r in releases] == [(2, "python:3.12"), (1, "python:3.11")]
        assert dep["spec"]["env"] == [{"name": "GREETING", "value": "hi", "fromSecret": ""}]
        assert dep["endpoint"]["auth"]["userApiKey"] is True
        actions = [e["action"] for e in sim.store.deployments.events(sim.project_id, dep["id"], {})["events"]]
        assert actions.count("Release") == 1 and actions.count("Stop") == 1 and actions.count("Start") == 1
        expected_404 = {f"/v1/projects/{sim.project_id}/deployments/sdk-api/getbyname"}  # before start()
        assert not [r for r in sim.request_log if r.status >= 400 and not (r.status == 404 and r.path in expected_404)]


SDK_SECRETS_FLOW = r'''
import json
from lightning_sdk import Teamspace

out = {}
ts = Teamspace("sim-teamspace", org="sim-org")
ts.set_secret("SDK_TOKEN", "first")
ts.set_secret("SDK_TOKEN", "second")
ts.set_secret("TYPED", "hf-value", secret_type="hf_token")
out["secrets"] = ts.secrets
try:
    ts.set_secret("1bad", "SUPER-SECRET-VALUE")
except ValueError as exc:
    out["bad_name"] = "ValueError"
ts.delete_secret("SDK_TOKEN")
out["after_delete"] = ts.secrets
print("RESULT " + json.dumps(out))
'''


def test_unchanged_lightning_sdk_sets_lists_and_deletes_teamspace_secrets(tmp_path: Path) -> None:
    with LightningSimulator(pending_seconds=0.1) as sim:
        out = run_sdk(sim, SDK_SECRETS_FLOW, tmp_path)
        assert out["secrets"] == {"SDK_TOKEN": "***REDACTED***"}  # typed secrets are hidden
        assert out["bad_name"] == "ValueError"
        assert out["after_delete"] == {}
        assert sim.store.secrets.value(sim.project_id, "TYPED") == "hf-value"
        path = f"/v1/projects/{sim.project_id}/secrets"
        assert [r.status for r in sim.request_log if r.path.startswith(path) and r.method in ("POST", "PUT")] == [
            200, 200, 200,
        ]
