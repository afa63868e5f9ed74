"""A worker that dies on a task's last try: the failure callback Airflow then runs releases the task's work.

Airflow runs the task's ``on_failure_callback`` in the dag-processor after a heartbeat timeout, with a context
built from the task instance and without ``exception``; these tests call the callback the same way, against the
simulator. The worker's death is a ``wait`` that raises right after the submit (no operator cleanup runs).
"""

from __future__ import annotations

import uuid

import pendulum
import pytest
from airflow.sdk import DAG
from task_context import context

from airflow_provider_lightning.operators.deployments import LightningDeploymentOperator
from airflow_provider_lightning.operators.jobs import LightningJobOperator
from airflow_provider_lightning.operators.orphans import release_orphans


class WorkerDied(BaseException):
    """Raised where the worker process would have been killed."""


def dies_after_submit(operator):
    def wait(context, spec, method_name="execute_complete"):
        raise WorkerDied()

    operator.wait = wait
    return operator


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def job_op(**kw) -> LightningJobOperator:
    return LightningJobOperator(**{"task_id": "train", "image": "python:3.12", "command": "sleep 60",
                                   "deferrable": False, "poll_interval": 0.2, **kw})


def test_the_job_a_dead_worker_left_on_the_last_try_is_stopped_by_the_failure_callback(sim):
    ctx = context(run_id=unique("orphan"), try_number=2)
    with pytest.raises(WorkerDied):
        dies_after_submit(job_op()).execute(ctx)
    job_id = ctx["ti"].xcoms["job_id"]
    assert sim.get_job(job_id)["state"] in ("pending", "running")

    release_orphans({"task": job_op(), "ti": ctx["ti"]})  # what the dag-processor calls: a freshly parsed task

    assert sim.wait_for_job(job_id, ["stopped"], timeout=30)["state"] == "stopped"


def test_jobs_of_other_task_instances_are_left_running(sim):
    mine, other = context(run_id=unique("mine")), context(run_id=unique("other"))
    with pytest.raises(WorkerDied):
        dies_after_submit(job_op()).execute(other)
    other_id = other["ti"].xcoms["job_id"]

    release_orphans({"task": job_op(), "ti": mine["ti"]})

    assert sim.get_job(other_id)["state"] in ("pending", "running")
    sim.store.jobs.update(sim.project_id, other_id, {"state": "stop"})


def test_a_failure_in_the_task_process_makes_no_request(sim):
    ctx = context(run_id=unique("own"))
    sim.request_log.clear()
    release_orphans({"task": job_op(), "ti": ctx["ti"], "exception": RuntimeError("job failed")})
    assert list(sim.request_log) == []


def test_the_deployment_a_dead_worker_created_on_the_last_try_is_scaled_to_zero(sim, caplog):
    name = unique("orphan-dep")
    ctx = context(run_id=unique("dep"), try_number=1)
    make = lambda: LightningDeploymentOperator(  # noqa: E731
        task_id="deploy", deployment_name=name, image="ghcr.io/x/srv:1", command="python serve.py",
        env={"LIGHTNING_SIM_DEPLOYMENT": "crashloop"}, deferrable=False, poll_interval=0.2)
    with pytest.raises(WorkerDied):
        dies_after_submit(make()).execute(ctx)
    assert str(sim.get_deployment(name)["autoscaling"]["maxReplicas"]) != "0"

    with caplog.at_level("WARNING", logger="airflow_provider_lightning.operators.orphans"):
        release_orphans({"task": make(), "ti": ctx["ti"]})

    assert str(sim.get_deployment(name)["autoscaling"]["maxReplicas"]) == "0"
    assert f"failed without its worker: deployment {name} (" in caplog.text


def test_a_mapped_task_carries_the_callback_and_its_map_index_finds_its_own_job(sim):
    def users_callback(context):
        pass

    with DAG("orphans_mapped", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
             default_args={"on_failure_callback": users_callback}):
        mapped = LightningJobOperator.partial(task_id="train", image="python:3.12", deferrable=False,
                                              poll_interval=0.2).expand(command=["sleep 60", "sleep 60"])
        plain = job_op(task_id="plain", on_failure_callback=users_callback)
    assert mapped.on_failure_callback == [users_callback, release_orphans]
    assert plain.on_failure_callback == [users_callback, release_orphans]

    run_id = unique("mapped")
    contexts = [context(dag_id="orphans_mapped", task_id="train", run_id=run_id, map_index=i) for i in (0, 1)]
    for ctx in contexts:
        with pytest.raises(WorkerDied):
            dies_after_submit(job_op(task_id="train")).execute(ctx)
    jobs = [ctx["ti"].xcoms["job_id"] for ctx in contexts]

    release_orphans({"task": mapped, "ti": contexts[1]["ti"]})  # map index 1's worker died

    assert sim.wait_for_job(jobs[1], ["stopped"], timeout=30)["state"] == "stopped"
    assert sim.get_job(jobs[0])["state"] in ("pending", "running")
    sim.store.jobs.update(sim.project_id, jobs[0], {"state": "stop"})


def test_a_mapped_lightning_task_decorator_carries_the_callback_after_the_dags_default_args():
    from airflow.sdk import task

    def users_callback(context):
        pass

    with DAG("orphans_decorated", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
             default_args={"on_failure_callback": users_callback}):

        @task.lightning(studio="my-studio")
        def train(lr, epochs):
            return lr

        tasks = [train.expand(lr=[0.1, 0.2]), train.partial(epochs=1).expand(lr=[0.1]),
                 train.override(task_id="again").expand_kwargs([{"lr": 0.1, "epochs": 1}]), train(0.1, 2)]
    for xcom in tasks:
        assert xcom.operator.on_failure_callback == [users_callback, release_orphans], xcom.operator.task_id
