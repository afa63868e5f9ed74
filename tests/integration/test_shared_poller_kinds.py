"""Multi-machine job, deployment and Studio waits of one event loop share one poller (triggers/poller.py):
one list request per sweep answers them, against the simulator over loopback HTTP (and a scripted server for
answers the simulator never gives)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import urllib.parse
import uuid
from collections import Counter
from typing import Any

import pytest
from conftest import conn_json
from lightning_simulator import LightningSimulator
from scripted_server import Reply, ScriptedServer
from trigger_runs import first_event, rebuilt, the_poller

from airflow_provider_lightning.api import deployments, jobs, studios
from airflow_provider_lightning.api.deployments import DeploymentSpec
from airflow_provider_lightning.hooks.lightning import LightningHook
from airflow_provider_lightning.triggers import poller
from airflow_provider_lightning.triggers.lightning import LightningPhaseTrigger

INTERVAL = 0.2


@pytest.fixture(scope="module")
def kinds_sim():
    """Timed jobs (no process), deployments that only echo, quick provisioning."""
    with LightningSimulator(pending_seconds=0.1, timed_jobs=True, deployment_commands=False) as sim:
        yield sim


@pytest.fixture
def sim(kinds_sim, monkeypatch):
    kinds_sim.clear_faults()
    monkeypatch.setenv("AIRFLOW_CONN_LIGHTNING_DEFAULT", conn_json(kinds_sim, max_attempts=1))
    kinds_sim.request_log.clear()
    yield kinds_sim
    kinds_sim.clear_faults()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def timed_mmt(sim, seconds: float, code: int = 0) -> str:
    env = [{"name": "SIM_DURATION_SECONDS", "value": str(seconds)}, {"name": "SIM_EXIT_CODE", "value": str(code)}]
    body = {"name": unique("ddp"), "machines": 2, "spec": {"image": "python:3.11", "env": env}}
    return str(sim.store.mmts.create(sim.project_id, body)["id"])


def deployment(sim, mode: str = "") -> str:
    env = {"LIGHTNING_SIM_DEPLOYMENT": mode} if mode else {}
    spec = DeploymentSpec(name=unique("api"), image="ghcr.io/x/srv:1", command="python serve.py", env=env)
    return str(sim.store.deployments.create(sim.project_id, spec.validated().body())["id"])


def studio(sim, started: bool = True) -> str:
    studio_id = str(sim.add_studio(unique("studio"))["id"])
    if started:
        sim.store.studios.start(sim.project_id, studio_id, {"computeConfig": {"name": "cpu-4"}})
    return studio_id


def trigger_for(project_id: str, kind: str, resource_id: str, **kwargs: Any) -> LightningPhaseTrigger:
    """A trigger rebuilt from its serialized form, as the triggerer does."""
    return rebuilt(kind=kind, resource_id=resource_id, project_id=project_id,
                   poll_interval=kwargs.pop("poll_interval", INTERVAL), stream_logs=False, **kwargs)


async def run_waits(triggers: list[LightningPhaseTrigger]) -> tuple[poller.SharedPoller, list[dict[str, Any]], Any]:
    """Run the waits together: their poller, their events, and the poller's stats once the first sweep answered."""
    tasks = [asyncio.ensure_future(first_event(t)) for t in triggers]
    shared = await the_poller()
    while shared.stats.answers < len(triggers) and not any(t.done() for t in tasks):
        await asyncio.sleep(0.005)
    first_sweep = dataclasses.replace(shared.stats)
    events = await asyncio.wait_for(asyncio.gather(*tasks), 60)
    assert poller.pollers() == {} and shared.closed
    return shared, list(events), first_sweep


def reads(sim, collection: str, get_suffix: str = "") -> Counter:
    """The reads of one kind the simulator received: list requests and single GETs."""
    kinds: Counter = Counter()
    for record in sim.request_log:
        path = record.path.split("?")[0]
        if record.method != "GET":
            continue
        if re.search(rf"/{collection}$", path):
            kinds["list"] += 1
        elif re.search(rf"/{collection}/[^/]+{get_suffix}$", path):
            kinds["get"] += 1
    return kinds


