"""Triggerer scale: N job waits in one event loop, ours (shared poller) vs a naive baseline.

For each N the benchmark starts a simulator (timed jobs: no subprocesses), creates N jobs that end
uniformly between 1 and 3 poll intervals after they start, and serializes one trigger per job
(``serialize()``: classpath + JSON kwargs). A CHILD process plays the triggerer: it rebuilds each
trigger from its classpath and kwargs when it "arrives" (arrivals spread over the first interval,
as deferrals reach a triggerer) and runs ``trigger.run()`` of all of them as tasks of one asyncio
event loop, the way Airflow's ``TriggerRunner.run_trigger`` does. Only the child is measured for
CPU and peak RSS (the simulator runs in this, the parent, process).

* ours: ``LightningPhaseTrigger`` (stream_logs=False), whose waits share one poller per event loop.
* baseline: the anchors' pattern, built here: every poll opens a new HTTP client and sends one
  ``GET /jobs/{id}``. It is given ``verify=False`` so it does not pay for loading a TLS context on
  every poll (about 39 ms of CPU per client with httpx defaults); it would with a real https host.

Figures: API requests per poll interval (from the simulator's request log), peak RSS of the
triggerer process (``VmHWM``), its CPU seconds per interval, and detection lag: the time from the simulator
marking a job terminal (``stoppedAt``) to the child receiving the TriggerEvent (same wall clock).

Usage: ``python benchmarks/triggerer_scale.py`` (1,000 / 5,000 / 10,000 waits, 30 s interval),
``--quick`` (1,000 waits, 5 s interval), ``--sizes 1000,10000 --interval 30 --baseline-max 10000``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import math
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import _common
import httpx
from airflow.triggers.base import BaseTrigger, TriggerEvent

PENDING_SECONDS = 2.0  # provisioning time of every job
TERMINAL = ("completed", "failed", "stopped", "deleted")
TARGET_RSS_MB, TARGET_CPU_PCT, TARGET_LAG_EXTRA, TARGET_REQUEST_RATIO = 400.0, 25.0, 2.0, 1 / 20


# -- the naive baseline trigger (lives in the child through its classpath) ------------------------


class NaiveJobTrigger(BaseTrigger):
    """One new HTTP client and one ``GET /jobs/{id}`` per poll (the Databricks / dbt Cloud pattern)."""

    def __init__(self, job_id: str, project_id: str, poll_interval: float, conn_id: str = "lightning_default",
                 stream_logs: bool = False):
        super().__init__()
        self.job_id, self.project_id, self.poll_interval, self.conn_id = job_id, project_id, poll_interval, conn_id
        self.stream_logs = stream_logs

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return ("triggerer_scale.NaiveJobTrigger", {"job_id": self.job_id, "project_id": self.project_id,
                                                     "poll_interval": self.poll_interval, "conn_id": self.conn_id,
                                                     "stream_logs": self.stream_logs})

    async def run(self):  # type: ignore[override]
        conn = json.loads(os.environ[f"AIRFLOW_CONN_{self.conn_id.upper()}"])
        auth = (conn["login"], conn["password"])
        path = f"/v1/projects/{self.project_id}/jobs/{self.job_id}"
        errors: Counter = Counter()
        since = ""
        while True:
            await asyncio.sleep(self.poll_interval)
            try:
                async with httpx.AsyncClient(base_url=conn["host"], auth=auth, verify=False, timeout=30) as client:
                    response = await client.get(path)
                    response.raise_for_status()
                    state = response.json()["state"]
                    if self.stream_logs and state != "pending":  # one page-logs read per job per poll
                        params = {"jobIds": self.job_id, "pageSize": "500", **({"since": since} if since else {})}
                        page = await client.get(f"/v1/projects/{self.project_id}/page-logs", params=params)
                        entries = page.json().get("entries") or []
                        since = max([since, *(str(e.get("timestamp") or "") for e in entries)])
            except (httpx.HTTPError, ValueError, KeyError) as error:
                errors[type(error).__name__] += 1
                continue
            if state in TERMINAL:
                yield TriggerEvent({"status": "success" if state == "completed" else "failed",
                                    "job_id": self.job_id, "poll_errors": dict(errors)})
                return


# -- the child: a triggerer event loop ------------------------------------------------------------


def peak_rss_kb() -> int:
    """This process's peak RSS. ``ru_maxrss`` is not used: on Linux it keeps the high-water mark of the
    process image replaced by ``exec``, i.e. of the (large) parent that spawned this child; ``VmHWM`` is
    the peak of this program's own memory."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def child() -> None:
    """Wait for the work on stdin, run it like Airflow's TriggerRunner, write the figures to a file."""
    from airflow._shared.module_loading import import_string

    import airflow_provider_lightning.triggers.lightning  # noqa: F401 - imported before measuring, as in a triggerer

    rss_before = peak_rss_kb()
    print("READY", flush=True)
    with open(sys.stdin.readline().split(" ", 1)[1].strip()) as source:
        spec = json.load(source)
    go = time.time()
    cpu_go = time.process_time()
    events: list[tuple[str, float, str]] = []
    starts: dict[str, float] = {}
    poll_errors: Counter = Counter()
    cpu_samples: list[tuple[float, float]] = []
    seen_pollers: dict[int, Any] = {}
    classes: dict[str, type] = {}

    async def run_trigger(job_id: str, classpath: str, kwargs: dict[str, Any], delay: float) -> None:
        await asyncio.sleep(delay)  # the trigger arrives (create_triggers)
        cls = classes.get(classpath) or classes.setdefault(classpath, import_string(classpath))
        trigger = cls(**json.loads(json.dumps(kwargs)))  # kwargs as stored and decoded by the triggerer
        starts[job_id] = time.time()
        try:
            async for event in trigger.run():  # TriggerRunner.run_trigger
                events.append((job_id, time.time(), event.payload["status"]))
                poll_errors.update(event.payload.get("poll_errors") or {})
        finally:
            await trigger.cleanup()

    async def sample() -> None:
        """Once a second: the process CPU (for the busiest 5 s) and what the shared pollers did."""
        from airflow_provider_lightning.triggers import poller

        while True:
            cpu_samples.append((time.time(), time.process_time()))
            for shared in poller.pollers().values():
                seen_pollers[id(shared)] = shared
            await asyncio.sleep(1.0)

    async def main() -> None:
        sampler = asyncio.ensure_future(sample())
        tasks = [asyncio.ensure_future(run_trigger(j, spec["classpath"], kw, d))
                 for j, kw, d in zip(spec["ids"], spec["kwargs"], spec["delays"], strict=True)]
        done, pending = await asyncio.wait(tasks, timeout=spec["max_seconds"])
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        sampler.cancel()
        failures = [repr(t.exception()) for t in done if not t.cancelled() and t.exception()]
        result["crashed"] = failures[:5]
        result["crashed_count"] = len(failures)
        result["unfinished"] = len(pending)

    result: dict[str, Any] = {}
    asyncio.run(main())
    end = max((t for _, t, _ in events), default=time.time())
    windows = zip(cpu_samples, cpu_samples[5:], strict=False)  # 5 s apart
    busiest = max((100.0 * (c2 - c1) / (t2 - t1) for (t1, c1), (t2, c2) in windows if t2 <= end + 1), default=0.0)
    result.update(
        go=go, end=end, cpu=time.process_time() - cpu_go, rss_before_kb=rss_before,
        rss_peak_kb=peak_rss_kb(), events=events, starts=starts,
        poll_errors=dict(poll_errors), busiest_cpu_pct=busiest,
        pollers=[{**dataclasses.asdict(shared.stats), "logs": dataclasses.asdict(shared.logs.stats)}
                 for shared in seen_pollers.values()],
    )
    with open(spec["result_path"], "w") as out:
        json.dump(result, out)
    print("DONE", flush=True)


