"""What users run in CI: ``dag.test()`` of their own DAGs, which resumes a deferred task with the event only.

Each test here is a bug a new user hit in the glue between operators, sensors and the trigger: mapped tasks
returning another map index's data, deployment results and ownership lost without ``defer(kwargs=...)``,
sensor failures without a page or log tail, and a hung host taking minutes to fail a task. The DAGs are in
``tests/integration/dags/lightning_regressions.py`` (a DAG bundle of the test session).
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest
from conftest import conn_json
from raw_servers import hung_host

pytestmark = pytest.mark.airflow_db
DAGS = Path(__file__).parent / "dags"


def get_dag(dag_id: str):
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(DAGS)).get_dag(dag_id)
    assert dag is not None, dag_id
    return dag


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def xcoms(dagrun, task_id: str, key: str) -> dict[int, object]:
    """Every map index's value of one XCom key."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(select(XComModel).where(
            XComModel.run_id == dagrun.run_id, XComModel.task_id == task_id, XComModel.key == key)).all()
        return {row.map_index: XComModel.deserialize_value(row) for row in rows}


def printed(capsys) -> str:
    """What dag.test() logged (the task logs go to stdout)."""
    out = capsys.readouterr()
    return out.out + out.err


def test_mapped_deferrable_jobs_that_retry_and_reattach_each_return_their_own_url(airflow_db, sim, monkeypatch):
    # try 1 of each map index cannot read its job (503 on every GET of it, no transport retry): its wait ends with
    # an error event while the job runs on; the retry callback clears the fault and try 2 re-attaches by name
    conn = json.loads(conn_json(sim))
    conn["extra"]["max_attempts"] = 1
    monkeypatch.setenv("AIRFLOW_CONN_LIGHTNING_ONCE", json.dumps(conn))
    sim.set_faults(error_rate=1.0, only_paths=[r"/jobs/job-[0-9a-f]+$"])
    dagrun = get_dag("regress_mapped_retry").test()
    tis = {(ti.task_id, ti.map_index): ti for ti in dagrun.get_task_instances()}
    assert dagrun.state == "success", {key: ti.state for key, ti in tis.items()}
    assert 2 in [tis[("train", i)].try_number for i in (0, 1)]  # map index 0 retried (its callback ends the fault)
    results, urls = xcoms(dagrun, "train", "return_value"), xcoms(dagrun, "train", "job_url")
    for index in (0, 1):
        assert isinstance(results[index]["url"], str) and results[index]["url"] == urls[index]
        assert not results[index]["job_name"].endswith("-t2")  # re-attached, not submitted again
    assert results[0]["url"] != results[1]["url"]
    names = {results[i]["job_name"] for i in (0, 1)}
    assert len([job for job in sim.jobs() if job["name"] in names]) == 2  # one job per map index


def airflow_has_task_state_store() -> bool:
    from airflow import __version__
    from packaging.version import Version

    return Version(Version(__version__).base_version) >= Version("3.3")


@pytest.mark.skipif(not airflow_has_task_state_store(), reason="the task state store comes with Airflow 3.3")
@pytest.mark.parametrize("mode", ["deferrable", "blocking"])
def test_a_retry_finds_the_job_of_a_dead_worker_through_the_task_state_store(airflow_db, sim, capsys, mode):
    # try 1 submits and its worker dies; the job is renamed before try 2, so only its id (kept in the task
    # state store) can find it: try 2 re-attaches instead of submitting a second job
    name = unique("durable")
    dagrun = get_dag(f"regress_job_worker_dies_{mode}").test(run_conf={"name": name})
    assert dagrun.state == "success"
    assert [ti.try_number for ti in dagrun.get_task_instances()] == [2]
    jobs = [job for job in sim.jobs() if name in job["name"]]
    assert len(jobs) == 1 and jobs[0]["name"].startswith("renamed-")  # no second (-t2) job
    assert xcoms(dagrun, "train", "return_value")[-1]["job_id"] == jobs[0]["id"]
    logged = printed(capsys)
    assert "The task state store holds job" in logged and "Re-attaching to job" in logged


@pytest.mark.parametrize("mode", ["deferrable", "blocking"])
def test_a_failing_deployment_the_task_created_is_scaled_to_zero_and_the_message_says_so(
    airflow_db, sim, capsys, mode
):
    name = unique("fail")
    dagrun = get_dag(f"regress_deployment_fails_{mode}").test(run_conf={"name": name})
    assert dagrun.state == "failed"
    assert str(sim.get_deployment(name)["autoscaling"]["maxReplicas"]) == "0"  # nothing left running
    logged = printed(capsys)
    assert "the deployment this task created was scaled to zero" in logged
    assert "existed before this task" not in logged
    assert f"Deployment page: {sim.url}/sim-org/sim-teamspace/jobs/{name}" in logged


