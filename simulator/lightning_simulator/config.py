"""Simulator settings shared by the Python API and the CLI."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

RUNS_COMMANDS_WARNING = (
    "the Lightning simulator runs every submitted job, Studio and schedule command as a local process "
    "under this user, with well-known default credentials"
)


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass
class SimulatorConfig:
    """Every knob of the simulator (see ``lightning-simulator --help``)."""

    host: str = "127.0.0.1"
    port: int = 0
    user_id: str = "sim-user"
    username: str | None = None  # defaults to user_id
    api_key: str = "sim-key"
    teamspace: str = "sim-org/sim-teamspace"
    pending_seconds: float = 0.2
    stop_seconds: float = 0.1
    job_time_limit: float = 600.0
    kill_grace: float = 1.0
    # deployment replicas run their command as a process (False: none does, the endpoint echoes requests)
    deployment_commands: bool = True
    deployment_ready_timeout: float = 60.0  # seconds a replica's process has to accept connections on PORT
    timed_jobs: bool = False
    error_rate: float = 0.0
    rate_limit_rate: float = 0.0
    retry_after: float = 1.0
    latency: float = 0.0
    drop_rate: float = 0.0
    drop_response_rate: float = 0.0
    state_file: Path | None = None
    work_dir: Path | None = None
    # the teamspace drive (see .drive); default: <work_dir>/drive, else <state_file>.drive, else a temporary folder
    drive_dir: Path | None = None
    seed: int | None = None
    max_log_lines: int = 200_000
    max_request_log: int = 200_000
    verbose: bool = False
    allow_remote: bool = False  # bind a non-loopback address (it runs submitted commands: see RUNS_COMMANDS_WARNING)
    strict: bool = True  # 400 for body fields / query parameters lightning-sdk's client lacks (see .strict)

    def __post_init__(self) -> None:
        if not is_loopback(self.host) and not self.allow_remote:
            raise ValueError(
                f"refusing to bind {self.host!r}: {RUNS_COMMANDS_WARNING}, so it listens on 127.0.0.1 only. "
                "Pass allow_remote=True (CLI: --allow-remote) to expose it on another address."
            )
        if "/" not in self.teamspace:
            raise ValueError(f"teamspace must look like 'owner/name', got {self.teamspace!r}")
        if self.state_file is not None:
            self.state_file = Path(self.state_file)
        if self.work_dir is not None:
            self.work_dir = Path(self.work_dir)
        if self.drive_dir is not None:
            self.drive_dir = Path(self.drive_dir)
        for name in ("pending_seconds", "stop_seconds", "job_time_limit", "kill_grace", "deployment_ready_timeout"):
            if float(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be >= 0")

    def drive_root(self, work_dir: Path) -> Path:
        """Where the teamspace drive lives: ``drive_dir``; else ``<work_dir>/drive`` when ``work_dir`` is set;
        else ``<state_file>.drive`` beside the state file; else ``<work_dir>/drive`` of the temporary work folder
        (``work_dir``: the folder actually used), removed at stop."""
        if self.drive_dir is not None:
            return self.drive_dir
        if self.work_dir is None and self.state_file is not None:
            return self.state_file.with_name(self.state_file.name + ".drive")
        return work_dir / "drive"

    @property
    def owner_name(self) -> str:
        """Owner part of ``teamspace``."""
        return self.teamspace.split("/", 1)[0]

    @property
    def teamspace_name(self) -> str:
        """Name part of ``teamspace``."""
        return self.teamspace.split("/", 1)[1]

    @property
    def effective_username(self) -> str:
        """The user's username (defaults to the user id)."""
        return self.username or self.user_id