def assert_shared_reads(shared: poller.SharedPoller, requests: Counter, first_sweep: Any, waits: int) -> None:
    """One list request answered every wait of the first sweep; no sweep sent more than one list request,
    and GETs were only sent for a wait that was alone in its sweep."""
    assert (first_sweep.list_requests, first_sweep.get_requests, first_sweep.answers) == (1, 0, waits)
    stats = shared.stats
    assert requests["list"] == stats.list_requests and requests["get"] == stats.get_requests
    assert stats.list_requests <= stats.sweeps
    assert stats.list_requests + stats.get_requests <= stats.sweeps < stats.answers


# -- multi-machine jobs --------------------------------------------------------------------------


def test_many_multi_machine_job_waits_are_answered_by_one_list_request_per_sweep(sim):
    mmts = {timed_mmt(sim, 0.8 + 0.1 * i, code=3 if i == 2 else 0): i != 2 for i in range(5)}
    triggers = [trigger_for(sim.project_id, "mmt", mmt_id) for mmt_id in mmts]

    shared, events, first_sweep = asyncio.run(run_waits(triggers))

    for (mmt_id, succeeds), event in zip(mmts.items(), events, strict=True):
        assert event["resource_id"] == mmt_id
        if succeeds:
            assert event["status"] == "success" and event["resource"]["phase"] == "completed"
        else:
            assert event["status"] == "failed" and event["resource"]["phase"] == "failed"
            assert "Failed machines: rank 0" in event["message"] and "exited with code 3" in event["message"]
    assert_shared_reads(shared, reads(sim, "multi-machine-jobs"), first_sweep, len(mmts))
    assert shared.stats.answers >= 2 * len(mmts)  # each run outlasts the first sweep
    assert shared.logs.stats.reads == 0  # an MMT's log is read by mmtId, which takes one id: never merged


def test_a_multi_machine_job_missing_from_the_list_is_read_by_its_own_get(sim):
    live = [timed_mmt(sim, 0.6) for _ in range(2)]
    gone = timed_mmt(sim, 60)
    sim.store.mmts.delete(sim.project_id, gone)
    triggers = [trigger_for(sim.project_id, "mmt", mmt_id) for mmt_id in [*live, gone]]

    _, events, first_sweep = asyncio.run(run_waits(triggers))

    assert [e["status"] for e in events] == ["success", "success", "error"]
    assert "not found" in events[2]["message"]
    assert (first_sweep.list_requests, first_sweep.get_requests) == (1, 1)
    own_gets = [r for r in sim.request_log if r.method == "GET" and r.path.split("?")[0].endswith(f"/{gone}")]
    assert len(own_gets) == 1 and own_gets[0].status == 404


def test_a_failing_multi_machine_job_list_reaches_every_wait_as_a_poll_error(sim):
    mmts = [timed_mmt(sim, 60) for _ in range(3)]
    sim.set_faults(error_rate=1.0, only_paths=[r"/multi-machine-jobs$"])
    triggers = [trigger_for(sim.project_id, "mmt", mmt_id, max_poll_errors=2) for mmt_id in mmts]

    shared, events, _ = asyncio.run(run_waits(triggers))

    for event in events:
        assert event["status"] == "error" and "failed 2 times in a row" in event["message"]
    assert shared.stats.failed_sweeps == 2 and shared.stats.get_requests == 0
    for mmt_id in mmts:
        sim.store.mmts.update(sim.project_id, mmt_id, {"desiredState": "MultiMachineJob_STATE_STOP"})


# -- deployments -----------------------------------------------------------------------------------


def test_many_deployment_waits_are_answered_by_one_list_page_per_sweep(sim):
    ready = [deployment(sim) for _ in range(3)]
    failed = deployment(sim, "fail")
    crashing = deployment(sim, "crashloop")
    triggers = [trigger_for(sim.project_id, "deployment", dep_id, target_phases=["running"], failing_grace=1.0)
                for dep_id in [*ready, failed, crashing]]

    shared, events, first_sweep = asyncio.run(run_waits(triggers))

    for event in events[:3]:
        assert event["status"] == "success" and event["resource"]["phase"] == "running"
        assert event["resource"]["detail"]["urls"]
    server_message = sim.get_deployment(failed)["status"]["message"]
    assert server_message and events[3]["status"] == "failed"
    assert f"ended in phase failed: {server_message}" in events[3]["message"]
    assert events[4]["status"] == "failed" and "kept failing for 1 s without becoming ready" in events[4]["message"]
    assert_shared_reads(shared, reads(sim, "deployments"), first_sweep, len(triggers))
    assert shared.stats.sweeps >= 2  # the crash-looping one is read until its grace period is over
    pages = [r.path for r in sim.request_log if r.path.split("?")[0].endswith("/deployments")]
    assert all("limit=50" in page for page in pages)