@pytest.mark.parametrize("mode", ["deferrable", "blocking"])
def test_a_retry_owns_the_deployment_a_dead_worker_created_and_scales_it_to_zero(airflow_db, sim, capsys, mode):
    # try 1 creates the (crash-looping) deployment and its worker dies; try 2 finds it unchanged, knows from the
    # marker in its release notes that this task created it, and scales it to zero when it fails
    name = unique("dies")
    dagrun = get_dag(f"regress_deployment_worker_dies_{mode}").test(run_conf={"name": name})
    assert dagrun.state == "failed"
    assert [ti.try_number for ti in dagrun.get_task_instances()] == [2]
    deployment = sim.get_deployment(name)
    assert "[airflow-owner:" in deployment["releaseNotes"]
    assert str(deployment["autoscaling"]["maxReplicas"]) == "0"  # nothing left running
    logged = printed(capsys)
    assert "was created by an earlier try of this task" in logged
    assert "the deployment this task created was scaled to zero" in logged
    assert "existed before this task" not in logged


def test_a_deployment_another_dag_run_created_is_not_owned_and_left_as_it_is(airflow_db, sim, capsys):
    from airflow_provider_lightning.hooks.lightning import LightningHook

    name = unique("other")
    hook = LightningHook()  # another run of the DAG created it (another owner key), with the same spec
    made = hook.upsert_deployment(name=name, image="ghcr.io/x/srv:1", command="python serve.py",
                                  env={"LIGHTNING_SIM_DEPLOYMENT": "fail"}, owner="0123456789abcdef")
    assert made.action == "created" and made.ours
    dagrun = get_dag("regress_deployment_fails_blocking").test(run_conf={"name": name})
    assert dagrun.state == "failed"
    assert "the deployment existed before this task and was left as it is" in printed(capsys)
    deployment = sim.get_deployment(name)
    assert deployment["releaseNotes"].endswith("[airflow-owner:0123456789abcdef]")  # the creator's mark is kept
    assert str(deployment["autoscaling"]["maxReplicas"]) != "0"


@pytest.mark.parametrize("mode", ["deferrable", "blocking"])
def test_deployment_results_keep_action_and_changes_in_both_modes(airflow_db, sim, mode):
    name = unique("keep")
    dagrun = get_dag(f"regress_deployment_results_{mode}").test(run_conf={"name": name})
    assert dagrun.state == "success"
    created, updated = xcoms(dagrun, "create", "return_value")[-1], xcoms(dagrun, "update", "return_value")[-1]
    assert created["action"] == "created" and created["changes"] == []
    assert updated["action"] == "updated" and "spec.image" in updated["changes"]
    assert created["web_url"].endswith(f"/jobs/{name}") and updated["url"]


@pytest.mark.parametrize("mode", ["deferrable", "blocking"])
def test_a_sensor_on_a_failed_job_fails_with_its_page_and_log_tail(airflow_db, sim, capsys, mode):
    job = sim.store.jobs.create(sim.project_id, {
        "name": unique("failing"),
        "spec": {"image": "python:3.12", "command": "echo loading data; echo boom: out of memory; exit 3"},
    })
    deadline = time.time() + 30
    while sim.get_job(job["id"])["state"] != "failed" and time.time() < deadline:
        time.sleep(0.1)
    dagrun = get_dag(f"regress_sensor_failed_job_{mode}").test(run_conf={"job_id": job["id"]})
    assert dagrun.state == "failed"
    logged = printed(capsys)
    assert f"Job page: {sim.url}/sim-org/sim-teamspace/jobs/{job['name']}" in logged
    assert "boom: out of memory" in logged
    assert xcoms(dagrun, "watch", "job_url")[-1].endswith(f"/jobs/{job['name']}?app_id=jobs")  # link from job_id=


def test_a_hung_host_fails_the_task_within_the_call_timeout_naming_connection_and_address(
    airflow_db, capsys, monkeypatch
):
    with hung_host() as hung:
        monkeypatch.setenv("AIRFLOW_CONN_LIGHTNING_HUNG", json.dumps({
            "conn_type": "lightning", "host": f"http://{hung.address}", "login": "u", "password": "k",
            "extra": {"teamspace": "org/ts", "call_timeout": 5},
        }))
        started = time.monotonic()
        dagrun = get_dag("regress_hung_host").test()
        elapsed = time.monotonic() - started
    assert dagrun.state == "failed"
    assert elapsed < 5 + 25  # the call timeout plus Airflow's own start-up: far below 90 s
    logged = printed(capsys)
    assert "Lightning connection 'lightning_hung'" in logged and hung.address in logged
    assert "XCom not found" not in logged  # no spurious link error for a task that never submitted
