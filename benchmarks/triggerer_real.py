"""Triggerer scale in a REAL ``airflow triggerer``: N deferred job waits, ours (shared poller) vs a naive trigger.

Unlike ``triggerer_scale.py`` (one asyncio loop in a child process playing the triggerer), this runs Airflow's own
triggerer: for each N and variant it

1. starts a Lightning simulator in a process of its own (timed jobs: no subprocesses) and submits N jobs that run
   "forever" (until this benchmark ends each of them at a chosen time);
2. copies a migrated metadata DB (``airflow db migrate`` + ``airflow dags reserialize`` of a one-task DAG, made once
   per invocation in a temp AIRFLOW_HOME; SQLite by default, ``--db postgres`` for a scratch cluster of Debian's
   PostgreSQL) and writes what N workers would have written on deferring: N DAG runs, each with its task instance
   in ``deferred`` with a ``Trigger`` row from ``Trigger.from_object(trigger)`` (``trigger_id``,
   ``next_method="execute_complete"``, ``next_kwargs={}``, ``trigger_timeout`` NULL as the provider's operator
   defers without a timeout, ``try_number`` 1);
3. starts ``airflow triggerer --capacity N+100`` (its own session; supervisor + forked trigger runner + log
   server). It picks the triggers up at Airflow's default pace (``max_trigger_to_select_per_loop`` = 50 per loop
   of its supervisor), so the waits start over some seconds, as deferrals arriving over time would;
4. once every trigger is running (each has written its "trigger ... starting" line to its task log) plus
   ``--warmup-intervals`` (1) intervals + 2 s, the measurement window opens (W0) and lasts WINDOW_INTERVALS poll
   intervals. The simulator ends job i at W0 + (1 + 4 u_i) intervals, u_i uniform in [0, 1): all jobs end inside
   the window, and in its first interval all N waits are polling;
5. measures: the triggerer's RSS (VmRSS summed over the triggerer and all its descendants, sampled every 0.5 s,
   peak over the whole run; also PSS, which does not count the forked runner's shared pages twice, the runner's
   own peak, and the same sum for an idle triggerer with no trigger: Airflow's floor), its CPU seconds inside the
   window (utime+stime of the same processes from /proc), the API requests the simulator served inside the window
   (the simulator process timestamps every request) divided by the window's intervals, and detection lag: from
   the job's ``stoppedAt`` in the simulator to the moment its task instance is seen out of ``deferred`` by a poll
   of the metadata DB every 0.2 s (same wall clock; the row's ``updated_at``, set in the triggerer's own UPDATE,
   gives a second figure without the poll's resolution). The lag is split at the "Trigger fired event" line the
   trigger runner writes to each task's trigger log: job end -> event (polling, and the runner getting the event
   out), event -> DB row (the supervisor).

Variants: ``ours`` = ``LightningPhaseTrigger`` (kind job, ``stream_logs=False``), whose waits share one poller per
event loop; ``naive`` = ``naive_trigger.NaiveJobTrigger``: one new ``httpx.AsyncClient`` and one
``GET /v1/projects/{p}/jobs/{id}`` per task per poll interval. Same poll interval, same jobs, same schedule, one
variant after the other. No scheduler, api-server or worker runs: task instances resumed by an event stay
``scheduled``. Targets are printed PASS/FAIL; the exit code does not depend on them.

Usage: ``python benchmarks/triggerer_real.py`` (N = 1,000 and 5,000, 10 s interval; about 10 min on 2 CPUs),
``--quick`` (N = 200, 5 s interval; about 2 min), ``--sizes 5000 --variants ours --warmup-intervals 11``,
``--db postgres``, ``--keep`` (keep the temp folder: DBs, triggerer and task logs, the simulator's request log).
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import os
import random
import secrets
import shlex
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path
from typing import IO, Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DAG_ID = "lightning_triggerer_bench"
TASK_ID = "train"
PENDING_SECONDS = 1.0  # provisioning time of every simulator job
FOREVER = 1e6  # seconds a job "runs" unless the benchmark ends it first
WINDOW_INTERVALS = 6
CAPACITY_MARGIN = 100
TARGET_RATIO, TARGET_RSS_MB, TARGET_RSS_AT, TARGET_LAG_EXTRA = 1 / 20, 400.0, 5000, 2.0
VARIANTS = ("ours", "naive")
CLK_TCK = os.sysconf("SC_CLK_TCK")

DAG_SOURCE = '''"""One deferrable Lightning job task: triggerer_real.py puts N runs of it in `deferred`."""
import pendulum
from airflow.sdk import DAG

from airflow_provider_lightning.operators.jobs import LightningJobOperator

with DAG(dag_id="{dag_id}", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False):
    LightningJobOperator(task_id="{task_id}", image="python:3.11", command="train", deferrable=True,
                         poll_interval={interval}, stream_logs=False)
'''


def log(message: str) -> None:
    print(f"  [{time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- processes -----------------------------------------------------------------------------------


class Processes:
    """Every process this benchmark starts, each leading its own session; stopped in reverse order."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[Any]] = []

    def start(self, argv: list[str], env: dict[str, str], out: IO[Any] | int | None = None, cwd: Path | None = None,
              pipes: bool = False) -> subprocess.Popen[Any]:
        proc = subprocess.Popen(argv, env=env, cwd=str(cwd) if cwd else None, start_new_session=True,
                                stdin=subprocess.PIPE if pipes else subprocess.DEVNULL,
                                stdout=subprocess.PIPE if pipes else out, stderr=subprocess.STDOUT if out else None,
                                text=True, bufsize=1 if pipes else -1)
        self.started.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[Any], grace: float = 30.0) -> None:
        """SIGTERM to the process group the process leads, then SIGKILL to it after ``grace``."""
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # whatever is left of its group (the runner, the log server)
        except (ProcessLookupError, PermissionError):
            pass
        if proc.poll() is None:
            proc.wait(10)
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                try:
                    stream.close()
                except (OSError, ValueError):
                    pass
        if proc in self.started:
            self.started.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(list(self.started)):
            try:
                self.stop(proc, grace=15.0)
            except Exception as error:  # keep stopping the others
                print(f"  could not stop pid {proc.pid}: {error}", file=sys.stderr)


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rfind(")") + 2:].split()


