"""The official ``lightning-sdk``, unchanged, drives a job end to end against the simulator.

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
print("RESULT " + json.dumps(out))
'''


def test_unchanged_lightning_sdk_runs_waits_reads_logs_and_stops_jobs(tmp_path: Path) -> None:
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
        assert all(r.has_auth for r in sim.request_log.matching(path_prefix="/v1/"))
        assert not [r for r in sim.request_log if r.status >= 400 and r.path.startswith("/v1/")]
