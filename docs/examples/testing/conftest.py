"""pytest fixtures that run your DAGs against the local Lightning simulator (no network, no account)."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
from pathlib import Path

# Airflow reads its configuration when it is first imported: give the tests a private home and a
# throw-away sqlite metadata database before anything imports Airflow.
_HOME = Path(tempfile.mkdtemp(prefix="airflow-test-home-"))
atexit.register(shutil.rmtree, _HOME, ignore_errors=True)
os.environ["AIRFLOW_HOME"] = str(_HOME)
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_HOME}/airflow.db"
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(Path(__file__).parent / "dags")
for _name in ("LIGHTNING_USER_ID", "LIGHTNING_API_KEY", "LIGHTNING_AUTH_TOKEN", "LIGHTNING_CLOUD_URL"):
    os.environ.pop(_name, None)  # never fall back to real Lightning credentials in tests

import pytest  # noqa: E402

from airflow_provider_lightning.simulator import LightningSimulator  # noqa: E402


@pytest.fixture(scope="session")
def lightning_simulator():
    """One simulator for the whole session, with the Studio the DAGs use."""
    with LightningSimulator(pending_seconds=0.1, seed=7) as sim:  # seed: the same faults on every run
        sim.add_studio("my-studio")
        yield sim


@pytest.fixture
def lightning(lightning_simulator, monkeypatch):
    """The simulator, with ``lightning_default`` pointing at it and no faults left from another test."""
    sim = lightning_simulator
    sim.clear_faults()
    monkeypatch.setenv(
        "AIRFLOW_CONN_LIGHTNING_DEFAULT",
        json.dumps(
            {
                "conn_type": "lightning",
                "host": sim.url,  # http://127.0.0.1:<port>; plain http is accepted for loopback only
                "login": sim.user_id,  # sim-user
                "password": sim.api_key,  # sim-key
                "extra": {"teamspace": sim.teamspace},  # sim-org/sim-teamspace
            }
        ),
    )
    yield sim
    sim.clear_faults()


@pytest.fixture(scope="session")
def airflow_db():
    """A fresh metadata database (``dag.test()`` needs one)."""
    from airflow.utils import db

    db.resetdb()


@pytest.fixture
def dagbag(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    assert bag.import_errors == {}
    return bag