def tree(root: int) -> list[int]:
    """``root`` and its live descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields and fields[0] not in ("Z", "X"):
                children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [root], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime (+ those of reaped children) of ``pids``."""
    total = 0
    for pid in pids:
        fields = _stat(pid)
        if fields and len(fields) > 14:
            total += sum(int(v) for v in fields[11:15])
    return total / CLK_TCK


def cpu_by_pid(pids: list[int]) -> dict[int, float]:
    return {pid: cpu_seconds([pid]) for pid in pids}


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    total = sum(values[:8])
    return (total - idle) / CLK_TCK, total / CLK_TCK


def status_kb(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def pss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def describe(pid: int) -> str:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"
    return cmd[:60] or "?"


class Monitor(threading.Thread):
    """Samples the RSS (every 0.5 s) and PSS (every 2 s) of a process tree; keeps the peaks and each process's
    own peak (``VmHWM``)."""

    def __init__(self, root: int) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.halt = threading.Event()
        self.peak_rss_kb = 0
        self.peak_rss_parts: list[tuple[int, int]] = []
        self.peak_pss_kb = 0
        self.hwm_kb: dict[int, int] = {}
        self.labels: dict[int, str] = {}
        self.sampled = threading.Event()

    def label(self, pid: int) -> str:
        if pid not in self.labels:
            command = describe(pid)
            if pid == self.root:
                self.labels[pid] = "supervisor"
            elif command == self.labels.get(-1):
                self.labels[pid] = "trigger runner"  # forked from the supervisor: same command line
            else:
                self.labels[pid] = command.split(" --", 1)[0].replace(str(Path(sys.executable).parent) + "/", "")
            if pid == self.root:
                self.labels[-1] = command
        return self.labels[pid]

    def run(self) -> None:
        ticks = 0
        while not self.halt.wait(0.5):
            pids = tree(self.root)
            parts = [(pid, status_kb(pid, "VmRSS")) for pid in pids]
            total = sum(kb for _, kb in parts)
            for pid in pids:
                self.label(pid)
                self.hwm_kb[pid] = max(self.hwm_kb.get(pid, 0), status_kb(pid, "VmHWM"))
            if total > self.peak_rss_kb:
                self.peak_rss_kb = total
                self.peak_rss_parts = parts
            if ticks % 4 == 0:
                self.peak_pss_kb = max(self.peak_pss_kb, sum(pss_kb(pid) for pid in pids))
            ticks += 1
            self.sampled.set()

    def parts(self) -> str:
        return ", ".join(f"{kb / 1024:.0f} {self.labels.get(pid, '?')}"
                         for pid, kb in sorted(self.peak_rss_parts, key=lambda p: -p[1]))

    def runner_hwm_mb(self) -> float:
        return max((kb for pid, kb in self.hwm_kb.items() if self.labels.get(pid) == "trigger runner"),
                   default=0) / 1024


# -- the simulator process -------------------------------------------------------------------------


def serve_simulator(seed: int) -> None:
    """``--serve-simulator``: a simulator driven by one-line commands on stdin (answers on stdout)."""
    from lightning_simulator import LightningSimulator

    sim = LightningSimulator(pending_seconds=PENDING_SECONDS, timed_jobs=True, job_time_limit=10 * FOREVER,
                             max_request_log=10, seed=seed).start()
    stamps: list[tuple[float, str, str, int]] = []

    def record(method: str, path: str, status: int, has_auth: bool) -> None:  # every answered request, timed
        stamps.append((time.time(), method, path, status))

    sim.request_log.record = record  # type: ignore[method-assign]
    lifecycle = sim.store.jobs.lifecycle
    info = {"url": sim.url, "user_id": sim.user_id, "api_key": sim.api_key, "teamspace": sim.teamspace,
            "project_id": sim.project_id}
    print("READY " + json.dumps(info), flush=True)
    try:
        for line in sys.stdin:
            command, _, argument = line.strip().partition(" ")
            if command == "CREATE":  # N jobs that run until FINISH ends them
                env = [{"name": "SIM_DURATION_SECONDS", "value": str(FOREVER)}, {"name": "SIM_EXIT_CODE", "value": "0"}]
                ids = []
                for i in range(int(argument)):
                    body = {"name": f"bench-{i}", "spec": {"image": "python:3.11", "command": "train", "env": env}}
                    ids.append(sim.store.jobs.create(sim.project_id, body)["id"])
                print("CREATED " + json.dumps(ids), flush=True)
            elif command == "FINISH":  # {job id: UNIX time}: the job completes (exit code 0) then
                for job_id, when in json.loads(Path(argument).read_text()).items():
                    lifecycle.scheduler.call_at(when, lifecycle._finish_timed, job_id, False)
                print("FINISHING", flush=True)
            elif command == "DUMP":
                stopped = {j: r.stopped_ns for j, r in sim.store.jobs.records.items()}
                states = Counter(r.state for r in sim.store.jobs.records.values())
                Path(argument).write_text(json.dumps({"requests": list(stamps), "stopped": stopped,
                                                      "states": states, "cpu": time.process_time()}))
                print("DUMPED", flush=True)
            elif command == "QUIT":
                break
    finally:
        sim.stop()


class Simulator:
    def __init__(self, procs: Processes, seed: int, log_path: Path) -> None:
        self.procs = procs
        self.stderr = open(log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__)), "--serve-simulator", "--seed", str(seed)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, text=True,
                                     bufsize=1, start_new_session=True, env=dict(os.environ))
        procs.started.append(self.proc)
        self.info = json.loads(self._expect("READY"))

    def _expect(self, prefix: str) -> str:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith(prefix):
                return line[len(prefix):].strip()
        raise RuntimeError(f"the simulator process ended before answering {prefix} (see {self.stderr.name})")

    def ask(self, command: str, prefix: str) -> str:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._expect(prefix)

    def connection(self) -> str:
        return json.dumps({"conn_type": "lightning", "host": self.info["url"], "login": self.info["user_id"],
                           "password": self.info["api_key"], "extra": {"teamspace": self.info["teamspace"]}})

    def stop(self) -> None:
        try:
            if self.proc.poll() is None and self.proc.stdin is not None:
                self.proc.stdin.write("QUIT\n")
                self.proc.stdin.flush()
                self.proc.wait(10)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            pass
        self.procs.stop(self.proc, grace=5.0)
        self.stderr.close()


