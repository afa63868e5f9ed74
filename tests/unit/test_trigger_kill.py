"""A user's kill of a deferred task: Airflow must see its cancel message, and ``on_kill`` must ride out an outage.

Airflow 3.3's triggerer calls ``on_kill`` only when the ``CancelledError`` leaving the trigger carries its
user-action message. A cancel landing inside anyio's cancel scopes (httpx's connection pool) comes out without
it, so the trigger awaits its network I/O detached from its own task. ``on_kill`` itself retries with short
pauses until just before Airflow's ``on_kill_timeout``, and a failed read never keeps the stop from going out.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import replace
from typing import Any

import httpx
import pytest
from scripted_server import Reply, ScriptedServer

from airflow_provider_lightning.api.errors import LightningApiError
from airflow_provider_lightning.api.stopping import STOP_RETRY, StopFailedError
from airflow_provider_lightning.triggers import lightning
from airflow_provider_lightning.triggers.lightning import LightningPhaseTrigger, detached

try:
    from airflow.jobs.triggerer_job_runner import _USER_ACTION_CANCEL_MSG
except ImportError:  # Airflow < 3.3 never calls a trigger's on_kill (make test-floor); on_kill itself is still tested
    _USER_ACTION_CANCEL_MSG = None

needs_trigger_on_kill = pytest.mark.skipif(
    _USER_ACTION_CANCEL_MSG is None,
    reason="needs Airflow 3.3+: the triggerer's user-action cancel message (and calling a trigger's on_kill) "
    "arrived in Airflow 3.3",
)

JOB = "/v1/projects/p1/jobs/job-1"
FINISHED = ("finished before the cancel",)
UNAVAILABLE = Reply(503, "<html>upstream unavailable</html>", {"Content-Type": "text/html"})


def job(state: str) -> Reply:
    return Reply(200, json.dumps({"id": "job-1", "name": "train", "state": state}))


class Route:
    """The scripted API: ``answer(method, path, since)`` decides, with seconds since the route was set."""

    def __init__(self) -> None:
        self.answer: Any = lambda method, path, since: job("running")
        self.started = time.monotonic()
        self.delay = 0.0
        self.calls: Counter[str] = Counter()
        self.url = ""

    def set(self, answer: Any, delay: float = 0.0) -> None:
        self.answer, self.delay, self.started = answer, delay, time.monotonic()
        self.calls.clear()

    def __call__(self, method: str, path: str) -> Reply:
        self.calls[f"{method} {path.split('?')[0]}"] += 1
        if self.delay:
            time.sleep(self.delay)
        return self.answer(method, path, time.monotonic() - self.started)


@pytest.fixture(scope="module")
def api():
    route = Route()
    with ScriptedServer(route) as server, pytest.MonkeyPatch.context() as mp:
        conn = {"conn_type": "lightning", "host": server.url, "login": "user-1", "password": "kill-test-key",
                "extra": {"project_id": "p1", "max_attempts": 1}}
        mp.setenv("AIRFLOW_CONN_KILLTEST", json.dumps(conn))
        route.url = server.url
        yield route


def trigger(**kw: Any) -> LightningPhaseTrigger:
    defaults = {"kind": "job", "resource_id": "job-1", "project_id": "p1", "lightning_conn_id": "killtest",
                "poll_interval": 0.005, "stop_on_kill": True, "resource_name": "train"}
    return LightningPhaseTrigger(**{**defaults, **kw})


# -- the cancel message ------------------------------------------------------------------------------------


async def _cancel_while_waiting(make: Any, steps: int = 0, ready: Any = None) -> tuple[Any, ...]:
    """Start ``make()`` in a task; ``steps`` event-loop steps after ``ready()`` returns, cancel it as Airflow's
    triggerer does and return the CancelledError's args."""
    task = asyncio.ensure_future(make())
    await (ready() if ready is not None else asyncio.sleep(0))
    for _ in range(steps):
        await asyncio.sleep(0)
    task.cancel(_USER_ACTION_CANCEL_MSG)
    try:
        await task
    except asyncio.CancelledError as cancel:
        return cancel.args
    return FINISHED


@needs_trigger_on_kill
@pytest.mark.parametrize(("kind", "state", "own_reads"), [
    ("job", "running", "GET /v1/projects/p1/jobs/job-1"),  # reads through the shared poller
    ("mmt", "MultiMachineJob_STATE_RUNNING", "GET /v1/projects/p1/page-logs"),  # the wait's own reads
])
def test_a_user_kill_landing_inside_an_http_request_keeps_airflows_message(api, kind, state, own_reads):
    async def kills() -> Counter[tuple[Any, ...]]:
        loop = asyncio.get_running_loop()
        served = asyncio.Event()

        def answer(method: str, path: str, since: float) -> Reply:
            if not loop.is_closed():  # a read still in flight when the test ends
                loop.call_soon_threadsafe(served.set)  # the resource was read: the trigger reads its logs next
            reply = job(state)
            reply.headers["Connection"] = "close"  # as a proxy may: every request connects again
            return reply

        api.set(answer, delay=0.002)
        seen: Counter[tuple[Any, ...]] = Counter()
        for steps in range(120):  # cancel 0..119 event-loop steps after a read: at every point of the next one
            served.clear()
            agen = trigger(kind=kind, stream_logs=True).run()
            seen[await _cancel_while_waiting(agen.__anext__, steps=steps, ready=served.wait)] += 1
            await agen.aclose()
        return seen

    seen = asyncio.run(kills())
    assert seen == Counter({(_USER_ACTION_CANCEL_MSG,): 120}), seen
    assert api.calls[own_reads] > 0, api.calls


