"""`make chaos`: hundreds of deferrable job tasks through real triggers against a faulty simulator.

What runs (all in this process, on loopback):

* one Lightning simulator in timed mode (jobs run for a few seconds and exit with a chosen code) with
  faults injected all along: about 10% 503, 2.5% connections dropped before the request is processed,
  2.5% dropped *after* it was processed (the job exists, the client never hears about it), bursts of 429
  with ``Retry-After``, and latency spikes of up to 5 s; it is stopped once mid-run and a new simulator
  is started on the same port from the same state file;
* real ``LightningJobOperator(deferrable=True)`` instances: ``execute()`` (in a pool of worker threads)
  submits under faults and raises ``TaskDeferred``; a task whose ``execute`` fails on an API error is
  retried with the next ``try_number``, as Airflow does with ``retries``;
* a triggerer stand-in: one event loop that builds each trigger from its ``serialize()`` classpath and
  kwargs, consumes ``run()`` the way Airflow 3.3's triggerer does, cancels every trigger once mid-run and
  rebuilds them from ``serialize()``, and kills some tasks while deferred (cancel the run coroutine with
  the user-action message, then ``await trigger.on_kill()`` with the 30 s timeout); kills also land in the
  simulator's downtime, and ``on_kill`` must ride through it (``--postpone-kills`` keeps them out of it);
  a kill whose ``CancelledError`` lost Airflow's message (Airflow would not call ``on_kill``) fails the run;
* each event resumes a *fresh* operator instance (``execute_complete``), as a new worker would.

Connections: ``lightning_default`` (API key, ``max_attempts`` 8) for every task that stops its job (timeout,
kill) and half of the others; ``lightning_jwt`` (a JWT, ``max_attempts`` 3) for the rest, so their polls fail
through the downtime and the trigger's ``max_poll_errors`` (set to 20 in the rebuilt kwargs: the operator does
not expose it) is what carries them. Retries of a task wait 2, 4, 8 ... s (``retry_exponential_backoff``).

Then it checks, and prints in a table: every task ended as it should (completed, failed, timed out and
stopped, killed and stopped), exactly one job per task in the simulator (no duplicate submission), no job
left running, one event per deferral (none lost, none duplicated), how many retries honoured
``Retry-After``, and that no API key or token appears in any captured log line (stdout and stderr are
captured at the file-descriptor level, plus the raw stdlib log records), trigger kwargs, events or XCom.
Exit code 1 when any check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import importlib
import json
import logging
import os
import random
import secrets
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="lightning-chaos-airflow-")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"  # silences ExecutorSafeguard for direct execute()
for _var in ("LIGHTNING_USER_ID", "LIGHTNING_API_KEY", "LIGHTNING_AUTH_TOKEN", "LIGHTNING_CLOUD_URL"):
    os.environ.pop(_var, None)
sys.path.insert(0, str(ROOT / "tests"))

import httpx  # noqa: E402
from airflow.sdk.exceptions import AirflowException, TaskDeferred  # noqa: E402
from lightning_simulator import LightningSimulator  # noqa: E402
from lightning_simulator.faults import FaultDecision, FaultInjector  # noqa: E402
from task_context import TaskInstanceStub  # noqa: E402

from airflow_provider_lightning.api import transport as transport_module  # noqa: E402
from airflow_provider_lightning.api.errors import LightningApiError  # noqa: E402
from airflow_provider_lightning.operators.base import run_name  # noqa: E402
from airflow_provider_lightning.operators.jobs import LightningJobOperator  # noqa: E402

DAG_ID = "chaos"
RUN_ID = "manual__2026-11-22T00:00:00+00:00"
USER_KILL = "__airflow_user_action__"  # Airflow 3.3's cancel message for a user action on a deferred task
TERMINAL = {"completed", "failed", "stopped", "deleted"}
EXPECTED = {"succeed": "completed", "fail": "failed", "timeout": "timeout", "killed": "killed",
            "reattach": "completed"}
EXPECTED_JOB_STATE = {"succeed": "completed", "fail": "failed", "timeout": "stopped", "killed": "stopped",
                      "reattach": "completed"}
_OUT_FD: int = 1  # the real stdout while fd 1 is captured


def say(message: str) -> None:
    os.write(_OUT_FD, (message + "\n").encode())


# ------------------------------------------------------------------------------------ instrumentation

TRANSPORTS: list[transport_module.Transport] = []
_transports_lock = threading.Lock()
_original_transport_init = transport_module.Transport.__init__


def _recording_init(self: transport_module.Transport, *args: Any, **kwargs: Any) -> None:
    _original_transport_init(self, *args, **kwargs)
    with _transports_lock:
        TRANSPORTS.append(self)


transport_module.Transport.__init__ = _recording_init  # type: ignore[method-assign]  # count every client


class ChaosFaults(FaultInjector):
    """The simulator's fault injector plus per-request latency spikes, counting what it injected."""

    def __init__(self, seed: int, spike_rate: float, spike_max: float) -> None:
        super().__init__(seed=seed)
        self.spike_rate = spike_rate
        self.spike_max = spike_max
        self.counts: Counter[str] = Counter()
        self.max_spike = 0.0
        self._spike_rng = random.Random(seed + 1)
        self._count_lock = threading.Lock()

    def decide(self, path: str) -> FaultDecision:
        decision = super().decide(path)
        with self._count_lock:
            latency = decision.latency
            if self.spike_rate and self._spike_rng.random() < self.spike_rate:
                latency += self._spike_rng.uniform(0.5, self.spike_max)
                self.counts["latency spike"] += 1
                self.max_spike = max(self.max_spike, latency)
            if decision.action:
                self.counts[decision.action] += 1
            self.counts["requests seen"] += 1
        if latency != decision.latency:
            return FaultDecision(latency=latency, action=decision.action, retry_after=decision.retry_after)
        return decision