# -- Airflow: environment, template DB, seeding ----------------------------------------------------


def airflow_env(home: Path, dags: Path, fernet_key: str, db_url: str, connection: str = "") -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    for var in ("LIGHTNING_USER_ID", "LIGHTNING_API_KEY", "LIGHTNING_AUTH_TOKEN", "LIGHTNING_CLOUD_URL"):
        base.pop(var, None)
    env = {
        **base,
        "PATH": str(Path(sys.executable).parent) + os.pathsep + base.get("PATH", ""),
        "PYTHONPATH": os.pathsep.join(p for p in (str(HERE), base.get("PYTHONPATH", "")) if p),
        "PYTHONUNBUFFERED": "1",
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__FERNET_KEY": fernet_key,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db_url,
        "AIRFLOW__API_AUTH__JWT_SECRET": "triggerer-real-bench",
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
    }
    if connection:
        env["AIRFLOW_CONN_LIGHTNING_DEFAULT"] = connection
    return env


def airflow(args: list[str], env: dict[str, str], log_path: Path, timeout: float = 600) -> None:
    with open(log_path, "a") as out:
        done = subprocess.run([str(Path(sys.executable).with_name("airflow")), *args], env=env, stdout=out,
                              stderr=subprocess.STDOUT, timeout=timeout, start_new_session=True)
    if done.returncode:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-30:])
        raise RuntimeError(f"airflow {' '.join(args)} failed ({done.returncode}):\n{tail}")


class Database:
    """The metadata DBs: a migrated template, then one copy per triggerer run (its own name).

    ``sqlite``: a file per run in the run's folder, copied from the template file. ``postgres``: a scratch cluster
    of Debian's PostgreSQL in the work folder (started with ``scripts/airflow_stack.py``'s helper: 127.0.0.1 only, a
    free port, run as the unprivileged ``airflow-pg`` when this runs as root), one database per run created with
    ``CREATE DATABASE ... TEMPLATE``.
    """

    def __init__(self, kind: str, work: Path) -> None:
        self.kind, self.work = kind, work
        self.port = 0
        self.password = ""
        self.pg: dict[str, Any] | None = None
        self._stack: Any = None

    def start(self) -> None:
        if self.kind != "postgres":
            return
        sys.path.insert(0, str(ROOT / "scripts"))
        import airflow_stack

        self._stack = airflow_stack
        folder = self.work / "pg"
        (folder / "run").mkdir(parents=True)
        (folder / "pids").mkdir()
        self.work.chmod(0o711)  # the service user walks down to its data folder
        folder.chmod(0o711)
        self.port = free_port()
        self.pg = airflow_stack._start_postgres(folder, self.port, airflow_stack._service_user(), 60)
        self.password = airflow_stack._service_secrets(folder)["pg_password"]

    def stop(self) -> None:
        if self.pg is None:
            return
        pgid = int(self.pg["pgid"])
        try:
            os.killpg(pgid, signal.SIGINT)  # fast shutdown
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (_stat(int(self.pg["pid"])) or ["X"])[0] not in ("Z", "X"):
            time.sleep(0.2)
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            os.waitpid(int(self.pg["pid"]), 0)
        except ChildProcessError:
            pass
        self.pg = None

    def url(self, name: str, home: Path) -> str:
        if self.kind == "postgres":
            return f"postgresql+psycopg2://airflow:{self.password}@127.0.0.1:{self.port}/bench_{name}"
        return f"sqlite:///{home / 'airflow.db'}"

    def _admin(self, sql: str) -> None:
        import psycopg2

        db = psycopg2.connect(host="127.0.0.1", port=self.port, user="airflow", password=self.password,
                              dbname="postgres")
        try:
            db.autocommit = True
            with db.cursor() as cursor:
                cursor.execute(sql)
        finally:
            db.close()

    def create_template(self, home: Path) -> None:
        if self.kind == "postgres":
            self._admin("CREATE DATABASE bench_template")

    def copy(self, name: str, home: Path) -> None:
        """A fresh DB for one run, from the template."""
        if self.kind == "postgres":
            self._admin(f"CREATE DATABASE bench_{name} TEMPLATE bench_template")
        else:
            shutil.copy(self.work / "template" / "airflow.db", home / "airflow.db")

    def connect(self, name: str, home: Path) -> Any:
        """A DB-API connection for reading (autocommit for PostgreSQL: every query sees the latest commits)."""
        if self.kind == "postgres":
            import psycopg2

            db = psycopg2.connect(host="127.0.0.1", port=self.port, user="airflow", password=self.password,
                                  dbname=f"bench_{name}")
            db.autocommit = True
            return db
        return sqlite3.connect(f"file:{home / 'airflow.db'}?mode=ro", uri=True, timeout=10)

    def label(self) -> str:
        if self.kind == "postgres":
            return f"PostgreSQL {Path(self._stack._pg_bin()).parent.name} (Debian), psycopg2, on 127.0.0.1"
        return "SQLite (a file per run)"