# -- the parent: simulator, jobs, figures ---------------------------------------------------------


@dataclass
class Run:
    variant: str
    n: int
    interval: float
    requests: int = 0
    routes: Counter = field(default_factory=Counter)
    intervals: float = 0.0
    rss_mb: float = 0.0
    rss_before_mb: float = 0.0
    cpu: float = 0.0
    wall: float = 0.0
    lags: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)
    sim_cpu_pct: float = 0.0
    busiest_cpu_pct: float = 0.0
    per_wait_gets: int = 0  # what one GET per wait per interval sends for these waits, when it keeps up

    @property
    def requests_per_interval(self) -> float:
        return self.requests / self.intervals if self.intervals else 0.0

    @property
    def cpu_per_interval(self) -> float:
        return self.cpu / self.intervals if self.intervals else 0.0

    @property
    def cpu_pct(self) -> float:
        return 100.0 * self.cpu / self.wall if self.wall else 0.0

    @property
    def per_wait_gets_per_interval(self) -> float:
        return self.per_wait_gets / self.intervals if self.intervals else 0.0

    def lag(self, q: float) -> float:
        if not self.lags:
            return float("nan")
        ordered = sorted(self.lags)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def route_of(path: str) -> str:
    path = path.split("?")[0]
    parts = path.split("/")
    if path.endswith("/jobs"):
        return "GET /jobs (list page)"
    if len(parts) == 6 and parts[4] == "jobs":
        return "GET /jobs/{id}"
    if path.endswith("/page-logs"):
        return "GET /page-logs"
    return path


