"""`make demo`: the Lightning simulator plus real Airflow running example_dags/ end to end (deferrable).

1. starts the local Lightning API simulator on 127.0.0.1 (a free port);
2. prepares a scratch AIRFLOW_HOME (sqlite) and points `lightning_default` at the simulator;
3. runs `airflow dags test example_lightning_job` with `[operators] default_deferrable = True`, so each
   job task defers to the trigger and resumes;
4. prints the outcome, the jobs as the simulator saw them and their log lines; stops the simulator.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from airflow_provider_lightning.simulator import LightningSimulator

ROOT = Path(__file__).resolve().parent.parent
DAG_ID = sys.argv[1] if len(sys.argv) > 1 else "example_lightning_job"


def job_log(sim: LightningSimulator, job_id: str) -> list[str]:
    """The job's log lines, read over the API like any client."""
    answer = httpx.get(f"{sim.url}/v1/projects/{sim.project_id}/page-logs", params={"jobIds": job_id},
                       auth=(sim.user_id, sim.api_key), timeout=10)
    return [entry["message"] for entry in answer.json().get("entries", [])]


def main() -> int:
    home = ROOT / ".airflow_home" / "demo"
    home.mkdir(parents=True, exist_ok=True)
    airflow = str(Path(sys.executable).with_name("airflow"))
    with LightningSimulator(pending_seconds=1.0) as sim:
        print(f"== Lightning simulator at {sim.url} (teamspace {sim.teamspace})", flush=True)
        env = {
            **os.environ,
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "example_dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": "True",
            "AIRFLOW_CONN_LIGHTNING_DEFAULT": json.dumps({
                "conn_type": "lightning", "host": sim.url, "login": sim.user_id, "password": sim.api_key,
                "extra": {"teamspace": sim.teamspace},
            }),
        }
        print("== airflow db migrate", flush=True)
        subprocess.run([airflow, "db", "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)
        print(f"== airflow dags test {DAG_ID} (deferrable)", flush=True)
        started = time.monotonic()
        proc = subprocess.run([airflow, "dags", "test", DAG_ID], env=env, capture_output=True, text=True)
        elapsed = time.monotonic() - started
        output = proc.stdout + proc.stderr
        markers = ("Submitted", " page: ", "Pausing task as DEFERRED", "LightningPhaseTrigger", "completed in",
                   " is completed", "DagRun Finished", "ERROR", "Traceback")
        interesting = [line for line in output.splitlines() if any(k in line for k in markers)]
        for line in interesting[-60:]:
            text = line.split("] ", 1)[-1] if "[info" in line else line
            print(f"   {text[:200]}")
        print(f"== jobs in the simulator (after {elapsed:.1f} s):")
        for job in sim.jobs():
            print(f"   {job['name']}: {job['state']} on {job['spec'].get('instanceName')} ({job['id']})")
            for entry in job_log(sim, job["id"]):
                print(f"      | {entry}")
        ok = proc.returncode == 0 and all(job["state"] == "completed" for job in sim.jobs())
        print(f"== outcome: {'SUCCESS' if ok else 'FAILED'} (airflow dags test exit code {proc.returncode})")
        if not ok:
            print(output[-4000:])
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