def test_a_failing_deployment_list_reaches_every_wait_as_a_poll_error(sim):
    deps = [deployment(sim) for _ in range(3)]
    sim.set_faults(error_rate=1.0, only_paths=[r"/deployments$"])
    triggers = [trigger_for(sim.project_id, "deployment", dep_id, target_phases=["running"], max_poll_errors=2)
                for dep_id in deps]

    shared, events, _ = asyncio.run(run_waits(triggers))

    assert [e["status"] for e in events] == ["error"] * 3
    assert all("failed 2 times in a row" in e["message"] for e in events)
    assert shared.stats.failed_sweeps == 2 and shared.stats.get_requests == 0


def scripted_deployments(pages: list[list[str]]):
    """A server listing one deployment per page (``pages`` of ids, then no more); every deployment is running."""

    def body(dep_id: str) -> dict[str, Any]:
        return {"id": dep_id, "name": dep_id, "currentState": "DEPLOYMENT_STATE_RUNNING", "replicas": 1,
                "status": {"readyReplicas": 1, "urls": [f"https://{dep_id}.example"]}}

    def route(method: str, path: str) -> Reply:
        url = urllib.parse.urlsplit(path)
        if url.path.endswith("/deployments"):
            token = urllib.parse.parse_qs(url.query).get("pageToken", ["0"])[0]
            number = int(token)
            listed = {"deployments": [body(d) for d in pages[number]],
                      "nextPageToken": str(number + 1) if number + 1 < len(pages) else ""}
            return Reply(200, json.dumps(listed))
        return Reply(200, json.dumps(body(url.path.rsplit("/", 1)[1])))

    return route


@pytest.mark.parametrize(
    ("pages", "expected_pages"),
    [
        pytest.param([["dep-a"], ["dep-b"], ["dep-c"], ["other-1"], ["other-2"]], 3, id="each-page-answers-one"),
        pytest.param([["dep-a"], ["other-1"], ["other-2"], ["dep-b"], ["dep-c"]], 2, id="stops-at-a-useless-page"),
        pytest.param([["other-1"], ["other-2"], ["dep-a"], ["dep-b"], ["dep-c"]], 1, id="probe-finds-none"),
    ],
)
def test_deployment_pages_are_followed_only_while_they_answer_waits(monkeypatch, pages, expected_pages):
    with ScriptedServer(scripted_deployments(pages)) as server:
        monkeypatch.setenv("AIRFLOW_CONN_LIGHTNING_DEFAULT", json.dumps(
            {"conn_type": "lightning", "host": server.url, "login": "u", "password": "k",
             "extra": {"project_id": "proj-1", "max_attempts": 1}}))
        waits = ["dep-a", "dep-b", "dep-c"]
        triggers = [trigger_for("proj-1", "deployment", d, target_phases=["running"]) for d in waits]
        shared, events, _ = asyncio.run(run_waits(triggers))

    assert [e["status"] for e in events] == ["success"] * 3
    lists = [s for s in server.seen if urllib.parse.urlsplit(s.path).path.endswith("/deployments")]
    gets = [s for s in server.seen if re.search(r"/deployments/[^/?]+(\?|$)", s.path)]
    assert len(lists) == expected_pages <= len(waits)  # never more pages than the GETs they replace
    assert len(lists) + len(gets) <= len(waits) + 1
    assert shared.stats.sweeps == 1


# -- Studios ---------------------------------------------------------------------------------------


def test_many_studio_waits_are_answered_by_one_ids_list_request(sim):
    started = [studio(sim) for _ in range(3)]
    stopped = studio(sim, started=False)
    triggers = [trigger_for(sim.project_id, "studio", sid, target_phases=["running"], poll_interval=0.04)
                for sid in [*started, stopped]]  # shorter than the Studio's start: some sweeps find them pending

    shared, events, first_sweep = asyncio.run(run_waits(triggers))

    for event in events[:3]:
        assert event["status"] == "success" and event["resource"]["phase"] == "running"
    assert events[3]["status"] == "failed" and "ended in phase stopped: ended as no instance" in events[3]["message"]
    assert_shared_reads(shared, reads(sim, "cloudspaces", "/codestatus"), first_sweep, len(triggers))
    first_list = next(r.path for r in sim.request_log if r.path.split("?")[0].endswith("/cloudspaces"))
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(first_list).query)
    assert sorted(query["ids"]) == sorted([*started, stopped]) and query["limit"] == ["4"]


