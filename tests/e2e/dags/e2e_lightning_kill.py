"""E2E only (loaded by tests/e2e as a second DAG bundle): a deferred job task that a user marks failed.

The job runs for minutes, so the test can mark the deferred task failed while the triggerer waits on it and
check that the trigger's ``on_kill`` (Airflow 3.3+) stopped the job in the simulator.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from airflow_provider_lightning.operators.jobs import LightningJobOperator

with DAG(
    dag_id="e2e_lightning_kill",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["lightning", "e2e"],
):
    LightningJobOperator(
        task_id="long_job",
        image="python:3.11-slim",
        command="for i in $(seq 1 300); do echo tick $i; sleep 1; done",
        machine="CPU",
        deferrable=True,
        poll_interval=1,
        timeout=900,
    )
