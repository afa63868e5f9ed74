"""What the per-kind services share: one lock, the settings, the account, the timer thread, ids and change marks."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from .config import SimulatorConfig
from .identity import Identity
from .scheduler import Scheduler


class ServiceContext:
    """The shared lock, settings, timers, id source and change notification every service is built with."""

    def __init__(
        self,
        config: SimulatorConfig,
        identity: Identity,
        scheduler: Scheduler,
        work_dir: Path,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self.identity = identity
        self.scheduler = scheduler
        self.work_dir = work_dir
        self.lock = threading.RLock()
        self.seq = 0  # creation order of jobs and multi-machine jobs (one counter for both)
        self._rng = random.Random(config.seed)
        self._on_change = on_change or (lambda: None)

    def changed(self) -> None:
        """Mark the state file dirty."""
        self._on_change()

    def require_project(self, project_id: str) -> None:
        """404 unless ``project_id`` is the simulated teamspace."""
        self.identity.require_project(project_id)

    def new_id(self, prefix: str, taken: Iterable[str]) -> str:
        """A fresh ``<prefix>-<12 hex digits>`` id not in ``taken`` (one seeded source for jobs, MMTs, tags, events)."""
        taken_set = set(taken) if not isinstance(taken, (dict, set)) else taken
        while True:
            candidate = f"{prefix}-{self._rng.getrandbits(48):012x}"
            if candidate not in taken_set:
                return candidate

    def next_seq(self) -> int:
        """The next creation sequence number."""
        self.seq += 1
        return self.seq


def unique_name(names: dict[tuple[str, str], str], project_id: str, name: str, exclude: str | None = None) -> str:
    """``name``, or ``name-1``, ``name-2``, ... when another record of the project has it.

    :param names: ``(project id, name) -> id`` of the records that must not share a name.
    :param project_id: the teamspace.
    :param name: the wanted name.
    :param exclude: the id of the record being renamed (its own name does not count).
    """
    owner = names.get((project_id, name))
    if owner is None or owner == exclude:
        return name
    n = 1
    while True:
        candidate = f"{name}-{n}"
        owner = names.get((project_id, candidate))
        if owner is None or owner == exclude:
            return candidate
        n += 1
