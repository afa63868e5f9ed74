"""API requests made for one job from submit to success, deferrable mode; ours vs a naive baseline.

Target: submit + 1 per poll + 1 final read, nothing else repeated. The baseline is the anchor
providers' pattern: a fresh HTTP client per poll, the run read several times around deferral, no
reuse of the teamspace resolution.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import _common
import httpx
from airflow.sdk.exceptions import TaskDeferred
from lightning_simulator import LightningSimulator
from task_context import context

from airflow_provider_lightning.operators.jobs import LightningJobOperator

JOB_SECONDS = 6.0
POLL = 1.0


def routes(sim) -> Counter:
    counted: Counter = Counter()
    for record in sim.request_log:
        path = record.path.split("?")[0]
        parts = path.split("/")
        if len(parts) > 5 and parts[4] == "jobs" and parts[5] not in ("find",):
            path = "/".join([*parts[:5], "{id}", *parts[6:]])
        counted[f"{record.method} {path.replace(sim.project_id, '{pid}')}"] += 1
    return counted


def ours(sim, stream_logs: bool) -> Counter:
    sim.request_log.clear()
    op = LightningJobOperator(task_id="bench", image="python:3.11", command=f"sleep {JOB_SECONDS}",
                              poll_interval=POLL, deferrable=True, stream_logs=stream_logs)
    ctx = context(run_id=f"bench-{stream_logs}-{time.time()}")
    try:
        op.execute(ctx)
    except TaskDeferred as deferred:
        agen = deferred.trigger.run()
        event = asyncio.run(anext(agen))
        op.execute_complete(ctx, event.payload, **deferred.kwargs)
    return routes(sim)


def baseline(sim) -> Counter:
    """Naive: resolve the teamspace for every call, a new client per poll, read the run 3x before deferring."""
    sim.request_log.clear()
    auth = (sim.user_id, sim.api_key)

    def project_id() -> str:
        with httpx.Client(base_url=sim.url, auth=auth) as c:
            c.get("/v1/orgs/", params={"name": "sim-org"})
            c.get("/v1/memberships", params={"filterByUserId": "true"})
        return sim.project_id

    with httpx.Client(base_url=sim.url, auth=auth) as c:
        job = c.post(f"/v1/projects/{project_id()}/jobs",
                     json={"name": f"naive-{time.time()}", "spec": {"image": "python:3.11",
                                                                    "command": f"sleep {JOB_SECONDS}"}}).json()
    for _ in range(3):
        with httpx.Client(base_url=sim.url, auth=auth) as c:
            c.get(f"/v1/projects/{project_id()}/jobs/{job['id']}")
    while True:
        time.sleep(POLL)
        with httpx.Client(base_url=sim.url, auth=auth) as c:
            state = c.get(f"/v1/projects/{project_id()}/jobs/{job['id']}").json()["state"]
        if state in ("completed", "failed", "stopped"):
            break
    with httpx.Client(base_url=sim.url, auth=auth) as c:
        c.get(f"/v1/projects/{project_id()}/page-logs", params={"jobIds": job["id"]})
    return routes(sim)


def show(title: str, counted: Counter) -> int:
    total = sum(counted.values())
    print(f"\n{title}: {total} requests")
    for route, n in sorted(counted.items(), key=lambda kv: -kv[1]):
        print(f"  {n:4d}  {route}")
    return total


def main() -> None:
    with LightningSimulator(pending_seconds=1.0) as sim:
        _common.point_default_connection_at(sim)
        print(f"One {JOB_SECONDS:.0f} s job (+1 s provisioning), poll interval {POLL:.0f} s, deferrable mode")
        quiet = show("ours, stream_logs=False", ours(sim, stream_logs=False))
        loud = show("ours, stream_logs=True (default: one page-logs read per poll while running)",
                    ours(sim, stream_logs=True))
        naive = show("naive baseline (anchor pattern)", baseline(sim))
        print(f"\nours/baseline: {quiet / naive:.2f} (no log streaming), {loud / naive:.2f} (with log streaming)")


if __name__ == "__main__":
    main()