def measure(variant: str, n: int, interval: float, seed: int, stream_logs: bool = False) -> Run:
    from lightning_simulator import LightningSimulator

    from airflow_provider_lightning.triggers.lightning import LightningPhaseTrigger

    rng = random.Random(seed)
    run = Run(variant, n, interval)
    with LightningSimulator(pending_seconds=PENDING_SECONDS, timed_jobs=True, job_time_limit=24 * 3600,
                            max_request_log=5_000_000, seed=seed) as sim:
        _common.point_default_connection_at(sim)
        proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--child"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True, env=dict(os.environ))
        assert proc.stdin is not None and proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("READY"):
                break
        ids, kwargs = [], []
        for i in range(n):
            duration = rng.uniform(interval, 3 * interval)
            env = [{"name": "SIM_DURATION_SECONDS", "value": f"{duration:.3f}"},
                   {"name": "SIM_EXIT_CODE", "value": "0"}]
            body = {"name": f"scale-{i}", "spec": {"image": "python:3.11", "command": "train", "env": env}}
            job = sim.store.jobs.create(sim.project_id, body)
            ids.append(job["id"])
            if variant == "ours":
                trigger = LightningPhaseTrigger(kind="job", resource_id=job["id"], project_id=sim.project_id,
                                                poll_interval=interval, stream_logs=stream_logs)
            else:
                trigger = NaiveJobTrigger(job["id"], sim.project_id, interval, stream_logs=stream_logs)
            classpath, kw = trigger.serialize()
            kwargs.append(kw)
        delays = [rng.uniform(0, interval) for _ in ids]  # deferrals reach the triggerer over one interval
        with tempfile.TemporaryDirectory() as tmp:
            spec_path, result_path = os.path.join(tmp, "spec.json"), os.path.join(tmp, "result.json")
            with open(spec_path, "w") as out:
                json.dump({"classpath": classpath, "ids": ids, "kwargs": kwargs, "delays": delays,
                           "result_path": result_path, "max_seconds": PENDING_SECONDS + 8 * interval + 60}, out)
            sim.request_log.clear()
            sim_cpu = time.process_time()
            proc.stdin.write(f"GO {spec_path}\n")
            proc.stdin.flush()
            for line in proc.stdout:
                if line.startswith("DONE"):
                    break
            proc.wait()
            if proc.returncode:
                raise RuntimeError(f"the triggerer child failed with exit code {proc.returncode}")
            sim_cpu = time.process_time() - sim_cpu
            with open(result_path) as data:
                result = json.load(data)
        records = sim.request_log.snapshot()
        stopped = {j: sim.store.jobs.records[j].stopped_ns for j in ids}

    run.wall = result["end"] - result["go"]
    run.intervals = run.wall / interval
    run.cpu = result["cpu"]
    run.rss_mb = result["rss_peak_kb"] / 1024
    run.rss_before_mb = result["rss_before_kb"] / 1024
    run.requests = len(records)
    run.routes = Counter(route_of(r.path) for r in records)
    run.sim_cpu_pct = 100.0 * sim_cpu / run.wall if run.wall else 0.0
    run.busiest_cpu_pct = result["busiest_cpu_pct"]
    for job_id, start in result["starts"].items():  # polls at start + k * interval until one sees the end
        if stopped.get(job_id) is not None:
            run.per_wait_gets += max(1, math.floor((stopped[job_id] / 1e9 - start) / interval) + 1)
    for stats in result.get("pollers") or []:
        run.notes.append(f"shared poller: {stats['sweeps']} sweeps, {stats['answers']:,} reads answered with "
                         f"{stats['list_requests']} list pages + {stats['get_requests']} GETs, "
                         f"longest sweep {stats['longest_sweep']:.2f} s")
        if stats["logs"]["reads"]:
            run.notes.append(f"log batcher: {stats['logs']['reads']:,} log reads of waits sent as "
                             f"{stats['logs']['merged_reads']:,} merged + {stats['logs']['single_reads']:,} single "
                             f"reads (plus their extra pages)")
    early = 0
    for job_id, when, status in result["events"]:
        run.statuses[status] += 1
        end = stopped.get(job_id)
        if end is None:
            run.notes.append(f"job {job_id} had an event but never ended in the simulator")
            continue
        if end / 1e9 < result["starts"].get(job_id, 0):
            early += 1  # ended before its trigger arrived: no detection lag to speak of
            continue
        run.lags.append(when - end / 1e9)
    if early:
        run.notes.append(f"{early} jobs ended before their trigger arrived (left out of the lag)")
    missing = n - len(result["events"])
    if missing:
        run.notes.append(f"{missing} of {n} waits sent no event within the time limit")
    if result.get("poll_errors"):
        run.notes.append(f"failed polls (the trigger polled again next interval): {result['poll_errors']}")
    if result.get("crashed_count"):
        run.notes.append(f"{result['crashed_count']} trigger tasks crashed, e.g. {result['crashed'][0]}")
    return run