def test_a_studio_listed_without_its_code_status_is_read_by_its_own_get(monkeypatch):
    running = {"inUse": {"cloudSpaceInstanceId": "csi-1", "cloudSpaceId": "", "phase": "CLOUD_SPACE_INSTANCE_STATE_RUNNING",
                         "startupStatus": {"topUpRestoreFinished": True}}}

    def route(method: str, path: str) -> Reply:
        url = urllib.parse.urlsplit(path)
        if url.path.endswith("/cloudspaces"):
            return Reply(200, json.dumps({"cloudspaces": [
                {"id": "studio-a", "name": "a", "codeStatus": running},
                {"id": "studio-b", "name": "b", "codeStatus": None},  # the list does not say: only codestatus can
            ], "nextPageToken": ""}))
        return Reply(200, json.dumps(running))

    with ScriptedServer(route) as server:
        monkeypatch.setenv("AIRFLOW_CONN_LIGHTNING_DEFAULT", json.dumps(
            {"conn_type": "lightning", "host": server.url, "login": "u", "password": "k",
             "extra": {"project_id": "proj-1", "max_attempts": 1}}))
        triggers = [trigger_for("proj-1", "studio", s, target_phases=["running"]) for s in ("studio-a", "studio-b")]
        _, events, _ = asyncio.run(run_waits(triggers))

    assert [e["status"] for e in events] == ["success", "success"]
    paths = [urllib.parse.urlsplit(s.path).path for s in server.seen]
    assert paths == ["/v1/projects/proj-1/cloudspaces", "/v1/projects/proj-1/cloudspaces/studio-b/codestatus"]


def test_a_failing_studio_list_reaches_every_wait_as_a_poll_error(sim):
    ids = [studio(sim) for _ in range(3)]
    sim.set_faults(error_rate=1.0, only_paths=[r"/cloudspaces$"])
    triggers = [trigger_for(sim.project_id, "studio", sid, target_phases=["stopped"], max_poll_errors=2)
                for sid in ids]

    shared, events, _ = asyncio.run(run_waits(triggers))

    assert [e["status"] for e in events] == ["error"] * 3
    assert all("failed 2 times in a row" in e["message"] for e in events)
    assert shared.stats.failed_sweeps == 2 and shared.stats.get_requests == 0


def test_a_lone_studio_wait_reads_its_code_status_with_one_get_per_poll(sim):
    studio_id = studio(sim)

    shared, (event,), _ = asyncio.run(run_waits([trigger_for(sim.project_id, "studio", studio_id,
                                                             target_phases=["running"])]))

    assert event["status"] == "success"
    requests = reads(sim, "cloudspaces", "/codestatus")
    assert requests["list"] == 0 and requests["get"] == shared.stats.answers >= 1


# -- what a list answers is what the GET answers ---------------------------------------------------


def test_a_listed_resource_reads_exactly_as_its_own_get(sim):
    mmt_id = timed_mmt(sim, 0.1)
    dep_id = deployment(sim)
    studio_ids = [studio(sim), studio(sim, started=False)]
    sim.wait_for_mmt(mmt_id, {"MultiMachineJob_STATE_COMPLETED"}, timeout=15)
    sim.wait_for_deployment(dep_id, "DEPLOYMENT_STATE_RUNNING", timeout=15)
    sim.wait_for_studio(studio_ids[0], "CLOUD_SPACE_INSTANCE_STATE_RUNNING")
    project = sim.project_id

    def stable(state):  # a running deployment's cost grows between two reads
        return dataclasses.replace(state, total_cost=None)

    with LightningHook() as hook:
        mmt_page = hook.run(jobs.mmt_list(project))
        assert mmt_page.state(mmt_id) == hook.run(jobs.MMT.get(project, mmt_id))
        dep_page = hook.run(deployments.deployment_page(project, "", 50))
        assert stable(dep_page.state(dep_id)) == stable(hook.run(deployments.DEPLOYMENT.get(project, dep_id)))
        studio_page = hook.run(studios.studios_by_ids(project, studio_ids))
        assert set(studio_page.entries) == set(studio_ids)
        for studio_id in studio_ids:
            assert studio_page.state(studio_id) == hook.run(studios.STUDIO.get(project, studio_id))
            assert studio_page.state(studio_id).raw == hook.run(studios.STUDIO.get(project, studio_id)).raw
