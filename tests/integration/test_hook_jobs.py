"""LightningHook job methods against the simulator: create, get, find, list, stop, delete, logs, URL."""

from __future__ import annotations

import time

import pytest

from airflow_provider_lightning.api.errors import LightningApiError
from airflow_provider_lightning.api.jobs import JobRequest
from airflow_provider_lightning.api.phases import Phase
from airflow_provider_lightning.hooks.lightning import LightningHook


def wait_phase(hook, job_id, phases, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        state = hook.get_job(job_id)
        if state.phase in phases:
            return state
        time.sleep(0.1)
    raise AssertionError(f"{job_id} stayed {state.phase}")


def test_job_lifecycle_through_the_hook(sim):
    hook = LightningHook()
    job = hook.submit_job(JobRequest(name="hook-life", image="python:3.11",
                                     command="for i in 1 2 3; do echo line $i; done"))
    assert job.phase is Phase.PENDING and hook.find_job(job.name).id == job.id
    done = wait_phase(hook, job.id, {Phase.COMPLETED})
    assert done.started_at and done.stopped_at
    lines, cursor = hook.job_logs(job.id)
    assert [ln.message for ln in lines] == ["line 1", "line 2", "line 3"] and cursor.last(job.id) == 3
    assert hook.job_logs(job.id, cursor)[0] == []
    assert hook.download_job_logs(job.id).splitlines() == ["line 1", "line 2", "line 3"]
    assert hook.job_url(done) == f"{sim.url}/sim-org/sim-teamspace/jobs/{done.name}?app_id=jobs"
    hook.delete_job(job.id)
    assert hook.find_job(job.name) is None
    with pytest.raises(LightningApiError) as err:
        hook.get_job(job.id)
    assert err.value.status == 404 and "not found" in err.value.message


def test_stop_and_list_with_filters_and_paging(sim):
    hook = LightningHook()
    ids = [hook.submit_job(JobRequest(name=f"hook-list-{i}", image="python:3.11", command="sleep 30")).id
           for i in range(3)]
    for job_id in ids:
        hook.stop_job(job_id)
    for job_id in ids:
        wait_phase(hook, job_id, {Phase.STOPPED})
    stopped = hook.list_jobs(state="stopped", page_size=1)
    assert set(ids) <= {job.id for job in stopped}
    assert len(hook.list_jobs(page_size=2, limit=3)) == 3


def test_name_clash_gets_a_suffixed_name_from_the_server(sim):
    hook = LightningHook()
    first = hook.submit_job(JobRequest(name="hook-clash", image="python:3.11", command="true"))
    second = hook.submit_job(JobRequest(name="hook-clash", image="python:3.11", command="true"))
    assert first.name == "hook-clash" and second.name != "hook-clash" and second.id != first.id


def test_create_is_not_duplicated_when_the_answer_is_lost(sim):
    """The server creates the job but its answer is lost: the hook finds it by name instead of posting again."""
    hook = LightningHook()
    assert hook.project_id  # resolve the teamspace before the fault starts
    sim.request_log.clear()
    sim.set_faults(drop_response_rate=1.0, only_paths=[r"/jobs$"])  # every create answer is lost
    try:
        job = hook.submit_job(JobRequest(name="hook-lost", image="python:3.11", command="true"))
    finally:
        sim.clear_faults()
    created = [j for j in sim.jobs() if j["name"].startswith("hook-lost")]
    assert [j["id"] for j in created] == [job.id] and job.name == "hook-lost"
    posts = [r for r in sim.request_log if r[0] == "POST"]
    assert len(posts) == 1 and posts[0][2] == 0  # one create, whose answer was dropped
