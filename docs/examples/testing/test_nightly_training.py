"""Run ``nightly_training`` end to end against the simulator: success, a failing job, a flaky API."""

from __future__ import annotations

import pytest


def jobs_of(sim, dag_id: str, task_id: str) -> list[dict]:
    """The jobs a task submitted (job names are ``<dag_id>-<task_id>-<8 hex>``)."""
    return [job for job in sim.jobs() if job["name"].startswith(f"{dag_id}-{task_id}-")]


@pytest.mark.parametrize("deferrable", [False, True], ids=["blocking", "deferrable"])
def test_training_succeeds(lightning, dagbag, monkeypatch, deferrable):
    # dag.test() runs the triggers of deferred tasks in-process, so both modes work here.
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", str(deferrable))
    before = {job["id"] for job in lightning.jobs()}

    dagrun = dagbag.get_dag("nightly_training").test()

    assert dagrun.state == "success"
    new = [job for job in jobs_of(lightning, "nightly_training", "train") if job["id"] not in before]
    assert [job["state"] for job in new] == ["completed"]
    assert new[0]["spec"]["instanceName"] == "lit-a100-1"  # machine="A100"


def test_a_failing_job_fails_the_task(lightning, dagbag):
    dagrun = dagbag.get_dag("nightly_training").test(run_conf={"exit_code": 3})

    states = {ti.task_id: ti.state for ti in dagrun.get_task_instances()}
    assert dagrun.state == "failed"
    assert states == {"prepare": "success", "train": "failed"}


def test_the_dag_survives_a_flaky_api(lightning, dagbag):
    # About one API request in ten answered 503, one in twenty 429 (Retry-After 0.1 s): the hook retries them.
    lightning.set_faults(error_rate=0.1, rate_limit_rate=0.05, retry_after=0.1, only_paths=["/v1/projects"])

    dagrun = dagbag.get_dag("nightly_training").test()

    assert dagrun.state == "success"
    assert any(record.status in (429, 503) for record in lightning.request_log)
