"""DAGs of the data tests (tests/integration/test_drive.py): job results read after a deferred wait."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

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