def query(db: Any, sql: str) -> list[tuple[Any, ...]]:
    cursor = db.cursor()
    try:
        cursor.execute(sql)
        return list(cursor.fetchall())
    finally:
        cursor.close()


def make_template(work: Path, database: Database, interval: float, fernet_key: str) -> Path:
    """A migrated metadata DB with the benchmark DAG serialized; returns the DAG folder."""
    home, dags = work / "template", work / "dags"
    home.mkdir()
    dags.mkdir()
    (dags / "triggerer_real_bench.py").write_text(
        DAG_SOURCE.format(dag_id=DAG_ID, task_id=TASK_ID, interval=interval))
    database.create_template(home)
    env = airflow_env(home, dags, fernet_key, database.url("template", home))
    airflow(["db", "migrate"], env, work / "template.log")
    airflow(["dags", "reserialize"], env, work / "template.log")
    db = database.connect("template", home)
    try:
        if not query(db, f"SELECT count(*) FROM serialized_dag WHERE dag_id = '{DAG_ID}'")[0][0]:
            raise RuntimeError(f"the benchmark DAG was not serialized (see {work / 'template.log'})")
    finally:
        db.close()
    return dags


def seed(spec_path: str) -> None:
    """``--seed SPEC``: what N workers write when their task defers (this process's env names the DB)."""
    spec = json.loads(Path(spec_path).read_text())
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.trigger import Trigger
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState, TaskInstanceState
    from airflow.utils.types import DagRunTriggeredByType, DagRunType
    from sqlalchemy import select

    if spec["variant"] == "ours":
        from airflow_provider_lightning.triggers.contract import WaitSpec
        from airflow_provider_lightning.triggers.lightning import LightningPhaseTrigger

        def make(job_id: str, name: str) -> Any:  # as LightningJobOperator.wait_spec() builds it
            return LightningPhaseTrigger.for_spec(WaitSpec(
                kind="job", resource_id=job_id, project_id=spec["project_id"], target_phases=("completed",),
                poll_interval=spec["interval"], stream_logs=False, owns="stop", resource_name=name,
                log_cursor={"made_at": time.time(), "reattached": False}))
    else:
        from naive_trigger import NaiveJobTrigger

        def make(job_id: str, name: str) -> Any:
            return NaiveJobTrigger(job_id, spec["project_id"], spec["interval"])

    began = time.monotonic()
    with create_session() as session:
        dag = SerializedDagModel.get_dag(DAG_ID, session=session)
        assert dag is not None, "the benchmark DAG is not in the DB"
        for i, job_id in enumerate(spec["job_ids"]):
            now = datetime.now(timezone.utc)
            run = dag.create_dagrun(run_id=spec["run_ids"][i], logical_date=None, run_after=now, start_date=now,
                                    run_type=DagRunType.MANUAL, triggered_by=DagRunTriggeredByType.TEST,
                                    state=DagRunState.RUNNING, session=session)
            ti = session.scalars(select(TaskInstance).where(TaskInstance.dag_id == DAG_ID,
                                                            TaskInstance.run_id == run.run_id)).one()
            row = Trigger.from_object(make(job_id, f"bench-{i}"))
            session.add(row)
            session.flush()
            ti.try_number = 1  # it ran once on a worker, then deferred
            ti.queued_dttm = ti.start_date = now
            ti.hostname = "bench-worker"
            ti.state = TaskInstanceState.DEFERRED
            ti.trigger_id = row.id
            ti.next_method = "execute_complete"
            ti.next_kwargs = {}
            ti.trigger_timeout = None
            if i % 250 == 249:
                session.commit()
        session.commit()
    print(f"SEEDED {time.monotonic() - began:.1f}", flush=True)


# -- one measurement ---------------------------------------------------------------------------------


@dataclass
class Run:
    variant: str
    n: int
    interval: float
    seed_s: float = 0.0
    load_s: float = 0.0
    requests: int = 0
    first_interval_requests: int = 0
    per_wait_gets: float = 0.0  # one GET per waiting task per interval over the window, for comparison
    routes: Counter[str] = field(default_factory=Counter)
    window_s: float = 0.0
    cpu_s: float = 0.0
    sim_cpu_s: float = 0.0
    cpu_parts: dict[int, float] = field(default_factory=dict)
    cpu_labels: str = ""
    runner_cpu_s: float = 0.0
    machine_busy_pct: float = 0.0
    others_cores: float = 0.0
    blocked_warnings: int = 0
    fired_lags: list[float] = field(default_factory=list)
    to_db_lags: list[float] = field(default_factory=list)
    rss_mb: float = 0.0
    pss_mb: float = 0.0
    runner_mb: float = 0.0
    rss_parts: str = ""
    lags: list[float] = field(default_factory=list)
    lags_updated_at: list[float] = field(default_factory=list)
    resumed: int = 0
    failed: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def intervals(self) -> float:
        return self.window_s / self.interval if self.interval else 0.0

    @property
    def requests_per_interval(self) -> float:
        return self.requests / self.intervals if self.intervals else 0.0

    @property
    def cpu_per_interval(self) -> float:
        return self.cpu_s / self.intervals if self.intervals else 0.0

    @property
    def cpu_pct(self) -> float:
        return 100.0 * self.cpu_s / self.window_s if self.window_s else 0.0

    @staticmethod
    def quantile(values: list[float], q: float) -> float:
        if not values:
            return float("nan")
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def lag(self, q: float) -> float:
        return self.quantile(self.lags, q)


