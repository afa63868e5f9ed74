"""`make chaos-stack` only (scripts/chaos_stack.py loads this folder as a second DAG bundle of the prod stack).

Four DAGs, one run each, about 210 deferrable Lightning tasks through mapped tasks. The task id says how each
task must end, and scripts/chaos_stack.py checks it (plus the phase its Lightning work ends in):

* ``*_ok`` succeed; ``*_fail`` fail because their job exits non-zero (or their deployment fails, or the job a
  sensor watches fails); ``*_timeout`` fail because their ``timeout`` passes (a job or multi-machine job is then
  stopped, a deployment scaled to zero; a sensor leaves its job alone: ``stop_watched_jobs`` stops those);
* every deployment a ``deploy_ok`` task brings up is scaled to zero by ``stop_ok`` at the end, so nothing is
  left serving;
* ``*_worker_dies`` tasks (no retries) lose their worker right after creating their work: the task process
  ``kill -9``s its supervisor (the Celery pool process) and itself. Airflow fails them by heartbeat timeout and
  runs their failure callback in the dag-processor, which must stop the job or scale the deployment to zero.

Remote work takes seconds to a minute (long enough for many triggers to be deferred at once). Secrets go in as a running job would get them: the connection's API key and the
``chaos_secret_token`` Variable as templated env values (some jobs print the API key: Airflow must mask it in
the worker's and the triggerer's part of the task log), and a deployment endpoint token from the environment
(``CHAOS_STACK_DEPLOY_TOKEN``, set by the script); none of them may appear in any log.
"""

from __future__ import annotations

import os
import signal
from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import DAG, task

from airflow_provider_lightning.operators.deployments import (
    LightningDeploymentOperator,
    LightningStopDeploymentOperator,
)
from airflow_provider_lightning.operators.jobs import LightningJobOperator
from airflow_provider_lightning.operators.mmt import LightningMultiMachineJobOperator
from airflow_provider_lightning.sensors.lightning import LightningJobSensor

IMAGE = "python:3.11-slim"


class _WorkerDiesAfterCreating:
    """The worker dies right after this try created its Lightning work: no operator code runs after it."""

    def wait(self, context: Any, spec: Any, method_name: str = "execute_complete") -> Any:
        if os.environ.get("CHAOS_STACK_DEPLOY_TOKEN"):  # only inside the chaos stack's Celery workers
            os.kill(os.getppid(), signal.SIGKILL)  # the supervisor (Celery pool process): no heartbeat any more
            os.kill(os.getpid(), signal.SIGKILL)
        raise RuntimeError("_WorkerDiesAfterCreating only runs in make chaos-stack")


class JobWorkerDies(_WorkerDiesAfterCreating, LightningJobOperator):
    pass


class MultiMachineJobWorkerDies(_WorkerDiesAfterCreating, LightningMultiMachineJobOperator):
    pass


class DeploymentWorkerDies(_WorkerDiesAfterCreating, LightningDeploymentOperator):
    pass

POLL = 3  # seconds between status reads of every deferred task
RETRY = timedelta(seconds=3)
DEPLOY_TOKEN = os.environ.get("CHAOS_STACK_DEPLOY_TOKEN", "chaos-stack-token-not-set")
SECRET_ENV = {
    "CHAOS_CONN_KEY": "{{ conn.lightning_default.password }}",
    "CHAOS_TOKEN": "{{ var.value.chaos_secret_token }}",
}
DEFAULTS: dict[str, Any] = {"retries": 3, "retry_delay": RETRY}
DAG_ARGS: dict[str, Any] = {
    "start_date": pendulum.datetime(2026, 1, 1, tz="UTC"),
    "catchup": False,
    "max_active_runs": 1,
    "max_active_tasks": 64,
    "default_args": DEFAULTS,
    "tags": ["lightning", "chaos"],
}


def _ok_command(i: int) -> str:
    show_key = ' echo "conn key is $CHAOS_CONN_KEY";' if i % 6 == 0 else ""
    return f'echo "chaos job {i}: start";{show_key} sleep {20 + i % 20}; echo "chaos job {i}: done"'


def _fail_command(i: int) -> str:
    show_key = ' echo "failing with key $CHAOS_CONN_KEY";' if i % 4 == 0 else ""
    return f'echo "chaos job {i}: will fail";{show_key} sleep {5 + i % 10}; exit {1 + i % 3}'


def _job_id(result: dict[str, Any]) -> str:
    return str(result["job_id"])


with DAG(dag_id="chaos_lightning_jobs", schedule=None, doc_md="Job tasks: 72 succeed, 20 fail, 16 time out.", **DAG_ARGS):
    LightningJobOperator.partial(
        task_id="job_ok", image=IMAGE, env=SECRET_ENV, deferrable=True, poll_interval=POLL, timeout=300,
    ).expand(command=[_ok_command(i) for i in range(72)])
    LightningJobOperator.partial(
        task_id="job_fail", image=IMAGE, env=SECRET_ENV, deferrable=True, poll_interval=POLL, timeout=300, retries=1,
    ).expand(command=[_fail_command(i) for i in range(20)])
    LightningJobOperator.partial(
        task_id="job_timeout", image=IMAGE, env=SECRET_ENV, deferrable=True, poll_interval=POLL, timeout=8, retries=1,
    ).expand(command=[f'echo "chaos job {i}: runs too long"; sleep 300' for i in range(16)])
    JobWorkerDies.partial(
        task_id="job_worker_dies", image=IMAGE, deferrable=True, poll_interval=POLL, timeout=300, retries=0,
    ).expand(command=[f'echo "orphan {i}"; sleep 300' for i in range(2)])

