"""Train, evaluate, deploy and call a model on Lightning AI, passing real data between the steps.

1. ``store_model_token`` copies the Airflow Variable ``model_api_token`` into the teamspace secret
   ``MODEL_API_TOKEN`` (masked, never logged).
2. ``train`` (a Studio job) fits a tiny model, writes its checkpoint and metrics as job artifacts, publishes the
   checkpoint to the drive path the ``CHECKPOINT`` Asset names, and returns a JSON result (``read_result=True``).
3. ``evaluate`` is a ``@task.lightning`` function: it runs as a Lightning job, reads the checkpoint from the
   teamspace drive (``/teamspace/...``) and returns its score.
4. ``deploy`` starts a model server that loads that checkpoint; its token comes from the teamspace secret.
5. ``call_model`` calls the deployment's URL; ``stop`` scales it to zero whatever happened.

``example_lightning_on_checkpoint`` is scheduled on the checkpoint Asset: each new checkpoint runs it.
Runs unchanged against the real Lightning API or the local simulator; only ``lightning_default`` differs.
"""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import DAG, Variable, task

from airflow_provider_lightning.assets import drive_asset
from airflow_provider_lightning.operators.deployments import (
    LightningDeploymentOperator,
    LightningStopDeploymentOperator,
)
from airflow_provider_lightning.operators.drive import LightningDriveDownloadOperator
from airflow_provider_lightning.operators.jobs import LightningJobOperator
from airflow_provider_lightning.operators.secrets import LightningSetSecretOperator

TEAMSPACE = os.environ.get("LIGHTNING_EXAMPLE_TEAMSPACE", "sim-org/sim-teamspace")
STUDIO = os.environ.get("LIGHTNING_EXAMPLE_STUDIO", "sim-studio")
CHECKPOINT_PATH = "models/example/checkpoint.json"  # in the teamspace drive; machines see /teamspace/<path>
CHECKPOINT = drive_asset(TEAMSPACE, CHECKPOINT_PATH, name="example_model_checkpoint")

TRAIN = r"""
python3 - <<'PY'
import json, os, pathlib
# fit y = w*x + b on a toy dataset with plain gradient descent
data = [(x / 10, 2.0 * x / 10 + 1.0) for x in range(20)]
w = b = 0.0
for epoch in range(300):
    gw = sum(2 * (w * x + b - y) * x for x, y in data) / len(data)
    gb = sum(2 * (w * x + b - y) for x, y in data) / len(data)
    w, b = w - 0.1 * gw, b - 0.1 * gb
    if epoch % 100 == 0:
        print(f"epoch {epoch}: w={w:.3f} b={b:.3f}", flush=True)
loss = sum((w * x + b - y) ** 2 for x, y in data) / len(data)
checkpoint = json.dumps({"w": w, "b": b})
artifacts = pathlib.Path(os.environ["LIGHTNING_ARTIFACTS_DIR"])
(artifacts / "checkpoint.json").write_text(checkpoint)
(artifacts / "metrics.json").write_text(json.dumps({"loss": loss, "epochs": 300}))
published = pathlib.Path("/teamspace/models/example")
published.mkdir(parents=True, exist_ok=True)
(published / "checkpoint.json").write_text(checkpoint)
result = {"checkpoint": "models/example/checkpoint.json", "loss": loss}
(artifacts / os.environ["AIRFLOW_LIGHTNING_RESULT_FILE"]).write_text(json.dumps(result))
print(f"trained: loss {loss:.6f}", flush=True)
PY
"""

SERVE = r"""
python3 - <<'PY'
import http.server, json, os
model = json.load(open(os.environ["CHECKPOINT"]))
token = os.environ["MODEL_TOKEN"]
class Handler(http.server.BaseHTTPRequestHandler):
    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def do_GET(self):
        self.answer(200, {"status": "ok"})
    def do_POST(self):
        if self.headers.get("X-Model-Token") != token:
            return self.answer(403, {"error": "bad model token"})
        inputs = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["inputs"]
        self.answer(200, {"outputs": [model["w"] * x + model["b"] for x in inputs]})
print("serving the checkpoint", flush=True)
http.server.HTTPServer(("0.0.0.0", int(os.environ.get("PORT", "8000"))), Handler).serve_forever()
PY
"""