def route_of(method: str, full_path: str) -> str:
    path, _, query = full_path.partition("?")
    parts = path.split("/")
    if method == "GET" and path.endswith("/jobs"):
        states = sorted(v for k, _, v in (p.partition("=") for p in query.split("&")) if k == "state")
        return f"GET /jobs?state={','.join(states)} (list page)" if states else "GET /jobs (list page, any state)"
    if method == "GET" and len(parts) == 6 and parts[4] == "jobs":
        return "GET /jobs/{id}"
    if path.endswith("/page-logs"):
        return "GET /page-logs"
    return f"{method} {path}"


def parse_utc(text: str) -> float:
    moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()


class DbWatcher(threading.Thread):
    """Polls the metadata DB every 0.2 s: when each benchmark task instance is first seen out of ``deferred``."""

    def __init__(self, connect: Any) -> None:
        super().__init__(daemon=True)
        self.connect = connect
        self.halt = threading.Event()
        self.seen: dict[str, tuple[float, str, str, str]] = {}  # run id -> (seen at, state, updated_at, next_method)
        self.assigned = 0
        self.deferred = -1
        self.error = ""

    def run(self) -> None:
        db = self.connect()
        try:
            while not self.halt.wait(0.2):
                try:
                    deferred = query(db, "SELECT count(*) FROM task_instance "
                                         f"WHERE dag_id = '{DAG_ID}' AND state = 'deferred'")[0][0]
                    now = time.time()
                    if deferred != self.deferred:
                        rows = query(db, "SELECT run_id, state, updated_at, next_method FROM task_instance "
                                         f"WHERE dag_id = '{DAG_ID}' AND (state IS NULL OR state != 'deferred')")
                        for run_id, state, updated_at, next_method in rows:
                            if run_id not in self.seen:
                                self.seen[run_id] = (now, str(state), str(updated_at), str(next_method))
                        self.deferred = deferred
                    self.assigned = query(db, 'SELECT count(*) FROM "trigger" WHERE triggerer_id IS NOT NULL')[0][0]
                except Exception as error:  # e.g. SQLite locked for longer than the timeout: try again
                    self.error = f"{type(error).__name__}: {error}"
        finally:
            db.close()


def trigger_logs_started(logs: Path) -> int:
    """Task-log files of triggers that started (the triggerer writes "trigger ... starting" to each first)."""
    return sum(1 for _ in logs.glob(f"dag_id={DAG_ID}/run_id=*/task_id={TASK_ID}/*.trigger.*.log"))


def trigger_events(logs: Path) -> dict[str, float]:
    """Run id -> timestamp of the "Trigger fired event" line in its task's trigger log (written by the runner)."""
    fired = {}
    for path in logs.glob(f"dag_id={DAG_ID}/run_id=*/task_id={TASK_ID}/*.trigger.*.log"):
        run_id = path.parent.parent.name.removeprefix("run_id=")
        with open(path, errors="replace") as lines:
            for line in lines:
                if '"Trigger fired event"' in line:
                    try:
                        fired[run_id] = parse_utc(json.loads(line)["timestamp"])
                    except (ValueError, KeyError):
                        pass
                    break
    return fired


