"""Lightning cron schedules <-> Airflow schedules, in both directions.

* ``example_lightning_schedule_manage`` creates (or updates, by name) a Lightning schedule from a
  DAG-style cron, and refreshes the snapshot the mapped DAGs are built from.
* One ``lightning_schedule_<name>`` DAG per schedule in ``lightning_schedules.json`` (written by
  ``python -m airflow_provider_lightning.schedules sync --output ...``): same cron, same time zone,
  ``max_active_runs=1`` when the schedule does not allow parallel runs. Parsing this file reads the
  snapshot only; it makes no network call. Until the snapshot exists there are no such DAGs (the manage
  DAG writes it), and a schedule that cannot be mapped is skipped with an import warning.
"""

from __future__ import annotations

from pathlib import Path

import pendulum
from airflow.sdk import DAG

from airflow_provider_lightning.operators.schedules import LightningScheduleOperator, LightningSyncSchedulesOperator
from airflow_provider_lightning.schedules.factory import dags_from_snapshot

SNAPSHOT = Path(__file__).with_name("lightning_schedules.json")

with DAG(
    dag_id="example_lightning_schedule_manage",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["lightning", "example"],
    doc_md=__doc__,
) as manage:
    # [START howto_operator_lightning_schedule]
    nightly = LightningScheduleOperator(
        task_id="nightly_refresh",
        schedule_name="nightly-refresh",
        schedule="0 3 * * *",
        timezone="Europe/Berlin",
        studio_name="sim-studio",
        command="python refresh_features.py",
        parallel_runs=False,
    )
    # [END howto_operator_lightning_schedule]
    sync = LightningSyncSchedulesOperator(task_id="sync_snapshot", output_path=str(SNAPSHOT))
    nightly >> sync

# [START howto_lightning_schedule_dags]
globals().update(dags_from_snapshot(SNAPSHOT, missing_ok=True))
# [END howto_lightning_schedule_dags]
