"""Many job waits in one event loop share one poller (triggers/poller.py), against the simulator."""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
from collections import Counter

import pytest
from conftest import conn_json
from lightning_simulator import LightningSimulator
from scripted_server import Reply, ScriptedServer
from trigger_runs import first_event, rebuilt, the_poller

from airflow_provider_lightning.api.jobs import JOB, MMT
from airflow_provider_lightning.api.registry import kind_named, kind_names
from airflow_provider_lightning.triggers import poller
from airflow_provider_lightning.triggers.lightning import LightningPhaseTrigger

INTERVAL = 0.2


@pytest.fixture(scope="module")
def timed_sim():
    """A simulator whose jobs run for SIM_DURATION_SECONDS without a process (timed mode)."""
    with LightningSimulator(pending_seconds=0.1, timed_jobs=True) as sim:
        yield sim


@pytest.fixture
def sim(timed_sim, monkeypatch):
    timed_sim.clear_faults()
    monkeypatch.setenv("AIRFLOW_CONN_LIGHTNING_DEFAULT", conn_json(timed_sim, max_attempts=1))
    timed_sim.request_log.clear()
    yield timed_sim
    timed_sim.clear_faults()


def timed_job(sim, seconds: float, code: int = 0) -> str:
    env = [{"name": "SIM_DURATION_SECONDS", "value": str(seconds)}, {"name": "SIM_EXIT_CODE", "value": str(code)}]
    job = sim.store.jobs.create(sim.project_id, {"name": "poller-test", "spec": {"image": "python:3.11", "env": env}})
    return str(job["id"])


def trigger_for(sim, job_id: str, **kwargs) -> LightningPhaseTrigger:
    """A trigger rebuilt from its serialized form, as the triggerer does."""
    return rebuilt(kind="job", resource_id=job_id, project_id=sim.project_id,
                   poll_interval=kwargs.pop("poll_interval", INTERVAL), stream_logs=False, **kwargs)


def read_requests(sim) -> Counter:
    """Job reads the simulator received: list pages and single GETs."""
    kinds: Counter = Counter()
    for record in sim.request_log:
        path = record.path.split("?")[0]
        if re.search(r"/jobs$", path):
            kinds["list"] += 1
        elif re.search(r"/jobs/[^/]+$", path):
            kinds["get"] += 1
    return kinds


def test_many_waits_share_one_poller_and_each_gets_its_own_terminal_event(sim):
    rng = random.Random(3)
    jobs = {timed_job(sim, rng.uniform(0.6, 1.5), code=3 if i % 8 == 0 else 0): i % 8 != 0 for i in range(40)}

    async def main():
        tasks = [asyncio.ensure_future(first_event(trigger_for(sim, job_id))) for job_id in jobs]
        shared = await the_poller()
        events = await asyncio.gather(*tasks)
        return shared, events, poller.pollers()

    shared, events, left = asyncio.run(main())
    for (job_id, succeeds), event in zip(jobs.items(), events, strict=True):
        assert event["resource_id"] == job_id
        if succeeds:
            assert event["status"] == "success" and event["resource"]["phase"] == "completed"
        else:
            assert event["status"] == "failed" and "exited with code 3" in event["message"]
    stats = shared.stats
    requests = read_requests(sim)
    assert requests["list"] == stats.list_requests and requests["get"] == stats.get_requests
    # one read per wait per sweep, yet a few requests per sweep for all of them
    assert stats.answers >= 2 * len(jobs)
    assert 3 * (stats.list_requests + stats.get_requests) <= stats.answers
    assert stats.list_requests + stats.get_requests < len(jobs)
    assert left == {} and shared.closed and shared.hook._transport._aclient is None  # client closed


