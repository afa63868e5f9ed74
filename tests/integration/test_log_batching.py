"""Streamed logs of many job waits in one event loop are read with merged ``/page-logs`` reads (triggers/logbatch.py)."""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from typing import Any

import pytest
from scripted_server import Reply, ScriptedServer
from trigger_runs import first_event, rebuilt

from airflow_provider_lightning.triggers import poller
from airflow_provider_lightning.triggers.lightning import LightningPhaseTrigger

LINES = 6


def job_printing(sim: Any, tag: str, code: int = 3) -> str:
    command = f"for i in $(seq 1 {LINES}); do echo '{tag} line '$i; sleep 0.15; done; exit {code}"
    job = sim.store.jobs.create(sim.project_id, {"name": f"logs-{tag}", "spec": {"image": "python:3.11",
                                                                               "command": command}})
    return str(job["id"])


def trigger_for(project_id: str, job_id: str, conn_id: str = "lightning_default") -> LightningPhaseTrigger:
    return rebuilt(kind="job", resource_id=job_id, project_id=project_id, lightning_conn_id=conn_id,
                   poll_interval=0.3, stream_logs=True, log_tail_lines=50)


async def run_all(triggers: list[LightningPhaseTrigger]) -> tuple[list[dict[str, Any]], Any]:
    """Run the waits together; return their events and the stats of the poller's log batcher."""
    stats: list[Any] = []

    async def keep_stats() -> None:
        while True:
            for shared in poller.pollers().values():
                stats[:] = [shared.logs.stats]
            await asyncio.sleep(0.05)

    watcher = asyncio.ensure_future(keep_stats())
    try:
        events = await asyncio.wait_for(asyncio.gather(*(first_event(t) for t in triggers)), 60)
    finally:
        watcher.cancel()
    return list(events), stats[0]


def page_log_reads(sim: Any) -> list[list[str]]:
    """The job ids of every ``/page-logs`` request the simulator received."""
    reads = []
    for record in sim.request_log:
        if record.path.split("?")[0].endswith("/page-logs"):
            reads.append(urllib.parse.parse_qs(urllib.parse.urlsplit(record.path).query).get("jobIds", []))
    return reads


def test_many_waits_read_their_streamed_logs_merged_and_each_gets_exactly_its_own_lines(sim):
    tags = [f"job{k:02d}" for k in range(16)]
    job_ids = {tag: job_printing(sim, tag) for tag in tags}
    sim.request_log.clear()
    events, stats = asyncio.run(run_all([trigger_for(sim.project_id, job_ids[tag]) for tag in tags]))

    for tag, event in zip(tags, events, strict=True):
        assert event["status"] == "failed", event
        assert event["log_tail"] == [f"{tag} line {i}" for i in range(1, LINES + 1)], (tag, event["log_tail"])
    reads = page_log_reads(sim)
    assert max(len(ids) for ids in reads) > 1  # merged reads went out
    assert stats.merged_reads > 0 and stats.reads > len(reads)  # fewer requests than log reads
    assert len(reads) < sum(len(ids) for ids in reads)


def test_a_wait_alone_sends_the_same_single_job_read_as_before(sim):
    job_id = job_printing(sim, "alone")
    sim.request_log.clear()
    events, stats = asyncio.run(run_all([trigger_for(sim.project_id, job_id)]))
    assert events[0]["log_tail"] == [f"alone line {i}" for i in range(1, LINES + 1)]
    assert {tuple(ids) for ids in page_log_reads(sim)} == {(job_id,)}
    assert stats.merged_reads == 0


# -- servers whose merged reads do not work: read job by job -------------------------------------------


@pytest.fixture
def scripted(monkeypatch):
    holder: dict[str, Any] = {}
    with ScriptedServer(lambda method, path: holder["route"](method, path)) as server:
        conn = {"conn_type": "lightning", "host": server.url, "login": "u", "password": "merge-test-key",
                "extra": {"project_id": "p1", "max_attempts": 1}}
        monkeypatch.setenv("AIRFLOW_CONN_MERGETEST", json.dumps(conn))
        holder["server"] = server
        yield holder


def scripted_api(merged: str) -> Any:
    """Jobs a and b run for 3 polls then fail; ``merged`` says how merged log reads are answered."""
    polls: dict[str, int] = {}

    def route(method: str, path: str) -> Reply:
        url = urllib.parse.urlsplit(path)
        ids = urllib.parse.parse_qs(url.query).get("jobIds", [])
        if url.path.endswith("/page-logs"):
            if len(ids) > 1 and merged == "400":
                return Reply(400, json.dumps({"code": 3, "message": "jobIds: only one value allowed"}))
            entries = [{"line": "1", "message": f"{job_id} says hi", "timestamp": "2026-01-01T00:00:00Z",
                        **({} if merged == "no resourceId" and len(ids) > 1 else {"resourceId": job_id})}
                       for job_id in ids]
            return Reply(200, json.dumps({"entries": entries}))
        if url.path.endswith("/jobs"):  # the poller's list pages
            return Reply(200, json.dumps({"jobs": []}))
        job_id = url.path.rsplit("/", 1)[-1]
        polls[job_id] = polls.get(job_id, 0) + 1
        state = "running" if polls[job_id] < 4 else "failed"
        return Reply(200, json.dumps({"id": job_id, "name": job_id, "state": state}))

    return route


@pytest.mark.parametrize("merged", ["400", "no resourceId"])
def test_when_merged_reads_fail_each_wait_still_gets_its_own_lines(scripted, merged):
    scripted["route"] = scripted_api(merged)
    events, stats = asyncio.run(run_all([trigger_for("p1", job_id, "mergetest") for job_id in ("a", "b")]))
    for job_id, event in zip(("a", "b"), events, strict=True):
        assert event["status"] == "failed" and event["log_tail"] == [f"{job_id} says hi"], event
    assert stats.merged_reads >= 1 and stats.single_reads >= 2
