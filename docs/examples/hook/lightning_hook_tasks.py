"""LightningHook in ``@task`` functions: a Studio command, a training job, a deployment, then its teardown.

Each task calls the hook's public methods with plain keyword arguments and waits with the provider's
own wait loop in the worker. ``poll_interval`` is a DAG param so a test can poll quickly.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task

from airflow_provider_lightning.hooks.lightning import LightningHook


@dag(
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"poll_interval": 15.0},
    tags=["lightning"],
)
def lightning_hook_tasks():
    # [START hook_studio_task]
    @task
    def prepare_data(params=None) -> str:
        """Start a Studio, run a command in it, stop it again."""
        hook = LightningHook()  # the "lightning_default" connection
        poll = params["poll_interval"]
        try:
            hook.start_studio("my-studio", machine="CPU")  # returns once the start is accepted
            started = hook.wait_for_studio("my-studio", "running", timeout=900, poll_interval=poll)
            if not started.succeeded:
                raise RuntimeError(f"Studio my-studio did not start: {started.message}")
            result = hook.run_in_studio("my-studio", "echo 'rows=1000' > rows.txt && cat rows.txt",
                                        timeout=1800, poll_interval=poll)
        finally:
            hook.stop_studio("my-studio")  # also when a step above failed
        if result["exit_code"] != 0:
            raise RuntimeError(f"{result['message']}\n" + "\n".join(result["tail"]))
        return result["output"].strip()  # "rows=1000", pushed to XCom

    # [END hook_studio_task]

    # [START hook_job_task]
    @task
    def train(rows: str, params=None) -> str:
        """Submit a container job with keyword arguments and wait until it completes."""
        hook = LightningHook()
        job = hook.submit_job(
            name="nightly-train",
            image="pytorchlightning/pytorch_lightning:latest",
            command=f"echo 'training on {rows}' && echo 'epoch 1 loss 0.4'",
            machine="CPU",
            env={"EPOCHS": "1"},
        )
        event = hook.wait_for_job(job, timeout=3600, poll_interval=params["poll_interval"], stream_logs=True)
        if not event.succeeded:  # failed, stopped, timed out: the reason and the last log lines
            raise RuntimeError(f"{event.message}\n" + "\n".join(event.log_tail))
        return job.name  # the server may have suffixed the name: use the one it returned

    # [END hook_job_task]

    # [START hook_deployment_task]
    @task
    def serve(model_run: str, params=None) -> list[str]:
        """Create or update a deployment and wait until it serves; returns its URLs."""
        hook = LightningHook()
        upserted = hook.upsert_deployment(
            name="nightly-model-api",
            image="ghcr.io/me/model-server:1",
            command="python serve.py",
            ports=[8000],
            env={"MODEL_RUN": model_run},
            health_check={"http": {"path": "/health"}},
        )
        print(f"deployment {upserted.state.name} {upserted.action}")  # created, updated or unchanged
        event = hook.wait_for_deployment(upserted.state.id, state="ready", timeout=1800,
                                         poll_interval=params["poll_interval"])
        if not event.succeeded:
            raise RuntimeError(event.message)
        return event.resource.detail["urls"]

    # [END hook_deployment_task]

    # [START hook_teardown_task]
    @task
    def scale_to_zero(urls: list[str], params=None) -> None:
        """Stop the deployment (scale it to zero) and wait until no replica is left."""
        hook = LightningHook()
        hook.stop_deployment("nightly-model-api")
        event = hook.wait_for_deployment("nightly-model-api", state="stopped", timeout=600,
                                         poll_interval=params["poll_interval"])
        if not event.succeeded:
            raise RuntimeError(event.message)

    # [END hook_teardown_task]

    scale_to_zero(serve(train(prepare_data())))


lightning_hook_tasks()
