"""Worker time held by a job task that runs 60 s on the simulator: deferrable (ours) vs blocking.

Worker time is the wall time spent in ``execute`` plus ``execute_complete``; the wait in between runs
in the trigger (the triggerer process in production), not in a worker slot. Target: under 5 s.
Usage: ``python benchmarks/worker_time.py [job_seconds]`` (default 60).
"""

from __future__ import annotations

import asyncio
import sys
import time

import _common
from airflow.sdk.exceptions import TaskDeferred
from lightning_simulator import LightningSimulator
from task_context import context

from airflow_provider_lightning.operators.jobs import LightningJobOperator


def run(job_seconds: float, deferrable: bool) -> tuple[float, float]:
    op = LightningJobOperator(task_id="bench", image="python:3.11", command=f"sleep {job_seconds}",
                              poll_interval=5, deferrable=deferrable, stream_logs=False)
    ctx = context(run_id=f"worker-time-{deferrable}-{time.time()}")
    start = time.perf_counter()
    try:
        op.execute(ctx)
        return time.perf_counter() - start, time.perf_counter() - start
    except TaskDeferred as deferred:
        worker = time.perf_counter() - start
        event = asyncio.run(anext(deferred.trigger.run()))  # the triggerer's part
        resume = time.perf_counter()
        op.execute_complete(ctx, event.payload, **deferred.kwargs)
        worker += time.perf_counter() - resume
        return worker, time.perf_counter() - start


def main() -> None:
    job_seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 60.0
    with LightningSimulator(pending_seconds=1.0) as sim:
        _common.point_default_connection_at(sim)
        print(f"A job running {job_seconds:.0f} s (+1 s provisioning), poll interval 5 s")
        ours, ours_total = run(job_seconds, deferrable=True)
        blocking, blocking_total = run(job_seconds, deferrable=False)
        print(f"  deferrable (ours): worker held {ours:6.2f} s of {ours_total:6.2f} s end to end")
        print(f"  blocking baseline: worker held {blocking:6.2f} s of {blocking_total:6.2f} s end to end")
        print(f"  ours/baseline worker time: {ours / blocking:.3f}")


if __name__ == "__main__":
    main()
