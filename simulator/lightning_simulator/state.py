"""Stores (jobs, Studios, tags, logs) and the job state machine.

Job lifecycle (reference section 14)::

    create -> pending --(pending_seconds)--> running --exit 0--> completed
                                                     \\-exit!=0 / time limit--> failed
    PUT {"state": "stop"} -> stop --(stop_seconds)--> stopping (process group killed) -> stopped

Multi-machine jobs (see :mod:`.mmt`) own one such job per machine and derive their state from them.

All state lives behind one re-entrant lock; transitions are driven by the shared
:class:`~.scheduler.Scheduler` thread and by the command runner's exit callbacks.
"""

from __future__ import annotations

import base64
import copy
import functools
import random
import shutil
import socket
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .catalog import DEFAULT_CLUSTER_ID, price_per_second
from .config import SimulatorConfig
from .identity import Identity
from .logs import LogBuffer, LogLine, filter_lines
from .mmt import (
    EVENT_INFO,
    EVENT_WARNING,
    FAULT_TOLERANCE_STRATEGIES,
    MAX_MACHINES,
    MMT_COMPLETED,
    MMT_FAILED,
    MMT_PENDING,
    MMT_RUNNING,
    MMT_STOP,
    MMT_STOPPED,
    MMT_TERMINAL_STATES,
    MMT_UNSPECIFIED,
    MultiMachineJob,
    normalize_mmt_state,
)
from .runner import CommandRunner, image_job_argv, job_environment, make_python_shim, studio_job_argv
from .scheduler import Scheduler
from .schedules import ScheduleService
from .studios import Studio, StudioService
from .wire import (
    GRPC_FAILED_PRECONDITION,
    ApiError,
    as_bool,
    as_int,
    as_str,
    camelize,
    invalid,
    not_found,
    now_ns,
    parse_rfc3339,
    rfc3339,
)


def first_value(query: dict[str, list[str]], key: str) -> str:
    """The first value of a repeated query parameter, ``""`` when absent."""
    values = query.get(key)
    return values[0] if values else ""


TERMINAL_STATES = frozenset({"completed", "failed", "stopped", "deleted"})
STOPPING_STATES = frozenset({"stop", "stopping"})
STATE_FILE_VERSION = 1

# ------------------------------------------------------------------ job spec

_SPEC_STR = (
    "artifactsDestination",
    "artifactsSource",
    "cloudspaceId",
    "clusterId",
    "command",
    "entrypoint",
    "image",
    "imageSecretRef",
    "instanceName",
    "instanceType",
    "machineId",
    "machineImageVersion",
    "parentJobId",
    "pipelineId",
    "placementGroupId",
    "restartPolicy",
    "runId",
)
_SPEC_BOOL = (
    "disableArtifactsPersistence",
    "imageClusterCredentials",
    "includeCredentials",
    "keepMachineAfterStop",
    "modifiedVolume",
    "spot",
    "useTls",
)
_SPEC_INT32 = (
    "currentRunAttempt",
    "maxRunAttempts",
    "quantity",
    "rank",
    "reserveMachinesTimeoutMinutes",
    "shutdownDelaySeconds",
    "shutdownTimeoutSeconds",
)
_SPEC_INT64 = ("requestedRunDurationSeconds",)
_SPEC_MSG = ("readinessProbe", "resources")


def _env_list(value: Any) -> list[dict[str, str]]:
    if isinstance(value, dict):
        value = [{"name": k, "value": v} for k, v in value.items()]
    out = []
    for item in value or []:
        if not isinstance(item, dict):
            raise invalid("spec.env entries must be objects with name/value")
        name = as_str(item.get("name"))
        if not name:
            raise invalid("spec.env entries need a name")
        out.append({"name": name, "value": as_str(item.get("value")), "fromSecret": as_str(item.get("fromSecret"))})
    return out


def _path_mappings(value: Any) -> list[dict[str, str]]:
    if isinstance(value, dict):  # {"/data": "conn:sub/path"} convenience form
        items = []
        for container_path, target in value.items():
            conn, _, sub = str(target).partition(":")
            items.append({"containerPath": container_path, "connectionName": conn, "connectionPath": sub})
        value = items
    return [
        {
            "connectionName": as_str(item.get("connectionName")),
            "connectionPath": as_str(item.get("connectionPath")),
            "containerPath": as_str(item.get("containerPath")),
        }
        for item in value or []
        if isinstance(item, dict)
    ]


def _volumes(value: Any) -> list[dict[str, Any]]:
    return [
        {
            "path": as_str(item.get("path")),
            "sizeGb": str(as_int(item.get("sizeGb"))),
            "ephemeral": as_bool(item.get("ephemeral")),
            "iops": str(as_int(item.get("iops"))),
            "throughput": str(as_int(item.get("throughput"))),
            "type": as_str(item.get("type")),
        }
        for item in value or []
        if isinstance(item, dict)
    ]