with DAG(dag_id="chaos_lightning_mmt", schedule=None,
         doc_md="Multi-machine jobs (2 machines): 16 succeed, 6 fail, 6 time out.", **DAG_ARGS):
    LightningMultiMachineJobOperator.partial(
        task_id="mmt_ok", image=IMAGE, num_machines=2, deferrable=True, poll_interval=POLL, timeout=300,
    ).expand(command=[f'echo "mmt {i} rank $NODE_RANK of $WORLD_SIZE"; sleep {15 + i % 10}; echo done'
                      for i in range(16)])
    LightningMultiMachineJobOperator.partial(
        task_id="mmt_fail", image=IMAGE, num_machines=2, deferrable=True, poll_interval=POLL, timeout=300, retries=1,
    ).expand(command=[f'echo "mmt {i} rank $NODE_RANK"; sleep 2; if [ "$NODE_RANK" = 1 ]; then exit 3; fi'
                      for i in range(6)])
    LightningMultiMachineJobOperator.partial(
        task_id="mmt_timeout", image=IMAGE, num_machines=2, deferrable=True, poll_interval=POLL, timeout=8, retries=1,
    ).expand(command=[f'echo "mmt {i} rank $NODE_RANK runs too long"; sleep 300' for i in range(6)])
    MultiMachineJobWorkerDies(
        task_id="mmt_worker_dies", image=IMAGE, num_machines=2, deferrable=True, poll_interval=POLL, timeout=300,
        retries=0, command='echo "orphan mmt rank $NODE_RANK"; sleep 300',
    )

with DAG(dag_id="chaos_lightning_sensors", schedule=None,
         doc_md="Deferrable job sensors, three per watched job: 24 succeed, 12 fail, 9 time out.", **DAG_ARGS):
    submit: dict[str, Any] = {"image": IMAGE, "wait_for_completion": False, "env": SECRET_ENV}
    watched_ok = LightningJobOperator.partial(task_id="submit_ok", **submit).expand(
        command=[f'echo "watched {i}"; sleep {30 + 3 * i}; echo done' for i in range(8)])
    watched_fail = LightningJobOperator.partial(task_id="submit_fail", **submit).expand(
        command=[f'echo "watched {i}, will fail"; sleep {25 + 2 * i}; exit 4' for i in range(4)])
    watched_long = LightningJobOperator.partial(task_id="submit_timeout", **submit).expand(
        command=[f'echo "watched {i}, runs too long"; sleep 300' for i in range(3)])
    sensor: dict[str, Any] = {"deferrable": True, "target_phase": "completed", "retries": 2, "retry_delay": RETRY}
    LightningJobSensor.partial(task_id="sensor_ok", timeout=300, **sensor).expand(
        job_id=watched_ok.output.map(_job_id), poke_interval=[2, 3, 4])
    LightningJobSensor.partial(task_id="sensor_fail", timeout=300, **sensor).expand(
        job_id=watched_fail.output.map(_job_id), poke_interval=[2, 3, 4])
    timing_out = LightningJobSensor.partial(task_id="sensor_timeout", timeout=8, **sensor).expand(
        job_id=watched_long.output.map(_job_id), poke_interval=[2, 3, 4])

    @task(trigger_rule="all_done")
    def stop_watched_jobs(results: Any) -> list[str]:
        """A sensor never stops the job it watches: stop the ones the timing-out sensors gave up on."""
        from airflow_provider_lightning.hooks.lightning import LightningHook

        hook = LightningHook()
        phases = [hook.stop_job(result["job_id"]).phase.value for result in results]
        print(f"stopped {len(phases)} watched jobs: {phases}")
        return phases

    timing_out >> stop_watched_jobs(watched_long.output)

OK_DEPLOYMENTS = [f"chaos-ok-{i}" for i in range(10)]
with DAG(dag_id="chaos_lightning_deployments", schedule=None,
         doc_md="Deployments: 10 become ready (then stop_ok scales them to zero), 5 fail, 5 never get ready.",
         **DAG_ARGS):
    deploy: dict[str, Any] = {
        "image": IMAGE, "command": 'exec python3 -m http.server "$PORT" --bind 127.0.0.1', "ports": [8000],
        "replicas": 1, "health_check": {"http": {"path": "/", "port": 8000}}, "auth": {"token": DEPLOY_TOKEN},
        "deferrable": True, "poll_interval": POLL,
    }
    ready = LightningDeploymentOperator.partial(task_id="deploy_ok", timeout=120, **deploy).expand(
        deployment_name=OK_DEPLOYMENTS)
    LightningDeploymentOperator.partial(
        task_id="deploy_fail", timeout=120, retries=1, env={"LIGHTNING_SIM_DEPLOYMENT": "fail"}, **deploy,
    ).expand(deployment_name=[f"chaos-fail-{i}" for i in range(5)])
    LightningDeploymentOperator.partial(
        task_id="deploy_timeout", timeout=10, retries=1, env={"LIGHTNING_SIM_DEPLOYMENT": "crashloop"}, **deploy,
    ).expand(deployment_name=[f"chaos-timeout-{i}" for i in range(5)])
    DeploymentWorkerDies.partial(
        task_id="deploy_worker_dies", timeout=120, retries=0, env={"LIGHTNING_SIM_DEPLOYMENT": "crashloop"}, **deploy,
    ).expand(deployment_name=[f"chaos-orphan-{i}" for i in range(2)])
    ready >> LightningStopDeploymentOperator.partial(
        task_id="stop_ok", deferrable=True, poll_interval=POLL, timeout=120, trigger_rule="all_done",
    ).expand(deployment_name=OK_DEPLOYMENTS)
