"""The list calls each resource kind offers the shared poller (``ResourceKind.sweep``): the requests they send
and how tolerantly they read a list answer; a listed entry reads exactly as the kind's own GET reads it."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_lightning.api import deployments, jobs, schedules, studios
from airflow_provider_lightning.api.resources import ListPage


def parse(call: Any, body: Any) -> ListPage:
    page = call.parse(body)
    assert isinstance(page, ListPage)
    return page


def test_each_kind_lists_with_the_reference_query_parameters():
    recent = jobs.JOB.sweep.recent("proj/1", "", 50)
    assert (recent.path, dict(recent.params)) == (
        "/v1/projects/proj%2F1/jobs", {"state": None, "standalone": True, "limit": 50, "pageToken": None})
    running = jobs.JOB.sweep.by_state("p", "running", "tok", 100)
    assert running.params["state"] == "running" and running.params["pageToken"] == "tok"
    mmts = jobs.MMT.sweep.recent("p", "", 50)
    assert (mmts.path, dict(mmts.params)) == ("/v1/projects/p/multi-machine-jobs", {})  # no paging fields
    deps = deployments.DEPLOYMENT.sweep.recent("p", "t2", 50)
    assert (deps.path, dict(deps.params)) == ("/v1/projects/p/deployments", {"limit": 50, "pageToken": "t2"})
    spaces = studios.STUDIO.sweep.by_ids("p", ["s1", "s2"])
    assert (spaces.path, dict(spaces.params)) == ("/v1/projects/p/cloudspaces", {"ids": ["s1", "s2"], "limit": "2"})


def test_kinds_without_a_list_that_answers_their_read_have_no_sweep():
    assert studios.STUDIO_COMMAND.sweep is None and schedules.SCHEDULE_RUN.sweep is None


@pytest.mark.parametrize("body", [None, [], "text", {"jobs": "nope"}, {"jobs": [1, "x", None, {"name": "no id"}]}])
def test_an_unreadable_list_answer_is_an_empty_page(body):
    page = parse(jobs.recent_jobs("p", "", 50), body)
    assert page.entries == {} and page.next_token == ""


def test_a_listed_job_reads_as_its_get_and_an_unreadable_one_is_left_to_its_get():
    job = {"id": "job-1", "name": "train", "state": "running", "spec": {"cloudspaceId": "cs"}}
    page = parse(jobs.recent_jobs("p", "", 50), {"jobs": [job], "nextPageToken": "n2"})
    assert page.state("job-1") == jobs.read_job(job) and page.next_token == "n2"
    assert page.state("job-3") is None

    def broken(data: Any) -> Any:
        raise ValueError("hostile entry")

    assert ListPage({"job-1": job}, broken).state("job-1") is None  # its own GET will tell


def test_multi_machine_jobs_are_read_from_their_camel_or_snake_case_collection():
    mmt = {"id": "mmt-1", "name": "ddp", "state": "MultiMachineJob_STATE_FAILED", "status": {"message": "rank 1"}}
    for key in ("multiMachineJobs", "multi_machine_jobs"):
        state = parse(jobs.mmt_list("p"), {key: [mmt]}).state("mmt-1")
        assert state == jobs.read_mmt(mmt) and state.kind == "mmt" and state.phase.value == "failed"


def test_a_listed_deployment_reads_as_its_get():
    dep = {"id": "dep_1", "name": "api", "currentState": "DEPLOYMENT_STATE_PENDING", "replicas": 1,
           "status": {"failingReplicas": 2, "readyReplicas": 0, "message": "crash"}}
    state = parse(deployments.deployment_page("p", "", 50), {"deployments": [dep], "nextPageToken": ""}).state("dep_1")
    assert state == deployments.read_deployment(dep) and state.failing


def test_a_studio_is_read_from_its_embedded_code_status_and_left_to_its_get_without_one():
    running = {"inUse": {"phase": "CLOUD_SPACE_INSTANCE_STATE_RUNNING", "cloudSpaceId": "s1",
                         "startupStatus": {"topUpRestoreFinished": True}}}
    body = {"cloudspaces": [
        {"id": "s1", "codeStatus": running},
        {"id": "s2", "codeStatus": None},
        {"id": "s3"},
        {"id": "s4", "code_status": {"inUse": None}},
    ]}
    page = parse(studios.studios_by_ids("p", ["s1", "s2", "s3", "s4"]), body)
    assert set(page.entries) == {"s1", "s4"}
    assert page.state("s1") == studios.read_code_status(running) and page.state("s1").phase.value == "running"
    assert page.state("s4").phase.value == "stopped"  # an object without inUse: stopped, as GET codestatus says