def test_a_lone_wait_reads_its_job_with_one_get_per_poll(sim):
    job_id = timed_job(sim, 0.5)

    async def main():
        task = asyncio.ensure_future(first_event(trigger_for(sim, job_id)))
        shared = await the_poller()
        return shared, await task

    shared, event = asyncio.run(main())
    assert event["status"] == "success"
    requests = read_requests(sim)
    assert requests["list"] == 0 and requests["get"] == shared.stats.answers >= 2
    assert all(record.path.split("?")[0].endswith(job_id) for record in sim.request_log)


def test_waits_that_join_after_a_fruitless_scan_are_found_by_the_next_scan(sim):
    # the triggerer loads triggers a few dozen at a time, oldest first: the first sweep sees only old jobs, which
    # newer jobs buried (so the scan is skipped), but the waits that join next are for the newest jobs, which
    # ended already: the scan must look again instead of reading each of them with its own GET
    old = [timed_job(sim, 60) for _ in range(2)]
    new = [timed_job(sim, 0.1) for _ in range(80)]
    for job_id in new:
        sim.wait_for_job(job_id, ["completed"], timeout=30)
    sim.request_log.clear()

    async def main():
        first = [asyncio.ensure_future(first_event(trigger_for(sim, job_id))) for job_id in old]
        shared = await the_poller()
        while shared.stats.sweeps < 2:  # both old waits were in a sweep (the first may hold one)
            await asyncio.sleep(0.01)
        before = (shared.stats.list_requests, shared.stats.get_requests)
        events = await asyncio.gather(*[first_event(trigger_for(sim, job_id)) for job_id in new[-20:]])
        after = (shared.stats.list_requests, shared.stats.get_requests)
        for task in first:
            task.cancel()
        await asyncio.gather(*first, return_exceptions=True)
        return before, after, events

    before, after, events = asyncio.run(main())
    assert all(event["status"] == "success" for event in events)
    assert before[0] >= 1  # the first sweep scanned and found none of its waits
    assert after[1] - before[1] <= 2 * len(old) + 2  # the 20 new waits cost no GET of their own
    assert after[0] - before[0] <= 4


def test_kinds_with_a_sweep_share_a_poller_and_the_others_keep_their_own_reads():
    shared = {name for name in kind_names() if poller.can_share(kind_named(name))}
    assert shared == {"job", "mmt", "deployment", "studio"}
    assert poller.can_share(JOB) and poller.can_share(MMT)


def test_cancelling_one_wait_leaves_the_others_undisturbed(sim):
    doomed = timed_job(sim, 60)
    others = [timed_job(sim, 0.8) for _ in range(9)]

    async def main():
        victim = asyncio.ensure_future(first_event(trigger_for(sim, doomed)))
        tasks = [asyncio.ensure_future(first_event(trigger_for(sim, job_id))) for job_id in others]
        shared = await the_poller()
        while shared.stats.sweeps < 2:
            await asyncio.sleep(0.02)
        victim.cancel()  # the user killed the task, or the triggerer moves it elsewhere
        with pytest.raises(asyncio.CancelledError):
            await victim
        subscribed = shared.subscribers
        events = await asyncio.gather(*tasks)
        return shared, subscribed, events, poller.pollers()

    shared, subscribed, events, left = asyncio.run(main())
    assert subscribed == 9
    assert [e["status"] for e in events] == ["success"] * 9
    assert [e["resource_id"] for e in events] == others
    assert shared.closed and left == {}  # the poller went away with its last wait
    assert sim.get_job(doomed)["state"] == "running"  # a cancel is not a kill: the job goes on
    sim.store.jobs.update(sim.project_id, doomed, {"state": "stop"})


