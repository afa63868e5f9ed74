"""A Studio pipeline: start the Studio, prepare data in it, train as a job from the same Studio, stop it."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from airflow_provider_lightning.operators.jobs import LightningJobOperator
from airflow_provider_lightning.operators.studios import (
    LightningStudioCommandOperator,
    LightningStudioStartOperator,
    LightningStudioStopOperator,
)

with DAG(
    dag_id="example_lightning_studio",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["lightning", "example"],
    doc_md=__doc__,
) as dag:
    # [START howto_operator_lightning_studio]
    start = LightningStudioStartOperator(task_id="start_studio", studio_name="sim-studio", machine="CPU",
                                         poll_interval=1)

    prepare = LightningStudioCommandOperator(
        task_id="prepare_data",
        studio_name="sim-studio",
        command="mkdir -p data && seq 1 1000 > data/rows.txt && echo prepared $(wc -l < data/rows.txt) rows",
        poll_interval=1,
    )

    train = LightningJobOperator(
        task_id="train",
        studio="sim-studio",
        command="echo training from the Studio snapshot && echo done",
        machine="CPU",
        poll_interval=1,
    )

    stop = LightningStudioStopOperator(task_id="stop_studio", studio_name="sim-studio", trigger_rule="all_done",
                                       poll_interval=1)
    # [END howto_operator_lightning_studio]

    start >> prepare >> train >> stop