def measure(variant: str, n: int, interval: float, warmup: float, seed_value: int, work: Path, database: Database,
            dags: Path, fernet_key: str, procs: Processes) -> Run:
    run = Run(variant, n, interval)
    rng = random.Random(seed_value)
    folder = work / f"{variant}-{n}"
    folder.mkdir()
    sim = Simulator(procs, seed_value, folder / "simulator.log")
    triggerer = monitor = watcher = None
    try:
        job_ids = json.loads(sim.ask(f"CREATE {n}", "CREATED"))
        run_ids = [f"bench_{i:05d}" for i in range(n)]
        name = f"{variant}_{n}"
        database.copy(name, folder)
        env = airflow_env(folder, dags, fernet_key, database.url(name, folder), sim.connection())
        spec_path = folder / "seed.json"
        spec_path.write_text(json.dumps({"variant": variant, "job_ids": job_ids, "run_ids": run_ids,
                                         "project_id": sim.info["project_id"], "interval": interval}))
        with open(folder / "seed.log", "w") as out:
            seeded = subprocess.run([sys.executable, str(Path(__file__)), "--seed-db", str(spec_path)], env=env,
                                    stdout=subprocess.PIPE, stderr=out, text=True, timeout=1800,
                                    start_new_session=True)
        if seeded.returncode or "SEEDED" not in seeded.stdout:
            raise RuntimeError(f"seeding the DB failed; see {folder / 'seed.log'}")
        run.seed_s = float(seeded.stdout.split("SEEDED", 1)[1].split()[0])
        log(f"{variant} N={n:,}: {n:,} jobs submitted, {n:,} deferred task instances written in {run.seed_s:.0f} s; "
            f"starting the triggerer")

        watcher = DbWatcher(lambda: database.connect(name, folder))
        watcher.start()
        started = time.monotonic()
        triggerer_log = open(folder / "triggerer.log", "w")  # noqa: SIM115 - closed below
        try:
            triggerer = procs.start([str(Path(sys.executable).with_name("airflow")), "triggerer", "--capacity",
                                     str(n + CAPACITY_MARGIN)], env, out=triggerer_log, cwd=folder)
        finally:
            triggerer_log.close()
        monitor = Monitor(triggerer.pid)
        monitor.start()
        load_deadline = started + 120 + n * 0.2
        while True:  # every trigger assigned to this triggerer and started in its runner
            if triggerer.poll() is not None:
                raise RuntimeError(f"the triggerer exited ({triggerer.returncode}); see {folder / 'triggerer.log'}")
            if watcher.assigned >= n and trigger_logs_started(folder / "logs") >= n:
                break
            if time.monotonic() > load_deadline:
                raise RuntimeError(f"only {watcher.assigned} triggers assigned and "
                                   f"{trigger_logs_started(folder / 'logs')} started after "
                                   f"{time.monotonic() - started:.0f} s; see {folder / 'triggerer.log'}")
            time.sleep(1.0)
        run.load_s = time.monotonic() - started
        log(f"{variant} N={n:,}: all {n:,} triggers running after {run.load_s:.0f} s; "
            f"warm-up {warmup * interval + 2:g} s")
        time.sleep(warmup * interval + 2)
        if watcher.seen:
            run.notes.append(f"{len(watcher.seen)} task instances left deferred before the window (not expected)")

        w0 = time.time()
        finish = {job_id: w0 + interval * (1 + 4 * rng.random()) for job_id in job_ids}
        plan_path = folder / "finish.json"
        plan_path.write_text(json.dumps(finish))
        cpu0, sim_cpu0 = cpu_by_pid(tree(triggerer.pid)), cpu_seconds([sim.proc.pid])
        busy0, total0 = machine_busy()
        me0 = cpu_seconds([os.getpid()])
        sim.ask(f"FINISH {plan_path}", "FINISHING")
        w1 = w0 + WINDOW_INTERVALS * interval
        time.sleep(max(0.0, w1 - time.time()))
        cpu1, sim_cpu1 = cpu_by_pid(tree(triggerer.pid)), cpu_seconds([sim.proc.pid])
        busy1, total1 = machine_busy()
        me1 = cpu_seconds([os.getpid()])
        run.window_s = time.time() - w0
        run.cpu_parts = {pid: used - cpu0.get(pid, 0.0) for pid, used in cpu1.items()}
        run.cpu_s, run.sim_cpu_s = sum(run.cpu_parts.values()), sim_cpu1 - sim_cpu0
        run.machine_busy_pct = 100.0 * (busy1 - busy0) / (total1 - total0) if total1 > total0 else 0.0
        run.others_cores = ((busy1 - busy0) - run.cpu_s - run.sim_cpu_s - (me1 - me0)) / run.window_s
        drain_deadline = time.time() + 3 * interval + 30
        while len(watcher.seen) < n and time.time() < drain_deadline and triggerer.poll() is None:
            time.sleep(0.5)
        time.sleep(0.5)
        log(f"{variant} N={n:,}: window done ({len(watcher.seen):,} of {n:,} task instances left deferred); "
            f"stopping the triggerer")
    finally:
        if monitor is not None:
            monitor.halt.set()
        if watcher is not None:
            watcher.halt.set()
        if triggerer is not None:
            procs.stop(triggerer)
        dump = folder / "simulator.json"
        data = None
        try:
            if sim.proc.poll() is None:
                sim.ask(f"DUMP {dump}", "DUMPED")
                data = json.loads(dump.read_text())
        finally:
            sim.stop()
    assert monitor is not None and watcher is not None and data is not None
    monitor.join(5)
    watcher.join(5)

    in_window = [(t, m, p) for t, m, p, _ in data["requests"] if w0 <= t < w0 + run.window_s]
    run.requests = len(in_window)
    run.first_interval_requests = sum(1 for t, _, _ in in_window if t < w0 + interval)
    run.routes = Counter(route_of(m, p) for _, m, p in in_window)
    run.rss_mb, run.pss_mb = monitor.peak_rss_kb / 1024, monitor.peak_pss_kb / 1024
    run.rss_parts = monitor.parts()
    run.runner_cpu_s = sum(used for pid, used in run.cpu_parts.items()
                           if monitor.labels.get(pid) == "trigger runner")
    run.cpu_labels = ", ".join(f"{used:.1f} {monitor.labels.get(pid, '?')}"
                               for pid, used in sorted(run.cpu_parts.items(), key=lambda p: -p[1]))
    try:
        run.blocked_warnings = (folder / "triggerer.log").read_text(errors="replace").count(
            "Triggerer's async thread was blocked")
    except OSError:
        pass
    fired = trigger_events(folder / "logs")
    run.runner_mb = monitor.runner_hwm_mb()
    stopped = data["stopped"]
    w_end = w0 + run.window_s
    run.per_wait_gets = sum(max(0.0, min(stopped.get(j) or 0, w_end * 1e9) / 1e9 - w0) for j in job_ids) / interval
    by_run = dict(zip(run_ids, job_ids, strict=True))
    for run_id, (seen_at, _state, updated_at, next_method) in watcher.seen.items():
        end = stopped.get(by_run[run_id])
        if next_method == "__fail__":
            run.failed += 1
        else:
            run.resumed += 1
        if end is None:
            run.notes.append(f"{run_id} left deferred but its job never ended in the simulator")
            continue
        run.lags.append(seen_at - end / 1e9)
        if run_id in fired:
            run.fired_lags.append(fired[run_id] - end / 1e9)
            try:
                run.to_db_lags.append(parse_utc(updated_at) - fired[run_id])
            except ValueError:
                pass
        try:
            run.lags_updated_at.append(parse_utc(updated_at) - end / 1e9)
        except ValueError:
            pass
    if len(watcher.seen) < n:
        run.notes.append(f"{n - len(watcher.seen)} of {n} task instances were still deferred at the end")
    if run.failed:
        run.notes.append(f"{run.failed} task instances were failed by the triggerer (next_method __fail__)")
    if watcher.error:
        run.notes.append(f"DB poll error seen (retried): {watcher.error}")
    if set(data["states"]) != {"completed"}:
        run.notes.append(f"simulator job states at the end: {dict(data['states'])}")
    return run


