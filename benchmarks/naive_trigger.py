"""The naive baseline trigger of ``triggerer_real.py``, importable by a real ``airflow triggerer``.

The triggerer imports it by its classpath ``naive_trigger.NaiveJobTrigger``, so the triggerer process runs with
``benchmarks/`` on its ``PYTHONPATH``. It is the per-task polling pattern of the Databricks and dbt Cloud
providers: every poll interval, one new ``httpx.AsyncClient`` and one ``GET /v1/projects/{p}/jobs/{id}``, until the
job ends. Like the in-process baseline of ``triggerer_scale.py`` it is given ``verify=False`` (no TLS context built
per poll; it would pay for one against a real https host) and reads the connection from the
``AIRFLOW_CONN_<ID>`` environment variable once per trigger (JSON form), so it spends nothing on the
connection lookup either.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
from airflow.triggers.base import BaseTrigger, TriggerEvent

TERMINAL = ("completed", "failed", "stopped", "deleted")


class NaiveJobTrigger(BaseTrigger):
    """One new HTTP client and one ``GET /jobs/{id}`` per task per poll interval."""

    def __init__(self, job_id: str, project_id: str, poll_interval: float, conn_id: str = "lightning_default"):
        super().__init__()
        self.job_id, self.project_id, self.poll_interval, self.conn_id = job_id, project_id, poll_interval, conn_id

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return ("naive_trigger.NaiveJobTrigger", {"job_id": self.job_id, "project_id": self.project_id,
                                                   "poll_interval": self.poll_interval, "conn_id": self.conn_id})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        conn = json.loads(os.environ[f"AIRFLOW_CONN_{self.conn_id.upper()}"])
        auth = (conn["login"], conn["password"])
        path = f"/v1/projects/{self.project_id}/jobs/{self.job_id}"
        errors: Counter[str] = Counter()
        while True:
            await asyncio.sleep(self.poll_interval)
            try:
                async with httpx.AsyncClient(base_url=conn["host"], auth=auth, verify=False, timeout=30) as client:
                    response = await client.get(path)
                    response.raise_for_status()
                    state = response.json()["state"]
            except (httpx.HTTPError, ValueError, KeyError) as error:
                errors[type(error).__name__] += 1
                continue
            if state in TERMINAL:
                yield TriggerEvent({"status": "success" if state == "completed" else "failed",
                                    "job_id": self.job_id, "poll_errors": dict(errors)})
                return