def show(run: Run) -> None:
    print(f"  {run.variant}: {run.n:,} waits, {run.wall:.0f} s ({run.intervals:.1f} intervals), "
          f"events {dict(run.statuses)}; triggerer CPU busiest 5 s {run.busiest_cpu_pct:.0f}% of one core; "
          f"simulator CPU {run.sim_cpu_pct:.0f}% of one core")
    for route, count in run.routes.most_common():
        print(f"      {count:8,d}  {route}")
    for note in run.notes:
        print(f"      note: {note}")


def ratio(a: float, b: float) -> str:
    return f"{a / b:.4f}" if b else "n/a"


def table(n: int, interval: float, ours: Run, base: Run | None) -> None:
    rows = [
        ("API requests / interval", ours.requests_per_interval, base and base.requests_per_interval, "{:,.1f}"),
        ("peak RSS of triggerer (MB)", ours.rss_mb, base and base.rss_mb, "{:,.1f}"),
        ("CPU s / interval", ours.cpu_per_interval, base and base.cpu_per_interval, "{:.2f}"),
        ("CPU % of one core (avg)", ours.cpu_pct, base and base.cpu_pct, "{:.1f}"),
        ("detection lag p50 (s)", ours.lag(0.50), base and base.lag(0.50), "{:.2f}"),
        ("detection lag p99 (s)", ours.lag(0.99), base and base.lag(0.99), "{:.2f}"),
    ]
    print(f"\n  N = {n:,}, poll interval {interval:g} s     {'ours':>12} {'baseline':>12} {'ours/baseline':>14}")
    for label, a, b, fmt in rows:
        b_text = fmt.format(b) if b is not None else "not run"
        print(f"  {label:<32} {fmt.format(a):>12} {b_text:>12} {ratio(a, b) if b is not None else 'n/a':>14}")
    print(f"  {'(RSS after imports, before waits)':<32} {ours.rss_before_mb:>12.1f} "
          f"{(f'{base.rss_before_mb:.1f}' if base else 'not run'):>12}")
    ideal = ours.per_wait_gets_per_interval
    print(f"  {'(1 GET per wait per interval)':<32} {'':>12} {ideal:>12,.1f} "
          f"{ratio(ours.requests_per_interval, ideal):>14}   <- the baseline's rate if it kept up")
    polls = base.routes.get("GET /jobs/{id}", 0) if base is not None else 0  # its page-logs reads are extra
    if base is not None and (polls < 0.9 * base.per_wait_gets or base.lag(0.99) > interval + 5):
        print(f"  NOTE: the baseline did not keep up at N = {n:,}: it sent {polls:,} of the "
              f"{base.per_wait_gets:,} polls its waits were due (its triggerer CPU peaked at "
              f"{base.busiest_cpu_pct:.0f}% of one core over 5 s; the simulator used {base.sim_cpu_pct:.0f}%), "
              "so its polls ran late: its requests/interval are understated and its lag is inflated.")


