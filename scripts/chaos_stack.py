"""`make chaos-stack`: about 210 deferrable Lightning tasks on the real prod-profile stack under chaos.

What it does:

1. starts the prod profile of ``scripts/airflow_stack.py`` (PostgreSQL, Redis, CeleryExecutor with two
   workers, two triggerers, scheduler, dag-processor, api-server, the simulator) fresh in its own folder
   (``.airflow_home/chaos-stack``), with ``tests/e2e/chaos_dags`` as a second DAG bundle; the stack is always
   stopped at the end (also on Ctrl-C or SIGTERM) and no process of it may be left;
2. triggers one run of each chaos DAG (``chaos_lightning_jobs``, ``_mmt``, ``_sensors``, ``_deployments``):
   mapped deferrable job, multi-machine job, deployment and job-sensor tasks that must succeed, fail (their
   job exits non-zero) or time out (their ``timeout``), each with the task state it must end in;
3. while they run, the simulator injects faults through its admin API (``/__admin/faults``): 503s, dropped
   connections (before and after the request was processed), bursts of 429 with ``Retry-After`` and latency
   spikes; and the harness
   a. ``kill -9``s one Celery worker (its whole process tree) while it runs task instances (``execute``), then
      starts it again (``airflow_stack.start_component``);
   b. ``kill -9``s one triggerer (with its trigger-runner subprocess) while triggers are deferred, and measures
      how long until every trigger the dead triggerer held is assigned to the surviving one (the metadata DB's
      ``trigger.triggerer_id``, read with psycopg2), then starts it again;
   c. restarts the scheduler (SIGTERM, then started again with the same environment);
4. checks, prints a table (also written to ``test-artifacts/chaos-stack/summary.txt``) and exits 1 when any
   check fails: every task instance ended in its expected state (mismatches listed with dag, task, map index,
   try and log tail), the Lightning work of each task ended in the expected phase, no duplicate submission
   (two jobs, multi-machine jobs or deployments with the same name, i.e. for the same task try: the provider
   names a task's job ``<dag>-<task>-<8 hex>`` and a retry's ``...-t<try>``; no job of a try that never ran,
   none that belongs to no task), no Lightning work left running once every task ended (jobs and
   multi-machine jobs not in a terminal phase, deployments with replicas), no secret in any log (the API key
   of the connection, its Basic credentials, the Variable and the deployment token the DAGs pass; every file
   under ``<stack>/logs`` and the component logs ``<stack>/run/*.log``), the triggerer takeover time, and
   that the chaos really happened (faults answered, components killed while busy), and that the
   ``*_worker_dies`` tasks (no retries; each ``kill -9``s its own Celery pool process right after creating its
   work) ended failed with their work released by the provider's failure callback in the dag-processor.

The in-process ``make chaos`` (scripts/chaos.py) drives triggers itself; this is the same idea against real
Airflow processes. Settings the stack gets on top of the prod profile: ``[scheduler]
task_instance_heartbeat_timeout`` 60 s (a task of the killed worker is retried after a minute, not five) and
``task_queued_timeout`` 180 s (a task whose Celery message died with the worker is queued again).

Usage::

    python scripts/chaos_stack.py [--dir DIR] [--max-seconds 1200] [--kill-last-try] [fault rates, see --help]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import sys
import tempfile
import threading
import time
import urllib.parse
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import airflow_stack  # noqa: E402

CHAOS_DAGS = ROOT / "tests" / "e2e" / "chaos_dags"
ARTIFACTS = ROOT / "test-artifacts" / "chaos-stack"
DEFAULT_DIR = ROOT / ".airflow_home" / "chaos-stack"
VARIABLE = "chaos_secret_token"  # read by the DAGs as {{ var.value.chaos_secret_token }}
TOKEN_ENV = "CHAOS_STACK_DEPLOY_TOKEN"  # the DAGs' deployment endpoint token (inherited by every component)
TERMINAL = {"completed", "failed", "stopped", "deleted"}
TI_DONE = {"success", "failed", "upstream_failed", "skipped", "removed"}
HEARTBEAT_TIMEOUT = 60
QUEUED_TIMEOUT = 180
EXTRA_ENV = {
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT),
    "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": str(QUEUED_TIMEOUT),
}


@dataclass(frozen=True)
class Expect:
    """What a task of a chaos DAG must end as."""

    kind: str  # job | mmt | deployment | sensor | stop | python
    state: str  # the task instance's final state
    phase: str | None = None  # the phase its own Lightning work ends in (None: it owns none)
    deferrable: bool = True

    @property
    def label(self) -> str:
        return f"{self.kind} -> {self.state}" + (f" ({self.phase})" if self.phase else "")


EXPECTED: dict[tuple[str, str], Expect] = {
    ("chaos_lightning_jobs", "job_ok"): Expect("job", "success", "completed"),
    ("chaos_lightning_jobs", "job_fail"): Expect("job", "failed", "failed"),
    ("chaos_lightning_jobs", "job_timeout"): Expect("job", "failed", "stopped"),
    ("chaos_lightning_jobs", "job_worker_dies"): Expect("job", "failed", "stopped", deferrable=False),
    ("chaos_lightning_mmt", "mmt_ok"): Expect("mmt", "success", "completed"),
    ("chaos_lightning_mmt", "mmt_fail"): Expect("mmt", "failed", "failed"),
    ("chaos_lightning_mmt", "mmt_timeout"): Expect("mmt", "failed", "stopped"),
    ("chaos_lightning_mmt", "mmt_worker_dies"): Expect("mmt", "failed", "stopped", deferrable=False),
    ("chaos_lightning_sensors", "submit_ok"): Expect("job", "success", "completed", deferrable=False),
    ("chaos_lightning_sensors", "submit_fail"): Expect("job", "success", "failed", deferrable=False),
    ("chaos_lightning_sensors", "submit_timeout"): Expect("job", "success", "stopped", deferrable=False),
    ("chaos_lightning_sensors", "sensor_ok"): Expect("sensor", "success"),
    ("chaos_lightning_sensors", "sensor_fail"): Expect("sensor", "failed"),
    ("chaos_lightning_sensors", "sensor_timeout"): Expect("sensor", "failed"),
    ("chaos_lightning_sensors", "stop_watched_jobs"): Expect("python", "success", deferrable=False),
    ("chaos_lightning_deployments", "deploy_ok"): Expect("deployment", "success", "scaled to zero"),
    ("chaos_lightning_deployments", "deploy_fail"): Expect("deployment", "failed", "scaled to zero"),
    ("chaos_lightning_deployments", "deploy_timeout"): Expect("deployment", "failed", "scaled to zero"),
    ("chaos_lightning_deployments", "deploy_worker_dies"): Expect("deployment", "failed", "scaled to zero",
                                                                  deferrable=False),
    ("chaos_lightning_deployments", "stop_ok"): Expect("stop", "success"),
}
DAG_IDS = sorted({dag for dag, _ in EXPECTED})
DEPLOYMENT_NAMES = {"deploy_ok": "chaos-ok-{}", "deploy_fail": "chaos-fail-{}", "deploy_timeout": "chaos-timeout-{}",
                    "deploy_worker_dies": "chaos-orphan-{}"}
MIN_DEFERRABLE = 200
OWNING = ("job", "mmt", "deployment")  # kinds of task that create Lightning work of their own

_T0 = time.monotonic()


def say(message: str) -> None:
    print(f"[chaos-stack {time.monotonic() - _T0:7.1f}s] {message}", flush=True)


class Interrupted(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C (the stack is stopped in ``finally``)."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Interrupted()


# ------------------------------------------------------------------------------------- helpers


def norm_phase(state: Any) -> str:
    text = str(state or "").lower()
    for prefix in ("multimachinejob_state_", "deployment_state_", "job_state_"):
        text = text.removeprefix(prefix)
    return text


def run_path(dag_id: str, run_id: str) -> str:
    return f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}"


def ti_label(ti: dict[str, Any]) -> str:
    index = f"[{ti['map_index']}]" if ti["map_index"] >= 0 else ""
    return f"{ti['dag_id']}.{ti['task_id']}{index}"


def log_files(stack_dir: Path, ti: dict[str, Any], try_number: int) -> list[Path]:
    folder = stack_dir / "logs" / f"dag_id={ti['dag_id']}" / f"run_id={ti['run_id']}" / f"task_id={ti['task_id']}"
    if ti["map_index"] >= 0:
        folder = folder / f"map_index={ti['map_index']}"
    return sorted(folder.glob(f"attempt={try_number}.log*"))


def log_lines(path: Path) -> list[str]:
    """A task log file's messages (Airflow 3 writes JSON lines; anything else is kept as it is)."""
    lines = []
    for raw in path.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(raw)
        except ValueError:
            lines.append(raw)
            continue
        if isinstance(entry, dict):
            text = str(entry.get("event", ""))
            if entry.get("error_detail"):
                text += f" {json.dumps(entry['error_detail'])[:600]}"
            lines.append(f"{entry.get('level', '')[:5]:5} {text}")
        else:
            lines.append(raw)
    return lines


