"""Local simulator of the Lightning AI REST API (standard library only, no Airflow import).

Quick start::

    from airflow_provider_lightning.simulator import LightningSimulator

    with LightningSimulator(pending_seconds=0.1) as sim:
        print(sim.url, sim.teamspace, sim.project_id)

or from a shell: ``lightning-simulator --port 0``.
"""

from __future__ import annotations

from .config import SimulatorConfig
from .faults import FaultConfig
from .requestlog import RequestLog, RequestRecord
from .simulator import LightningSimulator

__all__ = ["FaultConfig", "LightningSimulator", "RequestLog", "RequestRecord", "SimulatorConfig"]
