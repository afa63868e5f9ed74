"""Studios (cloudspaces): the record, the instance lifecycle and commands that really run.

Instance lifecycle (reference sections 10.3, 10.4 and 14)::

    stopped (no inUse) --POST start--> PENDING (a new cloudSpaceInstanceId)
        --(pending_seconds)--> RUNNING (startupStatus.topUpRestoreFinished: true)
        --POST stop, or requestedRunDurationSeconds elapsed--> STOPPING --(stop_seconds)--> stopped (no inUse)

* Starting a Studio that is already pending or running on the same machine changes nothing; on another
  machine it is refused (400 FAILED_PRECONDITION: switch instead), and so is starting a stopping Studio.
* Machines are catalogue slugs (``cpu-4``, ``lit-a100-1``, ...) or raw cloud instance types (``g5.xlarge``).
* Switching: ``PUT codeconfig`` with another machine while running adds a ``requested`` instance that is
  ready (``startupStatus.initialRestoreFinished``) after ``pending_seconds``; ``POST switch-confirm`` then
  makes it the ``inUse`` instance (before that it answers 400). Commands of the old machine are killed; files stay.
* ``requestedRunDurationSeconds`` (the SDK's ``max_runtime``) stops the Studio that many seconds after it
  became RUNNING (``statusMessage`` says why).
* ``POST execute`` runs ``bash -c <command>`` in the Studio's folder (``StudioService.studio_dir``), so files persist
  between commands. Only a RUNNING Studio executes commands (400 FAILED_PRECONDITION otherwise); stopping
  or switching the Studio kills them, and like job commands they are killed after ``job_time_limit``.
  A killed command's exit code is 128 + the signal; ``exitCode`` is -1 while a command runs.
* ``POST /cloudspaces`` with a name that is taken answers 409 ALREADY_EXISTS (the SDK looks a Studio up by
  name before creating one); its ``seedFiles`` are written to the new Studio's folder.
"""

from __future__ import annotations

import random
import shutil
import threading
from collections import deque
from collections.abc import Callable, Container
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from .catalog import DEFAULT_CLUSTER_ID, MACHINES, price_per_second
from .context import ServiceContext
from .runner import CommandRunner, job_environment, make_python_shim
from .wire import (
    GRPC_ALREADY_EXISTS,
    GRPC_FAILED_PRECONDITION,
    ApiError,
    as_bool,
    as_int,
    as_str,
    camelize,
    invalid,
    not_found,
    now_ns,
    rfc3339,
)

PHASE_PREFIX = "CLOUD_SPACE_INSTANCE_STATE_"
PENDING = PHASE_PREFIX + "PENDING"
RUNNING = PHASE_PREFIX + "RUNNING"
STOPPING = PHASE_PREFIX + "STOPPING"
STOPPED = PHASE_PREFIX + "STOPPED"
DEFAULT_MACHINE = "cpu-4"
STILL_RUNNING = -1  # the wire exitCode of a command that has not ended
MAX_SESSIONS = 1000  # command history kept per Studio
RESTART_EXIT_CODE = 137  # commands that were running when the simulator stopped (as if SIGKILLed)


def new_id(prefix: str, rng: random.Random, taken: Container[str]) -> str:
    """A fresh ``<prefix>-<12 hex digits>`` id.

    :param prefix: the id's kind, such as ``studio``.
    :param rng: the random source (seeded for reproducible ids).
    :param taken: ids that must not be returned.
    """
    while True:
        candidate = f"{prefix}-{rng.getrandbits(48):012x}"
        if candidate not in taken:
            return candidate


def precondition(message: str) -> ApiError:
    """A 400 FAILED_PRECONDITION error.

    :param message: what is wrong and what to do instead.
    """
    return ApiError(GRPC_FAILED_PRECONDITION, f"failed precondition: {message}")


def check_machine(name: str) -> str:
    """The machine name if it is a catalogue slug or a raw cloud instance type; 400 otherwise.

    :param name: ``computeConfig.name`` as sent.
    """
    name = name.strip()
    if name in MACHINES or "." in name:
        return name
    raise invalid(
        f"unknown machine {name!r}: use a slug such as cpu-4 or lit-a100-1, "
        "or a cloud instance type such as g5.xlarge"
    )