class RawRecords(logging.Handler):
    """Keeps every stdlib log message unformatted (before any masking), to look for secrets in."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.messages.append(f"{record.name} {record.getMessage()} {record.exc_text or ''}")
        except Exception:  # a record that does not format is no reason to stop
            self.messages.append(f"{record.name} {record.msg!r} {record.args!r}")


@contextlib.contextmanager
def captured_fds(path: Path):
    """Send fd 1 and fd 2 (print, structlog, stdlib logging, tracebacks) to ``path``."""
    global _OUT_FD
    sys.stdout.flush()
    sys.stderr.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    with open(path, "wb") as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        _OUT_FD = saved_out
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved_out, 1)
            os.dup2(saved_err, 2)
            os.close(saved_out)
            os.close(saved_err)
            _OUT_FD = 1


# ------------------------------------------------------------------------------------------ tasks


@dataclass
class Spec:
    task_id: str
    outcome: str  # succeed | fail | timeout | killed | reattach
    duration: float
    exit_code: int = 0
    timeout: float | None = None
    kill_after: float | None = None
    conn_id: str = "lightning_default"
    stream_logs: bool = True


@dataclass
class Task:
    spec: Spec
    base_name: str = ""
    tries: int = 0
    api_errors: list[str] = field(default_factory=list)
    job_ids: list[str] = field(default_factory=list)
    deferred: TaskDeferred | None = None
    ctx: dict[str, Any] | None = None
    deferred_kwargs: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    past_events: list[int] = field(default_factory=list)  # events of earlier deferrals (each must be 1)
    stop_failures: list[str] = field(default_factory=list)
    resumes: int = 0
    died_once: bool = False
    killed: bool = False
    kill_error: str = ""
    result: Any = None
    outcome: str = ""
    message: str = ""
    done: threading.Event = field(default_factory=threading.Event)

    def finish(self, outcome: str, message: str = "") -> None:
        if self.done.is_set():
            self.outcome, self.message = "finished twice", f"{self.outcome} then {outcome}: {message}"
            return
        self.outcome, self.message = outcome, message
        self.done.set()


def plan(count: int, rng: random.Random) -> list[Spec]:
    shares = [("succeed", 0.40), ("fail", 0.20), ("timeout", 0.16), ("killed", 0.16), ("reattach", 0.08)]
    specs: list[Spec] = []
    kinds = [k for k, share in shares for _ in range(round(count * share))]
    kinds += ["succeed"] * (count - len(kinds))
    rng.shuffle(kinds)
    for i, kind in enumerate(kinds):
        spec = Spec(task_id=f"t{i:04d}-{kind}", outcome=kind, duration=round(rng.uniform(3, 8), 1))
        if kind == "fail":
            spec.duration, spec.exit_code = round(rng.uniform(2, 6), 1), rng.choice([1, 2, 3, 137])
        elif kind == "timeout":
            spec.duration, spec.timeout = 600.0, round(rng.uniform(4, 9), 1)
        elif kind == "killed":
            spec.duration, spec.kill_after = 600.0, round(rng.uniform(2, 8), 1)
        # lightning_default: API key, max_attempts 8; lightning_jwt: JWT, max_attempts 3, so its polls fail
        # through the simulator's downtime and the trigger's max_poll_errors is what carries them. Tasks
        # that stop their job (timeout, kill) use the sturdier one: stop and on_kill are one-shot calls.
        fragile = kind in ("succeed", "fail", "reattach") and i % 2 == 0
        spec.conn_id = "lightning_jwt" if fragile else "lightning_default"
        spec.stream_logs = i % 4 != 0
        specs.append(spec)
    return specs


def make_operator(spec: Spec, poll_interval: float) -> LightningJobOperator:
    kwargs: dict[str, Any] = {
        "task_id": spec.task_id,
        "image": "python:3.11-slim",
        "command": "python train.py",
        "env": {"SIM_DURATION_SECONDS": f"{spec.duration:g}", "SIM_EXIT_CODE": str(spec.exit_code)},
        "deferrable": True,
        "poll_interval": poll_interval,
        "lightning_conn_id": spec.conn_id,
        "stream_logs": spec.stream_logs,
    }
    if spec.timeout:
        kwargs["timeout"] = spec.timeout
    return LightningJobOperator(**kwargs)


def classify(error: AirflowException) -> str:
    text = str(error)
    if text.startswith("Timed out"):
        return "timeout" if "the job this task started was stopped" in text else "timeout, stop failed"
    if "ended in phase failed" in text:
        return "failed"
    if "ended in phase stopped" in text:
        return "stopped"
    return "error"


# -------------------------------------------------------------------------------------- triggerer


class Triggerer:
    """Runs triggers in one event loop (its own thread) the way Airflow 3.3's triggerer drives them."""

    def __init__(self, on_event: Any, max_poll_errors: int, kill_gate: Any = None) -> None:
        self.on_event = on_event
        self.max_poll_errors = max_poll_errors
        self.kill_gate = kill_gate  # awaited before a kill (counts kills in the downtime, may postpone them)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="triggerer", daemon=True)
        self.running: dict[str, tuple[Any, asyncio.Task[None]]] = {}
        self.began: dict[str, asyncio.Event] = {}
        self.lock: asyncio.Lock | None = None
        self.crashes: list[str] = []
        self.messages_lost: list[str] = []  # user kills whose cancel message the HTTP stack dropped
        self.started = 0
        self.rebuilt = 0
        self.kills = 0

    def start(self) -> None:
        self.thread.start()
        self.call(self._init())

    async def _init(self) -> None:
        self.lock = asyncio.Lock()

    def call(self, coro: Any, timeout: float | None = 120) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def add(self, task: Task, classpath: str, kwargs: dict[str, Any]) -> None:
        asyncio.run_coroutine_threadsafe(self._add(task, classpath, kwargs), self.loop)

    async def _add(self, task: Task, classpath: str, kwargs: dict[str, Any]) -> None:
        assert self.lock is not None
        async with self.lock:
            # The operator does not expose max_poll_errors; a high value lets polls ride through the
            # simulator restart and long fault streaks (the default is 5).
            self._start(task, classpath, {**kwargs, "max_poll_errors": self.max_poll_errors})
        if task.spec.kill_after is not None:
            self.loop.call_later(task.spec.kill_after, lambda: self.loop.create_task(self.kill(task)))

    def _start(self, task: Task, classpath: str, kwargs: dict[str, Any]) -> None:
        module, _, name = classpath.rpartition(".")
        trigger = getattr(importlib.import_module(module), name)(**kwargs)
        began = asyncio.Event()
        runner = self.loop.create_task(self._run(task, trigger, began), name=task.spec.task_id)
        self.running[task.spec.task_id] = (trigger, runner)
        self.began[task.spec.task_id] = began
        self.started += 1

    async def _run(self, task: Task, trigger: Any, began: asyncio.Event) -> None:
        began.set()  # a task cancelled before its first step would never see the CancelledError below
        try:
            async for event in trigger.run():
                task.events.append(event.payload)
                if len(task.events) == 1:
                    self.on_event(task, event.payload)
        except asyncio.CancelledError as cancel:
            if cancel.args and cancel.args[0] == USER_KILL:
                try:
                    await asyncio.wait_for(trigger.on_kill(), timeout=30)
                except TimeoutError:
                    task.kill_error = "on_kill() timed out"
                except Exception as error:
                    task.kill_error = f"on_kill() raised {error!r}"
                task.finish("killed" if not task.kill_error else "kill failed", task.kill_error)
            elif task.killed:
                # The CancelledError lost Airflow's user-action message (a cancel landing inside anyio's cancel
                # scopes does that; the trigger awaits its I/O detached so it never should): Airflow 3.3 would not
                # call on_kill() here. A failed check; the harness stops the job itself so the run goes on.
                self.messages_lost.append(f"{task.spec.task_id}: {cancel.args!r}"[:200])
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(trigger.on_kill(), timeout=30)
                task.finish("killed", "cancel message lost in the HTTP stack; job stopped by the harness")
            raise
        except Exception as error:  # a trigger crash fails the task in Airflow
            self.crashes.append(f"{task.spec.task_id}: {error!r}")
            task.finish("trigger crashed", repr(error))
        finally:
            with contextlib.suppress(Exception):
                await trigger.cleanup()
            entry = self.running.get(task.spec.task_id)
            if entry is not None and entry[1] is asyncio.current_task():
                del self.running[task.spec.task_id]

    async def kill(self, task: Task) -> None:
        """A user marks the deferred task failed: cancel its trigger with the user-action message."""
        assert self.lock is not None
        if self.kill_gate is not None:
            await self.kill_gate(task)
        async with self.lock:  # not while the triggerer restarts
            entry = self.running.get(task.spec.task_id)
            if entry is None or task.events:
                task.kill_error = "the trigger was not running when the kill came"
                task.finish("kill missed", task.kill_error)
                return
            await self.began[task.spec.task_id].wait()
            task.killed = True
            self.kills += 1
            del self.running[task.spec.task_id]  # a restart from now on leaves it alone
        entry[1].cancel(USER_KILL)
        await asyncio.gather(entry[1], return_exceptions=True)

    async def restart(self) -> tuple[int, int]:
        """Cancel every trigger (triggerer shutdown: no on_kill), rebuild each from serialize() and run it."""
        assert self.lock is not None
        async with self.lock:
            current = list(self.running.items())
            for _, (_, runner) in current:
                runner.cancel()
            await asyncio.gather(*(runner for _, (_, runner) in current), return_exceptions=True)
            rebuilt = 0
            for task_id, (trigger, _) in current:
                task = TASKS[task_id]
                if task.events or task.killed:
                    continue
                classpath, kwargs = trigger.serialize()
                json.dumps(kwargs)  # what the triggerer stores must be plain JSON
                task.deferred_kwargs.append(kwargs)
                self._start(task, classpath, kwargs)
                rebuilt += 1
            self.rebuilt += rebuilt
            return len(current), rebuilt

    async def _stop_all(self) -> None:
        runners = [runner for _, runner in self.running.values()]
        for runner in runners:
            runner.cancel()
        await asyncio.gather(*runners, return_exceptions=True)

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.call(self._stop_all(), timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


TASKS: dict[str, Task] = {}


# ------------------------------------------------------------------------------------------ the run


@dataclass
class Chaos:
    args: argparse.Namespace
    faults: ChaosFaults
    sim: LightningSimulator
    sim_kwargs: dict[str, Any]
    pool: ThreadPoolExecutor
    triggerer: Triggerer | None = None
    t0: float = 0.0
    old_request_logs: list[Any] = field(default_factory=list)
    timeline: list[str] = field(default_factory=list)
    restart_info: dict[str, Any] = field(default_factory=dict)
    kills_postponed: int = 0
    kills_in_outage: int = 0

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def note(self, message: str) -> None:
        line = f"[chaos {self.elapsed():6.1f}s] {message}"
        self.timeline.append(line)
        say(line)

    # -- the worker side ------------------------------------------------------------------------

    def run_task(self, task: Task, first_try: int = 1) -> None:
        spec = task.spec
        for try_number in range(first_try, self.args.tries + 1):
            task.tries = try_number
            ti = TaskInstanceStub(dag_id=DAG_ID, task_id=spec.task_id, run_id=RUN_ID, try_number=try_number)
            ctx: dict[str, Any] = {"ti": ti}
            task.base_name = run_name(f"{DAG_ID}-{spec.task_id}", ctx)
            try:
                result = make_operator(spec, self.args.poll_interval).execute(ctx)
            except TaskDeferred as deferred:
                if ti.xcoms.get("job_id"):
                    task.job_ids.append(ti.xcoms["job_id"])
                if spec.outcome == "reattach" and not task.died_once:
                    task.died_once = True
                    continue  # the worker dies right after submitting: the deferral is never recorded
                if task.deferred is not None:  # an earlier try deferred too: keep its event count
                    task.past_events.append(len(task.events))
                task.deferred, task.ctx, task.events, task.resumes = deferred, ctx, [], 0
                classpath, kwargs = deferred.trigger.serialize()
                json.dumps(kwargs)
                task.deferred_kwargs.append(kwargs)
                assert self.triggerer is not None
                self.triggerer.add(task, classpath, kwargs)
                return
            except AirflowException as error:
                task.finish(classify(error), str(error))
                return
            except (LightningApiError, httpx.HTTPError) as error:  # Airflow retries the task (retries > 0)
                task.api_errors.append(f"try {try_number}: {type(error).__name__}: {error}")
                time.sleep(self.retry_delay(try_number))
                continue
            except Exception as error:
                task.finish("crashed", repr(error))
                return
            if ti.xcoms.get("job_id"):
                task.job_ids.append(ti.xcoms["job_id"])
            task.result = result  # returned without deferring (re-attached to a job that already finished)
            task.finish(result.get("phase", "?") if isinstance(result, dict) else "?", "returned without deferring")
            return
        task.finish("out of tries", "; ".join(task.api_errors[-2:]))

    def retry_delay(self, try_number: int) -> float:
        """Airflow's ``retry_delay`` with ``retry_exponential_backoff``: 2, 4, 8 ... seconds."""
        return self.args.retry_delay * 2 ** (try_number - 1)

    def on_event(self, task: Task, payload: dict[str, Any]) -> None:
        self.pool.submit(self.resume, task, payload)

    def resume(self, task: Task, payload: dict[str, Any]) -> None:
        """A new worker runs the resume method on a fresh operator instance (same ti, so XComs survive)."""
        assert task.deferred is not None and task.ctx is not None
        task.resumes += 1
        operator = make_operator(task.spec, self.args.poll_interval)
        method = getattr(operator, task.deferred.method_name)
        try:
            task.result = method(task.ctx, event=payload)  # the event only, as dag.test() resumes
        except AirflowException as error:
            outcome = classify(error)
            if outcome == "timeout, stop failed" and task.tries < self.args.tries:
                # The stop hit an API error: the task fails and Airflow retries it; the next try re-attaches
                # to the still running job and stops it when its own timeout passes.
                task.stop_failures.append(str(error)[:400])
                time.sleep(self.retry_delay(task.tries))
                self.run_task(task, task.tries + 1)
                return
            task.finish(outcome, str(error))
        except Exception as error:
            task.finish("crashed on resume", repr(error))
        else:
            phase = task.result.get("phase", "?") if isinstance(task.result, dict) else "?"
            task.finish(phase)

    # -- chaos ----------------------------------------------------------------------------------

    def base_faults(self, burst: bool) -> None:
        self.sim.set_faults(
            error_rate=self.args.error_rate,
            drop_rate=self.args.drop_rate / 2,
            drop_response_rate=self.args.drop_rate / 2,
            rate_limit_rate=self.args.burst_rate if burst else 0.0,
            retry_after=self.args.retry_after,
        )

    def fault_bursts(self, stop: threading.Event) -> None:
        """429 bursts: ``burst_seconds`` of heavy rate limiting every ``burst_every`` seconds."""
        in_burst = False
        while not stop.wait(0.1):
            phase = self.elapsed() % self.args.burst_every
            want = self.args.burst_every - self.args.burst_seconds <= phase
            if want != in_burst:
                in_burst = want
                with contextlib.suppress(Exception):  # the simulator may be restarting
                    self.base_faults(in_burst)

    async def kill_gate(self, task: Task) -> None:
        """Count a kill that meets the simulator's downtime (from 3 s before it to 1 s after).

        The trigger's ``on_kill`` retries until just before Airflow's ``on_kill_timeout``, so such a kill
        still stops its job. ``--postpone-kills`` postpones it until the simulator is back instead.
        """
        start = self.args.sim_restart_at - 3.0
        end = self.args.sim_restart_at + self.args.downtime + 1.0
        now = self.elapsed()
        if start <= now < end:
            if self.args.postpone_kills:
                self.kills_postponed += 1
                await asyncio.sleep(end - now)
            else:
                self.kills_in_outage += 1

    def restart_simulator(self) -> None:
        port, old = self.sim.port, self.sim
        running = sum(1 for j in old.jobs() if j["state"] not in TERMINAL)
        self.note(f"stopping the simulator on port {port} ({running} jobs not finished)")
        old.stop()
        self.old_request_logs.append(old.request_log)
        time.sleep(self.args.downtime)
        new = LightningSimulator(port=port, **self.sim_kwargs)
        new.faults = self.faults  # same injector: same settings, counts go on
        new.start()
        self.sim = new
        kept = len(new.jobs())
        self.restart_info.update(port=port, jobs_kept=kept)
        self.note(f"simulator started again on port {new.port} from the state file ({kept} jobs kept)")


def run(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="lightning-chaos-"))
    artifacts = ROOT / "test-artifacts" / "chaos"
    artifacts.mkdir(parents=True, exist_ok=True)
    log_path = artifacts / "chaos.log"
    api_key = "chaos-key-" + secrets.token_hex(12)
    sim_kwargs: dict[str, Any] = {
        "api_key": api_key, "timed_jobs": True, "pending_seconds": 0.5, "stop_seconds": 0.3,
        "state_file": work / "state.json", "seed": args.seed,
    }
    faults = ChaosFaults(args.seed, args.spike_rate, args.spike_max)
    sim = LightningSimulator(**sim_kwargs)
    sim.faults = faults
    sim.start()
    jwt = httpx.post(f"{sim.url}/v1/auth/login", json={"apiKey": api_key, "username": sim.username},
                     timeout=10).json()["token"]
    basic = base64.b64encode(f"{sim.user_id}:{api_key}".encode()).decode()
    secret_values = {"API key": api_key, "Basic token": basic, "JWT": jwt, "JWT signature": jwt.rsplit(".", 1)[1]}
    os.environ["AIRFLOW_CONN_LIGHTNING_DEFAULT"] = json.dumps({
        "conn_type": "lightning", "host": sim.url, "login": sim.user_id, "password": api_key,
        "extra": {"teamspace": sim.teamspace, "max_attempts": args.max_attempts}})
    os.environ["AIRFLOW_CONN_LIGHTNING_JWT"] = json.dumps({
        "conn_type": "lightning", "host": sim.url, "login": sim.user_id,
        "extra": {"teamspace": sim.teamspace, "max_attempts": args.fragile_max_attempts, "auth_token": jwt}})

    specs = plan(args.tasks, rng)
    for spec in specs:
        TASKS[spec.task_id] = Task(spec)
    pool = ThreadPoolExecutor(max_workers=args.workers, thread_name_prefix="worker")
    chaos = Chaos(args, faults, sim, sim_kwargs, pool)
    raw = RawRecords()
    logging.getLogger().addHandler(raw)
    stop_bursts = threading.Event()
    say(f"== chaos: {len(specs)} tasks, seed {args.seed}, simulator {sim.url}; full log in "
        f"{log_path.relative_to(ROOT)}")
    started = time.monotonic()
    with captured_fds(log_path):
        chaos.t0 = time.monotonic()
        triggerer = Triggerer(chaos.on_event, args.max_poll_errors,
                              chaos.kill_gate)
        chaos.triggerer = triggerer
        triggerer.start()
        chaos.base_faults(False)
        bursts = threading.Thread(target=chaos.fault_bursts, args=(stop_bursts,), daemon=True)
        bursts.start()

        def feed() -> None:
            gap = args.arrival_seconds / max(len(specs), 1)
            for i, spec in enumerate(specs):
                delay = chaos.t0 + i * gap - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                pool.submit(chaos.run_task, TASKS[spec.task_id])

        feeder = threading.Thread(target=feed, name="feeder", daemon=True)
        feeder.start()

        events = sorted([(args.sim_restart_at, "sim"), (args.triggerer_restart_at, "triggerer")])
        for at, what in events:
            time.sleep(max(0.0, chaos.t0 + at - time.monotonic()))
            if what == "triggerer":  # restart while many triggers run (the workers may still catch up)
                latest = time.monotonic() + args.triggerer_restart_wait
                while len(triggerer.running) < args.triggerer_restart_min and time.monotonic() < latest:
                    time.sleep(0.1)
            if what == "sim":
                chaos.restart_simulator()
            else:
                began = time.monotonic()
                cancelled, rebuilt = triggerer.call(triggerer.restart())
                chaos.note(f"triggerer restarted in {time.monotonic() - began:.2f} s: {cancelled} trigger "
                           f"coroutines cancelled, {rebuilt} rebuilt from serialize()")
                chaos.restart_info["triggers_cancelled"] = cancelled
                chaos.restart_info["triggers_rebuilt"] = rebuilt

        deadline = chaos.t0 + args.max_seconds
        last_report = 0.0
        while not all(t.done.is_set() for t in TASKS.values()) and time.monotonic() < deadline:
            time.sleep(0.2)
            if time.monotonic() - last_report > 10:
                last_report = time.monotonic()
                finished = sum(t.done.is_set() for t in TASKS.values())
                chaos.note(f"{finished}/{len(TASKS)} tasks finished, {len(triggerer.running)} triggers running")
        stop_bursts.set()
        bursts.join(2)
        chaos.sim.clear_faults()
        chaos.note("all tasks finished" if all(t.done.is_set() for t in TASKS.values()) else "deadline reached")
        # let stop requests settle (stop -> stopping -> stopped)
        settle = time.monotonic() + 5
        while time.monotonic() < settle and any(j["state"] not in TERMINAL for j in chaos.sim.jobs()):
            time.sleep(0.1)
        triggerer.stop()
        pool.shutdown(wait=False, cancel_futures=True)
    duration = time.monotonic() - started
    logging.getLogger().removeHandler(raw)
    try:
        return report(chaos, secret_values, raw, log_path, duration)
    finally:
        chaos.sim.stop()