def normalize_spec(raw: Any) -> dict[str, Any]:
    """A ``V1JobSpec`` with every known field populated (defaults emitted, unknown fields dropped)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise invalid("spec must be an object")
    spec: dict[str, Any] = {}
    for key in _SPEC_STR:
        spec[key] = as_str(raw.get(key))
    for key in _SPEC_BOOL:
        spec[key] = as_bool(raw.get(key))
    for key in _SPEC_INT32:
        spec[key] = as_int(raw.get(key))
    for key in _SPEC_INT64:
        spec[key] = str(as_int(raw.get(key)))
    for key in _SPEC_MSG:
        spec[key] = raw.get(key) if isinstance(raw.get(key), dict) else None
    spec["env"] = _env_list(raw.get("env"))
    spec["pathMappings"] = _path_mappings(raw.get("pathMappings"))
    spec["volumes"] = _volumes(raw.get("volumes"))
    spec["dataPaths"] = [d for d in raw.get("dataPaths") or [] if isinstance(d, dict)]
    spec["regions"] = [as_str(r) for r in raw.get("regions") or []]
    return spec


def normalize_tag_name(name: str) -> str:
    """Tag names are lowercased with whitespace collapsed, like the platform does."""
    return " ".join(str(name).split()).lower()


# -------------------------------------------------------------------- records


@dataclass
class Job:
    """One single-machine job."""

    id: str
    seq: int
    name: str
    project_id: str
    user_id: str
    spec: dict[str, Any]
    tag_ids: list[str]
    logs: LogBuffer
    created_ns: int
    updated_ns: int
    state: str = "pending"
    message: str = ""
    server_error: str = ""
    started_ns: int | None = None
    stopped_ns: int | None = None
    exit_code: int | None = None
    timed: tuple[float, int] | None = None
    mmt_id: str = ""  # set on the sub-jobs of a multi-machine job
    stop_reason: str = ""  # message of a stop the user did not ask for (e.g. another rank failed)

    @property
    def env(self) -> dict[str, str]:
        """``spec.env`` as a mapping."""
        return {item["name"]: item["value"] for item in self.spec.get("env", [])}

    def to_state(self) -> dict[str, Any]:
        """JSON form for the state file."""
        return {
            "id": self.id,
            "seq": self.seq,
            "name": self.name,
            "projectId": self.project_id,
            "userId": self.user_id,
            "spec": self.spec,
            "tagIds": self.tag_ids,
            "state": self.state,
            "message": self.message,
            "serverError": self.server_error,
            "createdNs": self.created_ns,
            "updatedNs": self.updated_ns,
            "startedNs": self.started_ns,
            "stoppedNs": self.stopped_ns,
            "exitCode": self.exit_code,
            "timed": list(self.timed) if self.timed else None,
            "mmtId": self.mmt_id,
            "stopReason": self.stop_reason,
            "logs": self.logs.to_state(),
        }

    @classmethod
    def from_state(cls, data: dict[str, Any], max_log_lines: int) -> Job:
        """Rebuild a job saved by :meth:`to_state`."""
        timed = data.get("timed")
        return cls(
            id=data["id"],
            seq=int(data["seq"]),
            name=data["name"],
            project_id=data["projectId"],
            user_id=data["userId"],
            spec=data["spec"],
            tag_ids=list(data.get("tagIds", [])),
            logs=LogBuffer.from_state(data["id"], data.get("logs") or {"lines": []}, max_log_lines),
            created_ns=int(data["createdNs"]),
            updated_ns=int(data["updatedNs"]),
            state=data["state"],
            message=data.get("message", ""),
            server_error=data.get("serverError", ""),
            started_ns=data.get("startedNs"),
            stopped_ns=data.get("stoppedNs"),
            exit_code=data.get("exitCode"),
            timed=(float(timed[0]), int(timed[1])) if timed else None,
            mmt_id=data.get("mmtId", ""),
            stop_reason=data.get("stopReason", ""),
        )


# Job timestamps never change once set, and a list page renders hundreds of jobs: format each once.
_timestamp = functools.lru_cache(maxsize=1 << 16)(rfc3339)


def _page_token(value: int) -> str:
    return base64.urlsafe_b64encode(f"o:{value}".encode()).decode().rstrip("=")


def _parse_page_token(token: str) -> int:
    if not token:
        return 0
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        kind, _, number = text.partition(":")
        if kind != "o":
            raise ValueError(text)
        return int(number)
    except (ValueError, UnicodeDecodeError):
        raise invalid(f"malformed pageToken {token!r}") from None


# ---------------------------------------------------------------------- store


class Store:
    """Jobs, Studios, tags and logs of the simulated teamspace, and the job state machine."""

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
        self.jobs: dict[str, Job] = {}
        self._names: dict[tuple[str, str], str] = {}
        self.mmts: dict[str, MultiMachineJob] = {}
        self._mmt_names: dict[tuple[str, str], str] = {}
        self._mmt_busy: set[str] = set()  # MMTs being re-evaluated (re-entrancy guard)
        self._mmt_dirty: set[str] = set()  # ... and those that changed again meanwhile
        self._loading = False
        self.studios: dict[str, Studio] = {}
        self.tags: dict[str, dict[str, Any]] = {}
        self._tag_usage: Counter[str] = Counter()
        self._seq = 0
        self._rng = random.Random(config.seed)
        self._on_change = on_change or (lambda: None)
        self.runner = CommandRunner(self._on_line, self._on_exit, kill_grace=config.kill_grace)
        self._shim_dir = make_python_shim(work_dir / "bin")
        (work_dir / "jobs").mkdir(parents=True, exist_ok=True)
        (work_dir / "studios").mkdir(parents=True, exist_ok=True)
        self.studio_service = StudioService(self, self._changed)
        self.schedule_service = ScheduleService(self, self.studio_service, self._changed)
        from .deployments import Deployments  # deferred: .deployments builds on this module's Job

        self.deployments = Deployments(self)

    # ------------------------------------------------------------- helpers

    def _new_id(self, prefix: str, taken: Iterable[str]) -> str:
        taken_set = set(taken) if not isinstance(taken, (dict, set)) else taken
        while True:
            candidate = f"{prefix}-{self._rng.getrandbits(48):012x}"
            if candidate not in taken_set:
                return candidate

    def require_project(self, project_id: str) -> None:
        """404 unless ``project_id`` is the simulated teamspace."""
        if project_id != self.identity.project_id:
            raise not_found(f"project {project_id!r}")

    def _job(self, project_id: str, job_id: str) -> Job:
        self.require_project(project_id)
        job = self.jobs.get(job_id)
        if job is None or job.project_id != project_id:
            raise not_found(f"job {job_id!r}")
        return job

    def _unique_name(
        self,
        project_id: str,
        name: str,
        exclude: str | None = None,
        names: dict[tuple[str, str], str] | None = None,
    ) -> str:
        taken = self._names if names is None else names
        owner = taken.get((project_id, name))
        if owner is None or owner == exclude:
            return name
        n = 1
        while True:
            candidate = f"{name}-{n}"
            owner = taken.get((project_id, candidate))
            if owner is None or owner == exclude:
                return candidate
            n += 1

    def _changed(self) -> None:
        self._on_change()

    def _touch(self, job: Job) -> None:
        job.updated_ns = now_ns()
        self._changed()
        if job.mmt_id:
            self._refresh_mmt(job.mmt_id)

    # ---------------------------------------------------------------- tags

    def _tag(self, project_id: str, name: str) -> dict[str, Any]:
        norm = normalize_tag_name(name)
        if not norm:
            raise invalid("tag names must not be empty")
        tag = self.tags.get(norm)
        if tag is None:
            tag = {
                "id": self._new_id("tag", {t["id"] for t in self.tags.values()}),
                "name": norm,
                "projectId": project_id,
                "createdAt": rfc3339(now_ns()),
                "createdBy": self.identity.user_id,
            }
            self.tags[norm] = tag
        return tag

    def _resolve_tags(self, project_id: str, raw: Any) -> list[str]:
        ids: list[str] = []
        for item in raw or []:
            name = item.get("name") if isinstance(item, dict) else item
            tag_id = self._tag(project_id, as_str(name))["id"]
            if tag_id not in ids:
                ids.append(tag_id)
        return ids

    def _render_tags(self, tag_ids: list[str]) -> list[dict[str, Any]]:
        if not tag_ids:  # most jobs: skip indexing every tag (list pages render hundreds of jobs)
            return []
        by_id = {t["id"]: t for t in self.tags.values()}
        return [self._render_tag(by_id[t]) for t in tag_ids if t in by_id]

    def _render_tag(self, tag: dict[str, Any]) -> dict[str, Any]:
        return {**tag, "usageCount": str(self._tag_usage[tag["id"]])}

    def _assign_tags(self, job: Job | MultiMachineJob, tag_ids: list[str]) -> None:
        self._tag_usage.subtract(job.tag_ids)
        job.tag_ids = tag_ids
        self._tag_usage.update(tag_ids)

    def list_tags(self, project_id: str) -> dict[str, Any]:
        """``GET /workload-tags``."""
        with self.lock:
            self.require_project(project_id)
            return {"tags": [self._render_tag(t) for t in self.tags.values()]}

    def set_workload_tags(self, project_id: str, workload_type: str, workload_id: str, body: dict[str, Any]) -> dict:
        """``PUT /workloads/{type}/{id}/tags``: replace a job's (or a multi-machine job's) tags."""
        with self.lock:
            kind = workload_type.lower().removeprefix("workload_type_")
            if kind in ("multi_machine_job", "multimachinejob", "mmt"):
                mmt = self._mmt(project_id, workload_id)
                self._assign_tags(mmt, self._resolve_tags(project_id, body.get("tags")))
                self._touch_mmt(mmt)
                return {"tags": self._render_tags(mmt.tag_ids)}
            if kind != "job":
                self.require_project(project_id)
                raise not_found(f"{workload_type} {workload_id!r}")
            job = self._job(project_id, workload_id)
            self._assign_tags(job, self._resolve_tags(project_id, body.get("tags")))
            self._touch(job)
            return {"tags": self._render_tags(job.tag_ids)}

    # --------------------------------------------------------------- render

    @staticmethod
    def _cost(job: Job) -> float:
        if job.started_ns is None:
            return 0.0
        end = job.stopped_ns if job.stopped_ns is not None else now_ns()
        seconds = max(0, end - job.started_ns) / 1e9
        return round(seconds * price_per_second(job.spec.get("instanceName", ""), job.spec.get("spot", False)), 8)

    def render(self, job: Job) -> dict[str, Any]:
        """The job as ``V1Job`` JSON."""
        started = _timestamp(job.started_ns)
        cost = self._cost(job)
        return {
            "id": job.id,
            "name": job.name,
            "projectId": job.project_id,
            "userId": job.user_id,
            "state": job.state,
            "message": job.message,
            "serverError": job.server_error,
            "createdAt": _timestamp(job.created_ns),
            "updatedAt": _timestamp(job.updated_ns),
            "startedAt": started,
            "readyAt": started,
            "userLogsStartedAt": started,
            "stoppedAt": _timestamp(job.stopped_ns),
            "deletedAt": None,
            "spec": dict(job.spec),
            "tags": self._render_tags(job.tag_ids),
            "totalCost": cost,
            "multiMachineJobId": job.mmt_id,
            "deploymentId": "",
            "pipelineId": "",
            "releaseId": "",
            "capacityReservationId": "",
            "urls": [],
            "restartCount": 0,
            "restartTimings": [],
            "publicIpAddress": "",
            "privateIpAddress": "",
            "isHealthy": job.state == "running",
            "interruptionNoticeReceived": False,
            "interruptionNoticeReceivedAt": None,
            "overprovisioned": False,
            "replaceRequested": False,
            "replaceRequestedAt": None,
            "requiresMaintenance": False,
            "timings": {},
            "totalSizeBytes": "0",
            "endpoint": None,
            "visibility": None,
        }

    # ----------------------------------------------------------------- jobs

    def create_job(self, project_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /jobs``: store the job as ``pending`` and schedule its start."""
        body = camelize(body)
        name = as_str(body.get("name")).strip()
        if not name:
            raise invalid("job name is required")
        spec = normalize_spec(body.get("spec"))
        with self.lock:
            self.require_project(project_id)
            self._check_spec(project_id, spec)
            tag_ids = self._resolve_tags(project_id, body.get("tags"))
            job = self._add_job(project_id, self._unique_name(project_id, name), spec, tag_ids)
            self._changed()
            return self.render(job)

    def _check_spec(self, project_id: str, spec: dict[str, Any], what: str = "jobs") -> None:
        """Validate a normalised spec and fill in the defaults the platform would (under the lock)."""
        if spec["cloudspaceId"]:
            studio = self.studios.get(spec["cloudspaceId"])
            if studio is None or studio.project_id != project_id:
                raise not_found(f"cloudspace {spec['cloudspaceId']!r}")
            if not spec["command"].strip():
                raise invalid(f"command is required for {what} that run in a Studio environment")
            if spec["image"]:
                raise invalid("image and cloudspaceId are mutually exclusive")
            if not spec["clusterId"]:
                spec["clusterId"] = studio.cluster_id
        elif not spec["image"]:
            raise invalid("either spec.image or spec.cloudspaceId must be set")
        if not spec["clusterId"]:
            spec["clusterId"] = DEFAULT_CLUSTER_ID
        if not spec["instanceName"] and not spec["instanceType"]:
            spec["instanceName"] = "cpu-4"

    def _add_job(
        self, project_id: str, name: str, spec: dict[str, Any], tag_ids: list[str], mmt_id: str = ""
    ) -> Job:
        """Store a new pending job and schedule its start (under the lock)."""
        now = now_ns()
        self._seq += 1
        job = Job(
            id=self._new_id("job", self.jobs),
            seq=self._seq,
            name=name,
            project_id=project_id,
            user_id=self.identity.user_id,
            spec=spec,
            tag_ids=tag_ids,
            logs=LogBuffer("", self.config.max_log_lines),
            created_ns=now,
            updated_ns=now,
            mmt_id=mmt_id,
        )
        job.logs.job_id = job.id
        job.timed = self._timed_outcome(job)
        self._tag_usage.update(tag_ids)
        self.jobs[job.id] = job
        self._names[(project_id, job.name)] = job.id
        self.scheduler.call_later(self.config.pending_seconds, self._start, job.id)
        return job

    def _timed_outcome(self, job: Job) -> tuple[float, int] | None:
        """Timed mode: ``(duration, exit code)`` from ``spec.env``, or ``None`` to run the command.

        In a multi-machine job with ``SIM_FAIL_RANK``, only that rank exits with ``SIM_EXIT_CODE``;
        the other ranks would exit 0 after ``2 * SIM_DURATION_SECONDS + 1`` s, so the failing rank
        always ends first (and, if it failed, they are stopped).
        """
        if not self.config.timed_jobs:
            return None
        parsed = self._parse_timed_env(job.env)
        if parsed is None:
            return None
        duration, code, fail_rank = parsed
        if job.mmt_id and fail_rank is not None and fail_rank != int(job.spec.get("rank", 0)):
            return 2 * duration + 1.0, 0
        return duration, code

    @staticmethod
    def _parse_timed_env(env: dict[str, str]) -> tuple[float, int, int | None] | None:
        if "SIM_DURATION_SECONDS" not in env or "SIM_EXIT_CODE" not in env:
            return None
        try:
            fail_rank = env.get("SIM_FAIL_RANK", "").strip()
            return (
                max(0.0, float(env["SIM_DURATION_SECONDS"])),
                int(env["SIM_EXIT_CODE"]),
                int(fail_rank) if fail_rank else None,
            )
        except ValueError:
            raise invalid("SIM_DURATION_SECONDS must be a number, SIM_EXIT_CODE and SIM_FAIL_RANK integers") from None

    def get_job(self, project_id: str, job_id: str) -> dict[str, Any]:
        """``GET /jobs/{id}``."""
        with self.lock:
            return self.render(self._job(project_id, job_id))

    def find_job(self, project_id: str, name: str) -> dict[str, Any]:
        """``GET /jobs/find?name=``: 404 if no job has that name."""
        with self.lock:
            self.require_project(project_id)
            job_id = self._names.get((project_id, name))
            if job_id is None:
                raise not_found(f"job with name {name!r}")
            return self.render(self.jobs[job_id])

    def list_jobs(self, project_id: str, query: dict[str, list[str]]) -> dict[str, Any]:
        """``GET /jobs`` with filters and ``limit``/``pageToken`` paging, newest first."""

        first = functools.partial(first_value, query)
        states = {s for s in query.get("state", []) + query.get("states", []) if s}
        standalone = as_bool(first("standalone"))  # true: leave out the sub-jobs of multi-machine jobs
        mmt_id = first("multiMachineJobId")
        cloudspace_id = first("cloudspaceId")
        user_id = first("userId")
        deployment_id = first("deploymentId")
        tag_ids = {t for t in query.get("tagIds", []) if t}
        limit = as_int(first("limit"), 0) or 100
        if limit < 0:
            raise invalid("limit must be positive")
        ascending = first("sortOrder").lower() in ("asc", "ascending", "sort_order_asc")
        cursor = _parse_page_token(first("pageToken"))
        with self.lock:
            self.require_project(project_id)
            if deployment_id:  # the replicas of a deployment (see .deployments)
                return self.deployments.list_replicas(project_id, deployment_id, states)
            ordered = list(self.jobs.values())
            if not ascending:
                ordered.reverse()
            matched: list[Job] = []
            more = False
            for job in ordered:
                if cursor and ((job.seq >= cursor) if not ascending else (job.seq <= cursor)):
                    continue
                if job.project_id != project_id:
                    continue
                if mmt_id and job.mmt_id != mmt_id:
                    continue
                if standalone and job.mmt_id:
                    continue
                if states and job.state not in states:
                    continue
                if cloudspace_id and job.spec.get("cloudspaceId") != cloudspace_id:
                    continue
                if user_id and job.user_id != user_id:
                    continue
                if tag_ids and not tag_ids.intersection(job.tag_ids):
                    continue
                if len(matched) == limit:
                    more = True
                    break
                matched.append(job)
            next_token = _page_token(matched[-1].seq) if more and matched else ""
            return {
                "jobs": [self.render(j) for j in matched],
                "nextPageToken": next_token,
                "previousPageToken": "",
            }

    def update_job(self, project_id: str, job_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """``PUT /jobs/{id}``: rename (``name``) and/or stop (``state: "stop"``)."""
        body = camelize(body)
        with self.lock:
            job = self._job(project_id, job_id)
            new_name = as_str(body.get("name")).strip()
            if new_name and new_name != job.name:
                if job.mmt_id:
                    raise invalid("only standalone jobs can be renamed; this job is a machine of a multi-machine job")
                unique = self._unique_name(project_id, new_name, exclude=job.id)
                self._names.pop((project_id, job.name), None)
                job.name = unique
                self._names[(project_id, unique)] = job.id
                self._touch(job)
            requested = as_str(body.get("state")).strip().lower()
            if requested:
                if requested not in ("stop", "stopped"):
                    raise invalid(f"unsupported state {requested!r}: only 'stop' can be requested")
                self._request_stop(job)
            return self.render(job)

    def _request_stop(self, job: Job) -> None:
        if job.state in TERMINAL_STATES or job.state in STOPPING_STATES:
            return  # stopping a finished (or already stopping) job changes nothing
        job.state = "stop"
        self._touch(job)
        self.scheduler.call_later(self.config.stop_seconds, self._begin_stopping, job.id)

    def delete_job(self, project_id: str, job_id: str) -> dict[str, Any]:
        """``DELETE /jobs/{id}``: forget the job, killing its command if it still runs."""
        with self.lock:
            job = self._job(project_id, job_id)
            if job.mmt_id:
                raise ApiError(
                    GRPC_FAILED_PRECONDITION,
                    f"failed precondition: job {job.id!r} is a machine of multi-machine job {job.mmt_id!r}; "
                    "delete the multi-machine job instead",
                )
            del self.jobs[job.id]
            self._names.pop((project_id, job.name), None)
            self._tag_usage.subtract(job.tag_ids)
            self._changed()
        self.runner.terminate(job.id, "deleted", grace=0)
        shutil.rmtree(self.work_dir / "jobs" / job.id, ignore_errors=True)
        return {}

    # ---------------------------------------------------------- transitions

    def _start(self, job_id: str) -> None:
        with self.lock:
            job = self.jobs.get(job_id)
            if job is None or job.state != "pending":
                return
            job.state = "running"
            job.started_ns = now_ns()
            self._touch(job)
            if job.timed is not None:
                duration, code = job.timed
                limit = self.config.job_time_limit
                job.logs.append(
                    f"[simulator] timed job: runs {duration:g}s and exits with code {code}", job.started_ns
                )
                self.scheduler.call_later(min(duration, limit), self._finish_timed, job.id, duration > limit)
                return
            launch = self._launch_plan(job)
        if launch is None:
            self._on_exit(job_id, 0, None)
            return
        argv, cwd, env = launch
        try:
            handle = self.runner.start(job_id, argv, cwd, env)
        except OSError as exc:
            with self.lock:
                job = self.jobs.get(job_id)
                if job is not None and job.state not in TERMINAL_STATES:
                    job.logs.append(f"[simulator] could not start {argv[0]!r}: {exc}", now_ns())
                    self._fail(job, f"Job failed: could not start the command: {exc}")
            return
        with self.lock:
            job = self.jobs.get(job_id)
            if job is None or job.state == "stopping":
                self.runner.terminate(job_id, "deleted" if job is None else "stop")
        self.scheduler.call_later(self.config.job_time_limit, self._time_limit, job_id, handle.pid)

    def _launch_plan(self, job: Job) -> tuple[list[str], Path, dict[str, str]] | None:
        """argv, working directory and environment of a job (called under the lock)."""
        scratch = self.work_dir / "jobs" / job.id
        env = {
            "LIGHTNING_JOB_ID": job.id,
            "LIGHTNING_JOB_NAME": job.name,
            "LIGHTNING_CLOUD_PROJECT_ID": job.project_id,
        }
        env.update(job.env)
        mmt = self.mmts.get(job.mmt_id) if job.mmt_id else None
        if mmt is not None:  # what the platform injects into every machine of a multi-machine job
            env.update(
                {
                    "NODE_RANK": str(job.spec.get("rank", 0)),
                    "WORLD_SIZE": str(mmt.machines),
                    "NUM_NODES": str(mmt.machines),
                    "MASTER_ADDR": "127.0.0.1",
                    "MASTER_PORT": str(mmt.master_port),
                    "LIGHTNING_MMT_ID": mmt.id,
                    "LIGHTNING_MMT_NAME": mmt.name,
                }
            )
        studio_id = job.spec.get("cloudspaceId", "")
        if studio_id:
            studio = self.studios.get(studio_id)
            source = self.studio_dir(studio_id)
            if scratch.exists():
                shutil.rmtree(scratch, ignore_errors=True)
            if source.is_dir():
                shutil.copytree(source, scratch, symlinks=True)
            else:
                scratch.mkdir(parents=True, exist_ok=True)
            env["LIGHTNING_CLOUD_SPACE_ID"] = studio_id
            if studio is not None:
                env.setdefault("LIGHTNING_STUDIO_NAME", studio.name)
            argv = studio_job_argv(job.spec.get("command", ""))
        else:
            scratch.mkdir(parents=True, exist_ok=True)
            maybe_argv = image_job_argv(job.spec.get("entrypoint", ""), job.spec.get("command", ""))
            if maybe_argv is None:
                job.logs.append(
                    f"[simulator] image {job.spec.get('image', '')!r} has no command; its default "
                    "command is not simulated, finishing successfully",
                    now_ns(),
                )
                return None
            argv = maybe_argv
        return argv, scratch, job_environment(env, self._shim_dir)

    def _fail(self, job: Job, message: str) -> None:
        job.state = "failed"
        job.message = message
        job.server_error = message
        job.stopped_ns = now_ns()
        self._touch(job)

    def _on_line(self, job_id: str, text: str) -> None:
        with self.lock:
            job = self.jobs.get(job_id)
            if job is not None:
                job.logs.append(text, now_ns())
                self._changed()

    def _on_exit(self, job_id: str, code: int, reason: str | None) -> None:
        with self.lock:
            job = self.jobs.get(job_id)
            if job is None or job.state in TERMINAL_STATES:
                return
            job.exit_code = code
            if job.state in STOPPING_STATES or reason == "stop":
                job.state = "stopped"
                job.message = job.stop_reason or "Job stopped by user"
                job.stopped_ns = now_ns()
                self._touch(job)
            elif reason == "timeout":
                self._fail(
                    job,
                    f"Job failed: exceeded the job time limit of {self.config.job_time_limit:g} s "
                    "and the command was killed",
                )
            elif reason == "shutdown":
                self._fail(job, "Job failed: the simulator shut down while the command was running")
            elif code == 0:
                job.state = "completed"
                job.message = ""
                job.stopped_ns = now_ns()
                self._touch(job)
            elif code < 0:
                self._fail(job, f"Job failed: command was killed by signal {-code} (exit code {128 - code})")
            else:
                self._fail(job, f"Job failed: command exited with code {code}")

    def _finish_timed(self, job_id: str, over_limit: bool) -> None:
        with self.lock:
            job = self.jobs.get(job_id)
            if job is None or job.state != "running" or job.timed is None:
                return
        self._on_exit(job_id, job.timed[1], "timeout" if over_limit else None)

    def _time_limit(self, job_id: str, pid: int) -> None:
        handle = self.runner.get(job_id)
        if handle is not None and handle.pid == pid:
            self.runner.terminate(job_id, "timeout", grace=0)

    def _begin_stopping(self, job_id: str) -> None:
        with self.lock:
            job = self.jobs.get(job_id)
            if job is None or job.state != "stop":
                return
            job.state = "stopping"
            self._touch(job)
        if not self.runner.terminate(job_id, "stop"):
            self.scheduler.call_later(self.config.stop_seconds, self._finish_stop, job_id)

    def _finish_stop(self, job_id: str) -> None:
        with self.lock:
            job = self.jobs.get(job_id)
            if job is None or job.state != "stopping":
                return
            if self.runner.get(job_id) is not None:  # command started meanwhile: wait for its exit
                self.runner.terminate(job_id, "stop")
                return
            job.state = "stopped"
            job.message = job.stop_reason or "Job stopped by user"
            job.stopped_ns = now_ns()
            self._touch(job)

    # ----------------------------------------------------------------- logs

    def _log_buffers(self, project_id: str, job_ids: list[str]) -> list[LogBuffer]:
        return [self._job(project_id, job_id).logs for job_id in dict.fromkeys(job_ids)]

    def page_logs(self, project_id: str, query: dict[str, list[str]]) -> dict[str, Any]:
        """``GET /page-logs``: the unified logs API for jobs (``jobIds``) and multi-machine jobs (``mmtId``).

        Several jobs (or every rank of an MMT) are merged into one timeline; each entry's
        ``resourceId`` is the id of the (sub-)job that printed it.
        """

        first = functools.partial(first_value, query)
        job_ids = [j for j in query.get("jobIds", []) if j]
        selectors = ("deploymentId", "mmtId", "sandboxId")
        if not job_ids and not any(first(s) for s in selectors) and not query.get("sandboxCommandIds"):
            raise invalid("one of jobIds, deploymentId, mmtId, sandboxId or sandboxCommandIds is required")
        since = parse_rfc3339(first("since")) if first("since") else None
        until = parse_rfc3339(first("until")) if first("until") else None
        page_size = as_int(first("pageSize"), 0) or 1000
        if page_size < 0:
            raise invalid("pageSize must be positive")
        offset = _parse_page_token(first("pageToken"))
        with self.lock:
            self.require_project(project_id)
            mmt_id = first("mmtId")
            if mmt_id:
                job_ids = job_ids + [j for j in self._mmt(project_id, mmt_id).job_ids if j in self.jobs]
            deployment_id = first("deploymentId")
            if deployment_id:  # every replica of a deployment, or those of them in jobIds
                buffers = self.deployments.log_buffers(project_id, deployment_id, job_ids)
            else:
                buffers = self._log_buffers(project_id, job_ids)
            if not buffers:  # sandboxes are not simulated: nothing to read
                return {"entries": [], "nextPageToken": "", "followUrl": ""}
            lines = filter_lines(
                buffers,
                since_ns=since,
                until_ns=until,
                query=first("query"),
                min_severity=first("severity"),
            )
            page: list[LogLine] = lines[offset : offset + page_size]
            more = offset + page_size < len(lines)
            return {
                "entries": [line.to_api() for line in page],
                "nextPageToken": _page_token(offset + page_size) if more else "",
                "followUrl": "",
            }

    def log_job_id(self, project_id: str, job_or_mmt_id: str, rank: int = 0) -> str:
        """The job whose log ``/jobs/{id}/download-logs`` serves: the job itself, or rank ``rank`` of an MMT."""
        with self.lock:
            self.require_project(project_id)
            if job_or_mmt_id in self.jobs:
                return self._job(project_id, job_or_mmt_id).id
            replica = self.deployments.replica_job(job_or_mmt_id)
            if replica is not None and replica.project_id == project_id:
                return replica.id
            mmt = self.mmts.get(job_or_mmt_id)
            if mmt is None or mmt.project_id != project_id:
                raise not_found(f"job {job_or_mmt_id!r}")
            if not 0 <= rank < len(mmt.job_ids) or mmt.job_ids[rank] not in self.jobs:
                raise not_found(f"rank {rank} of multi-machine job {mmt.id!r}")
            return mmt.job_ids[rank]

    def log_text(self, job_id: str) -> str:
        """The plain-text log file of a job (``[RFC3339Nano] message`` lines)."""
        with self.lock:
            job = self.jobs.get(job_id) or self.deployments.replica_job(job_id)
            if job is None:
                raise not_found(f"job {job_id!r}")
            return job.logs.text()

    def log_page_count(self, job: Job, page_lines: int) -> int:
        """Number of legacy log pages of ``page_lines`` lines."""
        return max(1, -(-len(job.logs.lines) // page_lines))

    def legacy_pages(self, project_id: str, job_id: str, base_url: str, page_lines: int) -> dict[str, Any]:
        """``GET /jobs/{id}/page-logs``: legacy page descriptors whose urls serve JSON arrays."""
        with self.lock:
            job = self._job(project_id, job_id)
            lines = job.logs.lines
            pages = []
            for number in range(self.log_page_count(job, page_lines)):
                chunk = lines[number * page_lines : (number + 1) * page_lines]
                start = chunk[0].ts_ns if chunk else job.created_ns
                end = chunk[-1].ts_ns if chunk else job.created_ns
                pages.append(
                    {
                        "pageNumber": str(number),
                        "start": rfc3339(start),
                        "end": rfc3339(end),
                        "totalLines": str(len(chunk)),
                        "url": f"{base_url}/__sim/jobs/{job.id}/log-pages/{number}",
                    }
                )
            return {"pages": pages, "followUrl": ""}

    def legacy_page(self, job_id: str, number: int, page_lines: int) -> list[dict[str, Any]]:
        """Body of one legacy log page: snake_case entries."""
        with self.lock:
            job = self.jobs.get(job_id)
            if job is None:
                raise not_found(f"job {job_id!r}")
            chunk = job.logs.lines[number * page_lines : (number + 1) * page_lines]
            return [line.to_legacy() for line in chunk]

    # --------------------------------------------------- multi-machine jobs

    def _mmt(self, project_id: str, mmt_id: str) -> MultiMachineJob:
        self.require_project(project_id)
        mmt = self.mmts.get(mmt_id)
        if mmt is None or mmt.project_id != project_id:
            raise not_found(f"multi-machine job {mmt_id!r}")
        return mmt

    def _touch_mmt(self, mmt: MultiMachineJob) -> None:
        mmt.updated_ns = now_ns()
        self._changed()

    def _subjobs(self, mmt: MultiMachineJob) -> list[Job]:
        return [self.jobs[j] for j in mmt.job_ids if j in self.jobs]

    def _event(
        self, mmt: MultiMachineJob, kind: str, action: str, reason: str, message: str, job_id: str = ""
    ) -> None:
        mmt.events.append(
            {
                "id": self._new_id("evt", ()),
                "multiMachineJobId": mmt.id,
                "jobId": job_id,
                "projectId": mmt.project_id,
                "type": kind,
                "action": action,
                "reason": reason,
                "message": message,
                "timestamp": rfc3339(now_ns()),
            }
        )

    def _free_port(self) -> int:
        """A TCP port free on 127.0.0.1 right now and not handed to another live MMT."""
        in_use = {m.master_port for m in self.mmts.values() if m.state not in MMT_TERMINAL_STATES}
        for _ in range(20):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind(("127.0.0.1", 0))
                port = int(sock.getsockname()[1])
            if port not in in_use:
                return port
        return port

    def _subjob_name(self, project_id: str, mmt_name: str, rank: int) -> str:
        """``<mmt-name>-<rank>``; if a standalone job already has that name, ``<mmt-name>-<rank>v<n>``
        (the SDK finds the MMT name by cutting at the last ``-``, so the suffix must not add one)."""
        name = f"{mmt_name}-{rank}"
        n = 1
        while (project_id, name) in self._names:
            n += 1
            name = f"{mmt_name}-{rank}v{n}"
        return name

    def render_mmt(self, mmt: MultiMachineJob) -> dict[str, Any]:
        """The multi-machine job as ``V1MultiMachineJob`` JSON (counts derived from its sub-jobs)."""
        subjobs = self._subjobs(mmt)
        pending = sum(1 for j in subjobs if j.state in ("pending", "creating"))
        ready = sum(1 for j in subjobs if j.state in ("running", "restarting"))
        failing = sum(1 for j in subjobs if j.state in ("failed", "fail"))
        deleting = sum(1 for j in subjobs if j.state in STOPPING_STATES or j.state in ("delete", "deleted"))
        return {
            "id": mmt.id,
            "name": mmt.name,
            "projectId": mmt.project_id,
            "userId": mmt.user_id,
            "cloudspaceId": mmt.spec.get("cloudspaceId", ""),
            "machines": mmt.machines,
            "state": mmt.state,
            "desiredState": mmt.desired_state,
            "status": {
                "pendingMachines": str(pending),
                "readyMachines": str(ready),
                "failingMachines": str(failing),
                "deletingMachines": str(deleting),
                "message": mmt.message,
                "startedAt": rfc3339(mmt.started_ns),
                "stoppedAt": rfc3339(mmt.stopped_ns),
                "requiresMaintenance": False,
                "requiresMaintenanceStartedAt": None,
            },
            "spec": dict(mmt.spec),
            "totalCost": round(sum(self._cost(j) for j in subjobs), 8),
            "maxRunAttempts": mmt.max_run_attempts,
            "currentRunAttempt": 1,
            "faultTolerance": dict(mmt.fault_tolerance) if mmt.fault_tolerance is not None else None,
            "parentMultiMachineJobId": "",
            "targetMachineIds": list(mmt.target_machine_ids),
            "tags": self._render_tags(mmt.tag_ids),
            "createdAt": rfc3339(mmt.created_ns),
            "updatedAt": rfc3339(mmt.updated_ns),
            "message": mmt.message,
            "pipelineId": "",
            "requiresMaintenance": False,
        }

    def create_mmt(self, project_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /multi-machine-jobs``: store the MMT as pending with one pending sub-job per machine."""
        body = camelize(body)
        name = as_str(body.get("name")).strip()
        if not name:
            raise invalid("multi-machine job name is required")
        machines = as_int(body.get("machines"), 0)
        if machines < 1:
            raise invalid("machines must be at least 1")
        if machines > MAX_MACHINES:
            raise invalid(f"the simulator runs at most {MAX_MACHINES} machines per multi-machine job")
        spec = normalize_spec(body.get("spec"))
        cluster_id = as_str(body.get("clusterId"))
        if cluster_id and not spec["clusterId"]:
            spec["clusterId"] = cluster_id
        max_run_attempts = as_int(body.get("maxRunAttempts"), 0)
        if max_run_attempts < 0:
            raise invalid("maxRunAttempts must not be negative")
        raw_ft = body.get("faultTolerance")
        fault_tolerance: dict[str, Any] | None = None
        if isinstance(raw_ft, dict):
            strategy = as_str(raw_ft.get("strategy")) or "MULTI_MACHINE_JOB_FAULT_TOLERANCE_STRATEGY_UNSPECIFIED"
            if strategy not in FAULT_TOLERANCE_STRATEGIES:
                raise invalid(f"unknown faultTolerance.strategy {strategy!r}")
            fault_tolerance = {"strategy": strategy}
        elif raw_ft is not None:
            raise invalid("faultTolerance must be an object")
        targets = [as_str(t) for t in body.get("targetMachineIds") or []]
        if targets and len(targets) != machines:
            raise invalid("targetMachineIds needs exactly one machine id per machine")
        if self.config.timed_jobs:
            self._parse_timed_env({e["name"]: e["value"] for e in spec["env"]})  # 400 before creating anything
        with self.lock:
            self.require_project(project_id)
            self._check_spec(project_id, spec, "multi-machine jobs")
            tag_ids = self._resolve_tags(project_id, body.get("tags"))
            now = now_ns()
            self._seq += 1
            mmt = MultiMachineJob(
                id=self._new_id("mmt", self.mmts),
                seq=self._seq,
                name=self._unique_name(project_id, name, names=self._mmt_names),
                project_id=project_id,
                user_id=self.identity.user_id,
                machines=machines,
                spec=spec,
                tag_ids=tag_ids,
                created_ns=now,
                updated_ns=now,
                master_port=self._free_port(),
                max_run_attempts=max_run_attempts,
                fault_tolerance=fault_tolerance,
                target_machine_ids=targets,
            )
            self.mmts[mmt.id] = mmt
            self._mmt_names[(project_id, mmt.name)] = mmt.id
            self._tag_usage.update(tag_ids)
            self._event(mmt, EVENT_INFO, "Create", "Created", f"multi-machine job created with {machines} machine(s)")
            for rank in range(machines):
                sub_spec = copy.deepcopy(spec)
                sub_spec["rank"] = rank
                name_for_rank = self._subjob_name(project_id, mmt.name, rank)
                job = self._add_job(project_id, name_for_rank, sub_spec, [], mmt_id=mmt.id)
                mmt.job_ids.append(job.id)
                self._event(
                    mmt, EVENT_INFO, "CreateJob", "MachineScheduled", f"machine rank {rank} is job {job.name}", job.id
                )
            self._changed()
            return self.render_mmt(mmt)

    def get_mmt(self, project_id: str, mmt_id: str) -> dict[str, Any]:
        """``GET /multi-machine-jobs/{id}``."""
        with self.lock:
            return self.render_mmt(self._mmt(project_id, mmt_id))

    def get_mmt_by_name(self, project_id: str, name: str) -> dict[str, Any]:
        """``GET /multi-machine-jobs/{name}/getbyname``: 404 if no MMT has that name."""
        with self.lock:
            self.require_project(project_id)
            mmt_id = self._mmt_names.get((project_id, name))
            if mmt_id is None:
                raise not_found(f"multi-machine job with name {name!r}")
            return self.render_mmt(self.mmts[mmt_id])

    def list_mmts(self, project_id: str, query: dict[str, list[str]]) -> dict[str, Any]:
        """``GET /multi-machine-jobs`` (filters ``cloudspaceId`` and ``userId``; no paging), newest first."""

        first = functools.partial(first_value, query)
        as_bool(first("standalone"))  # validated only
        cloudspace_id, user_id = first("cloudspaceId"), first("userId")
        with self.lock:
            self.require_project(project_id)
            return {
                "multiMachineJobs": [
                    self.render_mmt(m)
                    for m in reversed(list(self.mmts.values()))
                    if m.project_id == project_id
                    and (not cloudspace_id or m.spec.get("cloudspaceId") == cloudspace_id)
                    and (not user_id or m.user_id == user_id)
                ]
            }

    def update_mmt(self, project_id: str, mmt_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """``PUT /multi-machine-jobs/{id}``: ``{"desiredState": "MultiMachineJob_STATE_STOP"}`` stops it."""
        body = camelize(body)
        with self.lock:
            mmt = self._mmt(project_id, mmt_id)
            raw = as_str(body.get("desiredState")).strip()
            if raw:
                wanted = normalize_mmt_state(raw)
                if wanted in (MMT_STOP, MMT_STOPPED):
                    self._request_mmt_stop(mmt)
                elif wanted not in (MMT_RUNNING, MMT_UNSPECIFIED):  # RUNNING: it already is (or ended)
                    raise invalid(f"unsupported desiredState {raw!r}: only MultiMachineJob_STATE_STOP can be requested")
            return self.render_mmt(mmt)

    def _request_mmt_stop(self, mmt: MultiMachineJob) -> None:
        if mmt.state in MMT_TERMINAL_STATES:
            return  # stopping a finished MMT changes nothing
        if mmt.desired_state != MMT_STOP:
            mmt.desired_state = MMT_STOP
            mmt.state = MMT_STOP
            if not mmt.failure:
                mmt.message = "Multi-machine job stopped by user"
            self._event(mmt, EVENT_INFO, "Stop", "StopRequested", "stop requested by the user")
            self._touch_mmt(mmt)
        self._stop_ranks(mmt, "")
        self._refresh_mmt(mmt.id)

    def _stop_ranks(self, mmt: MultiMachineJob, reason: str) -> None:
        for job in self._subjobs(mmt):
            if job.state in TERMINAL_STATES or job.state in STOPPING_STATES:
                continue
            job.stop_reason = reason
            self._request_stop(job)

    def delete_mmt(self, project_id: str, mmt_id: str) -> dict[str, Any]:
        """``DELETE /multi-machine-jobs/{id}``: forget the MMT and its sub-jobs, killing their commands."""
        with self.lock:
            mmt = self._mmt(project_id, mmt_id)
            del self.mmts[mmt.id]
            self._mmt_names.pop((project_id, mmt.name), None)
            self._tag_usage.subtract(mmt.tag_ids)
            subjobs = [self.jobs.pop(j) for j in mmt.job_ids if j in self.jobs]
            for job in subjobs:
                self._names.pop((project_id, job.name), None)
                self._tag_usage.subtract(job.tag_ids)
            self._changed()
        for job in subjobs:
            self.runner.terminate(job.id, "deleted", grace=0)
            shutil.rmtree(self.work_dir / "jobs" / job.id, ignore_errors=True)
        return {}

    def mmt_events(self, project_id: str, mmt_id: str, query: dict[str, list[str]]) -> dict[str, Any]:
        """``GET /multi-machine-jobs/{id}/events`` (oldest first; ``limit`` keeps the newest N)."""
        limit = as_int((query.get("limit") or [""])[0], 0)
        if limit < 0:
            raise invalid("limit must be positive")
        with self.lock:
            events = [dict(e) for e in self._mmt(project_id, mmt_id).events]
        return {"events": events[-limit:] if limit else events}

    def _refresh_mmt(self, mmt_id: str) -> None:
        """Re-derive an MMT's state after one of its sub-jobs changed (re-entrant calls are folded)."""
        if self._loading:
            return
        with self.lock:
            if mmt_id in self._mmt_busy:
                self._mmt_dirty.add(mmt_id)
                return
            self._mmt_busy.add(mmt_id)
            try:
                while True:
                    self._mmt_dirty.discard(mmt_id)
                    self._evaluate_mmt(mmt_id)
                    if mmt_id not in self._mmt_dirty:
                        return
            finally:
                self._mmt_busy.discard(mmt_id)

    def _evaluate_mmt(self, mmt_id: str) -> None:
        mmt = self.mmts.get(mmt_id)
        if mmt is None or mmt.state in MMT_TERMINAL_STATES:
            return
        subjobs = self._subjobs(mmt)
        self._touch_mmt(mmt)  # the machine counts changed
        if not mmt.failure:
            failed = [j for j in subjobs if j.state == "failed"]
            if failed:
                first = min(failed, key=lambda j: (j.stopped_ns or 0, int(j.spec.get("rank", 0))))
                reason = (first.server_error or first.message or "failed").removeprefix("Job failed: ")
                mmt.failure = f"machine rank {first.spec.get('rank', 0)} ({first.name}) failed: {reason}"
                mmt.message = mmt.failure
                self._event(mmt, EVENT_WARNING, "StopJobs", "MachineFailed", mmt.failure, first.id)
                self._stop_ranks(mmt, f"Job stopped: {mmt.failure}")
        if not mmt.failure and mmt.state != MMT_STOP:
            halted = [j for j in subjobs if j.state in STOPPING_STATES or j.state in ("stopped", "deleted")]
            if halted:  # one machine was stopped on its own: the others cannot go on without it
                mmt.state = MMT_STOP
                mmt.message = f"machine rank {halted[0].spec.get('rank', 0)} ({halted[0].name}) was stopped"
                self._event(mmt, EVENT_WARNING, "StopJobs", "MachineStopped", mmt.message, halted[0].id)
                self._stop_ranks(mmt, f"Job stopped: {mmt.message}")
        if mmt.started_ns is None and subjobs and all(j.started_ns is not None for j in subjobs):
            mmt.started_ns = max(j.started_ns or 0 for j in subjobs)
            if mmt.state == MMT_PENDING:
                mmt.state = MMT_RUNNING
                self._event(mmt, EVENT_INFO, "Run", "AllMachinesRunning", f"all {mmt.machines} machine(s) are running")
        if subjobs and all(j.state in TERMINAL_STATES for j in subjobs):
            mmt.stopped_ns = now_ns()
            if mmt.failure:
                mmt.state = MMT_FAILED
                self._event(mmt, EVENT_WARNING, "Fail", "Failed", mmt.failure)
            elif any(j.state != "completed" for j in subjobs):
                mmt.state = MMT_STOPPED
                mmt.message = mmt.message or "Multi-machine job stopped"
                self._event(mmt, EVENT_INFO, "Stopped", "Stopped", "every machine has stopped")
            else:
                mmt.state = MMT_COMPLETED
                mmt.message = ""
                self._event(mmt, EVENT_INFO, "Complete", "Completed", "every machine completed successfully")

    # -------------------------------------------------------------- studios

    def studio_dir(self, studio_id: str) -> Path:
        """The scratch folder holding a Studio's files."""
        return self.work_dir / "studios" / studio_id

    def add_studio(self, name: str, project_id: str | None = None) -> dict[str, Any]:
        """Create a Studio (409 if the name is taken) and its scratch folder (see :mod:`.studios`)."""
        return self.studio_service.create(project_id or self.identity.project_id, {"name": name})

    def list_studios(self, project_id: str, query: dict[str, list[str]]) -> dict[str, Any]:
        """``GET /cloudspaces`` (``name`` filter; ``ids`` and ``userId`` honoured too)."""
        return self.studio_service.list_studios(project_id, query)

    def get_studio(self, project_id: str, studio_id: str) -> dict[str, Any]:
        """``GET /cloudspaces/{id}``."""
        return self.studio_service.get(project_id, studio_id)

    # --------------------------------------------------- python API helpers

    def all_jobs(self) -> list[dict[str, Any]]:
        """Every job, newest first, as the API renders them."""
        with self.lock:
            return [self.render(j) for j in reversed(list(self.jobs.values()))]

    def job_by_id(self, job_id: str) -> dict[str, Any] | None:
        """One job as the API renders it, or ``None``."""
        with self.lock:
            job = self.jobs.get(job_id)
            return self.render(job) if job is not None else None

    def all_mmts(self) -> list[dict[str, Any]]:
        """Every multi-machine job, newest first, as the API renders them."""
        with self.lock:
            return [self.render_mmt(m) for m in reversed(list(self.mmts.values()))]

    def mmt_by_id(self, mmt_id: str) -> dict[str, Any] | None:
        """One multi-machine job as the API renders it, or ``None``."""
        with self.lock:
            mmt = self.mmts.get(mmt_id)
            return self.render_mmt(mmt) if mmt is not None else None

    # ---------------------------------------------------------- persistence

    def to_state(self) -> dict[str, Any]:
        """Everything needed to restore jobs, logs, Studios, tags and deployments."""
        with self.lock:
            return {
                "version": STATE_FILE_VERSION,
                "seq": self._seq,
                "jobs": [j.to_state() for j in self.jobs.values()],
                "mmts": [m.to_state() for m in self.mmts.values()],
                "studios": [s.to_state() for s in self.studios.values()],
                "schedules": self.schedule_service.to_state(),
                "tags": list(self.tags.values()),
                "deployments": self.deployments.to_state(),
            }

    def load_state(self, data: dict[str, Any]) -> None:
        """Restore a saved state; unfinished work is resumed or settled (see module docs)."""
        if data.get("version") != STATE_FILE_VERSION:
            raise ValueError(f"unsupported state file version {data.get('version')!r}")
        with self.lock:
            for raw in data.get("studios", []):
                studio = Studio.from_state(raw, self.config.max_log_lines)
                self.studios[studio.id] = studio
                self.studio_service.resume(studio)
            self.schedule_service.load_state(data.get("schedules") or {})
            for tag in data.get("tags", []):
                self.tags[tag["name"]] = tag
            self._seq = int(data.get("seq", 0))
            for raw in sorted(data.get("mmts", []), key=lambda m: int(m["seq"])):
                mmt = MultiMachineJob.from_state(raw)
                self.mmts[mmt.id] = mmt
                self._mmt_names[(mmt.project_id, mmt.name)] = mmt.id
                self._tag_usage.update(mmt.tag_ids)
                self._seq = max(self._seq, mmt.seq)
            self._loading = True  # MMTs are re-evaluated once all their sub-jobs are back
            try:
                for raw in sorted(data.get("jobs", []), key=lambda j: int(j["seq"])):
                    job = Job.from_state(raw, self.config.max_log_lines)
                    self.jobs[job.id] = job
                    self._names[(job.project_id, job.name)] = job.id
                    self._tag_usage.update(job.tag_ids)
                    self._seq = max(self._seq, job.seq)
                    self._resume(job)
            finally:
                self._loading = False
            for mmt in list(self.mmts.values()):
                self._refresh_mmt(mmt.id)
            self.deployments.load_state(data.get("deployments", []))

    def _resume(self, job: Job) -> None:
        if job.state == "pending":
            self.scheduler.call_later(self.config.pending_seconds, self._start, job.id)
        elif job.state == "running":
            if job.timed is not None and job.started_ns is not None:
                duration, _ = job.timed
                finish = job.started_ns / 1e9 + min(duration, self.config.job_time_limit)
                self.scheduler.call_at(finish, self._finish_timed, job.id, duration > self.config.job_time_limit)
            else:
                job.logs.append("[simulator] the simulator restarted while this command was running", now_ns())
                self._fail(job, "Job failed: the simulator restarted while the command was running")
        elif job.state in STOPPING_STATES:
            job.state = "stopped"
            job.message = job.stop_reason or "Job stopped by user"
            job.stopped_ns = job.stopped_ns or now_ns()
            self._touch(job)

    def shutdown(self) -> None:
        """Kill every running command (their jobs end as failed)."""
        self.runner.kill_all()
        self.studio_service.shutdown()