def _compute_config(machine: str, spot: bool, run_seconds: int = 0) -> dict[str, Any]:
    return {
        "name": machine,
        "spot": spot,
        "clusterOverride": "",
        "requestedRunDurationSeconds": str(run_seconds),
    }


def _seed_files(raw: Any) -> list[tuple[PurePosixPath, str]]:
    files = []
    for item in raw or []:
        if not isinstance(item, dict):
            raise invalid("seedFiles entries must be objects with path/contents")
        path = PurePosixPath(as_str(item.get("path")))
        if not path.parts or path.is_absolute() or ".." in path.parts:
            raise invalid(f"seed file path {str(path)!r} must be relative and stay inside the Studio")
        files.append((path, as_str(item.get("contents"))))
    return files


# -------------------------------------------------------------------- records


@dataclass
class Instance:
    """One machine a Studio runs on (``Externalv1CloudSpaceInstanceStatus``)."""

    id: str
    machine: str
    spot: bool
    created_ns: int
    run_seconds: int = 0  # requestedRunDurationSeconds; 0 = no limit
    phase: str = PENDING
    started_ns: int | None = None
    message: str = ""


@dataclass
class Session:
    """One command executed in a Studio (``POST /execute``)."""

    name: str
    studio_id: str
    command: str
    instance_id: str
    started_ns: int
    output: deque[str]
    exit_code: int | None = None
    finished_ns: int | None = None
    done: threading.Event = field(default_factory=threading.Event, repr=False)
    on_exit: list[Callable[[Session], None]] = field(default_factory=list, repr=False)

    @property
    def wire_exit_code(self) -> int:
        """``exitCode`` as the API reports it (-1 while running)."""
        return STILL_RUNNING if self.exit_code is None else self.exit_code

    def text(self) -> str:
        """The output so far, one ``\\n``-terminated line per output line."""
        return "".join(f"{line}\n" for line in self.output)

    def to_api(self) -> dict[str, Any]:
        """The Python API's view: command, output and exit code (``None`` while running)."""
        return {
            "sessionName": self.name,
            "command": self.command,
            "exitCode": self.exit_code,
            "output": self.text(),
            "instanceId": self.instance_id,
            "startedAt": rfc3339(self.started_ns),
            "finishedAt": rfc3339(self.finished_ns),
        }

    def to_state(self) -> dict[str, Any]:
        """JSON form for the state file."""
        return {
            "name": self.name,
            "command": self.command,
            "instanceId": self.instance_id,
            "startedNs": self.started_ns,
            "output": list(self.output),
            "exitCode": self.exit_code,
            "finishedNs": self.finished_ns,
        }

    @classmethod
    def from_state(cls, data: dict[str, Any], studio_id: str, max_lines: int) -> Session:
        """Rebuild a session saved by :meth:`to_state`.

        :param data: the saved form.
        :param studio_id: the Studio it ran in.
        :param max_lines: output lines kept.
        """
        session = cls(
            name=data["name"],
            studio_id=studio_id,
            command=data["command"],
            instance_id=data["instanceId"],
            started_ns=int(data["startedNs"]),
            output=deque(data.get("output", []), maxlen=max_lines),
            exit_code=data.get("exitCode"),
            finished_ns=data.get("finishedNs"),
        )
        if session.exit_code is not None:
            session.done.set()
        return session


