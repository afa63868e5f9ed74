"""Shared set-up for the benchmarks: a private AIRFLOW_HOME and a connection to a simulator."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="lightning-bench-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
sys.path.insert(0, str(ROOT / "tests"))


def point_default_connection_at(sim) -> None:
    os.environ["AIRFLOW_CONN_LIGHTNING_DEFAULT"] = json.dumps({
        "conn_type": "lightning", "host": sim.url, "login": sim.user_id, "password": sim.api_key,
        "extra": {"teamspace": sim.teamspace},
    })