def idle_triggerer(work: Path, database: Database, dags: Path, fernet_key: str, procs: Processes) -> Monitor:
    """An ``airflow triggerer`` with no trigger at all, for 15 s after its processes are up: Airflow's floor."""
    folder = work / "idle"
    folder.mkdir()
    database.copy("idle", folder)
    env = airflow_env(folder, dags, fernet_key, database.url("idle", folder))
    with open(folder / "triggerer.log", "w") as out:
        triggerer = procs.start([str(Path(sys.executable).with_name("airflow")), "triggerer", "--capacity", "100"],
                                env, out=out, cwd=folder)
    monitor = Monitor(triggerer.pid)
    monitor.start()
    try:
        deadline = time.monotonic() + 60
        while len(tree(triggerer.pid)) < 3 and time.monotonic() < deadline and triggerer.poll() is None:
            time.sleep(0.5)
        time.sleep(15)
    finally:
        monitor.halt.set()
        procs.stop(triggerer)
    monitor.join(5)
    return monitor


# -- output ----------------------------------------------------------------------------------------


def ratio(a: float, b: float) -> str:
    if not b or math.isnan(a) or math.isnan(b):
        return "n/a"
    return f"{a / b:.4f}" if a / b < 10 else f"{a / b:.1f}"


def table(n: int, interval: float, runs: dict[str, Run], idle: Monitor | None) -> None:
    ours, naive = runs.get("ours"), runs.get("naive")
    idle_mb = idle.peak_rss_kb / 1024 if idle is not None else float("nan")
    rows: list[tuple[str, Any, str]] = [
        ("API requests / interval (window)", lambda r: r.requests_per_interval, "{:,.1f}"),
        ("API requests, 1st interval (all N)", lambda r: r.first_interval_requests, "{:,.0f}"),
        ("(1 GET per waiting task per interval)", lambda r: r.per_wait_gets / r.intervals if r.intervals else 0,
         "{:,.1f}"),
        ("peak RSS, triggerer + children (MB)", lambda r: r.rss_mb, "{:,.1f}"),
        ("peak PSS, triggerer + children (MB)", lambda r: r.pss_mb, "{:,.1f}"),
        ("peak RSS, trigger runner alone (VmHWM, MB)", lambda r: r.runner_mb, "{:,.1f}"),
        ("peak RSS sum minus idle triggerer's (MB)", lambda r: r.rss_mb - idle_mb, "{:,.1f}"),
        ("triggerer CPU s in window", lambda r: r.cpu_s, "{:.1f}"),
        ("triggerer CPU s / interval", lambda r: r.cpu_per_interval, "{:.2f}"),
        ("triggerer CPU % of one core", lambda r: r.cpu_pct, "{:.1f}"),
        ("  of which trigger runner (CPU s)", lambda r: r.runner_cpu_s, "{:.1f}"),
        ("machine CPU busy % (2 cores, window)", lambda r: r.machine_busy_pct, "{:.0f}"),
        ("other tenants' CPU (cores, window)", lambda r: r.others_cores, "{:.2f}"),
        ("simulator CPU % of one core (window)", lambda r: 100 * r.sim_cpu_s / r.window_s if r.window_s else 0,
         "{:.1f}"),
        ("detection lag p50 (s), DB poll", lambda r: r.lag(0.50), "{:.2f}"),
        ("detection lag p99 (s), DB poll", lambda r: r.lag(0.99), "{:.2f}"),
        ("detection lag max (s), DB poll", lambda r: max(r.lags) if r.lags else float("nan"), "{:.2f}"),
        ("detection lag p50 (s), updated_at", lambda r: r.quantile(r.lags_updated_at, 0.5), "{:.2f}"),
        ("detection lag p99 (s), updated_at", lambda r: r.quantile(r.lags_updated_at, 0.99), "{:.2f}"),
        ("lag: job end -> 'Trigger fired event' p50", lambda r: r.quantile(r.fired_lags, 0.5), "{:.2f}"),
        ("lag: job end -> 'Trigger fired event' p99", lambda r: r.quantile(r.fired_lags, 0.99), "{:.2f}"),
        ("lag: fired event -> TI updated_at p50", lambda r: r.quantile(r.to_db_lags, 0.5), "{:.2f}"),
        ("lag: fired event -> TI updated_at p99", lambda r: r.quantile(r.to_db_lags, 0.99), "{:.2f}"),
        ("'async thread was blocked' warnings", lambda r: r.blocked_warnings, "{:,}"),
        ("task instances resumed / failed", lambda r: f"{r.resumed:,} / {r.failed:,}", "{}"),
        ("seconds until all triggers ran", lambda r: r.load_s, "{:.0f}"),
    ]
    print(f"\n  N = {n:,}, poll interval {interval:g} s, window {WINDOW_INTERVALS} intervals"
          f"{'':<6}{'ours':>12} {'naive':>12} {'ours/naive':>11}")
    for label, get, fmt in rows:
        a = get(ours) if ours else None
        b = get(naive) if naive else None
        a_text = fmt.format(a) if a is not None else "not run"
        b_text = fmt.format(b) if b is not None else "not run"
        both_numbers = isinstance(a, (int, float)) and isinstance(b, (int, float))
        print(f"  {label:<48} {a_text:>12} {b_text:>12} {ratio(a, b) if both_numbers else '':>11}")
    if idle is not None:
        print(f"    idle triggerer (no trigger): RSS sum {idle.peak_rss_kb / 1024:.0f} MB, PSS sum "
              f"{idle.peak_pss_kb / 1024:.0f} MB; RSS (MB): {idle.parts()}")
    for run in (ours, naive):
        if run is None:
            continue
        print(f"    {run.variant}: RSS at the peak (MB): {run.rss_parts}")
        print(f"    {run.variant}: CPU s in the window: {run.cpu_labels}")
        print(f"    {run.variant}: requests in the window: "
              + ", ".join(f"{count:,} {route}" for route, count in run.routes.most_common()))
        for note in run.notes:
            print(f"    {run.variant}: note: {note}")


