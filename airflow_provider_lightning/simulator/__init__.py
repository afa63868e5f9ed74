"""Local simulator of the Lightning AI REST API (standard library only, no Airflow import).

Quick start::

    from airflow_provider_lightning.simulator import LightningSimulator

    with LightningSimulator(pending_seconds=0.1) as sim:
        print(sim.url, sim.teamspace, sim.project_id)

or from a shell: ``lightning-simulator --port 0`` (prints ``Lightning simulator listening on URL``).

Credentials: ``Basic base64(user_id:api_key)``, ``Bearer <api_key>`` or ``Bearer <jwt>`` from
``POST /v1/auth/login`` (defaults ``sim-user`` / ``sim-key``, teamspace ``sim-org/sim-teamspace``,
one Studio ``sim-studio``).

Admin endpoints (no auth, never faulted):

* ``GET /__admin/health``, ``GET /__admin/info`` (url, userId, teamspace, projectId, orgId)
* ``GET|POST|DELETE /__admin/faults`` with ``{errorRate, rateLimitRate, retryAfter, latency,
  dropRate, onlyPaths}`` (POST replaces the whole setting; missing keys mean "off")
* ``GET|POST /__admin/studios`` (POST ``{"name": ...}``)
* ``GET /__admin/requests``, ``POST /__admin/reset-requests`` (or ``DELETE /__admin/requests``)
* ``GET /__admin/jobs``

Timed jobs (``timed_jobs=True`` / ``--timed-jobs``): a job whose ``spec.env`` has
``SIM_DURATION_SECONDS`` and ``SIM_EXIT_CODE`` runs no process and ends on a timer.
"""

from __future__ import annotations

from .config import SimulatorConfig
from .faults import FaultConfig
from .requestlog import RequestLog, RequestRecord
from .simulator import LightningSimulator

__all__ = ["FaultConfig", "LightningSimulator", "RequestLog", "RequestRecord", "SimulatorConfig"]
