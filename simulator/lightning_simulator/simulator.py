"""``LightningSimulator``: the Python API that wires the stores, scheduler, faults and HTTP server."""

from __future__ import annotations

import base64
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from .auth import Authenticator
from .config import SimulatorConfig
from .deployments import DEP_RUNNING, normalize_state
from .faults import FaultConfig, FaultInjector
from .identity import Identity
from .jobrecord import TERMINAL_STATES
from .mmt import MMT_TERMINAL_STATES
from .persistence import AutoSaver, load_state_file
from .requestlog import RequestLog
from .scheduler import Scheduler
from .schedules import to_datetime
from .server import Api, ApiHTTPServer
from .state import Store
from .strict import load_wire_models
from .wire import ApiError, now_ns, rfc3339

DEFAULT_STUDIO = "sim-studio"


class LightningSimulator:
    """A local Lightning AI REST API on ``127.0.0.1`` (see the package docs).

    Use as a context manager (``with LightningSimulator(pending_seconds=0.1) as sim: ...``)
    or call :meth:`start` / :meth:`stop`. Keyword arguments are the fields of
    :class:`~.config.SimulatorConfig`; alternatively pass ``config=``.
    """

    def __init__(self, config: SimulatorConfig | None = None, **kwargs: Any) -> None:
        if config is not None and kwargs:
            raise TypeError("pass either config= or keyword settings, not both")
        self.config = config or SimulatorConfig(**kwargs)
        self.request_log = RequestLog(self.config.max_request_log)
        self.faults = FaultInjector(
            FaultConfig(
                error_rate=self.config.error_rate,
                rate_limit_rate=self.config.rate_limit_rate,
                retry_after=self.config.retry_after,
                latency=self.config.latency,
                drop_rate=self.config.drop_rate,
                drop_response_rate=self.config.drop_response_rate,
            ),
            seed=self.config.seed,
        )
        self._server: ApiHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._scheduler: Scheduler | None = None
        self._saver: AutoSaver | None = None
        self._store: Store | None = None
        self._work_dir: Path | None = None
        self._drive_root: Path | None = None
        self._owns_work_dir = False
        self._secret = b""
        self._created_at = rfc3339(now_ns()) or ""
        self._lock = threading.Lock()
        self.identity = self._make_identity()

    def _make_identity(self) -> Identity:
        cfg = self.config
        return Identity(
            user_id=cfg.user_id,
            username=cfg.effective_username,
            api_key=cfg.api_key,
            owner_name=cfg.owner_name,
            teamspace_name=cfg.teamspace_name,
            created_at=self._created_at,
        )

    # ------------------------------------------------------------ lifecycle

    def start(self) -> LightningSimulator:
        """Start serving in a background thread (idempotent)."""
        with self._lock:
            if self._server is not None:
                return self
            cfg = self.config
            saved = load_state_file(cfg.state_file) if cfg.state_file else None
            if saved:
                self._secret = bytes.fromhex(saved.get("secret", "")) or secrets.token_bytes(32)
                self._created_at = saved.get("createdAt") or self._created_at
                self.identity = self._make_identity()
            else:
                self._secret = secrets.token_bytes(32)
            if cfg.work_dir is not None:
                self._work_dir = Path(cfg.work_dir)
                self._work_dir.mkdir(parents=True, exist_ok=True)
            else:
                self._work_dir = Path(tempfile.mkdtemp(prefix="lightning-sim-"))
                self._owns_work_dir = True
            self._drive_root = cfg.drive_root(self._work_dir)
            self._scheduler = Scheduler()
            if cfg.state_file is not None:
                self._saver = AutoSaver(cfg.state_file, self._snapshot)
            saver = self._saver
            self._store = Store(
                cfg,
                self.identity,
                self._scheduler,
                self._work_dir,
                on_change=saver.mark_dirty if saver else None,
                drive_root=self._drive_root,
            )
            if saved:
                self._store.load_state(saved.get("store", {}))
            if not any(s.name == DEFAULT_STUDIO for s in self._store.studios.records.values()):
                self._store.studios.add(DEFAULT_STUDIO)
            authenticator = Authenticator(cfg.user_id, cfg.effective_username, cfg.api_key, self._secret)
            api = Api(self._store, self.identity, authenticator, self.faults, self.request_log, self._secret)
            api.wire_models = load_wire_models() if cfg.strict else None
            self._server = ApiHTTPServer((cfg.host, cfg.port), api, verbose=cfg.verbose)
            self._store.deployments.base_url = self._server.url
            self._scheduler.start()
            if self._saver is not None:
                self._saver.start()
                self._saver.mark_dirty()
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.1},
                name="lightning-sim-http",
                daemon=True,
            )
            self._thread.start()
            return self

    def stop(self) -> None:
        """Stop serving, kill running job commands and deployment processes and save the state file (idempotent)."""
        with self._lock:
            server, self._server = self._server, None
            if server is None:
                return
            server.shutdown()
            server.server_close()
            server.close_connections()
            if self._thread is not None:
                self._thread.join(timeout=5)
            if self._store is not None:
                self._store.shutdown()
            if self._scheduler is not None:
                self._scheduler.stop()
            if self._saver is not None:
                self._saver.close()
                self._saver = None
            if self._owns_work_dir and self._work_dir is not None:
                shutil.rmtree(self._work_dir, ignore_errors=True)

    def __enter__(self) -> LightningSimulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _snapshot(self) -> dict[str, Any]:
        assert self._store is not None
        return {"secret": self._secret.hex(), "createdAt": self._created_at, "store": self._store.to_state()}

    def save_state(self) -> None:
        """Write the state file now (no-op without ``state_file``)."""
        if self._saver is not None:
            self._saver.save_now()

    # ----------------------------------------------------------- attributes

    @property
    def running(self) -> bool:
        """True while the HTTP server is up."""
        return self._server is not None

    @property
    def store(self) -> Store:
        """The store and its services: ``store.jobs``, ``store.mmts``, ``store.deployments``, ``store.studios``,
        ``store.schedules``, ``store.tags``, ``store.secrets``, ``store.drive``, ``store.logs`` (started simulators
        only)."""
        if self._store is None:
            raise RuntimeError("the simulator is not started")
        return self._store

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321`` (use as ``LIGHTNING_CLOUD_URL``)."""
        if self._server is None:
            raise RuntimeError("the simulator is not started")
        return self._server.url

    @property
    def host(self) -> str:
        """The bound host."""
        return self.url.split("//", 1)[1].rsplit(":", 1)[0]

    @property
    def port(self) -> int:
        """The bound TCP port."""
        return int(self.url.rsplit(":", 1)[1])

    @property
    def user_id(self) -> str:
        """The simulated user's id (first half of the Basic credential)."""
        return self.config.user_id

    @property
    def username(self) -> str:
        """The simulated user's username."""
        return self.config.effective_username

    @property
    def api_key(self) -> str:
        """The accepted API key."""
        return self.config.api_key

    @property
    def teamspace(self) -> str:
        """``owner/teamspace`` slug, e.g. ``sim-org/sim-teamspace``."""
        return self.config.teamspace

    @property
    def teamspace_name(self) -> str:
        """The teamspace's name (``sim-teamspace``)."""
        return self.config.teamspace_name

    @property
    def owner_name(self) -> str:
        """The teamspace owner's name (``sim-org``)."""
        return self.config.owner_name

    @property
    def project_id(self) -> str:
        """The teamspace's ``projectId``."""
        return self.identity.project_id

    @property
    def org_id(self) -> str:
        """The owning organization's id ("" for a user-owned teamspace)."""
        return self.identity.org_id

    @property
    def work_dir(self) -> Path:
        """Folder holding job scratch folders (``jobs/<id>``) and Studio folders (``studios/<id>``)."""
        if self._work_dir is None:
            raise RuntimeError("the simulator is not started")
        return self._work_dir

    @property
    def drive_root(self) -> Path:
        """Folder of the teamspace drive: drive path ``X`` of the teamspace is ``drive_root / project_id / X``
        (what ``/teamspace/X`` is on a Lightning machine; see :meth:`drive_path`)."""
        if self._drive_root is None:
            raise RuntimeError("the simulator is not started")
        return self._drive_root

    def drive_path(self, path: str = "") -> Path:
        """Where drive path ``path`` of the simulated teamspace is on disk (its folder is created), e.g.
        ``sim.drive_path("jobs/train")``: put files there, or read what jobs and uploads wrote."""
        folder = self.store.drive.teamspace_dir(self.project_id)
        return folder / path.strip("/") if path.strip("/") else folder

    @property
    def auth_header(self) -> str:
        """A valid ``Authorization`` header value (Basic user:key)."""
        token = base64.b64encode(f"{self.user_id}:{self.api_key}".encode()).decode()
        return f"Basic {token}"

    def client_env(self) -> dict[str, str]:
        """Environment variables that point the official SDK at this simulator."""
        return {
            "LIGHTNING_CLOUD_URL": self.url,
            "LIGHTNING_USER_ID": self.user_id,
            "LIGHTNING_API_KEY": self.api_key,
            "LIGHTNING_DISABLE_VERSION_CHECK": "1",
        }

    # --------------------------------------------------------------- faults

    def set_faults(
        self,
        error_rate: float = 0.0,
        rate_limit_rate: float = 0.0,
        retry_after: float = 1.0,
        latency: float = 0.0,
        drop_rate: float = 0.0,
        only_paths: Iterable[str] | None = None,
        drop_response_rate: float = 0.0,
        max_faults: int | None = None,
    ) -> None:
        """Replace the fault settings (anything not passed is turned off).

        ``drop_rate`` closes connections before the request is processed; ``drop_response_rate``
        processes the request (e.g. creates the job) and then closes the connection unanswered.
        ``max_faults`` stops injecting after that many faults, e.g. one failed PUT of part 2 of a drive
        upload: ``set_faults(error_rate=1, only_paths=[r"^/__storage/[^/]+/2$"], max_faults=1)``.
        """
        self.faults.set(
            FaultConfig(
                error_rate=error_rate,
                rate_limit_rate=rate_limit_rate,
                retry_after=retry_after,
                latency=latency,
                drop_rate=drop_rate,
                drop_response_rate=drop_response_rate,
                only_paths=list(only_paths) if only_paths is not None else None,
                max_faults=max_faults,
            )
        )

    def clear_faults(self) -> None:
        """Turn every fault off."""
        self.faults.clear()

    # ----------------------------------------------------------------- data

    def jobs(self) -> list[dict[str, Any]]:
        """Every job, newest first, as ``V1Job`` JSON."""
        return self.store.jobs.all_jobs()

    def get_job(self, job_id: str) -> dict[str, Any] | None:
        """One job as ``V1Job`` JSON, or ``None`` if it does not exist."""
        return self.store.jobs.find(job_id)

    def wait_for_job(
        self, job_id: str, states: Iterable[str] = TERMINAL_STATES, timeout: float = 30.0
    ) -> dict[str, Any]:
        """Block until the job reaches one of ``states``; raises ``TimeoutError``."""
        wanted = set(states)
        deadline = time.time() + timeout
        while True:
            job = self.get_job(job_id)
            if job is None:
                raise KeyError(job_id)
            if job["state"] in wanted:
                return job
            if time.time() > deadline:
                raise TimeoutError(f"job {job_id} is still {job['state']!r} after {timeout} s")
            time.sleep(0.02)

    def mmts(self) -> list[dict[str, Any]]:
        """Every multi-machine job, newest first, as ``V1MultiMachineJob`` JSON."""
        return self.store.mmts.all_mmts()

    def get_mmt(self, mmt_id: str) -> dict[str, Any] | None:
        """One multi-machine job as ``V1MultiMachineJob`` JSON, or ``None`` if it does not exist."""
        return self.store.mmts.find(mmt_id)

    def mmt_jobs(self, mmt_id: str) -> list[dict[str, Any]]:
        """The sub-jobs (one ``V1Job`` per machine) of a multi-machine job, in rank order."""
        return sorted(
            (j for j in self.jobs() if j["multiMachineJobId"] == mmt_id), key=lambda j: int(j["spec"]["rank"])
        )

    def wait_for_mmt(
        self, mmt_id: str, states: Iterable[str] = MMT_TERMINAL_STATES, timeout: float = 30.0
    ) -> dict[str, Any]:
        """Block until the multi-machine job's ``state`` is one of ``states``; raises ``TimeoutError``."""
        wanted = set(states)
        deadline = time.time() + timeout
        while True:
            mmt = self.get_mmt(mmt_id)
            if mmt is None:
                raise KeyError(mmt_id)
            if mmt["state"] in wanted:
                return mmt
            if time.time() > deadline:
                raise TimeoutError(f"multi-machine job {mmt_id} is still {mmt['state']!r} after {timeout} s")
            time.sleep(0.02)

    def deployments(self) -> list[dict[str, Any]]:
        """Every deployment, newest first, as ``V1Deployment`` JSON."""
        return self.store.deployments.all_deployments()

    def get_deployment(self, id_or_name: str) -> dict[str, Any] | None:
        """One deployment as ``V1Deployment`` JSON, or ``None`` if it does not exist.

        :param id_or_name: the deployment's id (``dep_...``) or name.
        """
        return self.store.deployments.find(id_or_name)

    def wait_for_deployment(
        self,
        id_or_name: str,
        until: str | Callable[[dict[str, Any]], bool] = DEP_RUNNING,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        """Block until the deployment reaches a state or satisfies a predicate; raises ``TimeoutError``.

        :param id_or_name: the deployment's id or name (``KeyError`` if it does not exist).
        :param until: a ``currentState`` (``"RUNNING"`` or ``"DEPLOYMENT_STATE_RUNNING"``), or a predicate
            called with the ``V1Deployment`` JSON.
        :param timeout: seconds to wait at most.
        """
        if isinstance(until, str):
            state = normalize_state(until)
            until = lambda dep: dep["currentState"] == state  # noqa: E731
        deadline = time.time() + timeout
        while True:
            dep = self.get_deployment(id_or_name)
            if dep is None:
                raise KeyError(id_or_name)
            if until(dep):
                return dep
            if time.time() > deadline:
                raise TimeoutError(f"deployment {id_or_name} is still {dep['currentState']!r} after {timeout} s")
            time.sleep(0.02)

    def deployment_replica(self, id_or_name: str) -> dict[str, Any] | None:
        """The newest ready replica of a deployment as its container runs: ``{jobId, release, command, env, pid,
        port}`` (``env`` with the values of its ``fromSecret`` entries and the ``/teamspace`` mount applied, which the
        API never returns; ``pid``, its process group id, and ``port``, its ``PORT``, are ``None`` when it runs no
        process). ``None`` while no replica is ready; ``KeyError`` if the deployment does not exist."""
        return self.store.deployments.replica_runtime(id_or_name)

    def add_studio(self, name: str) -> dict[str, Any]:
        """Create a Studio (with an empty scratch folder) and return it as ``V1CloudSpace`` JSON."""
        return self.store.studios.add(name)

    def studio_dir(self, name_or_id: str) -> Path:
        """The scratch folder of a Studio, by name or id (Studio jobs run in a copy of it)."""
        studios = self.store.studios
        return studios.studio_dir(studios.find(name_or_id).id)

    def studio_phase(self, name_or_id: str) -> str:
        """A Studio's instance phase (``CLOUD_SPACE_INSTANCE_STATE_RUNNING``, ...; ``..._STOPPED`` when stopped)."""
        return self.store.studios.phase(name_or_id)

    def studio_commands(self, name_or_id: str) -> list[dict[str, Any]]:
        """Commands run in a Studio, oldest first: ``sessionName``, ``command``, ``exitCode`` (``None`` while
        running), ``output``, ``instanceId``, ``startedAt``, ``finishedAt``."""
        return self.store.studios.commands(name_or_id)

    def wait_for_studio(self, name_or_id: str, phase: str, timeout: float = 30.0) -> None:
        """Block until the Studio's phase (see :meth:`studio_phase`) is ``phase``; raises ``TimeoutError``."""
        deadline = time.time() + timeout
        while (current := self.studio_phase(name_or_id)) != phase:
            if time.time() > deadline:
                raise TimeoutError(f"Studio {name_or_id} is still {current} after {timeout} s")
            time.sleep(0.02)

    def clock_now(self) -> datetime:
        """The simulated schedule clock (aware UTC); it ticks with real time and only moves forward."""
        with self.store.lock:
            return to_datetime(self.store.schedules.now_ns())

    def advance_clock(self, seconds: float) -> datetime:
        """Move the schedule clock forward by ``seconds`` (firing every schedule instant passed); the new time."""
        return self._move_clock({"advanceSeconds": seconds})

    def set_clock(self, when: datetime) -> datetime:
        """Move the schedule clock forward to the aware datetime ``when``; the new time."""
        return self._move_clock({"set": when.isoformat()})

    def _move_clock(self, body: dict[str, Any]) -> datetime:
        try:
            self.store.schedules.move_clock(body)
        except ApiError as exc:  # e.g. a move backward
            raise ValueError(exc.message) from None
        return self.clock_now()

    def schedule_runs(self, id_or_name: str) -> list[dict[str, Any]]:
        """The runs (``V1ScheduleRun`` plus ``scheduledAt``, ...) of a schedule by id or name, oldest first."""
        return self.store.schedules.runs_of(id_or_name)

    def job_pid(self, job_id: str) -> int | None:
        """Process id (= process group id) of a job's running command, if any."""
        handle = self.store.jobs.runner.get(job_id)
        return handle.pid if handle is not None else None

    def __repr__(self) -> str:
        where = self.url if self.running else "stopped"
        return f"<LightningSimulator {where} teamspace={self.teamspace!r}>"
