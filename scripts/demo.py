"""`make demo`: the Lightning simulator plus real Airflow running example_dags/ end to end (deferrable).

1. starts the local Lightning API simulator on 127.0.0.1 (a free port);
2. prepares a scratch AIRFLOW_HOME (sqlite) and points `lightning_default` at the simulator;
3. runs `airflow dags test` of example_lightning_job, example_lightning_train_deploy (train, evaluate with
   @task.lightning, deploy the checkpoint as a real server, call it, stop it) and example_lightning_on_checkpoint
   (scheduled on the checkpoint Asset) with `[operators] default_deferrable = True`, so each task that waits
   defers to the trigger and resumes;
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
from lightning_simulator import LightningSimulator

ROOT = Path(__file__).resolve().parent.parent
# example_lightning_deployment deploys a placeholder image (``python serve.py``); the simulator runs deployment
# commands for real, so the demo deploys the example that serves what it trained instead.
DAG_IDS = sys.argv[1:] or ["example_lightning_job", "example_lightning_train_deploy", "example_lightning_on_checkpoint"]


def job_log(sim: LightningSimulator, job_id: str) -> list[str]:
    """The job's log lines, read over the API like any client."""
    answer = httpx.get(f"{sim.url}/v1/projects/{sim.project_id}/page-logs", params={"jobIds": job_id},
                       auth=(sim.user_id, sim.api_key), timeout=10)
    return [entry["message"] for entry in answer.json().get("entries", [])]


def run_dag(airflow: str, env: dict[str, str], dag_id: str) -> int:
    """``airflow dags test <dag_id>``; prints the interesting lines and returns the exit code."""
    print(f"== airflow dags test {dag_id} (deferrable)", flush=True)
    started = time.monotonic()
    proc = subprocess.run([airflow, "dags", "test", dag_id], env=env, capture_output=True, text=True)
    output = proc.stdout + proc.stderr
    markers = ("Submitted", " page: ", "Pausing task as DEFERRED", "LightningPhaseTrigger", "completed in",
               " is completed", "Deployment ", "model answered", "DagRun Finished", "ERROR", "Traceback",
               "Result of", "max abs error", "new checkpoint", "Uploaded", "Downloaded", "secret")
    interesting = [line for line in output.splitlines() if any(k in line for k in markers)]
    for line in interesting[-60:]:
        text = line.split("] ", 1)[-1] if "[info" in line else line
        print(f"   {text[:200]}")
    print(f"   ({dag_id}: exit code {proc.returncode} after {time.monotonic() - started:.1f} s)")
    if proc.returncode != 0:
        print(output[-4000:])
    return proc.returncode


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
            # the model token example_lightning_train_deploy copies into a teamspace secret (masked in every log)
            "AIRFLOW_VAR_MODEL_API_TOKEN": os.environ.get("AIRFLOW_VAR_MODEL_API_TOKEN", "demo-model-token"),
            "AIRFLOW_CONN_LIGHTNING_DEFAULT": json.dumps({
                "conn_type": "lightning", "host": sim.url, "login": sim.user_id, "password": sim.api_key,
                "extra": {"teamspace": sim.teamspace},
            }),
        }
        print("== airflow db migrate", flush=True)
        subprocess.run([airflow, "db", "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)
        results = [run_dag(airflow, env, dag_id) for dag_id in DAG_IDS]
        print("== jobs in the simulator:")
        for job in sim.jobs():
            print(f"   {job['name']}: {job['state']} on {job['spec'].get('instanceName')} ({job['id']})")
            for entry in job_log(sim, job["id"]):
                print(f"      | {entry}")
        print("== deployments in the simulator:")
        for deployment in sim.deployments():
            status = deployment.get("status", {})
            print(f"   {deployment['name']}: {deployment.get('currentState')}, replicas {deployment.get('replicas')}, "
                  f"release {deployment.get('releaseId')}, urls {status.get('urls')}")
        print("== teamspace drive (what jobs and uploads wrote):")
        for path in sorted(p for p in sim.drive_path().rglob("*") if p.is_file())[:20]:
            print(f"   {path.relative_to(sim.drive_path())} ({path.stat().st_size} bytes)")
        jobs_ok = all(job["state"] == "completed" for job in sim.jobs())
        deployments_stopped = all(int(d.get("replicas") or 0) == 0 for d in sim.deployments())
        ok = all(code == 0 for code in results) and jobs_ok and deployments_stopped
        print(f"== outcome: {'SUCCESS' if ok else 'FAILED'} (airflow dags test exit codes {results}, "
              f"jobs completed: {jobs_ok}, deployments stopped: {deployments_stopped})")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
