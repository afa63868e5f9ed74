"""pytest fixtures that run your DAGs against the local Lightning simulator (no network, no account)."""

from __future__ import annotations

import atexit
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

# The provider's test helpers (needs ``pip install "airflow-provider-lightning[simulator]"``): the ``lightning``
# fixture points ``lightning_default`` at the session simulator and clears its faults around each test.
from airflow_provider_lightning.testing import lightning, start_simulator  # noqa: E402, F401


@pytest.fixture(scope="session")
def lightning_simulator():
    """One simulator for the whole session, with the Studio the DAGs use (replaces the provider's default)."""
    sim = start_simulator(pending_seconds=0.1, seed=7)  # seed: the same faults on every run
    sim.add_studio("my-studio")
    yield sim
    sim.stop()


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
