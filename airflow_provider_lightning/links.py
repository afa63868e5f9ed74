"""Operator extra links: the resource's page, known by the operator or read from XCom.

In Airflow 3 a link is computed in the worker when the task ends. The operator knows the page once it has
submitted (``_page_url``; "" when it failed before that), so no XCom is read for a task that never pushed one
(which would log a spurious "XCom not found" error); a task resumed in a fresh process reads the XCom.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.common.compat.sdk import BaseOperatorLink

JOB_URL_KEY = "job_url"


class LightningJobLink(BaseOperatorLink):
    """"Lightning Job": the job's page in the Lightning web UI."""

    name = "Lightning Job"
    xcom_key_for_url = JOB_URL_KEY

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        known = getattr(operator, "_page_url", None)  # set in this process by execute / execute_complete
        if known is not None:
            return known if isinstance(known, str) else ""
        from airflow.providers.common.compat.sdk import XCom

        try:
            url = XCom.get_value(ti_key=ti_key, key=self.xcom_key_for_url)
        except Exception:  # a link must never fail the task
            return ""
        return url if isinstance(url, str) else ""


class LightningMultiMachineJobLink(LightningJobLink):
    """"Lightning MMT": the multi-machine job's page in the Lightning web UI (``?app_id=mmt``)."""

    name = "Lightning MMT"


class LightningDeploymentLink(LightningJobLink):
    """"Lightning Deployment": the deployment's page in the Lightning web UI."""

    name = "Lightning Deployment"
    xcom_key_for_url = "deployment_url"