@dataclass
class Studio:
    """A Studio (cloudspace) with a scratch folder on disk, its machine and its command history."""

    id: str
    name: str
    project_id: str
    user_id: str
    created_ns: int
    cluster_id: str = DEFAULT_CLUSTER_ID
    updated_ns: int = 0
    machine: str = DEFAULT_MACHINE  # codeConfig.computeConfig
    spot: bool = False
    in_use: Instance | None = None
    requested: Instance | None = None  # the machine being switched to
    sessions: list[Session] = field(default_factory=list)

    def to_state(self) -> dict[str, Any]:
        """JSON form for the state file."""
        return {
            "id": self.id,
            "name": self.name,
            "projectId": self.project_id,
            "userId": self.user_id,
            "createdNs": self.created_ns,
            "clusterId": self.cluster_id,
            "updatedNs": self.updated_ns,
            "machine": self.machine,
            "spot": self.spot,
            "inUse": asdict(self.in_use) if self.in_use else None,
            "requested": asdict(self.requested) if self.requested else None,
            "sessions": [s.to_state() for s in self.sessions],
        }

    @classmethod
    def from_state(cls, data: dict[str, Any], max_lines: int) -> Studio:
        """Rebuild a Studio saved by :meth:`to_state` (older files hold only the first six keys).

        :param data: the saved form.
        :param max_lines: output lines kept per command.
        """
        in_use, requested = data.get("inUse"), data.get("requested")
        return cls(
            id=data["id"],
            name=data["name"],
            project_id=data["projectId"],
            user_id=data["userId"],
            created_ns=int(data["createdNs"]),
            cluster_id=data.get("clusterId", DEFAULT_CLUSTER_ID),
            updated_ns=int(data.get("updatedNs") or data["createdNs"]),
            machine=data.get("machine", DEFAULT_MACHINE),
            spot=bool(data.get("spot", False)),
            in_use=Instance(**in_use) if in_use else None,
            requested=Instance(**requested) if requested else None,
            sessions=[Session.from_state(s, data["id"], max_lines) for s in data.get("sessions", [])],
        )


# --------------------------------------------------------------------- service


