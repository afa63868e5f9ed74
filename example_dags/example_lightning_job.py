"""Train on Lightning AI from Airflow: a Studio job prepares data, a container job trains, a sensor checks.

Runs unchanged against the real Lightning API or the local simulator (``lightning-simulator``):
only the ``lightning_default`` connection differs.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, task

from airflow_provider_lightning.operators.jobs import LightningJobOperator
from airflow_provider_lightning.sensors.lightning import LightningJobSensor

with DAG(
    dag_id="example_lightning_job",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["lightning", "example"],
    doc_md=__doc__,
) as dag:
    # [START howto_operator_lightning_studio_job]
    prepare = LightningJobOperator(
        task_id="prepare_data",
        studio="sim-studio",
        command="echo 'rows=1000' > prepared.txt && cat prepared.txt",
        machine="CPU",
        poll_interval=2,
    )
    # [END howto_operator_lightning_studio_job]

    # [START howto_operator_lightning_job]
    train = LightningJobOperator(
        task_id="train",
        image="pytorchlightning/pytorch_lightning:latest",
        command=(
            "python -c \"import time\n"
            "for epoch in range(3):\n"
            "    print(f'epoch {epoch} loss {1.0 / (epoch + 1):.3f}', flush=True)\n"
            "    time.sleep(1)\n"
            "print('training done')\""
        ),
        machine="L4",
        env={"RUN_ID": "{{ run_id }}"},
        interruptible=True,
        timeout=3600,
        poll_interval=2,
    )
    # [END howto_operator_lightning_job]

    # [START howto_sensor_lightning_job]
    check = LightningJobSensor(
        task_id="check_training",
        job_id="{{ ti.xcom_pull(task_ids='train', key='job_id') }}",
        target_phase="completed",
        poke_interval=2,
        timeout=600,
    )
    # [END howto_sensor_lightning_job]

    @task
    def report(result: dict) -> str:
        summary = f"job {result['job_name']} {result['phase']} in {result['duration_seconds']} s: {result['url']}"
        print(summary)
        return summary

    prepare >> train >> check
    report(train.output)