@needs_trigger_on_kill
def test_detached_io_hands_the_callers_cancel_message_through_at_every_step_of_a_request(api):
    api.set(lambda method, path, since: job("running"), delay=0.01)

    async def kills() -> Counter[tuple[Any, ...]]:
        seen: Counter[tuple[Any, ...]] = Counter()
        for i in range(150):
            async with httpx.AsyncClient(base_url=api.url) as client:  # a new connection each time: connect too
                seen[await _cancel_while_waiting(lambda: detached(client.get(JOB)), steps=i % 30)] += 1
        return seen

    seen = asyncio.run(kills())
    finished = seen.pop(FINISHED, 0)  # a request that beat the cancel (a loaded machine) says nothing either way
    assert seen == Counter({(_USER_ACTION_CANCEL_MSG,): 150 - finished}) and finished < 10, seen


# -- on_kill through an outage -----------------------------------------------------------------------------


def outage_until(seconds: float, after: Reply | None = None) -> Any:
    def answer(method: str, path: str, since: float) -> Reply:
        if since < seconds:
            return UNAVAILABLE
        return after or (job("stop") if method == "PUT" else job("running"))

    return answer


def test_on_kill_keeps_trying_through_a_short_outage_and_stops_the_job(api, capsys):
    api.set(outage_until(2.5))
    started = time.monotonic()
    asyncio.run(trigger().on_kill())
    assert 2.5 <= time.monotonic() - started < 8
    assert api.calls[f"PUT {JOB}"] >= 1  # the stop went out once the API was back
    assert "Task killed: stopped Lightning job train" in capsys.readouterr().out


def test_on_kill_sends_the_stop_even_when_reading_the_job_keeps_failing(api, capsys):
    api.set(lambda method, path, since: job("stop") if method == "PUT" else UNAVAILABLE)
    asyncio.run(trigger().on_kill())
    assert api.calls[f"GET {JOB}"] == STOP_RETRY.max_attempts and api.calls[f"PUT {JOB}"] == 1
    assert "Task killed: stopped Lightning job train" in capsys.readouterr().out


def test_on_kill_sends_the_stop_when_reading_the_job_hangs(api, capsys, monkeypatch):
    monkeypatch.setattr(lightning, "KILL_BUDGET", replace(lightning.KILL_BUDGET, read_seconds=0.3))

    def answer(method: str, path: str, since: float) -> Reply:
        if method == "GET":
            time.sleep(2)  # a read that hangs longer than the kill may wait for it
            return job("running")
        return job("stop")

    api.set(answer)
    started = time.monotonic()
    asyncio.run(trigger().on_kill())
    assert time.monotonic() - started < 1.5 and api.calls[f"PUT {JOB}"] == 1
    assert "Task killed: stopped Lightning job train" in capsys.readouterr().out


def test_on_kill_gives_up_before_airflows_kill_timeout_and_says_the_job_may_still_run(api, capsys, monkeypatch):
    monkeypatch.setattr(lightning, "kill_budget", lambda: 2.0)
    api.set(outage_until(3600))
    started = time.monotonic()
    with pytest.raises(StopFailedError, match="could not be stopped within 2 s"):
        asyncio.run(trigger().on_kill())
    assert time.monotonic() - started < 3.0
    assert api.calls[f"PUT {JOB}"] >= 2
    assert "could not be stopped within 2 s; it may still be running" in capsys.readouterr().out


def test_on_kill_budget_follows_airflows_on_kill_timeout(monkeypatch):
    monkeypatch.setenv("AIRFLOW__TRIGGERER__ON_KILL_TIMEOUT", "12")
    assert lightning.kill_budget() == 12 - lightning.KILL_MARGIN


@pytest.mark.parametrize(
    ("state", "action", "done"),
    [("completed", "stop", "nothing to stop (completed)"), (None, "stop", "already gone"),
     (None, "delete", "already gone")],
)
def test_on_kill_of_work_that_already_ended_or_is_gone_sends_nothing_and_succeeds(api, capsys, state, action, done):
    gone = Reply(404, json.dumps({"code": 5, "message": "not found"}))
    api.set(lambda method, path, since: job(state) if state and method == "GET" else gone)
    asyncio.run(trigger(kill_action=action).on_kill())
    assert api.calls[f"PUT {JOB}"] == 0
    assert f"Task killed: {done} Lightning job train" in capsys.readouterr().out


def test_on_kill_does_not_retry_refused_credentials(api, capsys):
    api.set(lambda method, path, since: Reply(401, json.dumps({"message": "bad key"})))
    with pytest.raises(LightningApiError):
        asyncio.run(trigger().on_kill())
    assert sum(api.calls.values()) == 1
    assert "could not be stopped" in capsys.readouterr().out


def test_on_kill_does_nothing_for_work_this_task_did_not_start(api):
    api.set(lambda method, path, since: job("running"))
    asyncio.run(trigger(stop_on_kill=False).on_kill())
    assert sum(api.calls.values()) == 0