def targets(n: int, interval: float, ours: Run, base: Run | None) -> None:
    print(f"\nTargets at {n:,} waits, {interval:g} s poll interval:")
    checks = [
        (f"peak RSS under {TARGET_RSS_MB:.0f} MB", f"{ours.rss_mb:.1f} MB", ours.rss_mb < TARGET_RSS_MB),
        (f"CPU under {TARGET_CPU_PCT:.0f}% of one core", f"{ours.cpu_pct:.1f}%", ours.cpu_pct < TARGET_CPU_PCT),
        (f"lag p99 under interval + {TARGET_LAG_EXTRA:.0f} s", f"{ours.lag(0.99):.2f} s",
         ours.lag(0.99) < interval + TARGET_LAG_EXTRA),
    ]
    if base is not None:
        share = ours.requests_per_interval / base.requests_per_interval if base.requests_per_interval else 1.0
        checks.append(("requests/interval at most 1/20 of baseline", f"{share:.4f} (1/{1 / share:,.0f})"
                       if share else "0", share <= TARGET_REQUEST_RATIO))
    else:
        checks.append(("requests/interval at most 1/20 of baseline", "baseline not run at this N", False))
    for label, value, ok in checks:
        print(f"  {'MET ' if ok else 'MISSED'}  {label}: {value}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="1,000 waits, 5 s poll interval")
    parser.add_argument("--sizes", default="", help="comma-separated numbers of waits (default 1000,5000,10000)")
    parser.add_argument("--interval", type=float, default=None, help="poll interval in seconds (default 30)")
    parser.add_argument("--baseline-max", type=int, default=10_000, help="run the baseline only up to this N")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--stream-logs", action="store_true",
                        help="both variants stream job logs (ours merges the reads, the baseline reads per job)")
    args = parser.parse_args()
    if args.child:
        child()
        return
    sizes = [int(s) for s in args.sizes.split(",") if s] or ([1000] if args.quick else [1000, 5000, 10_000])
    interval = args.interval or (5.0 if args.quick else 30.0)
    print(f"Triggerer scale: N job waits in one event loop (child process), poll interval {interval:g} s, "
          f"on {os.cpu_count()} CPUs")
    print(f"Jobs: timed simulator jobs, {PENDING_SECONDS:g} s provisioning, then end uniformly between 1 and 3 "
          f"intervals later; triggers arrive uniformly over the first interval.")
    if args.stream_logs:
        print("stream_logs=True for both variants: ours merges the log reads of its waits (triggers/logbatch.py), "
              "the baseline reads page-logs once per running job per poll.")
    else:
        print("stream_logs=False for both variants (--stream-logs compares log streaming too).")
    results: list[tuple[int, Run, Run | None]] = []
    for n in sizes:
        print(f"\n== N = {n:,}")
        ours = measure("ours", n, interval, args.seed, args.stream_logs)
        show(ours)
        base = None
        if n <= args.baseline_max:
            base = measure("baseline", n, interval, args.seed, args.stream_logs)
            show(base)
        else:
            print(f"  baseline: not run at N = {n:,} (--baseline-max {args.baseline_max:,})")
        table(n, interval, ours, base)
        results.append((n, ours, base))
    n, ours, base = results[-1]
    targets(n, interval, ours, base)


if __name__ == "__main__":
    main()