# ------------------------------------------------------------------------------------------ checks


def report(chaos: Chaos, secret_values: dict[str, str], raw: RawRecords, log_path: Path, duration: float) -> int:
    args = chaos.args
    failures: list[str] = []
    jobs = chaos.sim.jobs()
    tasks = list(TASKS.values())

    # 1. outcomes: what the task ended as, and the phase the job ended in
    expected_counts = Counter(t.spec.outcome for t in tasks)
    got_counts: Counter[str] = Counter()
    wrong: list[str] = []
    for task in tasks:
        mine = [j for j in jobs if j["name"].startswith(task.base_name)] if task.base_name else []
        job_state = mine[0]["state"] if len(mine) == 1 else f"{len(mine)} jobs"
        ok = task.outcome == EXPECTED[task.spec.outcome] and job_state == EXPECTED_JOB_STATE[task.spec.outcome]
        if task.spec.outcome == "reattach":
            ok = ok and len(task.job_ids) >= 2 and len(set(task.job_ids)) == 1
        if ok:
            got_counts[task.spec.outcome] += 1
        else:
            wrong.append(f"{task.spec.task_id}: ended {task.outcome or 'not finished'!r} (job {job_state}, "
                         f"tries {task.tries}, jobs seen {task.job_ids}): {task.message[:300]}")
    if wrong:
        failures.append(f"{len(wrong)} tasks did not end as expected")

    # 2. duplicates: jobs per task in the simulator
    per_task = {t.spec.task_id: sum(1 for j in jobs if t.base_name and j["name"].startswith(t.base_name))
                for t in tasks}
    duplicates = {k: n for k, n in per_task.items() if n > 1}
    missing = {k: n for k, n in per_task.items() if n == 0}
    if duplicates:
        failures.append(f"{len(duplicates)} tasks have more than one job: {sorted(duplicates.items())[:10]}")
    if missing:
        failures.append(f"{len(missing)} tasks have no job: {sorted(missing)[:10]}")
    unowned = [j["name"] for j in jobs if not any(t.base_name and j["name"].startswith(t.base_name) for t in tasks)]
    if unowned:
        failures.append(f"{len(unowned)} jobs belong to no task: {unowned[:10]}")

    # 3. jobs left running (anywhere, and in particular after a kill or a timeout)
    left_running = [j for j in jobs if j["state"] not in TERMINAL]
    stopped_kinds = [t for t in tasks if t.spec.outcome in ("timeout", "killed")]
    left_after_stop = [
        j for t in stopped_kinds for j in jobs if j["name"].startswith(t.base_name) and j["state"] not in TERMINAL
    ]
    if left_running:
        failures.append(f"{len(left_running)} jobs still running: {[j['name'] for j in left_running][:10]}")

    # 4. events: one per deferral, none lost, none duplicated
    deferred = [t for t in tasks if t.deferred is not None]
    lost = [t.spec.task_id for t in deferred if not t.killed and not t.events]
    dup_events = [t.spec.task_id for t in deferred
                  if len(t.events) > 1 or t.resumes > 1 or any(n != 1 for n in t.past_events)]
    killed_with_event = [t.spec.task_id for t in deferred if t.killed and t.events]
    if lost:
        failures.append(f"{len(lost)} deferred tasks never got an event: {lost[:10]}")
    if dup_events:
        failures.append(f"{len(dup_events)} tasks got more than one event or resume: {dup_events[:10]}")
    if killed_with_event:
        failures.append(f"{len(killed_with_event)} killed tasks also got an event: {killed_with_event[:10]}")
    kill_problems = [f"{t.spec.task_id}: {t.kill_error}" for t in tasks if t.spec.outcome == "killed" and t.kill_error]
    if chaos.triggerer and chaos.triggerer.messages_lost:
        failures.append(f"{len(chaos.triggerer.messages_lost)} kills lost Airflow's cancel message (on_kill would "
                        f"not run): {chaos.triggerer.messages_lost[:3]}")
    if chaos.triggerer and chaos.triggerer.crashes:
        failures.append(f"{len(chaos.triggerer.crashes)} trigger crashes: {chaos.triggerer.crashes[:5]}")
    if not chaos.restart_info.get("triggers_rebuilt"):
        failures.append("the triggerer restart rebuilt no trigger (nothing was running at that time)")
    if not chaos.restart_info.get("port"):
        failures.append("the simulator was not restarted")

    # 5. transport figures, Retry-After
    honoured = sum(t.stats.retry_after_honoured for t in TRANSPORTS)
    client_requests = sum(t.stats.requests for t in TRANSPORTS)
    client_retries = sum(t.stats.retries for t in TRANSPORTS)
    injected = chaos.faults.counts
    if honoured == 0:
        failures.append("no request honoured Retry-After (were 429 bursts injected?)")
    if honoured > injected["429"]:
        failures.append(f"{honoured} Retry-After waits but only {injected['429']} 429 answers were sent")
    logs = [*chaos.old_request_logs, chaos.sim.request_log]
    sim_requests = sum(len(log) for log in logs)
    statuses = Counter(r.status for log in logs for r in log)
    creates = Counter(r.status for log in logs for r in log
                      if r.method == "POST" and r.path.split("?")[0].endswith("/jobs"))

    # 6. secrets: captured stdout/stderr, raw stdlib records, trigger kwargs, events, XCom, results
    text = log_path.read_bytes().decode("utf-8", errors="replace")
    lines = text.splitlines()
    leaks: list[str] = []
    for label, value in secret_values.items():
        hits = [ln for ln in lines if value in ln]
        if hits:
            leaks.append(f"{label} in {len(hits)} captured log lines, e.g. {hits[0][:200]!r}")
        if any(value in m for m in raw.messages):
            leaks.append(f"{label} in a raw log record")
        for task in tasks:
            blobs = [json.dumps(k) for k in task.deferred_kwargs] + [json.dumps(e, default=str) for e in task.events]
            blobs += [json.dumps(task.ctx["ti"].xcoms, default=str)] if task.ctx else []
            blobs += [json.dumps(task.result, default=str), task.message]
            if any(value in b for b in blobs):
                leaks.append(f"{label} in the kwargs, events, XCom or result of {task.spec.task_id}")
                break
    if leaks:
        failures.append("credentials leaked: " + "; ".join(leaks))
    markers = {"submitted": sum("Submitted Lightning job" in ln for ln in lines),
               "retry warnings": sum("retrying in" in ln for ln in lines),
               "streamed job log lines": sum("timed job: runs" in ln for ln in lines),
               "kill warnings": sum("Task killed:" in ln for ln in lines)}
    poll_failures = sum("Polling " in ln and " failed" in ln for ln in lines)
    if not all(markers.values()):
        failures.append(f"the log capture missed expected lines (so the secret check proves little): {markers}")

    # ---------------------------------------------------------------------------------- table
    out = [f"== chaos summary ({len(tasks)} tasks, seed {args.seed}, {duration:.1f} s)", ""]
    out.append(f"  {'outcome':<34}{'expected':>9}{'got':>7}")
    for kind in ("succeed", "fail", "timeout", "killed", "reattach"):
        label = {"succeed": "succeed (completed)", "fail": "fail (non-zero exit -> failed)",
                 "timeout": "time out (job stopped)", "killed": "killed while deferred (job stopped)",
                 "reattach": "try 1 died, try 2 re-attached"}[kind]
        out.append(f"  {label:<34}{expected_counts[kind]:>9}{got_counts[kind]:>7}")
    out.append(f"  {'total':<34}{len(tasks):>9}{sum(got_counts.values()):>7}")
    out.append("")
    rows = [
        ("duplicate submissions (tasks with > 1 job)", len(duplicates)),
        ("tasks with no job", len(missing)),
        ("jobs left running (all / after kill or timeout)", f"{len(left_running)} / {len(left_after_stop)}"),
        ("events lost / duplicated", f"{len(lost)} / {len(dup_events)}"),
        ("kills that failed", len(kill_problems)),
        ("kills in the simulator downtime (on_kill rode through) / postponed",
         f"{chaos.kills_in_outage} / {chaos.kills_postponed if args.postpone_kills else 'none'}"),
        ("trigger crashes", len(chaos.triggerer.crashes) if chaos.triggerer else "?"),
        ("kills whose CancelledError lost the user-action message",
         len(chaos.triggerer.messages_lost) if chaos.triggerer else "?"),
        ("tasks retried after API errors in execute()", sum(1 for t in tasks if t.api_errors)),
        ("timeout stops that failed, retried and re-attached", sum(len(t.stop_failures) for t in tasks)),
        ("requests that honoured Retry-After", honoured),
        ("requests: client-sent / simulator-logged", f"{client_requests} / {sim_requests}"),
        ("client retries (transport)", client_retries),
        ("job create POSTs (answered / 503 / 429 / dropped)",
         f"{sum(creates.values())} ({creates[200]} / {creates[503]} / {creates[429]} / {creates[0]}) "
         f"for {len(jobs)} jobs"),
        ("answers by status (0 = dropped)", ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items()))),
        ("faults injected", ", ".join(
            f"{k}: {injected[k]}" for k in ("503", "429", "drop", "drop_response", "latency spike"))),
        ("fault rates (of requests seen)", ", ".join(
            f"{k} {100 * injected[k] / max(injected['requests seen'], 1):.1f}%"
            for k in ("503", "429", "drop", "drop_response", "latency spike"))),
        ("longest latency spike", f"{chaos.faults.max_spike:.1f} s"),
        ("simulator restart", f"port {chaos.restart_info.get('port')} down {args.downtime:.1f} s, "
                              f"{chaos.restart_info.get('jobs_kept')} jobs kept"),
        ("triggerer restart (cancelled / rebuilt)",
         f"{chaos.restart_info.get('triggers_cancelled')} / {chaos.restart_info.get('triggers_rebuilt')}"),
        ("failed polls logged by triggers (tolerated)", poll_failures),
        ("trigger max_poll_errors (set by the harness)", args.max_poll_errors),
        ("connections (max_attempts)", f"lightning_default API key ({args.max_attempts}), "
                                       f"lightning_jwt JWT ({args.fragile_max_attempts})"),
        ("captured log lines / raw log records", f"{len(lines)} / {len(raw.messages)}"),
        ("log markers", ", ".join(f"{k} {v}" for k, v in markers.items())),
        ("credentials found in logs, kwargs, events, XCom", len(leaks)),
        ("duration", f"{duration:.1f} s"),
    ]
    width = max(len(r[0]) for r in rows) + 2
    out += [f"  {name:<{width}}{value}" for name, value in rows]
    if wrong:
        out += ["", "Tasks that did not end as expected:"] + [f"  {w}" for w in wrong[:25]]
    if kill_problems:
        out += ["", "Kill problems:"] + [f"  {k}" for k in kill_problems[:10]]
    stop_failures = [f"{t.spec.task_id}: {m}" for t in tasks for m in t.stop_failures]
    if stop_failures:
        out += ["", "Timeout stops that failed (the retried task re-attached and stopped the job):"]
        out += [f"  {m}" for m in stop_failures[:10]]
    out.append("")
    out += [f"FAILED: {f}" for f in failures] or ["PASSED: every check held"]
    summary = "\n".join(out)
    print(summary, flush=True)
    (log_path.parent / "summary.txt").write_text(summary + "\n", encoding="utf-8")
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=250)
    parser.add_argument("--seed", type=int, default=int(os.environ.get("CHAOS_SEED", "0")) or None)
    parser.add_argument("--workers", type=int, default=16, help="worker threads running execute()")
    parser.add_argument("--arrival-seconds", type=float, default=20.0, help="tasks start spread over this time")
    parser.add_argument("--poll-interval", type=float, default=1.0)
    parser.add_argument("--tries", type=int, default=5, help="Airflow tries per task (retries + 1)")
    parser.add_argument("--retry-delay", type=float, default=2.0, help="first retry delay, doubled each try")
    parser.add_argument("--error-rate", type=float, default=0.10, help="503 answers")
    parser.add_argument("--drop-rate", type=float, default=0.05, help="dropped connections (half after processing)")
    parser.add_argument("--burst-rate", type=float, default=0.6, help="429 rate inside a burst")
    parser.add_argument("--burst-every", type=float, default=6.0)
    parser.add_argument("--burst-seconds", type=float, default=1.5)
    parser.add_argument("--retry-after", type=float, default=1.0)
    parser.add_argument("--spike-rate", type=float, default=0.01, help="requests delayed by a latency spike")
    parser.add_argument("--spike-max", type=float, default=5.0)
    parser.add_argument("--sim-restart-at", type=float, default=10.0)
    parser.add_argument("--downtime", type=float, default=5.0)
    parser.add_argument("--triggerer-restart-at", type=float, default=18.0)
    parser.add_argument("--triggerer-restart-min", type=int, default=50,
                        help="wait (at most --triggerer-restart-wait s) until this many triggers run")
    parser.add_argument("--triggerer-restart-wait", type=float, default=15.0)
    parser.add_argument("--max-poll-errors", type=int, default=20)
    parser.add_argument("--postpone-kills", action="store_true",
                        help="postpone kills that meet the simulator downtime until it ends (see kill_gate)")
    parser.add_argument("--max-attempts", type=int, default=8, help="max_attempts of lightning_default")
    parser.add_argument("--fragile-max-attempts", type=int, default=3, help="max_attempts of lightning_jwt")
    parser.add_argument("--max-seconds", type=float, default=240.0, help="give up (and fail) after this")
    args = parser.parse_args(argv)
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1, 10**6)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
