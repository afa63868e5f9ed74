"""Train with a multi-machine job, deploy the model as a Lightning deployment, call it, then stop it."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, task

from airflow_provider_lightning.operators.deployments import (
    LightningDeploymentOperator,
    LightningStopDeploymentOperator,
)
from airflow_provider_lightning.operators.mmt import LightningMultiMachineJobOperator
from airflow_provider_lightning.sensors.lightning import LightningDeploymentSensor

with DAG(
    dag_id="example_lightning_deployment",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["lightning", "example"],
    doc_md=__doc__,
) as dag:
    train = LightningMultiMachineJobOperator(
        task_id="train",
        image="nvcr.io/nvidia/pytorch:24.01-py3",
        command='echo "rank $NODE_RANK of $WORLD_SIZE: training" && echo "rank $NODE_RANK saved checkpoint"',
        num_machines=2,
        machine="L4",
        poll_interval=2,
    )

    # [START howto_operator_lightning_deployment]
    deploy = LightningDeploymentOperator(
        task_id="deploy",
        deployment_name="example-model-api",
        image="ghcr.io/example/model-server:1",
        command="python serve.py --port 8000",
        env={"MODEL_RUN": "{{ ti.xcom_pull(task_ids='train', key='job_name') }}"},
        machine="L4",
        ports=[8000],
        replicas=1,
        health_check={"http": {"path": "/health", "port": 8000}},
        auth={"user_api_key": True},
        poll_interval=2,
        timeout=1800,
    )
    # [END howto_operator_lightning_deployment]

    ready = LightningDeploymentSensor(
        task_id="ready", deployment_name="example-model-api", target_state="ready", poke_interval=2, timeout=600
    )

    @task
    def call_model(deployment: dict) -> dict:
        """A real HTTP call to the deployed service, authenticated with the caller's Lightning API key."""
        import httpx

        from airflow_provider_lightning.hooks.lightning import LightningHook

        api_key = LightningHook().settings.api_key
        response = httpx.post(
            f"{deployment['url']}/predict",
            json={"inputs": [1.0, 2.0, 3.0]},
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=30,
        )
        response.raise_for_status()
        print(f"model answered {response.status_code}: {response.text[:200]}")
        return response.json()

    # [START howto_operator_lightning_stop_deployment]
    stop = LightningStopDeploymentOperator(
        task_id="stop", deployment_name="example-model-api", trigger_rule="all_done", poll_interval=2, timeout=600
    )
    # [END howto_operator_lightning_stop_deployment]

    answer = call_model(deploy.output)
    train >> deploy >> ready >> answer >> stop
