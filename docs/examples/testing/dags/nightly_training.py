"""A DAG of your own: prepare data in a Studio, then train in a container job on a GPU machine."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from airflow_provider_lightning.operators.jobs import LightningJobOperator

with DAG(
    dag_id="nightly_training",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"exit_code": 0},
) as dag:
    prepare = LightningJobOperator(
        task_id="prepare",
        studio="my-studio",
        command="echo 'rows=1000' > prepared.txt && cat prepared.txt",
        poll_interval=1,
    )
    train = LightningJobOperator(
        task_id="train",
        image="pytorchlightning/pytorch_lightning:latest",
        command="echo 'epoch 0 loss 0.9' && echo 'epoch 1 loss 0.4' && exit {{ params.exit_code }}",
        machine="A100",
        timeout=3600,
        poll_interval=1,
    )
    prepare >> train
