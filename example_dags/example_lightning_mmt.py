"""Distributed training on several Lightning machines (a multi-machine job), then a check of the run."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from airflow_provider_lightning.operators.mmt import LightningMultiMachineJobOperator
from airflow_provider_lightning.sensors.lightning import LightningMultiMachineJobSensor

with DAG(
    dag_id="example_lightning_mmt",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["lightning", "example"],
    doc_md=__doc__,
) as dag:
    # [START howto_operator_lightning_mmt]
    train = LightningMultiMachineJobOperator(
        task_id="train_ddp",
        image="nvcr.io/nvidia/pytorch:24.01-py3",
        command=(
            'echo "node $NODE_RANK of $WORLD_SIZE, master $MASTER_ADDR:$MASTER_PORT" && echo "rank $NODE_RANK done"'
        ),
        num_machines=2,
        machine="H100_X_8",
        max_run_attempts=2,
        timeout=12 * 3600,
        poll_interval=2,
    )
    # [END howto_operator_lightning_mmt]

    check = LightningMultiMachineJobSensor(
        task_id="check_ddp",
        job_id="{{ ti.xcom_pull(task_ids='train_ddp', key='job_id') }}",
        poke_interval=2,
        timeout=600,
    )

    train >> check