class StudioService:
    """The Studios of the simulated teamspace: CRUD, instance lifecycle and command execution."""

    def __init__(self, context: ServiceContext) -> None:
        self.context = context
        self.lock = context.lock
        self.records: dict[str, Studio] = {}
        self.config = context.config
        self.scheduler = context.scheduler
        self._on_change = context.changed
        self._rng = random.Random(context.config.seed)
        self._live: dict[str, Session] = {}  # runner key -> session still running
        self.runner = CommandRunner(self._on_line, self._on_exit, kill_grace=context.config.kill_grace)
        self._shim_dir = make_python_shim(context.work_dir / "bin")
        self._bash = shutil.which("bash") or "sh"
        self._closed = False  # shutting down: no new commands
        (context.work_dir / "studios").mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------- helpers

    def studio_dir(self, studio_id: str) -> Path:
        """The scratch folder holding a Studio's files."""
        return self.context.work_dir / "studios" / studio_id

    def _studio(self, project_id: str, studio_id: str) -> Studio:
        self.context.require_project(project_id)
        studio = self.records.get(studio_id)
        if studio is None or studio.project_id != project_id:
            raise not_found(f"cloudspace {studio_id!r}")
        return studio

    def find(self, name_or_id: str) -> Studio:
        """A Studio by id or name; ``KeyError`` if there is none.

        :param name_or_id: the Studio's id or name.
        """
        with self.lock:
            for studio in self.records.values():
                if name_or_id in (studio.id, studio.name):
                    return studio
        raise KeyError(name_or_id)

    def _touch(self, studio: Studio) -> None:
        studio.updated_ns = now_ns()
        self._on_change()

    def _current(self, studio_id: str, instance_id: str) -> tuple[Studio, Instance] | None:
        studio = self.records.get(studio_id)
        if studio is None or studio.in_use is None or studio.in_use.id != instance_id:
            return None
        return studio, studio.in_use

    # -------------------------------------------------------------- render

    def _render_instance(self, studio: Studio, inst: Instance, in_use: bool) -> dict[str, Any]:
        running = inst.phase == RUNNING
        started = rfc3339(inst.started_ns)
        return {
            "cloudSpaceId": studio.id,
            "cloudSpaceInstanceId": inst.id,
            "clusterId": studio.cluster_id,
            "computeConfig": _compute_config(inst.machine, inst.spot, inst.run_seconds),
            "creationTimestamp": rfc3339(inst.created_ns),
            "instanceId": inst.id,
            "phase": inst.phase,
            "price": round(price_per_second(inst.machine, inst.spot) * 3600, 4),
            "privateIpAddress": "127.0.0.1" if running else "",
            "publicIpAddress": "127.0.0.1" if running else "",
            "sshHost": "",
            "sshPort": 0,
            "sshUsername": "",
            "startTimestamp": started,
            "startupPercentage": "100" if running else "0",
            "startupPhase": "",
            "startupStatus": {
                "initialRestoreAt": started,
                "initialRestoreFinished": running,
                "stageProgress": [],
                "startedAt": started,
                "topUpRestoreAt": started if in_use and running else None,
                "topUpRestoreFinished": in_use and running,
            },
            "statusMessage": inst.message,
        }

    def _code_status(self, studio: Studio) -> dict[str, Any]:
        return {
            "inUse": self._render_instance(studio, studio.in_use, True) if studio.in_use else None,
            "requested": self._render_instance(studio, studio.requested, False) if studio.requested else None,
            "collabStatus": None,
            "collabSession": None,
        }

    def _code_config(self, studio: Studio) -> dict[str, Any]:
        return {
            "computeConfig": _compute_config(studio.machine, studio.spot),
            "dataConnectionMounts": [],
            "disableAutoShutdown": False,
            "ide": "vscode",
            "idleShutdownSeconds": 0,
        }

    def render(self, studio: Studio) -> dict[str, Any]:
        """The Studio as ``V1CloudSpace`` JSON (``codeStatus`` as ``GET codestatus`` answers it).

        :param studio: the Studio.
        """
        return {
            "id": studio.id,
            "name": studio.name,
            "displayName": studio.name,
            "description": "",
            "projectId": studio.project_id,
            "userId": studio.user_id,
            "clusterId": studio.cluster_id,
            "createdAt": rfc3339(studio.created_ns),
            "updatedAt": rfc3339(studio.updated_ns or studio.created_ns),
            "state": "CLOUD_SPACE_STATE_READY",
            "codeStatus": self._code_status(studio),
            "codeConfig": self._code_config(studio),
            "env": [],
            "environmentTemplateId": "",
            "machineImageVersion": "",
            "isFavorite": False,
            "isLocked": False,
        }

    # ---------------------------------------------------------------- CRUD

    def create(self, project_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /cloudspaces``: a stopped Studio with its ``seedFiles`` (409 if the name is taken).

        :param project_id: the teamspace.
        :param body: ``{name, displayName?, clusterId?, seedFiles?}``.
        """
        body = camelize(body)
        name = as_str(body.get("name")).strip() or as_str(body.get("displayName")).strip()
        if not name:
            raise invalid("studio name is required")
        seeds = _seed_files(body.get("seedFiles"))
        with self.lock:
            self.context.require_project(project_id)
            if any(s.name == name and s.project_id == project_id for s in self.records.values()):
                raise ApiError(GRPC_ALREADY_EXISTS, f"studio {name!r} already exists")
            now = now_ns()
            studio = Studio(
                id=new_id("studio", self._rng, self.records),
                name=name,
                project_id=project_id,
                user_id=self.context.identity.user_id,
                created_ns=now,
                updated_ns=now,
                cluster_id=as_str(body.get("clusterId")) or DEFAULT_CLUSTER_ID,
            )
            self.records[studio.id] = studio
            folder = self.studio_dir(studio.id)
            folder.mkdir(parents=True, exist_ok=True)
            for path, contents in seeds:
                (folder / path).parent.mkdir(parents=True, exist_ok=True)
                (folder / path).write_text(contents, encoding="utf-8")
            self._on_change()
            return self.render(studio)

    def list_studios(self, project_id: str, query: dict[str, list[str]]) -> dict[str, Any]:
        """``GET /cloudspaces`` (``name``, ``ids`` and ``userId`` filters), newest first.

        :param project_id: the teamspace.
        :param query: the parsed query string.
        """
        name = (query.get("name") or [""])[0]
        ids = {i for i in query.get("ids", []) if i}
        user_id = (query.get("userId") or [""])[0]
        with self.lock:
            self.context.require_project(project_id)
            studios = sorted(self.records.values(), key=lambda s: s.created_ns, reverse=True)
            out = [
                self.render(s)
                for s in studios
                if s.project_id == project_id
                and (not name or s.name == name)
                and (not ids or s.id in ids)
                and (not user_id or s.user_id == user_id)
            ]
            return {"cloudspaces": out, "nextPageToken": "", "previousPageToken": ""}

    def get(self, project_id: str, studio_id: str) -> dict[str, Any]:
        """``GET /cloudspaces/{id}``.

        :param project_id: the teamspace.
        :param studio_id: the Studio.
        """
        with self.lock:
            return self.render(self._studio(project_id, studio_id))

    def delete(self, project_id: str, studio_id: str) -> dict[str, Any]:
        """``DELETE /cloudspaces/{id}``: kill its commands and forget it and its folder.

        :param project_id: the teamspace.
        :param studio_id: the Studio.
        """
        with self.lock:
            studio = self._studio(project_id, studio_id)
            del self.records[studio.id]
            self._kill_commands(studio, "the Studio was deleted", grace=0)
            self._on_change()
        shutil.rmtree(self.studio_dir(studio.id), ignore_errors=True)
        return {}

    # ------------------------------------------------------------ lifecycle

    def start(self, project_id: str, studio_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /cloudspaces/{id}/start`` with ``{computeConfig: {name, spot, requestedRunDurationSeconds?}}``.

        :param project_id: the teamspace.
        :param studio_id: the Studio.
        :param body: the start request.
        """
        config = camelize(body).get("computeConfig") or {}
        if not isinstance(config, dict):
            raise invalid("computeConfig must be an object")
        run_seconds = as_int(config.get("requestedRunDurationSeconds"))
        if run_seconds < 0:
            raise invalid("requestedRunDurationSeconds must not be negative")
        with self.lock:
            studio = self._studio(project_id, studio_id)
            machine = check_machine(as_str(config.get("name")) or studio.machine)
            self.start_instance(studio, machine, as_bool(config.get("spot")), run_seconds)
        return {}

    def start_instance(self, studio: Studio, machine: str, spot: bool, run_seconds: int = 0) -> bool:
        """Start a new PENDING instance (True), or nothing when one is up on ``machine`` (False). Under the lock.

        :param studio: the Studio.
        :param machine: a checked machine name.
        :param spot: interruptible machine.
        :param run_seconds: stop after this many seconds of RUNNING (0: never).
        """
        current = studio.in_use
        if current is not None:
            if current.phase == STOPPING:
                raise precondition(f"Studio {studio.name!r} is stopping; start it again once it has stopped")
            if current.machine != machine:
                raise precondition(
                    f"Studio {studio.name!r} is already running on {current.machine}, not {machine}; "
                    "switch machine (PUT codeconfig, then POST switch-confirm) instead"
                )
            return False
        studio.machine, studio.spot = machine, spot
        studio.in_use = Instance(new_id("csi", self._rng, ()), machine, spot, now_ns(), run_seconds)
        self._touch(studio)
        self.scheduler.call_later(self.config.pending_seconds, self._instance_ready, studio.id, studio.in_use.id)
        return True

    def _instance_ready(self, studio_id: str, instance_id: str) -> None:
        with self.lock:
            found = self._current(studio_id, instance_id)
            if found is None or found[1].phase != PENDING:
                return
            studio, inst = found
            inst.phase = RUNNING
            inst.started_ns = now_ns()
            self._arm_max_runtime(studio, inst)
            self._touch(studio)

    def _arm_max_runtime(self, studio: Studio, inst: Instance) -> None:
        if inst.run_seconds and inst.started_ns is not None:
            when = inst.started_ns / 1e9 + inst.run_seconds
            self.scheduler.call_at(when, self._runtime_up, studio.id, inst.id)

    def _runtime_up(self, studio_id: str, instance_id: str) -> None:
        with self.lock:
            found = self._current(studio_id, instance_id)
            if found is not None and found[1].phase == RUNNING:
                studio, inst = found
                self.stop_instance(studio, f"stopped after reaching its maximum runtime of {inst.run_seconds} s")

    def stop(self, project_id: str, studio_id: str) -> dict[str, Any]:
        """``POST /cloudspaces/{id}/stop`` (a stopped or stopping Studio is left alone).

        :param project_id: the teamspace.
        :param studio_id: the Studio.
        """
        with self.lock:
            self.stop_instance(self._studio(project_id, studio_id), "")
        return {}

    def stop_instance(self, studio: Studio, message: str) -> bool:
        """Begin stopping the Studio and kill its commands; False if it is not pending or running. Under the lock.

        :param studio: the Studio.
        :param message: the instance's ``statusMessage`` (why it stops).
        """
        inst = studio.in_use
        studio.requested = None
        if inst is None or inst.phase == STOPPING:
            return False
        inst.phase = STOPPING
        inst.message = message
        self._kill_commands(studio, f"the Studio is stopping{f' ({message})' if message else ''}")
        self._touch(studio)
        self.scheduler.call_later(self.config.stop_seconds, self._instance_gone, studio.id, inst.id)
        return True

    def _instance_gone(self, studio_id: str, instance_id: str) -> None:
        with self.lock:
            found = self._current(studio_id, instance_id)
            if found is None or found[1].phase != STOPPING:
                return
            studio = found[0]
            studio.in_use = None
            self._kill_commands(studio, "the Studio stopped", grace=0)
            self._touch(studio)

    # ------------------------------------------------------ config, switch

    def code_status(self, project_id: str, studio_id: str) -> dict[str, Any]:
        """``GET /cloudspaces/{id}/codestatus``: ``inUse`` is null while the Studio is stopped.

        :param project_id: the teamspace.
        :param studio_id: the Studio.
        """
        with self.lock:
            return self._code_status(self._studio(project_id, studio_id))

    def code_config(self, project_id: str, studio_id: str) -> dict[str, Any]:
        """``GET /cloudspaces/{id}/codeconfig``.

        :param project_id: the teamspace.
        :param studio_id: the Studio.
        """
        with self.lock:
            return self._code_config(self._studio(project_id, studio_id))

    def update_code_config(self, project_id: str, studio_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """``PUT /cloudspaces/{id}/codeconfig {computeConfig: {name, spot}}``; while running, requests a switch.

        :param project_id: the teamspace.
        :param studio_id: the Studio.
        :param body: the new configuration (fields other than ``computeConfig`` are ignored).
        """
        config = camelize(body).get("computeConfig")
        if config is not None and not isinstance(config, dict):
            raise invalid("computeConfig must be an object")
        with self.lock:
            studio = self._studio(project_id, studio_id)
            if config is not None:
                studio.machine = check_machine(as_str(config.get("name")) or studio.machine)
                studio.spot = as_bool(config.get("spot"), studio.spot)
                self._request_switch(studio)
                self._touch(studio)
            return self._code_config(studio)

    def _request_switch(self, studio: Studio) -> None:
        current = studio.in_use
        wanted = (studio.machine, studio.spot)
        if current is None or current.phase != RUNNING or (current.machine, current.spot) == wanted:
            studio.requested = None
            return
        studio.requested = Instance(new_id("csi", self._rng, ()), *wanted, now_ns(), current.run_seconds)
        self.scheduler.call_later(self.config.pending_seconds, self._requested_ready, studio.id, studio.requested.id)

    def _requested_ready(self, studio_id: str, instance_id: str) -> None:
        with self.lock:
            studio = self.records.get(studio_id)
            new = studio.requested if studio else None
            if studio is None or new is None or new.id != instance_id:
                return
            new.phase = RUNNING
            new.started_ns = now_ns()
            self._touch(studio)

    def switch_confirm(self, project_id: str, studio_id: str) -> dict[str, Any]:
        """``POST /cloudspaces/{id}/switch-confirm``: the ready ``requested`` machine becomes ``inUse``.

        :param project_id: the teamspace.
        :param studio_id: the Studio.
        """
        with self.lock:
            studio = self._studio(project_id, studio_id)
            new = studio.requested
            if new is None:
                raise precondition("no machine switch was requested: PUT codeconfig with another machine first")
            if new.phase != RUNNING:
                raise precondition(
                    "the requested machine is still starting: confirm once "
                    "codestatus.requested.startupStatus.initialRestoreFinished is true"
                )
            self._kill_commands(studio, f"the Studio switched to {new.machine}", grace=0)
            new.started_ns = now_ns()
            studio.in_use, studio.requested = new, None
            self._arm_max_runtime(studio, new)
            self._touch(studio)
        return {}

    def keep_alive(self, project_id: str, studio_id: str) -> dict[str, Any]:
        """``POST /cloudspaces/{id}/keep-alive`` (no idle shutdown is simulated, so nothing changes).

        :param project_id: the teamspace.
        :param studio_id: the Studio.
        """
        with self.lock:
            self._studio(project_id, studio_id)
        return {}

    # ------------------------------------------------------------- commands

    def execute(self, project_id: str, studio_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /cloudspaces/{id}/execute {command, detached, sessionName?}`` -> ``{sessionName, exitCode, output}``.

        Detached: answers at once (``exitCode`` -1 while running); otherwise waits for the command to end.

        :param project_id: the teamspace.
        :param studio_id: the Studio.
        :param body: the command request.
        """
        body = camelize(body)
        command = as_str(body.get("command"))
        if not command.strip():
            raise invalid("command is required")
        with self.lock:
            studio = self._studio(project_id, studio_id)
            session = self.run_command(studio, command, as_str(body.get("sessionName")).strip())
        if not as_bool(body.get("detached")):
            session.done.wait(self.config.job_time_limit + self.config.kill_grace + 5)
        with self.lock:
            return {"sessionName": session.name, "exitCode": session.wire_exit_code, "output": session.text()}

    def run_command(
        self, studio: Studio, command: str, session_name: str = "", on_exit: Callable[[Session], None] | None = None
    ) -> Session:
        """Run ``bash -c command`` in the Studio's folder; 400 unless the Studio is RUNNING. Under the lock.

        :param studio: the Studio.
        :param command: the shell command.
        :param session_name: the session's name (generated when empty; 409 if that session still runs).
        :param on_exit: called (under the lock) with the session once the command ended.
        """
        inst = studio.in_use
        if inst is None or inst.phase != RUNNING:
            phase = inst.phase if inst is not None else STOPPED
            raise precondition(f"Studio {studio.name!r} is not running ({phase}); start it before running commands")
        if self._closed:
            raise precondition("the simulator is shutting down")
        name = session_name or new_id("session", self._rng, {s.name for s in studio.sessions})
        key = f"{studio.id}/{name}"
        if key in self._live:
            raise ApiError(GRPC_ALREADY_EXISTS, f"session {name!r} is still running a command")
        session = Session(name, studio.id, command, inst.id, now_ns(), deque(maxlen=self.config.max_log_lines))
        if on_exit is not None:
            session.on_exit.append(on_exit)
        studio.sessions.append(session)
        del studio.sessions[:-MAX_SESSIONS]
        self._touch(studio)
        folder = self.studio_dir(studio.id)
        folder.mkdir(parents=True, exist_ok=True)
        self._live[key] = session
        try:
            handle = self.runner.start(key, [self._bash, "-c", command], folder, self._environment(studio))
        except OSError as exc:
            del self._live[key]
            session.output.append(f"[simulator] could not start {self._bash!r}: {exc}")
            self._finish(session, 127)
            return session
        self.scheduler.call_later(self.config.job_time_limit, self._time_limit, key, handle.pid)
        return session

    def _environment(self, studio: Studio) -> dict[str, str]:
        extra = {
            "LIGHTNING_CLOUD_SPACE_ID": studio.id,
            "LIGHTNING_CLOUD_PROJECT_ID": studio.project_id,
            "LIGHTNING_STUDIO_NAME": studio.name,
        }
        return job_environment(extra, self._shim_dir)

    def _kill_commands(self, studio: Studio, why: str, grace: float | None = None) -> None:
        for key, session in list(self._live.items()):
            handle = self.runner.get(key)
            if session.studio_id != studio.id or handle is None:
                continue
            if handle.kill_reason is None:  # say why once, even when a SIGKILL follows the SIGTERM
                session.output.append(f"[simulator] command killed: {why}")
            self.runner.terminate(key, "stop", grace=grace)

    def _time_limit(self, key: str, pid: int) -> None:
        handle = self.runner.get(key)
        if handle is None or handle.pid != pid:
            return
        with self.lock:
            session = self._live.get(key)
            if session is not None:
                session.output.append(f"[simulator] command killed: exceeded {self.config.job_time_limit:g} s")
        self.runner.terminate(key, "timeout", grace=0)

    def _on_line(self, key: str, text: str) -> None:
        with self.lock:
            session = self._live.get(key)
            if session is not None:
                session.output.append(text)

    def _on_exit(self, key: str, code: int, reason: str | None) -> None:
        with self.lock:
            session = self._live.pop(key, None)
            if session is not None:
                self._finish(session, 128 - code if code < 0 else code)

    def _finish(self, session: Session, code: int) -> None:
        session.exit_code = code
        session.finished_ns = now_ns()
        callbacks, session.on_exit = session.on_exit, []
        try:
            for callback in callbacks:
                callback(session)
        finally:
            session.done.set()
            self._on_change()

    def _session(self, project_id: str, studio_id: str, name: str) -> Session:
        studio = self._studio(project_id, studio_id)
        for session in reversed(studio.sessions):
            if session.name == name:
                return session
        raise not_found(f"command session {name!r}")

    def command_result(self, project_id: str, studio_id: str, name: str) -> dict[str, Any]:
        """``GET /cloudspaces/{id}/execute/{session}`` -> ``{exitCode, output}`` (-1 while running).

        :param project_id: the teamspace.
        :param studio_id: the Studio.
        :param name: the session name.
        """
        with self.lock:
            session = self._session(project_id, studio_id, name)
            return {"exitCode": session.wire_exit_code, "output": session.text()}

    def command_stream(self, project_id: str, studio_id: str, name: str) -> list[dict[str, Any]]:
        """``GET /cloudspaces/{id}/execute/{session}/stream``: one NDJSON result per output line so far.

        Every line carries the same ``exitCode``: -1 while running, the final code once ended.

        :param project_id: the teamspace.
        :param studio_id: the Studio.
        :param name: the session name.
        """
        with self.lock:
            session = self._session(project_id, studio_id, name)
            code = session.wire_exit_code
            chunks = [f"{line}\n" for line in session.output] or [""]
            return [{"result": {"output": chunk, "exitCode": code}} for chunk in chunks]

    # ----------------------------------------------------------- python API

    def add(self, name: str) -> dict[str, Any]:
        """Create a Studio in the simulated teamspace (409 if the name is taken), as ``POST /cloudspaces`` would.

        :param name: the Studio's name.
        """
        return self.create(self.context.identity.project_id, {"name": name})

    def phase(self, name_or_id: str) -> str:
        """The ``inUse`` instance's phase, ``CLOUD_SPACE_INSTANCE_STATE_STOPPED`` when there is none.

        :param name_or_id: the Studio's id or name.
        """
        studio = self.find(name_or_id)
        with self.lock:
            return studio.in_use.phase if studio.in_use is not None else STOPPED

    def commands(self, name_or_id: str) -> list[dict[str, Any]]:
        """Every command run in the Studio, oldest first (see :meth:`Session.to_api`).

        :param name_or_id: the Studio's id or name.
        """
        studio = self.find(name_or_id)
        with self.lock:
            return [s.to_api() for s in studio.sessions]

    # ---------------------------------------------------------- persistence

    def to_state(self) -> list[dict[str, Any]]:
        """Every Studio in the state file's form (under the lock)."""
        return [s.to_state() for s in self.records.values()]

    def load_state(self, saved: list[dict[str, Any]]) -> None:
        """Restore saved Studios (under the lock).

        :param saved: what :meth:`to_state` returned.
        """
        for raw in saved:
            studio = Studio.from_state(raw, self.config.max_log_lines)
            self.records[studio.id] = studio
            self._resume(studio)

    def _resume(self, studio: Studio) -> None:
        """Re-arm the timers of a Studio restored from the state file; its running commands did not survive.

        :param studio: the restored Studio (already in ``records``).
        """
        self.studio_dir(studio.id).mkdir(parents=True, exist_ok=True)
        for session in studio.sessions:
            if session.exit_code is None:
                session.output.append("[simulator] the simulator stopped while this command was running")
                session.exit_code = RESTART_EXIT_CODE
                session.finished_ns = now_ns()
                session.done.set()
        inst = studio.in_use
        if inst is not None and inst.phase == PENDING:
            self.scheduler.call_later(self.config.pending_seconds, self._instance_ready, studio.id, inst.id)
        elif inst is not None and inst.phase == RUNNING:
            self._arm_max_runtime(studio, inst)
        elif inst is not None:
            studio.in_use = None
        if studio.requested is not None and studio.requested.phase == PENDING:
            self.scheduler.call_later(
                self.config.pending_seconds, self._requested_ready, studio.id, studio.requested.id
            )

    def shutdown(self) -> None:
        """Kill every running command (their exit codes say they were killed)."""
        with self.lock:
            self._closed = True
            for session in self._live.values():
                session.output.append("[simulator] command killed: the simulator shut down")
        self.runner.kill_all()
