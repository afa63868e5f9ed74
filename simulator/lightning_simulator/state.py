"""The store: builds the per-kind services around one shared context and saves or restores them together.

Each kind of resource has its own service and module:

* :mod:`.studios` (``store.studios``) and :mod:`.schedules` (``store.schedules``, with the schedule clock);
* :mod:`.tags` (``store.tags``): workload tags;
* :mod:`.secrets` (``store.secrets``): teamspace secrets, read by jobs' ``fromSecret`` env entries;
* :mod:`.jobs` (``store.jobs``): single-machine jobs, run by :mod:`.joblifecycle`;
* :mod:`.mmt` (``store.mmts``): multi-machine jobs, derived from their sub-jobs;
* :mod:`.deployments` (``store.deployments``): releases and replicas;
* :mod:`.joblogs` (``store.logs``): the log endpoints over jobs, MMT ranks and replicas;
* :mod:`.drive` (``store.drive``): the teamspace drive on disk, job artifacts and the ``/teamspace`` mount;
* :mod:`.identity`: the account and the teamspace check.

All state lives behind one re-entrant lock (:class:`~.context.ServiceContext`); transitions are driven by the
shared :class:`~.scheduler.Scheduler` thread and by the command runners' exit callbacks.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .config import SimulatorConfig
from .context import ServiceContext
from .deployments import DeploymentService
from .drive import DriveService
from .identity import Identity
from .joblogs import LogService
from .jobs import JobService
from .mmt import MultiMachineJobService
from .scheduler import Scheduler
from .schedules import ScheduleService
from .secrets import SecretService
from .studios import StudioService
from .tags import TagService

STATE_FILE_VERSION = 1


class Store:
    """Owns the shared context (lock, ids, timers) and the services of the simulated teamspace, and persists them."""

    def __init__(
        self,
        config: SimulatorConfig,
        identity: Identity,
        scheduler: Scheduler,
        work_dir: Path,
        on_change: Callable[[], None] | None = None,
        drive_root: Path | None = None,
    ) -> None:
        self.context = ServiceContext(config, identity, scheduler, work_dir, on_change)
        self.lock = self.context.lock
        self.studios = StudioService(self.context)
        self.drive = DriveService(self.context, drive_root or work_dir / "drive", self.studios)
        self.schedules = ScheduleService(self.context, self.studios)
        self.tags = TagService(self.context)
        self.secrets = SecretService(self.context)
        self.jobs = JobService(self.context, self.tags, self.studios)
        self.jobs.lifecycle.secret_value = self.secrets.value  # spec.env {name, fromSecret}
        self.jobs.lifecycle.drive = self.drive  # LIGHTNING_ARTIFACTS_DIR and the /teamspace mount
        self.mmts = MultiMachineJobService(self.context, self.jobs, self.tags)
        self.deployments = DeploymentService(self.context, self.jobs)
        self.deployments.secret_value = self.secrets.value
        self.deployments.drive = self.drive
        self.jobs.replicas = self.deployments  # GET /jobs?deploymentId= lists replicas
        self.logs = LogService(self.context, self.jobs, self.mmts, self.deployments)

    def to_state(self) -> dict[str, Any]:
        """Everything needed to restore jobs, logs, Studios, schedules, tags and deployments."""
        with self.lock:
            return {
                "version": STATE_FILE_VERSION,
                "seq": self.context.seq,
                "jobs": self.jobs.to_state(),
                "mmts": self.mmts.to_state(),
                "studios": self.studios.to_state(),
                "schedules": self.schedules.to_state(),
                "tags": self.tags.to_state(),
                "secrets": self.secrets.to_state(),
                "deployments": self.deployments.to_state(),
            }

    def load_state(self, data: dict[str, Any]) -> None:
        """Restore a saved state; unfinished work is resumed or settled (see each service's ``load_state``)."""
        if data.get("version") != STATE_FILE_VERSION:
            raise ValueError(f"unsupported state file version {data.get('version')!r}")
        with self.lock:
            self.studios.load_state(data.get("studios", []))
            self.schedules.load_state(data.get("schedules") or {})
            self.tags.load_state(data.get("tags", []))
            self.secrets.load_state(data.get("secrets", []))
            self.context.seq = int(data.get("seq", 0))
            self.mmts.load_state(data.get("mmts", []))
            with self.mmts.deferred():  # MMTs are re-evaluated once all their sub-jobs are back
                self.jobs.load_state(data.get("jobs", []))
            self.deployments.load_state(data.get("deployments", []))

    def shutdown(self) -> None:
        """Kill every running command (their jobs end as failed, their Studio commands as killed, deployment
        replicas keep their state and start their command again after a restart)."""
        self.jobs.shutdown()
        self.studios.shutdown()
        self.deployments.shutdown()
