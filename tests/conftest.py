"""Test environment: a private AIRFLOW_HOME set before Airflow is imported, and a simulator fixture."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_HOME = Path(tempfile.mkdtemp(prefix="lightning-airflow-home-"))
os.environ["AIRFLOW_HOME"] = str(_HOME)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_HOME}/airflow.db"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "example_dags")
# More DAG bundles: the DAGs of the dag.test() regression tests and of the hook docs example (dag.test() runs
# only DAGs from a configured bundle).
os.environ["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"] = json.dumps([
    {"name": "dags-folder", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle", "kwargs": {}},
    {"name": "regressions", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
     "kwargs": {"path": str(ROOT / "tests" / "integration" / "dags")}},
    {"name": "hook-docs-example", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
     "kwargs": {"path": str(ROOT / "docs" / "examples" / "hook")}},
])
for _var in ("LIGHTNING_USER_ID", "LIGHTNING_API_KEY", "LIGHTNING_AUTH_TOKEN", "LIGHTNING_CLOUD_URL"):
    os.environ.pop(_var, None)
sys.path.insert(0, str(ROOT / "tests"))

import pytest  # noqa: E402

try:
    from lightning_simulator import LightningSimulator
except ImportError:  # the simulator is being written
    LightningSimulator = None  # type: ignore


def conn_json(sim: LightningSimulator, **extra: object) -> str:
    """The AIRFLOW_CONN_* JSON value pointing at a simulator."""
    return json.dumps(
        {
            "conn_type": "lightning",
            "host": sim.url,
            "login": sim.user_id,
            "password": sim.api_key,
            "extra": {"teamspace": sim.teamspace, **extra},
        }
    )


@pytest.fixture(scope="session")
def simulator():
    """One simulator for the session (short provisioning so tests are quick).

    Deployments answer with the simulator's echo instead of running their command: the deployment tests use
    placeholder servers (``python serve.py``); the tests of real model servers start a simulator of their own.
    """
    with LightningSimulator(pending_seconds=0.2, deployment_commands=False) as sim:
        yield sim


@pytest.fixture
def sim(simulator, monkeypatch):
    """The session simulator with faults cleared and ``lightning_default`` pointing at it."""
    simulator.clear_faults()
    monkeypatch.setenv("AIRFLOW_CONN_LIGHTNING_DEFAULT", conn_json(simulator))
    yield simulator
    simulator.clear_faults()


@pytest.fixture(scope="session")
def airflow_db():
    """A migrated sqlite metadata DB (only dag.test() tests need it)."""
    from airflow.utils import db

    db.resetdb()
    return True