def targets(n: int, interval: float, runs: dict[str, Run], idle: Monitor | None, quick: bool) -> None:
    ours, naive = runs.get("ours"), runs.get("naive")
    print(f"\n  Targets at N = {n:,}" + (" (--quick: the targets are defined for the full run)" if quick else "") + ":")
    if ours is None:
        print("    (ours not run)")
        return
    checks: list[tuple[str, str, bool | None]] = []
    if naive is not None and naive.requests_per_interval:
        share = ours.requests_per_interval / naive.requests_per_interval
        checks.append(("requests/interval <= 1/20 of naive",
                       f"{ours.requests_per_interval:,.1f} vs {naive.requests_per_interval:,.1f} = "
                       f"{share:.4f} (1/{1 / share:,.0f})" if share else "0", share <= TARGET_RATIO))
    else:
        checks.append(("requests/interval <= 1/20 of naive", "naive not run", None))
    rss_label = f"peak RSS < {TARGET_RSS_MB:.0f} MB at {TARGET_RSS_AT:,}"
    checks.append((rss_label + ("" if n >= TARGET_RSS_AT else f" (here N = {n:,})"), f"{ours.rss_mb:.1f} MB",
                   ours.rss_mb < TARGET_RSS_MB))
    limit = interval + TARGET_LAG_EXTRA
    checks.append((f"detection lag p99 <= interval + {TARGET_LAG_EXTRA:g} s = {limit:g} s",
                   f"{ours.lag(0.99):.2f} s", ours.lag(0.99) <= limit))
    for label, value, ok in checks:
        mark = "n/a " if ok is None else ("PASS" if ok else "FAIL")
        print(f"    {mark}  {label}: {value}")
        if label.startswith("peak RSS"):
            floor = ""
            if idle is not None:
                floor = (f"; an idle triggerer (no trigger) is already {idle.peak_rss_kb / 1024:.0f} MB RSS sum, "
                         f"{idle.peak_pss_kb / 1024:.0f} MB PSS sum")
            print(f"          other readings: PSS sum {ours.pss_mb:.1f} MB, trigger runner alone "
                  f"{ours.runner_mb:.1f} MB{floor}")


def provider_revision() -> str:
    """The repository's commit, and whether the provider package has uncommitted changes."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "airflow_provider_lightning"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "at an unknown commit"
    return f"at {head}" + (" + uncommitted changes" if dirty else "") if head else "at an unknown commit"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--serve-simulator", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--seed-db", default="", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="N = 200, 5 s poll interval (development)")
    parser.add_argument("--sizes", default="", help="comma-separated numbers of waits (default 1000,5000)")
    parser.add_argument("--interval", type=float, default=None, help="poll interval in seconds (default 10)")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="ours,naive (default both)")
    parser.add_argument("--warmup-intervals", type=float, default=1.0,
                        help="poll intervals between 'every trigger runs' and the window (default 1)")
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite",
                        help="metadata DB of the triggerer (default sqlite)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (DBs, triggerer logs)")
    args = parser.parse_args()
    if args.serve_simulator:
        serve_simulator(args.seed)
        return
    if args.seed_db:
        seed(args.seed_db)
        return
    sizes = [int(s) for s in args.sizes.split(",") if s] or ([200] if args.quick else [1000, 5000])
    interval = args.interval or (5.0 if args.quick else 10.0)
    variants = [v for v in args.variants.split(",") if v]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}")

    def interrupted(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    began = time.time()
    print("Command: " + shlex.join([os.path.relpath(sys.executable), os.path.relpath(__file__), *sys.argv[1:]]))
    ns = ", ".join(f"{size:,}" for size in sizes)
    print(f"Real-triggerer scale: `airflow triggerer` (Airflow {version('apache-airflow')}, {args.db} metadata DB, "
          f"temp AIRFLOW_HOME; provider {provider_revision()}) against the simulator on loopback; N = {ns}; "
          f"poll interval {interval:g} s; {os.cpu_count()} CPUs")
    print("Variants (run one after the other, same jobs and schedule): ours = LightningPhaseTrigger "
          "(stream_logs=False, shared poller); naive = one new httpx.AsyncClient + GET /jobs/{id} per task per "
          "interval.")
    print(f"Window: {WINDOW_INTERVALS} intervals starting {args.warmup_intervals:g} interval(s) + 2 s after every "
          f"trigger runs; job i ends at W0 + (1 + 4u) intervals. Lag = first DB poll (every 0.2 s) that sees the "
          f"TI out of 'deferred' minus the "
          f"job's stoppedAt in the simulator; 'updated_at' = the TI row's updated_at (the triggerer's UPDATE) minus "
          f"stoppedAt. RSS/PSS: sum over the triggerer's process tree, sampled every 0.5 s / 2 s, peak over the run.")
    work = Path(tempfile.mkdtemp(prefix="lightning-triggerer-real-"))
    procs = Processes()
    database = Database(args.db, work)
    fernet_key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    try:
        log(f"work folder {work}: airflow db migrate + dags reserialize")
        database.start()
        log(f"metadata DB: {database.label()}")
        dags = make_template(work, database, interval, fernet_key)
        log("an idle triggerer (no trigger) for Airflow's own memory floor")
        idle = idle_triggerer(work, database, dags, fernet_key, procs)
        for n in sizes:
            print(f"\n== N = {n:,}", flush=True)
            runs: dict[str, Run] = {}
            for variant in variants:
                runs[variant] = measure(variant, n, interval, args.warmup_intervals, args.seed, work, database,
                                        dags, fernet_key, procs)
            table(n, interval, runs, idle)
            targets(n, interval, runs, idle, args.quick)
        print(f"\nWall time: {time.time() - began:.0f} s")
    except KeyboardInterrupt:
        print("\ninterrupted: stopping what was started", file=sys.stderr)
        raise SystemExit(130) from None
    finally:
        procs.stop_all()
        database.stop()
        if args.keep:
            print(f"\nkept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