def log_tail(stack_dir: Path, ti: dict[str, Any], lines: int = 12) -> list[str]:
    out = []
    for path in log_files(stack_dir, ti, max(int(ti["try_number"] or 1), 1)):
        out.append(f"    -- {path.name}")
        out += [f"    {line[:300]}" for line in log_lines(path)[-lines:]]
    return out or ["    (no log file)"]


def job_base(dag_id: str, task_id: str, run_id: str, map_index: int) -> str:
    """The provider's name for the job of this task instance (``<dag>-<task>-<8 hex>``; try N adds ``-tN``)."""
    from types import SimpleNamespace

    from airflow_provider_lightning.operators.base import run_name

    ti = SimpleNamespace(dag_id=dag_id, task_id=task_id, run_id=run_id, map_index=map_index)
    return run_name(f"{dag_id}-{task_id}", {"ti": ti})


# ------------------------------------------------------------------------------------- the run


@dataclass
class Chaos:
    args: argparse.Namespace
    stack_dir: Path
    state: dict[str, Any] = field(default_factory=dict)
    db: Any = None
    api: Any = None
    sim_url: str = ""
    run_ids: dict[str, str] = field(default_factory=dict)
    triggered_at: float = 0.0
    tis: list[dict[str, Any]] = field(default_factory=list)
    seen_deferred: set[tuple[str, str, str, int]] = field(default_factory=set)
    max_deferred: int = 0
    events: list[str] = field(default_factory=list)
    worker: dict[str, Any] = field(default_factory=dict)
    triggerer: dict[str, Any] = field(default_factory=dict)
    scheduler: dict[str, Any] = field(default_factory=dict)
    faults: Counter[str] = field(default_factory=Counter)
    fault_stop: threading.Event = field(default_factory=threading.Event)
    finished: bool = False
    settle: dict[str, Any] = field(default_factory=dict)

    def elapsed(self) -> float:
        return time.monotonic() - self.triggered_at

    def note(self, message: str) -> None:
        line = f"t+{self.elapsed():5.1f}s {message}"
        self.events.append(line)
        say(message)

    # -- metadata DB -----------------------------------------------------------------------------

    def connect_db(self) -> None:
        import psycopg2
        from sqlalchemy.engine import make_url

        url = make_url(airflow_stack.sql_alchemy_conn(self.stack_dir, self.state["ports"], "prod"))
        self.db = psycopg2.connect(host=url.host, port=url.port, user=url.username, password=url.password,
                                   dbname=url.database, connect_timeout=5)
        self.db.autocommit = True

    def query(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        with self.db.cursor() as cur:
            cur.execute(sql, params)
            return list(cur.fetchall())

    def read_tis(self) -> list[dict[str, Any]]:
        rows = self.query(
            "SELECT dag_id, task_id, run_id, map_index, state, try_number, max_tries, pid FROM task_instance "
            "WHERE dag_id = ANY(%s) AND run_id = ANY(%s)", (DAG_IDS, list(self.run_ids.values())))
        keys = ("dag_id", "task_id", "run_id", "map_index", "state", "try_number", "max_tries", "pid")
        self.tis = [dict(zip(keys, row, strict=True)) for row in rows]
        deferred = [t for t in self.tis if t["state"] == "deferred"]
        self.max_deferred = max(self.max_deferred, len(deferred))
        self.seen_deferred |= {(t["dag_id"], t["task_id"], t["run_id"], t["map_index"]) for t in deferred}
        return self.tis

    def runs_done(self) -> bool:
        rows = self.query("SELECT dag_id, state FROM dag_run WHERE run_id = ANY(%s) AND dag_id = ANY(%s)",
                          (list(self.run_ids.values()), DAG_IDS))
        return len(rows) == len(DAG_IDS) and all(state in ("success", "failed") for _, state in rows)

    def triggerer_jobs(self) -> list[tuple[int, Any]]:
        """(id, latest_heartbeat) of the TriggererJobs still marked running and alive (heartbeat < 30 s old)."""
        return self.query(
            "SELECT id, latest_heartbeat FROM job WHERE job_type = 'TriggererJob' AND state = 'running' "
            "AND end_date IS NULL AND latest_heartbeat > now() - interval '30 seconds' ORDER BY id")

    def trigger_load(self) -> dict[int | None, int]:
        return {tid: n for tid, n in self.query("SELECT triggerer_id, count(*) FROM trigger GROUP BY triggerer_id")}

    # -- simulator -------------------------------------------------------------------------------

    def sim(self, path: str) -> Any:
        import httpx

        answer = httpx.get(f"{self.sim_url}{path}", timeout=30)
        answer.raise_for_status()
        return answer.json()

    def set_faults(self, **config: Any) -> None:
        import httpx

        httpx.post(f"{self.sim_url}/__admin/faults", json=config, timeout=10).raise_for_status()

    def fault_loop(self) -> None:
        """Base faults all along, plus 429 bursts and latency spikes on a timer."""
        a = self.args
        current: dict[str, Any] | None = None
        while not self.fault_stop.wait(0.2):
            t = self.elapsed()
            burst = t % a.burst_every >= a.burst_every - a.burst_seconds
            spike = t % a.spike_every >= a.spike_every - a.spike_seconds
            config = {"errorRate": a.error_rate, "dropRate": a.drop_rate / 2, "dropResponseRate": a.drop_rate / 2,
                      "rateLimitRate": a.burst_rate if burst else 0.0, "retryAfter": a.retry_after,
                      "latency": a.spike_latency if spike else a.latency}
            if config != current:
                try:
                    self.set_faults(**config)
                except Exception as error:  # the run goes on; the fault counts show what happened
                    say(f"could not set faults: {error}")
                    continue
                if current is not None:
                    self.faults["429 bursts"] += int(burst and not current["rateLimitRate"])
                    self.faults["latency spikes"] += int(spike and current["latency"] != a.spike_latency)
                current = config

    # -- chaos: the Celery worker ----------------------------------------------------------------

    def running_by_worker(self) -> dict[str, list[dict[str, Any]]]:
        state = airflow_stack.load_state(self.stack_dir) or {}
        running = [t for t in self.tis if t["state"] == "running" and t["pid"]]
        found: dict[str, list[dict[str, Any]]] = {}
        for name in ("worker-1", "worker-2"):
            pids = airflow_stack.component_pids(state, name)
            found[name] = [t for t in running if t["pid"] in pids]
        return found

    def stage(self, ti: dict[str, Any]) -> str:
        """Where the running try of a task is, by its log: ``"starting"`` (executing, its Lightning work not
        created yet), ``"created"`` (created, not deferred yet), ``"resuming"`` (running ``execute_complete``
        after its trigger fired) or ``""`` (not executing: it has finished or deferred, the DB read was stale)."""
        text = ""
        for path in log_files(self.stack_dir, ti, max(int(ti["try_number"] or 1), 1)):
            if ".trigger." not in path.name:
                text += path.read_text(errors="replace")
        began = text.rfind("Pre Execute")
        if began < 0 or text.rfind("Post Execute") > began:
            return ""
        if text.rfind("Pausing task as DEFERRED", 0, began) >= 0:
            return "resuming"
        current = text[began:]
        if "Submitted Lightning" in current or re.search(r"Deployment \S+ \(\S+\) (created|updated)", current):
            return "created"
        return "starting"

    def maybe_kill_worker(self) -> None:
        """kill -9 a worker while 2+ of its task instances are executing (by their logs), preferably one that has
        created its Lightning work in this try (just before deferring, or resuming after its trigger fired) and
        has a retry left: that retry must re-attach, not submit again (``--kill-last-try``: one on its last try
        instead, which Airflow fails by heartbeat timeout with no retry to clean up after it); then start the
        worker again. A kill that cut nothing off (every task finished in the meantime) is tried again, at
        most three times."""
        w = self.worker
        if w.get("killed_at") is not None:
            since = time.monotonic() - w["killed_at"]
            if w.get("interrupted") is None and since >= 2:
                # a killed task process cannot report any more: what is still "running" was cut off mid-execute
                keys = {k[:4]: k[4] for k in w["tis"]}
                w["interrupted"] = [(t["dag_id"], t["task_id"], t["run_id"], t["map_index"], t["try_number"])
                                    for t in self.tis if t["state"] == "running"
                                    and keys.get((t["dag_id"], t["task_id"], t["run_id"], t["map_index"]))
                                    == t["try_number"]]
                names = [f"{d}.{t}[{m}] try {n}" for d, t, _, m, n in w["interrupted"]]
                self.note(f"{len(names)} of the {len(w['tis'])} task instances were cut off in execute"
                          + (f": {', '.join(names)}" if names else ""))
            if w.get("restarted") is None and since >= 3:
                info = airflow_stack.start_component(self.stack_dir, w["name"])
                w["restarted"] = round(since, 1)
                self.note(f"{w['name']} started again (pid {info['pid']}) {w['restarted']} s after the kill")
            if w.get("restarted") is not None and w.get("interrupted") is not None and not w.get("done"):
                if w["interrupted"] or w["attempt"] >= 3:
                    w["done"] = True
                elif since >= 10:  # nothing was cut off: kill again (the report counts the attempts)
                    self.worker = {"attempt": w["attempt"] + 1, "armed_at": self.elapsed(),
                                   "missed": [*w.get("missed", []), w["at"]]}
            return
        waited = self.elapsed() - max(self.args.worker_kill_after, w.get("armed_at", 0.0))
        if waited < 0:
            return

        def wanted(ti: dict[str, Any]) -> bool:
            last = (ti["try_number"] or 1) > (ti["max_tries"] or 0)
            return last if self.args.kill_last_try else not last

        best: tuple[int, str, list[dict[str, Any]], list[str]] | None = None
        for name, tis in self.running_by_worker().items():
            stages = {id(t): self.stage(t) for t in tis}
            executing = [t for t in tis if stages[id(t)]]
            created = [f"{ti_label(t)} try {t['try_number']} of {(t['max_tries'] or 0) + 1} ({stages[id(t)]})"
                       for t in executing if wanted(t) and stages[id(t)] in ("created", "resuming")
                       and EXPECTED.get((t["dag_id"], t["task_id"]), Expect("", "")).kind in OWNING]
            score = (len(executing) >= 2 and bool(created)) * 100 + len(executing)
            if best is None or score > best[0]:
                best = (score, name, tis, created)
        assert best is not None
        score, name, tis, created = best
        if not (score >= 100 or (waited > 60 and score >= 2) or (waited > 120 and score >= 1)):
            if waited <= 300:
                return
            name, tis = "worker-1", []  # kill anyway; the check says it proved nothing
        state = airflow_stack.load_state(self.stack_dir) or {}
        keys = [(t["dag_id"], t["task_id"], t["run_id"], t["map_index"], t["try_number"]) for t in tis]
        killed = airflow_stack.kill_component(self.stack_dir, name, signal.SIGKILL)
        w.update(name=name, killed_at=time.monotonic(), at=round(self.elapsed(), 1), pids=len(killed),
                 tis=keys, old_pid=state["processes"][name]["pid"], submitted=created,
                 attempt=w.get("attempt", 1))
        self.note(f"kill -9 {name} (pid {w['old_pid']}, {len(killed)} processes) while it ran {len(tis)} task "
                  f"instances: {', '.join(ti_label(t) for t in tis)}"
                  + (f"; with their Lightning work created: {', '.join(created)}" if created else ""))

    # -- chaos: a triggerer ----------------------------------------------------------------------

    def triggerer_job_ids(self, name: str) -> set[int]:
        """The TriggererJob id(s) a triggerer process runs as: trigger log files it holds open are named
        ``attempt=<n>.log.trigger.<job id>.log`` (empty while it runs no trigger)."""
        state = airflow_stack.load_state(self.stack_dir) or {}
        found = set()
        for pid in airflow_stack.component_pids(state, name):
            try:
                fds = list(Path(f"/proc/{pid}/fd").iterdir())
            except OSError:
                continue
            for fd in fds:
                try:
                    match = re.search(r"\.log\.trigger\.(\d+)\.log$", os.readlink(fd))
                except OSError:
                    continue
                if match:
                    found.add(int(match.group(1)))
        return found

    def maybe_kill_triggerer(self) -> None:
        """kill -9 the triggerer process (with its trigger runner) whose job holds the most deferred triggers
        (at least ``--min-triggers``), then measure how long until the other triggerer runs all of them."""
        tr = self.triggerer
        if tr.get("killed_at") is None:
            if self.elapsed() < self.args.triggerer_kill_after or not self.worker.get("done"):
                return
            jobs = self.triggerer_jobs()
            load = self.trigger_load()
            owners = {name: self.triggerer_job_ids(name) for name in ("triggerer-1", "triggerer-2")}
            held = {name: sum(load.get(j, 0) for j in ids) for name, ids in owners.items()}
            victim = max(held, key=lambda name: held[name])
            late = self.elapsed() > self.args.triggerer_kill_after + 240
            if len(jobs) < 2 or (held[victim] < self.args.min_triggers and not late):
                return
            if not late and len(owners[victim]) != 1:
                return  # which job is it? (ask again on the next round)
            killed = airflow_stack.kill_component(self.stack_dir, victim, signal.SIGKILL)
            tr["killed_at"] = time.monotonic()
            (db_now,), = self.query("SELECT now()")
            snapshot = self.query("SELECT id, triggerer_id FROM trigger")
            tr.update(name=victim, at=round(self.elapsed(), 1), db_kill_time=db_now, pids=len(killed),
                      alive_jobs=[j for j, _ in jobs], snapshot=snapshot, load=dict(load),
                      expected_job=sorted(owners[victim]))
            self.note(f"kill -9 {victim} ({len(killed)} processes: triggerer and trigger runner), triggerer job "
                      f"{sorted(owners[victim]) or '?'} by its open trigger logs, while triggers are deferred; "
                      f"triggers per triggerer job: {dict(load)}")
            return
        since = time.monotonic() - tr["killed_at"]
        if tr.get("dead_job") is None:
            if since < 12:
                return
            beats = dict(self.query("SELECT id, latest_heartbeat FROM job WHERE id = ANY(%s)", (tr["alive_jobs"],)))
            dead = [j for j, beat in beats.items() if beat is None or beat <= tr["db_kill_time"]]
            alive = [j for j, beat in beats.items() if beat is not None and beat > tr["db_kill_time"]]
            if len(dead) == 1 and alive:
                if tr["expected_job"] and tr["expected_job"] != dead:
                    tr["error"] = f"the job that stopped heartbeating ({dead}) is not {tr['expected_job']}"
                tr["dead_job"], tr["survivors"] = dead[0], alive
                tr["held"] = sorted(t for t, owner in tr["snapshot"] if owner == dead[0])
                tr["beat_age"] = round((tr["db_kill_time"] - beats[dead[0]]).total_seconds(), 1)
                self.note(f"{tr['name']} was triggerer job {dead[0]} (no heartbeat since the kill), holding "
                          f"{len(tr['held'])} triggers; job {alive} is alive")
            elif since > 120:
                tr["error"] = f"could not tell which triggerer job died: heartbeats {beats}"
                tr["done"] = True
            return
        if tr.get("takeover_s") is None and not tr.get("done"):
            rows = dict(self.query("SELECT id, triggerer_id FROM trigger WHERE id = ANY(%s)", (tr["held"],)))
            if all(owner in tr["survivors"] for owner in rows.values()):
                tr["takeover_s"] = round(since, 1)
                tr["moved"], tr["gone"] = len(rows), len(tr["held"]) - len(rows)
                self.note(f"takeover: the {len(rows)} triggers of dead job {tr['dead_job']} now run in job(s) "
                          f"{sorted(set(rows.values()))}, {tr['takeover_s']} s after the kill"
                          + (f" ({tr['gone']} ended meanwhile)" if tr["gone"] else ""))
            elif since > 240:
                tr["error"] = f"no takeover within {since:.0f} s: {Counter(rows.values())}"
                tr["done"] = True
                self.note(tr["error"])
        if (tr.get("takeover_s") is not None or tr.get("done")) and tr.get("restarted") is None:
            info = airflow_stack.start_component(self.stack_dir, tr["name"])
            tr["restarted"] = round(time.monotonic() - tr["killed_at"], 1)
            tr["done"] = True
            self.note(f"{tr['name']} started again (pid {info['pid']})")

    # -- chaos: the scheduler --------------------------------------------------------------------

    def maybe_restart_scheduler(self) -> None:
        s = self.scheduler
        if s.get("restarted_at") is None:
            if not self.triggerer.get("done") or self.elapsed() < self.args.scheduler_restart_after:
                return
            began = time.monotonic()
            (db_now,), = self.query("SELECT now()")
            stopped, info = airflow_stack.restart_component(self.stack_dir, "scheduler", signal.SIGTERM, 30)
            s.update(restarted_at=time.monotonic(), at=round(self.elapsed(), 1), db_time=db_now, pids=len(stopped),
                     stop_s=round(time.monotonic() - began, 1), new_pid=info["pid"])
            self.note(f"scheduler stopped (SIGTERM, {len(stopped)} processes, {s['stop_s']} s) and started again "
                      f"(pid {info['pid']})")
            return
        if s.get("back_s") is None:
            rows = self.query("SELECT max(latest_heartbeat) FROM job WHERE job_type = 'SchedulerJob' "
                              "AND start_date > %s", (s["db_time"],))
            if rows and rows[0][0] is not None:
                s["back_s"] = round(time.monotonic() - s["restarted_at"], 1)
                self.note(f"the new scheduler heartbeats ({s['back_s']} s after its start)")

    # -- the loop --------------------------------------------------------------------------------

    def progress(self) -> None:
        states = Counter(t["state"] or "none" for t in self.tis)
        order = ("success", "failed", "deferred", "running", "queued", "scheduled", "up_for_retry", "none")
        shown = ", ".join(f"{k} {states[k]}" for k in order if states[k])
        rest = ", ".join(f"{k} {n}" for k, n in states.items() if k not in order)
        load = self.trigger_load()
        say(f"{len(self.tis)} task instances: {shown}{', ' + rest if rest else ''} | triggers per triggerer job "
            f"{ {k: v for k, v in sorted(load.items(), key=lambda kv: str(kv[0]))} }")

    def run(self) -> None:
        a = self.args
        deadline = time.monotonic() + a.max_seconds
        last_progress = 0.0
        while time.monotonic() < deadline:
            self.read_tis()
            self.maybe_kill_worker()
            self.maybe_kill_triggerer()
            self.maybe_restart_scheduler()
            if time.monotonic() - last_progress >= 10:
                last_progress = time.monotonic()
                self.progress()
            chaos_done = self.scheduler.get("back_s") is not None and self.triggerer.get("done")
            if self.runs_done() and (chaos_done or self.elapsed() > a.max_seconds / 2):
                self.finished = True
                self.progress()
                self.note("every DAG run has ended")
                return
            time.sleep(0.2 if self.worker.get("killed_at") is None else 0.5)
        self.note(f"deadline: the DAG runs did not end within {a.max_seconds:.0f} s")


# ------------------------------------------------------------------------------------- checks


@dataclass
class Report:
    rows: list[tuple[str, str, bool | None]] = field(default_factory=list)
    details: list[str] = field(default_factory=list)

    def row(self, name: str, value: Any, ok: bool | None = None) -> None:
        self.rows.append((name, str(value), ok))

    @property
    def failed(self) -> list[str]:
        return [name for name, _, ok in self.rows if ok is False]

    def render(self) -> str:
        width = max(len(name) for name, _, _ in self.rows) + 2
        out = [f"  {'check':<{width}}{'result':<8}value", f"  {'-' * (width + 60)}"]
        for name, value, ok in self.rows:
            mark = "" if ok is None else ("ok" if ok else "FAILED")
            out.append(f"  {name:<{width}}{mark:<8}{value}")
        return "\n".join(out)


def analyse(chaos: Chaos, report: Report, secret_values: dict[str, str]) -> None:
    stack_dir = chaos.stack_dir
    tis = chaos.read_tis()
    jobs = chaos.sim("/__admin/jobs")["jobs"]
    mmts = chaos.sim("/__admin/mmts")["multiMachineJobs"]
    deployments = chaos.sim("/__admin/deployments")["deployments"]
    requests = chaos.sim("/__admin/requests")["requests"]

    # 1. the task instances: the expected ones exist, enough are deferrable, each ended as it should
    tasks = {(t["dag_id"], t["task_id"]) for t in tis}
    unknown, missing = sorted(tasks - set(EXPECTED)), sorted(set(EXPECTED) - tasks)
    report.row("chaos DAG tasks present (all expected, none unknown)",
               f"{len(tasks)} of {len(EXPECTED)}" + (f"; missing {missing}" if missing else "")
               + (f"; unknown {unknown}" if unknown else ""), not unknown and not missing)
    other = Expect("?", "?", deferrable=False)
    deferrable = [t for t in tis if EXPECTED.get((t["dag_id"], t["task_id"]), other).deferrable]
    by_kind = Counter(EXPECTED[(t["dag_id"], t["task_id"])].kind for t in deferrable)
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(by_kind.items()))
    report.row("deferrable Lightning task instances",
               f"{len(deferrable)} ({kinds}); {len(tis) - len(deferrable)} other", len(deferrable) >= MIN_DEFERRABLE)
    seen = sum(1 for t in deferrable if (t["dag_id"], t["task_id"], t["run_id"], t["map_index"]) in chaos.seen_deferred)
    report.row("  of them seen deferred (polled every 0.5 s) / most deferred at once",
               f"{seen} / {chaos.max_deferred}", seen > 0)
    mismatches = []
    per_group: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for ti in sorted(tis, key=lambda t: (t["dag_id"], t["task_id"], t["map_index"])):
        expect = EXPECTED.get((ti["dag_id"], ti["task_id"]))
        if expect is None:
            continue
        ok = ti["state"] == expect.state
        per_group[(ti["dag_id"], ti["task_id"])]["ok" if ok else "bad"] += 1
        if not ok:
            mismatches.append(ti)
    for (dag_id, task_id), expect in EXPECTED.items():
        counts = per_group.get((dag_id, task_id), Counter())
        total = counts["ok"] + counts["bad"]
        report.row(f"  {dag_id.removeprefix('chaos_lightning_')}.{task_id} -> {expect.state}",
                   f"{counts['ok']}/{total} as expected", total > 0 and counts["bad"] == 0)
    report.row("task instances in their expected final state", f"{len(tis) - len(mismatches)}/{len(tis)}",
               not mismatches and chaos.finished)
    retried = [t for t in tis if (t["try_number"] or 0) > 1]
    report.row("task instances that needed more than one try", len(retried))
    if mismatches:
        report.details.append(f"Task instances not in their expected state ({len(mismatches)}):")
        for ti in mismatches[:25]:
            expect = EXPECTED[(ti["dag_id"], ti["task_id"])]
            report.details.append(f"  {ti_label(ti)} (run {ti['run_id']}): {ti['state']}, expected {expect.state}, "
                                  f"try {ti['try_number']}")
            report.details += log_tail(stack_dir, ti)

    # 2. Lightning work per task instance: names, duplicates, phases
    standalone = [j for j in jobs if not j.get("multiMachineJobId") and not j.get("deploymentId")]
    names: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for kind, items in (("job", standalone), ("mmt", mmts), ("deployment", deployments)):
        for item in items:
            names[f"{kind}:{item['name']}"].append(item)
    duplicates = {name: len(items) for name, items in names.items() if len(items) > 1}
    owned: set[str] = set()
    phase_problems, extra_tries = [], []
    for ti in tis:
        expect = EXPECTED.get((ti["dag_id"], ti["task_id"]))
        if expect is None or expect.kind not in ("job", "mmt", "deployment"):
            continue
        if expect.kind == "deployment":
            name = f"deployment:{DEPLOYMENT_NAMES[ti['task_id']].format(ti['map_index'])}"
            found = names.get(name, [])
            owned.add(name)
            if not found:
                phase_problems.append(f"{ti_label(ti)}: no deployment {name}")
            elif ti["task_id"] == "deploy_ok" and not found[0]["status"].get("urls"):
                phase_problems.append(f"{ti_label(ti)}: deployment {found[0]['name']} never served (no URL)")
            continue
        base = job_base(ti["dag_id"], ti["task_id"], ti["run_id"], ti["map_index"])
        pattern = re.compile(rf"^{expect.kind}:{re.escape(base)}(?:-t(\d+))?$")
        mine = sorted((int(m.group(1) or 1), name) for name in names if (m := pattern.match(name)))
        owned |= {name for _, name in mine}
        if not mine:
            phase_problems.append(f"{ti_label(ti)}: no {expect.kind} named {base}[-tN] in the simulator")
            continue
        if mine[-1][0] > (ti["try_number"] or 1):
            extra_tries.append(f"{ti_label(ti)}: {mine[-1][1]} but the task made {ti['try_number']} tries")
        last = names[mine[-1][1]][0]
        if norm_phase(last["state"]) != expect.phase:
            phase_problems.append(f"{ti_label(ti)}: {mine[-1][1]} ended {norm_phase(last['state'])!r}, "
                                  f"expected {expect.phase!r} (state {ti['state']}, try {ti['try_number']})")
    unowned = sorted(set(names) - owned)
    report.row("duplicate submissions (same name = same task try, twice)", len(duplicates), not duplicates)
    report.row("jobs/MMTs of a try that never ran", len(extra_tries), not extra_tries)
    report.row("jobs/MMTs/deployments belonging to no task", len(unowned), not unowned)
    report.row("Lightning work that ended in the wrong phase (or is missing)", len(phase_problems), not phase_problems)
    dying = [t for t in tis if t["task_id"].endswith("_worker_dies")]
    released = []
    for ti in dying:
        if ti["task_id"] == "deploy_worker_dies":
            found = names.get(f"deployment:{DEPLOYMENT_NAMES[ti['task_id']].format(ti['map_index'])}", [])
            released += [f"{d['name']} at {d.get('replicas', 0)} replicas" for d in found if not d.get("replicas")]
            continue
        kind = EXPECTED[(ti["dag_id"], ti["task_id"])].kind
        base = job_base(ti["dag_id"], ti["task_id"], ti["run_id"], ti["map_index"])
        released += [f"{base} {norm_phase(item['state'])}" for item in names.get(f"{kind}:{base}", [])
                     if norm_phase(item["state"]) == "stopped"]
    report.row("worker killed on the LAST try after creating its work (no retry): failed / work released",
               f"{sum(t['state'] == 'failed' for t in dying)} / {len(released)} of {len(dying)} "
               "(released by the failure callback Airflow runs in the dag-processor)",
               bool(dying) and len(released) == len(dying) and all(t["state"] == "failed" for t in dying))
    report.row("submissions in the simulator (jobs / MMTs / deployments)",
               f"{len(standalone)} / {len(mmts)} / {len(deployments)} "
               f"(+{len(jobs) - len(standalone)} MMT machine jobs)")
    for title, items in (("Duplicate submissions", [f"{n}: {c} times" for n, c in duplicates.items()]),
                         ("Jobs of tries that never ran", extra_tries), ("Work that belongs to no task", unowned),
                         ("Wrong or missing phases", phase_problems)):
        if items:
            report.details.append(f"{title} ({len(items)}):")
            report.details += [f"  {item}" for item in items[:25]]

    # 3. nothing left running
    left = [f"job {j['name']} {norm_phase(j['state'])}" for j in jobs if norm_phase(j["state"]) not in TERMINAL]
    left += [f"mmt {m['name']} {norm_phase(m['state'])}" for m in mmts if norm_phase(m["state"]) not in TERMINAL]
    for d in deployments:
        status = d.get("status") or {}
        live = {k: status.get(k) for k in ("readyReplicas", "pendingReplicas", "failingReplicas", "queuedReplicas")
                if status.get(k)}
        if d.get("replicas") or live:
            phase = norm_phase(d.get("currentState"))
            left.append(f"deployment {d['name']} replicas {d.get('replicas')} {live} {phase}")
    report.row("Lightning work left running after every task ended", len(left), not left)
    if left:
        report.details.append(f"Left running ({len(left)}), {chaos.settle.get('waited', 0)} s after the runs ended:")
        report.details += [f"  {item}" for item in left[:25]]

    # 4. secrets in any log
    files = [p for p in (stack_dir / "logs").rglob("*") if p.is_file()] + sorted((stack_dir / "run").glob("*.log"))
    leaks: dict[str, list[str]] = defaultdict(list)
    masked_key_lines = 0
    scanned = 0
    for path in files:
        data = path.read_bytes()
        scanned += len(data)
        for label, value in secret_values.items():
            if value.encode() in data:
                leaks[label].append(str(path.relative_to(stack_dir)))
        masked_key_lines += data.count(b"conn key is ***") + data.count(b"failing with key ***")
    report.row("secrets found in task and component logs",
               f"{sum(len(v) for v in leaks.values())} files ({len(files)} files, {scanned / 1e6:.1f} MB scanned; "
               f"values: {', '.join(secret_values)})", not leaks)
    report.row("  job output lines with the key masked (***), proves the scan saw them", masked_key_lines,
               masked_key_lines > 0)
    for label, paths in leaks.items():
        report.details.append(f"{label} found in {len(paths)} files:")
        report.details += [f"  {p}" for p in paths[:10]]

    # 5. evidence from the task logs: retries under faults, re-attached jobs
    markers = Counter()
    for path in (stack_dir / "logs").rglob("*.log*"):
        text = path.read_text(errors="replace")
        markers["retrying in"] += text.count("retrying in")
        markers["Re-attaching to job"] += text.count("Re-attaching to job")
        markers["earlier try"] += text.count("was created by an earlier try")
        markers["Timed out after"] += int("Timed out after" in text)
    report.row("task log lines: transport retries / re-attached to an earlier try's job / deployment of an "
               "earlier try adopted", f"{markers['retrying in']} / {markers['Re-attaching to job']} / "
               f"{markers['earlier try']}")

    # 6. the chaos itself
    api_requests = [r for r in requests if not r["path"].startswith("/__admin")]
    statuses = Counter(r["status"] for r in api_requests)
    creates = Counter(r["status"] for r in api_requests if r["method"] == "POST"
                      and re.search(r"/(jobs|multi-machine-jobs|deployments)(\?|$)", r["path"]))
    injected = {"503": statuses[503], "429": statuses[429], "dropped": statuses[0]}
    report.row("simulator requests / answered 503 / 429 / dropped (before or after processing)",
               f"{len(api_requests)} / {injected['503']} / {injected['429']} / {injected['dropped']} "
               f"({100 * sum(injected.values()) / max(len(api_requests), 1):.1f}% faulted)",
               all(injected.values()))
    report.row("create POSTs: 200 / 503 / 429 / dropped",
               f"{creates[200]} / {creates[503]} / {creates[429]} / {creates[0]}")
    a = chaos.args
    report.row("fault settings", f"503 {a.error_rate:.0%}, drops {a.drop_rate:.0%} (half after processing), latency "
               f"{a.latency} s; 429 bursts ({a.burst_rate:.0%}, Retry-After {a.retry_after:g} s) "
               f"{chaos.faults['429 bursts']}x, latency spikes ({a.spike_latency:g} s) "
               f"{chaos.faults['latency spikes']}x")
    w = chaos.worker
    interrupted = {(d, t, r, m): n for d, t, r, m, n in w.get("interrupted") or []}
    final = {(t["dag_id"], t["task_id"], t["run_id"], t["map_index"]): t for t in tis}
    as_expected = [k for k in interrupted if k in final and final[k]["state"] == EXPECTED[k[:2]].state]
    with_retry = [k for k, n in interrupted.items() if k in final and n <= (final[k]["max_tries"] or 0)]
    retried = [k for k in with_retry if (final[k]["try_number"] or 0) > interrupted[k]]
    report.row("Celery worker killed (kill -9, whole tree) while running tasks",
               f"{w.get('name', '-')} at t+{w.get('at', '-')} s, {w.get('pids', 0)} processes, "
               f"{len(w.get('tis', []))} task instances running ({len(w.get('submitted', []))} with their work "
               f"created, {len(interrupted)} cut off); started again after {w.get('restarted', '-')} s"
               + (f"; earlier kills at t+{w['missed']} s cut nothing off" if w.get("missed") else ""),
               bool(interrupted) and w.get("restarted") is not None)
    report.row("  cut off: retried (of those with a retry left) / ended in their expected state",
               f"{len(retried)}/{len(with_retry)} / {len(as_expected)}/{len(interrupted)}",
               bool(interrupted) and len(retried) == len(with_retry) and len(as_expected) == len(interrupted))
    tr = chaos.triggerer
    report.row("triggerer killed (kill -9 with its trigger runner) while triggers were deferred",
               f"{tr.get('name', '-')} at t+{tr.get('at', '-')} s, {tr.get('pids', 0)} processes, job "
               f"{tr.get('dead_job', '?')} held {len(tr.get('held', []))} triggers; load at the kill {tr.get('load')}",
               bool(tr.get("held")) and not tr.get("error"))
    report.row("TRIGGERER TAKEOVER TIME (kill -> all its triggers in the surviving triggerer)",
               f"{tr['takeover_s']} s ({tr['moved']} triggers moved to job(s) {tr['survivors']}; its last heartbeat "
               f"was {tr.get('beat_age')} s before the kill, Airflow's triggerer_health_check_threshold is 30 s)"
               if tr.get("takeover_s") is not None
               else tr.get("error", "not measured"), tr.get("takeover_s") is not None)
    s = chaos.scheduler
    report.row("scheduler restarted (SIGTERM, started again)",
               f"at t+{s.get('at', '-')} s, stop took {s.get('stop_s', '-')} s, heartbeating again after "
               f"{s.get('back_s', '-')} s", s.get("back_s") is not None)
    report.row("stack settings on top of the prod profile",
               f"task_instance_heartbeat_timeout {HEARTBEAT_TIMEOUT} s, task_queued_timeout {QUEUED_TIMEOUT} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="stack folder (wiped at the start)")
    parser.add_argument("--max-seconds", type=float, default=1200.0, help="give up (and fail) after this")
    parser.add_argument("--error-rate", type=float, default=0.05, help="503 answers")
    parser.add_argument("--drop-rate", type=float, default=0.04, help="dropped connections (half after processing)")
    parser.add_argument("--latency", type=float, default=0.02, help="seconds added to every request")
    parser.add_argument("--burst-rate", type=float, default=0.4, help="429 rate inside a burst")
    parser.add_argument("--burst-every", type=float, default=25.0)
    parser.add_argument("--burst-seconds", type=float, default=3.0)
    parser.add_argument("--retry-after", type=float, default=1.0)
    parser.add_argument("--spike-latency", type=float, default=1.5, help="seconds per request during a spike")
    parser.add_argument("--spike-every", type=float, default=40.0)
    parser.add_argument("--spike-seconds", type=float, default=3.0)
    parser.add_argument("--worker-kill-after", type=float, default=20.0, help="seconds after the runs start")
    parser.add_argument("--triggerer-kill-after", type=float, default=60.0)
    parser.add_argument("--min-triggers", type=int, default=5, help="triggers each triggerer holds at the kill")
    parser.add_argument("--scheduler-restart-after", type=float, default=60.0)
    parser.add_argument("--kill-last-try", action="store_true",
                        help="prefer a task on its LAST try that has created its work (no retry cleans up after "
                             "it; timing-dependent: the window between submitting and deferring is short)")
    args = parser.parse_args(argv)
    print("$ " + shlex.join([sys.executable, *sys.argv]), flush=True)
    signal.signal(signal.SIGTERM, _on_sigterm)
    began = time.monotonic()
    stack_dir = args.dir.resolve()
    # run_name() comes from the provider, which imports Airflow: keep that import's home out of ~/airflow
    # (airflow_stack gives the stack's components their own AIRFLOW_* environment).
    own_home = tempfile.mkdtemp(prefix="chaos-stack-airflow-")
    os.environ["AIRFLOW_HOME"] = own_home
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    deploy_token = "chaos-deploy-" + secrets.token_hex(12)
    variable_token = "chaos-var-" + secrets.token_hex(12)
    os.environ[TOKEN_ENV] = deploy_token  # the components inherit it; the DAG file reads it
    chaos = Chaos(args, stack_dir)
    report = Report()
    left_after_stop: list[int] | str = "not stopped"
    stack_error = ""
    fault_thread: threading.Thread | None = None
    try:
        say(f"starting the prod stack in {stack_dir} (fresh) with {CHAOS_DAGS.relative_to(ROOT)}")
        chaos.state = airflow_stack.start(stack_dir, fresh=True, extra_dags=[str(CHAOS_DAGS)], wait_dags=DAG_IDS,
                                          profile="prod", timeout=360, extra_env=EXTRA_ENV)
        chaos.sim_url = chaos.state["simulator_url"]
        sim_user = chaos.sim("/__admin/info").get("userId") or "sim-user"
        secret_values = {
            "connection API key": airflow_stack.SIM_API_KEY,
            "Basic credentials": base64.b64encode(f"{sim_user}:{airflow_stack.SIM_API_KEY}".encode()).decode(),
            f"Variable {VARIABLE}": variable_token,
            "deployment token": deploy_token,
        }
        say(f"stack ready after {chaos.state.get('ready_after_s')} s")
        chaos.connect_db()
        chaos.api = airflow_stack.client(chaos.state)
        answer = chaos.api.post("/api/v2/variables", json={"key": VARIABLE, "value": variable_token,
                                                           "description": "chaos-stack: must never be logged"})
        answer.raise_for_status()
        chaos.triggered_at = time.monotonic()
        fault_thread = threading.Thread(target=chaos.fault_loop, name="faults", daemon=True)
        fault_thread.start()
        for dag_id in DAG_IDS:
            answer = chaos.api.post(f"/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None})
            answer.raise_for_status()
            chaos.run_ids[dag_id] = answer.json()["dag_run_id"]
        chaos.note(f"triggered {', '.join(f'{d} ({r})' for d, r in chaos.run_ids.items())}; faults on")
        chaos.run()
        chaos.fault_stop.set()
        fault_thread.join(5)
        chaos.set_faults()  # all off: settle and read the final state through a clean API
        waited = time.monotonic()
        while time.monotonic() - waited < 30:
            jobs = chaos.sim("/__admin/jobs")["jobs"] + chaos.sim("/__admin/mmts")["multiMachineJobs"]
            deps = chaos.sim("/__admin/deployments")["deployments"]
            if all(norm_phase(j["state"]) in TERMINAL for j in jobs) and not any(d.get("replicas") for d in deps):
                break
            time.sleep(1)
        chaos.settle["waited"] = round(time.monotonic() - waited, 1)
        say(f"faults off; analysing (settled {chaos.settle['waited']} s)")
        analyse(chaos, report, secret_values)
    except KeyboardInterrupt:
        stack_error = "interrupted (Ctrl-C / SIGTERM)"
        say(stack_error)
    except Exception as error:
        import traceback

        stack_error = f"{type(error).__name__}: {error}"
        traceback.print_exc()
    finally:
        chaos.fault_stop.set()
        for closing in (chaos.api, chaos.db):
            if closing is not None:
                try:
                    closing.close()
                except Exception:
                    pass
        say("stopping the stack")
        for attempt in range(2):
            try:
                airflow_stack.stop(stack_dir)
                break
            except airflow_stack.StackError as error:
                say(f"stop: {error}" + ("; trying once more" if attempt == 0 else ""))
            except KeyboardInterrupt:
                say("interrupted while stopping; stopping anyway")
        left_after_stop = airflow_stack.stack_processes(stack_dir, {})
        shutil.rmtree(own_home, ignore_errors=True)
    wall = time.monotonic() - began
    if stack_error:
        report.row("harness error", stack_error, False)
    report.row("stack processes left after stop", left_after_stop or "none", not left_after_stop)
    report.row("wall time (start, runs, checks, stop)", f"{wall:.0f} s ({wall / 60:.1f} min)")
    lines = ["", "== chaos-stack summary (prod profile: 2 Celery workers, 2 triggerers, PostgreSQL, Redis)", "",
             report.render()]
    if chaos.events:
        lines += ["", "Timeline:"] + [f"  {event}" for event in chaos.events]
    if report.details:
        lines += ["", *report.details]
    lines += [""] + ([f"FAILED: {name}" for name in report.failed] or ["PASSED: every check held"])
    lines.append(f"wall time {wall:.0f} s")
    summary = "\n".join(lines)
    print(summary, flush=True)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "summary.txt").write_text(summary + "\n", encoding="utf-8")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
