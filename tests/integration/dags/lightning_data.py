"""DAGs of the data tests (tests/integration/test_drive.py): job results after a deferred wait, drive Assets."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from airflow_provider_lightning.assets import drive_asset
from airflow_provider_lightning.operators.drive import LightningDriveDownloadOperator, LightningDriveUploadOperator
from airflow_provider_lightning.operators.jobs import LightningJobOperator

START = pendulum.datetime(2026, 1, 1, tz="UTC")
WRITE = 'echo "{\\"ok\\": true, \\"index\\": {{ ti.map_index }}}" > "$LIGHTNING_ARTIFACTS_DIR/$AIRFLOW_LIGHTNING_RESULT_FILE"'

with DAG("data_result_deferred", schedule=None, start_date=START, catchup=False):
    LightningJobOperator(task_id="train", studio="sim-studio", command=WRITE, read_result=True, deferrable=True,
                         poll_interval=0.5)

with DAG("data_result_mapped", schedule=None, start_date=START, catchup=False):
    LightningJobOperator.partial(
        task_id="train", studio="sim-studio", read_result=True, deferrable=True, poll_interval=0.5
    ).expand(command=[WRITE, WRITE])

# An upload declares a drive Asset as its outlet; a second DAG is scheduled on that Asset.
UPLOADED = drive_asset("sim-org/sim-teamspace", "assets/uploaded/model.bin")

with DAG("data_upload_asset", schedule=None, start_date=START, catchup=False):
    LightningDriveUploadOperator(
        task_id="upload", local_path="{{ dag_run.conf['local_path'] }}", remote_path="assets/uploaded/model.bin",
        outlets=[UPLOADED],
    )

with DAG("data_on_uploaded_asset", schedule=[UPLOADED], start_date=START, catchup=False):
    LightningDriveDownloadOperator(task_id="download", remote_path="assets/uploaded/model.bin",
                                   local_path="/tmp/lightning-data-asset/{{ run_id }}/model.bin")


def _clear_simulator_faults(context):
    """on_retry_callback: the API is back before the retry (the simulator's admin endpoint)."""
    import json
    import os

    import httpx

    conn = json.loads(os.environ["AIRFLOW_CONN_LIGHTNING_ONCE"])
    httpx.delete(f"{conn['host']}/__admin/faults", timeout=10).raise_for_status()


# Mapped and deferrable; try 1 cannot read its job (503s), the retry re-attaches and still returns its own result.
with DAG("data_result_mapped_retry", schedule=None, start_date=START, catchup=False):
    LightningJobOperator.partial(
        task_id="train", studio="sim-studio", read_result=True, deferrable=True, poll_interval=0.2, retries=1,
        retry_delay=0, on_retry_callback=_clear_simulator_faults, lightning_conn_id="lightning_once",
    ).expand(command=[f"sleep 3; {WRITE}", f"sleep 3; {WRITE}"])
