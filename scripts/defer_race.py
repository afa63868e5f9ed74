"""How often does Airflow fail a task that resumes right after deferring? Counted on a real local stack.

The e2e tests (tests/e2e/test_stack.py, ``upstream_defer_race``) re-run a DAG once when its task failed with
the scheduler's "state mismatch" line: the worker exits 0 when a task defers, and when the trigger fires and
the task is queued again before the scheduler has drained that "success" executor event, the scheduler fails
the task. This script measures the rate instead of working around it:

1. start a fresh stack of the given profile (``scripts/airflow_stack.py``, its own folder,
   ``.airflow_home/race-<profile>`` unless ``--dir``);
2. trigger the same deferrable DAG (``example_lightning_job``) ``--runs`` times through the REST API,
   ``--concurrency`` runs in flight at once (1: one after the other, as the e2e tests do);
3. count the runs that failed with the marker in the scheduler log (``race failures``), the runs that
   failed otherwise, and the marker lines seen at all;
4. print ``profile, runs, race failures`` (and a per-run line), write the figures as JSON to
   ``test-artifacts/defer-race-<profile>.json`` and stop the stack (``--keep`` leaves it running).

Usage::

    python scripts/defer_race.py --profile local --runs 20
    python scripts/defer_race.py --profile prod --runs 20
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import airflow_stack

ROOT = Path(__file__).resolve().parent.parent
MARKER = "finished with state success, but the task instance's state attribute is"
DAG_ID = "example_lightning_job"


def race_lines(stack_dir: Path, dag_id: str, run_id: str) -> list[str]:
    """The scheduler's "state mismatch" lines for a task of this DAG run (same test as the e2e tests)."""
    log = stack_dir / "run" / "scheduler.log"
    return [line for line in log.read_text(errors="replace").splitlines()
            if MARKER in line and f"<TaskInstance: {dag_id}." in line and run_id in line]


def run_path(dag_id: str, run_id: str) -> str:
    return f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}"


def trigger(api: Any, dag_id: str) -> str:
    answer = api.post(f"/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None})
    answer.raise_for_status()
    return str(answer.json()["dag_run_id"])


def measure(profile: str, runs: int, stack_dir: Path, dag_id: str = DAG_ID, concurrency: int = 1,
            run_timeout: float = 300.0, keep: bool = False, out: Any = sys.stdout) -> dict[str, Any]:
    began = time.monotonic()
    state = airflow_stack.start(stack_dir, fresh=True, profile=profile, wait_dags=[dag_id], out=out)
    results: list[dict[str, Any]] = []
    try:
        with airflow_stack.client(state) as api:
            api.patch(f"/api/v2/dags/{dag_id}", json={"is_paused": False}).raise_for_status()
            in_flight: dict[str, float] = {}
            triggered = 0
            while triggered < runs or in_flight:
                while triggered < runs and len(in_flight) < concurrency:
                    in_flight[trigger(api, dag_id)] = time.monotonic()
                    triggered += 1
                time.sleep(0.5)
                for run_id, started in list(in_flight.items()):
                    run = api.get(run_path(dag_id, run_id)).json()
                    if run["state"] not in ("success", "failed") and time.monotonic() - started < run_timeout:
                        continue
                    del in_flight[run_id]
                    tis = api.get(f"{run_path(dag_id, run_id)}/taskInstances").json()["task_instances"]
                    failed = sorted(ti["task_id"] for ti in tis if ti["state"] == "failed")  # not upstream_failed
                    lines = race_lines(Path(state["dir"]), dag_id, run_id)
                    result = {"run_id": run_id, "state": run["state"], "seconds": round(time.monotonic() - started, 1),
                              "failed_tasks": failed, "race_lines": [line[:400] for line in lines]}
                    results.append(result)
                    print(f"run {len(results):>3}/{runs}: {run['state']:8} {result['seconds']:6.1f} s"
                          + (f"  failed {failed}" if failed else "")
                          + ("  <- defer race (scheduler: state mismatch)" if lines else ""), file=out, flush=True)
    finally:
        if not keep:
            airflow_stack.stop(stack_dir, out=out)
    race = [r for r in results if r["state"] != "success" and r["race_lines"]]
    other = [r for r in results if r["state"] != "success" and not r["race_lines"]]
    durations = sorted(r["seconds"] for r in results if r["state"] == "success")
    summary = {
        "profile": profile, "runs": len(results), "race_failures": len(race), "other_failures": len(other),
        "marker_lines": sum(len(r["race_lines"]) for r in results), "concurrency": concurrency, "dag_id": dag_id,
        "stack_ready_after_s": state.get("ready_after_s"),
        "median_success_run_s": durations[len(durations) // 2] if durations else None,
        "wall_clock_s": round(time.monotonic() - began, 1), "results": results,
    }
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", choices=airflow_stack.PROFILES, default="local")
    parser.add_argument("--runs", type=int, default=20, help="DAG runs to trigger (default 20)")
    parser.add_argument("--concurrency", type=int, default=1, help="runs in flight at once (default 1)")
    parser.add_argument("--dag", default=DAG_ID, help=f"a deferrable DAG of example_dags/ (default {DAG_ID})")
    parser.add_argument("--dir", type=Path, default=None, help="stack folder (default .airflow_home/race-<profile>)")
    parser.add_argument("--keep", action="store_true", help="leave the stack running")
    args = parser.parse_args(argv)
    stack_dir = (args.dir or ROOT / ".airflow_home" / f"race-{args.profile}").resolve()
    try:
        summary = measure(args.profile, args.runs, stack_dir, args.dag, max(1, args.concurrency), keep=args.keep)
    except airflow_stack.StackError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    artifacts = ROOT / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    (artifacts / f"defer-race-{args.profile}.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\n(concurrency {summary['concurrency']}, {summary['other_failures']} other failures, "
          f"{summary['marker_lines']} marker lines, median successful run {summary['median_success_run_s']} s, "
          f"{summary['wall_clock_s']} s in all)")
    print("profile, runs, race failures")
    print(f"{summary['profile']}, {summary['runs']}, {summary['race_failures']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