def test_a_failing_sweep_reaches_every_wait_as_a_poll_error(sim):
    jobs = [timed_job(sim, 60) for _ in range(5)]
    sim.set_faults(error_rate=1.0, only_paths=[r"/jobs$"])  # every list page answers 503

    async def main():
        tasks = [asyncio.ensure_future(first_event(trigger_for(sim, job_id, max_poll_errors=2))) for job_id in jobs]
        shared = await the_poller()
        return shared, await asyncio.gather(*tasks)

    shared, events = asyncio.run(main())
    for event in events:
        assert event["status"] == "error" and "failed 2 times in a row" in event["message"]
    assert shared.stats.failed_sweeps == 2 and shared.stats.get_requests == 0
    for job_id in jobs:
        sim.store.jobs.update(sim.project_id, job_id, {"state": "stop"})


def test_waits_recover_when_the_listing_works_again(sim):
    jobs = [timed_job(sim, 1.0) for _ in range(6)]
    sim.set_faults(error_rate=1.0, only_paths=[r"/jobs$"])

    async def main():
        tasks = [asyncio.ensure_future(first_event(trigger_for(sim, job_id, max_poll_errors=50))) for job_id in jobs]
        shared = await the_poller()
        while shared.stats.failed_sweeps < 1:
            await asyncio.sleep(0.02)
        sim.clear_faults()
        return await asyncio.gather(*tasks)

    assert [e["status"] for e in asyncio.run(main())] == ["success"] * 6


def test_an_unexpected_error_in_a_sweep_does_not_stop_the_poller(sim, monkeypatch, caplog):
    jobs = [timed_job(sim, 0.6) for _ in range(4)]
    real_scan = poller.SharedPoller._scan_recent
    calls = Counter()

    async def scan_once_broken(self, batch, active_next):
        calls["scan"] += 1
        if calls["scan"] == 1:
            raise RuntimeError("a bug in the sweep")
        await real_scan(self, batch, active_next)

    monkeypatch.setattr(poller.SharedPoller, "_scan_recent", scan_once_broken)

    async def main():
        return await asyncio.gather(*(first_event(trigger_for(sim, job_id)) for job_id in jobs))

    assert [e["status"] for e in asyncio.run(main())] == ["success"] * 4
    assert calls["scan"] >= 2
    assert "a bug in the sweep" in caplog.text


def test_a_deadline_shorter_than_the_interval_still_times_out(sim):
    jobs = [timed_job(sim, 60) for _ in range(3)]

    async def main():
        deadline = time.time() + 3 * INTERVAL
        return await asyncio.gather(*(first_event(trigger_for(sim, job_id, deadline=deadline)) for job_id in jobs))

    for event in asyncio.run(main()):
        assert event["status"] == "timeout" and event["resource"]["phase"] == "running"
    for job_id in jobs:
        sim.store.jobs.update(sim.project_id, job_id, {"state": "stop"})


def test_a_server_that_cannot_list_jobs_is_read_one_job_at_a_time(monkeypatch):
    def route(method: str, path: str) -> Reply:
        if re.search(r"/jobs(\?|$)", path):
            return Reply(400, json.dumps({"code": 3, "message": "unknown field state"}))
        job_id = path.split("?")[0].rsplit("/", 1)[1]
        return Reply(200, json.dumps({"id": job_id, "name": job_id, "state": "completed"}))

    with ScriptedServer(route) as server:
        monkeypatch.setenv("AIRFLOW_CONN_LIGHTNING_DEFAULT", json.dumps(
            {"conn_type": "lightning", "host": server.url, "login": "u", "password": "k",
             "extra": {"project_id": "proj-1", "max_attempts": 1}}))
        triggers = [LightningPhaseTrigger(kind="job", resource_id=f"job-{i}", project_id="proj-1",
                                          poll_interval=INTERVAL, stream_logs=False) for i in range(3)]

        async def main():
            return await asyncio.gather(*(first_event(t) for t in triggers))

        events = asyncio.run(main())
        assert [e["status"] for e in events] == ["success"] * 3
        lists = [s for s in server.seen if re.search(r"/jobs(\?|$)", s.path)]
        gets = [s for s in server.seen if re.search(r"/jobs/job-\d$", s.path)]
        assert len(lists) == 1 and len(gets) == 3
