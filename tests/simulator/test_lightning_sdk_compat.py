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

from airflow_provider_lightning.simulator import LightningSimulator

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


def test_unchanged_lightning_sdk_runs_waits_reads_logs_and_stops_jobs_and_multi_machine_jobs(tmp_path: Path) -> None:
    with LightningSimulator(pending_seconds=0.1, stop_seconds=0.1, kill_grace=0.5) as sim:
        home = tmp_path / "home"
        home.mkdir()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("LIGHTNING_", "GRID_"))},
            **sim.client_env(),
            "HOME": str(home),
            "LIGHTNING_CREDENTIAL_PATH": str(home / ".lightning" / "credentials.json"),
        }
        result = subprocess.run(
            [sys.executable, "-c", SDK_FLOW],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=120,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        line = next(ln for ln in result.stdout.splitlines() if ln.startswith("RESULT "))
        out = json.loads(line.removeprefix("RESULT "))

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