with DAG(
    dag_id="example_lightning_train_deploy",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["lightning", "example"],
    doc_md=__doc__,
) as dag:
    # [START howto_operator_lightning_set_secret]
    store_token = LightningSetSecretOperator(
        task_id="store_model_token", secret_name="MODEL_API_TOKEN", variable_key="model_api_token"
    )
    # [END howto_operator_lightning_set_secret]

    # [START howto_operator_lightning_job_result]
    train = LightningJobOperator(
        task_id="train",
        studio=STUDIO,
        command=TRAIN,
        machine="CPU",
        read_result=True,  # the task's XCom value is the JSON the job wrote
        outlets=[CHECKPOINT],
        poll_interval=2,
    )
    # [END howto_operator_lightning_job_result]

    # [START howto_decorator_lightning]
    @task.lightning(studio=STUDIO, machine="CPU", poll_interval=2)
    def evaluate(trained: dict) -> dict:
        """Runs on Lightning: reads the checkpoint from the teamspace drive and scores it."""
        import json

        with open("/teamspace/" + trained["checkpoint"]) as handle:
            model = json.load(handle)
        test = [(x / 7, 2.0 * x / 7 + 1.0) for x in range(7)]
        error = max(abs(model["w"] * x + model["b"] - y) for x, y in test)
        print(f"max abs error on the test set: {error:.6f}")
        return {"max_abs_error": error, "passed": error < 0.05}
    # [END howto_decorator_lightning]

    deploy = LightningDeploymentOperator(
        task_id="deploy",
        deployment_name="example-trained-model",
        studio=STUDIO,
        command=SERVE,
        env={"CHECKPOINT": "/teamspace/" + CHECKPOINT_PATH},
        secrets={"MODEL_TOKEN": "MODEL_API_TOKEN"},
        machine="CPU",
        ports=[8000],
        replicas=1,
        health_check={"http": {"path": "/health", "port": 8000}},
        auth={"user_api_key": True},
        poll_interval=2,
        timeout=600,
    )

    @task
    def call_model(deployment: dict, score: dict) -> dict:
        """A real HTTP call to the deployed checkpoint: Lightning auth plus the model's own token."""
        import httpx

        from airflow_provider_lightning.hooks.lightning import LightningHook

        if not score["passed"]:
            raise ValueError(f"the model did not pass evaluation: {score}")
        headers = {
            "Authorization": f"Bearer {LightningHook().settings.api_key}",
            "X-Model-Token": Variable.get("model_api_token"),
        }
        response = httpx.post(f"{deployment['url']}/predict", json={"inputs": [0.0, 1.0, 2.0]}, headers=headers,
                              timeout=30)
        response.raise_for_status()
        print(f"model answered {response.status_code}: {response.text[:200]}")
        return response.json()

    stop = LightningStopDeploymentOperator(
        task_id="stop", deployment_name="example-trained-model", trigger_rule="all_done", poll_interval=2,
        timeout=600,
    )

    score = evaluate(train.output)
    answer = call_model(deploy.output, score)
    store_token >> train
    score >> deploy
    answer >> stop


with DAG(
    dag_id="example_lightning_on_checkpoint",
    schedule=[CHECKPOINT],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["lightning", "example"],
    doc_md="Runs whenever ``example_lightning_train_deploy`` publishes a new checkpoint (an Asset event).",
) as on_checkpoint:
    # [START howto_operator_lightning_drive_download]
    fetch = LightningDriveDownloadOperator(
        task_id="download_checkpoint",
        remote_path=CHECKPOINT_PATH,
        local_path="/tmp/lightning-example/{{ run_id }}/checkpoint.json",
    )
    # [END howto_operator_lightning_drive_download]

    @task
    def inspect_checkpoint(downloaded: dict) -> dict:
        import json

        with open(downloaded["local_path"]) as handle:
            model = json.load(handle)
        print(f"new checkpoint: {model} ({downloaded['size']} bytes, sha256 {downloaded['files'][0]['sha256']})")
        return model

    inspect_checkpoint(fetch.output)
