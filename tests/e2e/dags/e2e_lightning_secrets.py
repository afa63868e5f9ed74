"""E2E only: a job that is handed the connection's API key through a templated env var and prints it.

Airflow must mask the key wherever it shows text: the rendered template fields, the task log (the worker's
part and the trigger's part, which streams the job's output), XCom and the trigger's row in the database.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from airflow_provider_lightning.operators.jobs import LightningJobOperator

with DAG(
    dag_id="e2e_lightning_secrets",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["lightning", "e2e"],
):
    LightningJobOperator(
        task_id="job_with_secret",
        image="python:3.11-slim",
        command='echo "the key is $LIGHTNING_TEST_KEY"; sleep 5; echo "still $LIGHTNING_TEST_KEY"',
        env={"LIGHTNING_TEST_KEY": "{{ conn.lightning_default.password }}"},
        machine="CPU",
        deferrable=True,
        poll_interval=1,
    )
