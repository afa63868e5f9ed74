"""Test your DAGs against the local Lightning simulator (no network, no account).

Needs the simulator distribution: ``pip install "airflow-provider-lightning[simulator]"``.
Load the fixtures in your ``conftest.py``::

    pytest_plugins = ["airflow_provider_lightning.testing"]

then ask for ``lightning`` in a test: a running simulator with ``lightning_default`` pointing at it.
Outside pytest, :func:`connection_uri_env` gives the ``AIRFLOW_CONN_*`` variable for any simulator.
Nothing here is imported by the provider itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_lightning import CONN_TYPE, DEFAULT_CONN_ID

if TYPE_CHECKING:
    from lightning_simulator import LightningSimulator

__all__ = ["connection_json", "connection_uri_env", "lightning", "lightning_simulator", "start_simulator"]


def start_simulator(**settings: Any) -> LightningSimulator:
    """A started simulator on 127.0.0.1 (``settings`` are :class:`lightning_simulator.SimulatorConfig` fields)."""
    try:
        from lightning_simulator import LightningSimulator
    except ImportError as error:  # the optional distribution is missing
        raise ImportError(
            "the Lightning simulator is not installed: pip install 'airflow-provider-lightning[simulator]'"
        ) from error
    return LightningSimulator(**settings).start()


def connection_json(sim: LightningSimulator, **extra: Any) -> str:
    """The JSON value of an ``AIRFLOW_CONN_<ID>`` variable for a ``lightning`` connection to ``sim``.

    :param extra: more connection extras (``teamspace`` is the simulator's unless given).
    """
    return json.dumps(
        {
            "conn_type": CONN_TYPE,
            "host": sim.url,  # http://127.0.0.1:<port>: plain http is accepted for loopback only
            "login": sim.user_id,
            "password": sim.api_key,
            "extra": {"teamspace": sim.teamspace, **extra},
        }
    )


def connection_uri_env(sim: LightningSimulator, conn_id: str = DEFAULT_CONN_ID, **extra: Any) -> dict[str, str]:
    """``{"AIRFLOW_CONN_<CONN_ID>": <json>}``: set it in the environment of the Airflow process under test."""
    return {f"AIRFLOW_CONN_{conn_id.upper()}": connection_json(sim, **extra)}


@pytest.fixture(scope="session")
def lightning_simulator() -> Iterator[LightningSimulator]:
    """One simulator for the test session (short provisioning time, fixed fault seed)."""
    sim = start_simulator(pending_seconds=0.1, seed=7)
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture
def lightning(lightning_simulator: LightningSimulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[LightningSimulator]:
    """The session simulator with ``lightning_default`` pointing at it and no faults left from another test."""
    lightning_simulator.clear_faults()
    for name, value in connection_uri_env(lightning_simulator).items():
        monkeypatch.setenv(name, value)
    for name in ("LIGHTNING_USER_ID", "LIGHTNING_API_KEY", "LIGHTNING_AUTH_TOKEN", "LIGHTNING_CLOUD_URL"):
        monkeypatch.delenv(name, raising=False)  # never fall back to real Lightning credentials
    yield lightning_simulator
    lightning_simulator.clear_faults()
