"""Local simulator of the Lightning AI REST API (standard library only, no Airflow import).

Its own distribution, ``lightning-api-simulator`` (``pip install airflow-provider-lightning[simulator]``),
versioned with the provider. It runs the commands submitted to it as local processes: keep it on
127.0.0.1 (a non-loopback bind is refused unless ``allow_remote=True`` / ``--allow-remote``).

Quick start::

    from lightning_simulator import LightningSimulator

    with LightningSimulator(pending_seconds=0.1) as sim:
        print(sim.url, sim.teamspace, sim.project_id)

or from a shell: ``lightning-simulator --port 0`` (prints ``Lightning simulator listening on URL``).

Credentials: ``Basic base64(user_id:api_key)``, ``Bearer <api_key>`` or ``Bearer <jwt>`` from
``POST /v1/auth/login`` (defaults ``sim-user`` / ``sim-key``, teamspace ``sim-org/sim-teamspace``,
one Studio ``sim-studio``).

Admin endpoints (no auth, never faulted):

* ``GET /__admin/health``, ``GET /__admin/info`` (url, userId, teamspace, projectId, orgId, driveRoot)
* ``GET|POST|DELETE /__admin/faults`` with ``{errorRate, rateLimitRate, retryAfter, latency,
  dropRate, dropResponseRate, onlyPaths, maxFaults}`` (POST replaces the whole setting; missing keys mean "off").
  ``dropRate`` closes the connection before the request is processed; ``dropResponseRate`` processes
  it (e.g. creates the job) and then closes the connection without answering; ``maxFaults`` injects at most
  that many faults (``{"errorRate": 1, "maxFaults": 1, "onlyPaths": ["^/__storage/[^/]+/2$"]}``: one failed
  PUT of part 2 of a drive upload). The presigned ``/__storage/...`` URLs are faulted like API paths.
* ``GET|POST /__admin/studios`` (POST ``{"name": ...}``)
* ``GET /__admin/requests``, ``POST /__admin/reset-requests`` (or ``DELETE /__admin/requests``)
* ``GET /__admin/jobs``, ``GET /__admin/mmts``, ``GET /__admin/deployments``
* ``GET /__admin/clock`` (``{now, offsetSeconds}``), ``POST /__admin/clock`` with ``{"advanceSeconds": N}``
  or ``{"set": "<RFC3339>"}``: the schedule clock only moves forward

Strict wire mode (the default; ``strict=False`` / ``--lenient`` turns it off): a body field or query
parameter that lightning-sdk's client model for the endpoint lacks is a 400 ``INVALID_ARGUMENT`` naming it
(``unknown field "spec.foo" in body of POST /v1/projects/{projectId}/jobs``); see :mod:`.strict`.

Timed jobs (``timed_jobs=True`` / ``--timed-jobs``): a job whose ``spec.env`` has
``SIM_DURATION_SECONDS`` and ``SIM_EXIT_CODE`` runs no process and ends on a timer. In a
multi-machine job, ``SIM_FAIL_RANK=<r>`` makes only rank ``r`` exit with ``SIM_EXIT_CODE``.

Multi-machine jobs (``/v1/projects/{id}/multi-machine-jobs``): one real sub-job (``V1Job`` with
``multiMachineJobId`` and ``spec.rank``, named ``<mmt-name>-<rank>``) per machine, each running the
command with ``NODE_RANK``, ``WORLD_SIZE``, ``NUM_NODES``, ``MASTER_ADDR=127.0.0.1``,
``MASTER_PORT`` (one free port per MMT), ``LIGHTNING_JOB_ID``, ``LIGHTNING_JOB_NAME`` and
``LIGHTNING_MMT_ID``. The MMT's state is derived from its ranks (see :mod:`.mmt`); the first failing
rank stops the others and fails the MMT; ``GET /page-logs?mmtId=`` merges every rank's lines.
Python API: ``sim.mmts()``, ``sim.get_mmt(id)``, ``sim.mmt_jobs(id)``, ``sim.wait_for_mmt(id)``.

Studios (``/v1/projects/{id}/cloudspaces``, see :mod:`.studios`): start (PENDING, then RUNNING with a new
``cloudSpaceInstanceId``), stop, max runtime, machine switch, and ``execute`` running ``bash -c`` for real
in the Studio's folder (NDJSON ``stream`` with ``exitCode`` -1 while running). Python API:
``sim.studio_phase(name)``, ``sim.wait_for_studio(name, phase)``, ``sim.studio_commands(name)``.

Schedules (``/v1/projects/{id}/schedules``, see :mod:`.schedules`) fire on a simulated clock that ticks
with real time and can be moved forward; Studio schedules run their command in the Studio (or START/STOP
it). Python API: ``sim.clock_now()``, ``sim.advance_clock(seconds)``, ``sim.set_clock(when)``,
``sim.schedule_runs(id_or_name)``.

Teamspace drive (``/v1/projects/{id}/artifacts/trees|blobs/...``, ``POST .../blobs`` and ``.../blobs/complete``,
the Studio-scoped ``.../artifacts/cloudspaces/{studioId}/...``; see :mod:`.drive`): files on disk under
``sim.drive_root / project_id`` (``sim.drive_path("x")``): the ``drive_dir`` setting (``--drive-dir``), else
``<work_dir>/drive``, else ``<state_file>.drive``, else a temporary folder removed at stop. Uploads PUT their bytes
to presigned ``{url}/__storage/{uploadId}/{part}?sig=`` URLs (no credentials; ``x-amz-server-side-encryption:
AES256`` required; ``ETag`` answered). Job processes get ``LIGHTNING_ARTIFACTS_DIR`` (``jobs/<job name>`` of the drive
for Studio jobs and MMT machines, ``<type>_connections/<name>/<path>`` for ``spec.artifactsDestination``, else a
scratch folder) and ``LIGHTNING_TEAMSPACE_DIR``. **The /teamspace mount:** the simulator cannot create
``/teamspace``, so a leading ``/teamspace`` in job and deployment commands and literal env values is rewritten to
``LIGHTNING_TEAMSPACE_DIR`` (secret values are passed as they are).

Deployments (``/v1/projects/{id}/deployments``, see :mod:`.deployments`): PENDING, then RUNNING once the
replicas (synthetic jobs listed by ``GET /jobs?deploymentId=``, logs by ``GET /page-logs?deploymentId=``) are
ready; a PUT changing a release field makes a new release rolled out while the old replicas serve;
``autoscaling.maxReplicas`` 0 stops it. ``spec.env`` ``LIGHTNING_SIM_DEPLOYMENT=fail`` or ``=crashloop`` makes
the replicas fail or crash-loop. A replica with a command runs it as a local process (own process group, output
as its log lines) with ``PORT`` (a free ``127.0.0.1`` port standing for the endpoint's first port) and is ready once
``PORT`` accepts connections and its HTTP health check, if any, answers 2xx; a process that exits, or is not ready
within ``deployment_ready_timeout`` (``--deployment-ready-timeout``, 60 s), fails its replica with the exit code and
last output lines. A ready deployment is served at ``{url}/serve/{deploymentId}`` (``endpoint.auth`` enforced):
proxied to the newest ready replica's process (502 when it does not answer), or, for a replica without a command
(or with ``deployment_commands=False`` / ``--no-deployment-commands``), ``GET /health`` and anything else echoed as
JSON. Stopping, scaling down, rolling out a new release, deleting and stopping the simulator kill the processes.
``fromSecret`` env entries get the secret's value (a missing secret fails the replicas);
``sim.deployment_replica(id_or_name)`` shows the resolved ``env`` and ``command`` and the process's ``pid`` and
``port``; the API never returns secret values. Python API: ``sim.deployments()``, ``sim.get_deployment(id_or_name)``,
``sim.wait_for_deployment(id_or_name, "RUNNING" or predicate)``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .config import SimulatorConfig
    from .faults import FaultConfig
    from .requestlog import RequestLog, RequestRecord
    from .simulator import LightningSimulator

__all__ = ["FaultConfig", "LightningSimulator", "RequestLog", "RequestRecord", "SimulatorConfig"]
_HOMES = {"FaultConfig": ".faults", "LightningSimulator": ".simulator", "RequestLog": ".requestlog",
          "RequestRecord": ".requestlog", "SimulatorConfig": ".config"}


def __getattr__(name: str) -> Any:
    """Import the public classes on first use, so ``simulator.cron`` (used by schedule validation in DAG
    files) does not load the server."""
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
