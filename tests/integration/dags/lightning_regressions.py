"""DAGs for tests/integration/test_dag_test_regressions.py: what new users wrote when they hit the bugs.

Run by ``dag.test()``; names and ids come in through ``dag.test(run_conf=...)`` so each run is its own.
"""

from __future__ import annotations

import json
import os

import httpx
import pendulum
from airflow.sdk import DAG

from airflow_provider_lightning.operators.deployments import LightningDeploymentOperator
from airflow_provider_lightning.operators.jobs import LightningJobOperator
from airflow_provider_lightning.sensors.lightning import LightningJobSensor

START = pendulum.datetime(2026, 1, 1, tz="UTC")
MODES = {"deferrable": True, "blocking": False}


def clear_simulator_faults(context):
    """on_retry_callback: the API is back before the retry (the simulator's admin endpoint)."""
    conn = json.loads(os.environ["AIRFLOW_CONN_LIGHTNING_ONCE"])
    httpx.delete(f"{conn['host']}/__admin/faults", timeout=10).raise_for_status()


class DeploymentWorkerDiesOnTry1(LightningDeploymentOperator):
    """Try 1's worker dies right after the upsert: nothing of that try's memory reaches try 2."""

    def wait(self, context, spec, method_name="execute_complete"):
        if context["ti"].try_number == 1:
            raise SystemError("worker process killed (simulated: no cleanup runs)")
        return super().wait(context, spec, method_name)


class JobWorkerDiesOnTry1(LightningJobOperator):
    """Try 1's worker dies right after the submit: only what try 1 persisted reaches try 2."""

    def wait(self, context, spec, method_name="execute_complete"):
        if context["ti"].try_number == 1:
            raise SystemError("worker process killed (simulated: no cleanup runs)")
        return super().wait(context, spec, method_name)


def rename_the_job(context):
    """on_retry_callback: someone renames try 1's job in the Lightning UI, so no try name finds it any more."""
    from airflow_provider_lightning.api.jobs import JOB
    from airflow_provider_lightning.api.transport import ApiCall
    from airflow_provider_lightning.hooks.lightning import LightningHook

    hook = LightningHook()
    base = context["dag_run"].conf["name"]
    for job in hook.list_jobs():
        if job.name.startswith(base):
            hook.run(ApiCall("PUT", JOB.path(hook.project_id, job.id), json={"name": f"renamed-{job.name}"}))


with DAG("regress_mapped_retry", schedule=None, start_date=START, catchup=False):
    LightningJobOperator.partial(
        task_id="train", image="python:3.12", deferrable=True, poll_interval=0.2, retries=1, retry_delay=0,
        on_retry_callback=clear_simulator_faults, lightning_conn_id="lightning_once",
    ).expand(command=["echo first; sleep 3", "echo second; sleep 3"])

for mode, deferrable in MODES.items():
    with DAG(f"regress_deployment_fails_{mode}", schedule=None, start_date=START, catchup=False):
        LightningDeploymentOperator(
            task_id="deploy", deployment_name="{{ dag_run.conf['name'] }}", image="ghcr.io/x/srv:1",
            command="python serve.py", env={"LIGHTNING_SIM_DEPLOYMENT": "fail"}, poll_interval=0.2, timeout=60,
            deferrable=deferrable,
        )

    with DAG(f"regress_deployment_worker_dies_{mode}", schedule=None, start_date=START, catchup=False):
        DeploymentWorkerDiesOnTry1(
            task_id="deploy", deployment_name="{{ dag_run.conf['name'] }}", image="ghcr.io/x/srv:1",
            command="python serve.py", env={"LIGHTNING_SIM_DEPLOYMENT": "fail"}, poll_interval=0.2, timeout=60,
            deferrable=deferrable, retries=1, retry_delay=0,
        )

    with DAG(f"regress_deployment_results_{mode}", schedule=None, start_date=START, catchup=False):
        create = LightningDeploymentOperator(
            task_id="create", deployment_name="{{ dag_run.conf['name'] }}", image="ghcr.io/x/srv:1",
            command="python serve.py", poll_interval=0.2, timeout=60, deferrable=deferrable,
        )
        update = LightningDeploymentOperator(
            task_id="update", deployment_name="{{ dag_run.conf['name'] }}", image="ghcr.io/x/srv:2",
            command="python serve.py", poll_interval=0.2, timeout=60, deferrable=deferrable,
        )
        create >> update

    with DAG(f"regress_sensor_failed_job_{mode}", schedule=None, start_date=START, catchup=False):
        LightningJobSensor(task_id="watch", job_id="{{ dag_run.conf['job_id'] }}", deferrable=deferrable,
                           poke_interval=0.2, timeout=30)

for mode, deferrable in MODES.items():
    with DAG(f"regress_job_worker_dies_{mode}", schedule=None, start_date=START, catchup=False):
        JobWorkerDiesOnTry1(
            task_id="train", name="{{ dag_run.conf['name'] }}", image="python:3.12", command="echo hi; sleep 2",
            poll_interval=0.2, deferrable=deferrable, retries=1, retry_delay=0, on_retry_callback=rename_the_job,
        )

with DAG("regress_hung_host", schedule=None, start_date=START, catchup=False):
    LightningJobOperator(task_id="train", image="python:3.12", command="echo hi", lightning_conn_id="lightning_hung",
                         deferrable=True)
