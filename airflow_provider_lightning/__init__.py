"""Apache Airflow provider for Lightning AI.

This module is imported by every Airflow component and CLI call (through the
``apache_airflow_provider`` entry point), so it must stay import-light: no Airflow,
no httpx, nothing but the provider-info dictionary.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

CONN_TYPE = "lightning"
DEFAULT_CONN_ID = "lightning_default"


def get_provider_info() -> dict[str, Any]:
    """Return the provider metadata Airflow's ProvidersManager reads (validated against its schema)."""
    return {
        "package-name": "airflow-provider-lightning",
        "name": "Lightning AI",
        "description": "Run Lightning AI jobs, multi-machine training, deployments and Studios from Airflow.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Lightning AI",
                "external-doc-url": "https://lightning.ai/docs/overview/",
                "tags": ["service"],
            }
        ],
        "hooks": [
            {
                "integration-name": "Lightning AI",
                "python-modules": ["airflow_provider_lightning.hooks.lightning"],
            }
        ],
        "operators": [
            {
                "integration-name": "Lightning AI",
                "python-modules": [
                    "airflow_provider_lightning.operators.jobs",
                    "airflow_provider_lightning.operators.mmt",
                    "airflow_provider_lightning.operators.deployments",
                    "airflow_provider_lightning.operators.studios",
                    "airflow_provider_lightning.operators.schedules",
                    "airflow_provider_lightning.operators.secrets",
                    "airflow_provider_lightning.operators.drive",
                ],
            }
        ],
        "sensors": [
            {
                "integration-name": "Lightning AI",
                "python-modules": [
                    "airflow_provider_lightning.sensors.lightning",
                    "airflow_provider_lightning.sensors.drive",
                ],
            }
        ],
        "triggers": [
            {
                "integration-name": "Lightning AI",
                "python-modules": ["airflow_provider_lightning.triggers.lightning"],
            }
        ],
        "task-decorators": [
            {"name": "lightning", "class-name": "airflow_provider_lightning.decorators.lightning.lightning_task"},
        ],
        "asset-uris": [
            {
                "schemes": ["lightning"],
                "handler": "airflow_provider_lightning.assets.sanitize_uri",
                "factory": "airflow_provider_lightning.assets.create_asset",
            }
        ],
        "extra-links": [
            "airflow_provider_lightning.links.LightningJobLink",
            "airflow_provider_lightning.links.LightningMultiMachineJobLink",
            "airflow_provider_lightning.links.LightningDeploymentLink",
        ],
        "connection-types": [
            {
                "connection-type": CONN_TYPE,
                "hook-class-name": "airflow_provider_lightning.hooks.lightning.LightningHook",
                "hook-name": "Lightning AI",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port"],
                    "relabeling": {"host": "Lightning URL", "login": "User ID", "password": "API key"},
                    "placeholders": {
                        "host": "https://lightning.ai",
                        "login": "your Lightning user id (Profile > Keys)",
                        "password": "your Lightning API key",
                        "extra": '{"teamspace": "my-org/my-teamspace"}',
                    },
                },
                "conn-fields": {
                    "teamspace": {
                        "label": "Teamspace",
                        "description": "Teamspace as owner/teamspace (an org or user name, then the teamspace).",
                        "schema": {"type": ["string", "null"], "pattern": "^[^/\\s]+/[^/\\s]+$"},
                    },
                    "project_id": {
                        "label": "Project ID",
                        "description": "Teamspace (project) id; used instead of resolving the teamspace name.",
                        "schema": {"type": ["string", "null"]},
                    },
                    "cluster_id": {
                        "label": "Cloud account",
                        "description": "Default cloud account (cluster id) for jobs; empty lets Lightning choose.",
                        "schema": {"type": ["string", "null"]},
                    },
                    "auth_token": {
                        "label": "Auth token (JWT)",
                        "description": "A ready JWT sent as Bearer; wins over User ID + API key when set.",
                        "schema": {"type": ["string", "null"], "format": "password"},
                    },
                    "connect_timeout": {
                        "label": "Connect timeout (s)",
                        "description": "Seconds to wait for a TCP/TLS connection (default 10).",
                        "schema": {"type": ["number", "null"], "minimum": 0.1},
                    },
                    "read_timeout": {
                        "label": "Read timeout (s)",
                        "description": "Seconds to wait for a response (default 30).",
                        "schema": {"type": ["number", "null"], "minimum": 0.1},
                    },
                    "max_attempts": {
                        "label": "Max attempts",
                        "description": "Attempts per request on 429, 5xx and network errors (default 5).",
                        "schema": {"type": ["integer", "null"], "minimum": 1, "maximum": 20},
                    },
                },
            }
        ],
    }
