"""Fixtures for the Lightning API simulator tests (real HTTP over loopback)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from lightning_simulator import LightningSimulator


@pytest.fixture
def sim() -> Iterator[LightningSimulator]:
    """A fresh simulator with short provisioning and stop phases."""
    with LightningSimulator(pending_seconds=0.05, stop_seconds=0.05, kill_grace=0.5, seed=1) as simulator:
        yield simulator


@pytest.fixture
def client(sim: LightningSimulator) -> Iterator[httpx.Client]:
    """An authenticated httpx client for ``sim``."""
    with httpx.Client(base_url=sim.url, headers={"Authorization": sim.auth_header}, timeout=10) as c:
        yield c


@pytest.fixture
def jobs_path(sim: LightningSimulator) -> str:
    """``/v1/projects/{projectId}/jobs`` of the simulated teamspace."""
    return f"/v1/projects/{sim.project_id}/jobs"
