"""Single-machine jobs (``/v1/projects/{id}/jobs``): create, look up, list, rename, stop, delete, render.

Their state machine is :mod:`.joblifecycle`. Other services follow jobs without this module knowing them:
multi-machine jobs :meth:`~JobService.subscribe` to job changes and add to the command environment, and
deployments answer ``GET /jobs?deploymentId=`` as the :attr:`~JobService.replicas` source.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Protocol

from .catalog import DEFAULT_CLUSTER_ID
from .context import ServiceContext, unique_name
from .drive import check_artifacts_destination
from .joblifecycle import JobLifecycle
from .jobrecord import Job, job_cost
from .jobspec import normalize_spec, parse_timed_env
from .logs import LogBuffer
from .paging import first_value, page_token, parse_page_token
from .studios import StudioService
from .tags import TagService
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
    rfc3339,
)

# Job timestamps never change once set, and a list page renders hundreds of jobs: format each once.
_timestamp = functools.lru_cache(maxsize=1 << 16)(rfc3339)


class ReplicaSource(Protocol):
    """Who answers ``GET /jobs?deploymentId=`` (the deployments)."""

    def list_replicas(self, project_id: str, deployment_id: str, states: set[str]) -> dict[str, Any]:
        """The replica jobs of one deployment as a ``GET /jobs`` answer."""
        ...


class JobService:
    """The jobs of the simulated teamspace: the job endpoints, rendering and the records behind them."""

    def __init__(self, context: ServiceContext, tags: TagService, studios: StudioService) -> None:
        """Own the job records and their lifecycle.

        :param context: the shared lock, settings, ids and timers.
        :param tags: resolves and renders job tags.
        :param studios: checks ``spec.cloudspaceId``; Studio jobs run in a copy of the Studio's folder.
        """
        self.context = context
        self.lock = context.lock
        self.config = context.config
        self.tags = tags
        self.studios = studios
        self.records: dict[str, Job] = {}
        self._names: dict[tuple[str, str], str] = {}
        self._followers: list[Callable[[Job], None]] = []
        self.replicas: ReplicaSource | None = None  # set once the deployments exist
        self.lifecycle = JobLifecycle(context, studios, self.records, self.touch)
        self.runner = self.lifecycle.runner
        tags.register_workload(("job",), self.record, self.touch)

    # ------------------------------------------------------------- helpers

    def subscribe(self, follower: Callable[[Job], None]) -> None:
        """Call ``follower(job)`` (under the lock) after every change of a job."""
        self._followers.append(follower)

    def touch(self, job: Job) -> None:
        """Mark a job changed (under the lock)."""
        job.updated_ns = now_ns()
        self.context.changed()
        for follower in self._followers:
            follower(job)

    def record(self, project_id: str, job_id: str) -> Job:
        """The job, or a 404 (under the lock)."""
        self.context.require_project(project_id)
        job = self.records.get(job_id)
        if job is None or job.project_id != project_id:
            raise not_found(f"job {job_id!r}")
        return job

    def name_taken(self, project_id: str, name: str) -> bool:
        """True when a job of the project has this name (under the lock)."""
        return (project_id, name) in self._names

    def check_spec(self, project_id: str, spec: dict[str, Any], what: str = "jobs") -> None:
        """Validate a normalised spec and fill in the defaults the platform would (under the lock)."""
        if spec["cloudspaceId"]:
            studio = self.studios.records.get(spec["cloudspaceId"])
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
        if spec["artifactsDestination"]:
            check_artifacts_destination(spec["artifactsDestination"])
        if not spec["instanceName"] and not spec["instanceType"]:
            spec["instanceName"] = "cpu-4"

    # -------------------------------------------------------------- render

    def render(self, job: Job) -> dict[str, Any]:
        """The job as ``V1Job`` JSON."""
        started = _timestamp(job.started_ns)
        cost = job_cost(job)
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
            "tags": self.tags.render(job.tag_ids),
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

    # ----------------------------------------------------------- endpoints

    def create(self, project_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /jobs``: store the job as ``pending`` and schedule its start."""
        body = camelize(body)
        name = as_str(body.get("name")).strip()
        if not name:
            raise invalid("job name is required")
        spec = normalize_spec(body.get("spec"))
        with self.lock:
            self.context.require_project(project_id)
            self.check_spec(project_id, spec)
            tag_ids = self.tags.resolve(project_id, body.get("tags"))
            job = self.add(project_id, unique_name(self._names, project_id, name), spec, tag_ids)
            self.context.changed()
            return self.render(job)

    def add(self, project_id: str, name: str, spec: dict[str, Any], tag_ids: list[str], mmt_id: str = "") -> Job:
        """Store a new pending job and schedule its start (under the lock)."""
        now = now_ns()
        job = Job(
            id=self.context.new_id("job", self.records),
            seq=self.context.next_seq(),
            name=name,
            project_id=project_id,
            user_id=self.context.identity.user_id,
            spec=spec,
            tag_ids=tag_ids,
            logs=LogBuffer("", self.config.max_log_lines),
            created_ns=now,
            updated_ns=now,
            mmt_id=mmt_id,
        )
        job.logs.job_id = job.id
        job.timed = self._timed_outcome(job)
        self.tags.add_usage(tag_ids)
        self.records[job.id] = job
        self._names[(project_id, job.name)] = job.id
        self.lifecycle.schedule_start(job)
        return job

    def _timed_outcome(self, job: Job) -> tuple[float, int] | None:
        """Timed mode: ``(duration, exit code)`` from ``spec.env``, or ``None`` to run the command.

        In a multi-machine job with ``SIM_FAIL_RANK``, only that rank exits with ``SIM_EXIT_CODE``;
        the other ranks would exit 0 after ``2 * SIM_DURATION_SECONDS + 1`` s, so the failing rank
        always ends first (and, if it failed, they are stopped).
        """
        if not self.config.timed_jobs:
            return None
        parsed = parse_timed_env(job.env)
        if parsed is None:
            return None
        duration, code, fail_rank = parsed
        if job.mmt_id and fail_rank is not None and fail_rank != int(job.spec.get("rank", 0)):
            return 2 * duration + 1.0, 0
        return duration, code

    def get(self, project_id: str, job_id: str) -> dict[str, Any]:
        """``GET /jobs/{id}``."""
        with self.lock:
            return self.render(self.record(project_id, job_id))

    def get_by_name(self, project_id: str, name: str) -> dict[str, Any]:
        """``GET /jobs/find?name=``: 404 if no job has that name."""
        with self.lock:
            self.context.require_project(project_id)
            job_id = self._names.get((project_id, name))
            if job_id is None:
                raise not_found(f"job with name {name!r}")
            return self.render(self.records[job_id])

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
        cursor = parse_page_token(first("pageToken"))
        with self.lock:
            self.context.require_project(project_id)
            if deployment_id:  # the replicas of a deployment (see .deployments)
                if self.replicas is None:
                    raise not_found(f"deployment {deployment_id!r}")
                return self.replicas.list_replicas(project_id, deployment_id, states)
            ordered = list(self.records.values())
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
            next_token = page_token(matched[-1].seq) if more and matched else ""
            return {
                "jobs": [self.render(j) for j in matched],
                "nextPageToken": next_token,
                "previousPageToken": "",
            }

    def update(self, project_id: str, job_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """``PUT /jobs/{id}``: rename (``name``) and/or stop (``state: "stop"``)."""
        body = camelize(body)
        with self.lock:
            job = self.record(project_id, job_id)
            new_name = as_str(body.get("name")).strip()
            if new_name and new_name != job.name:
                if job.mmt_id:
                    raise invalid("only standalone jobs can be renamed; this job is a machine of a multi-machine job")
                unique = unique_name(self._names, project_id, new_name, exclude=job.id)
                self._names.pop((project_id, job.name), None)
                job.name = unique
                self._names[(project_id, unique)] = job.id
                self.touch(job)
            requested = as_str(body.get("state")).strip().lower()
            if requested:
                if requested not in ("stop", "stopped"):
                    raise invalid(f"unsupported state {requested!r}: only 'stop' can be requested")
                self.lifecycle.request_stop(job)
            return self.render(job)

    def delete(self, project_id: str, job_id: str) -> dict[str, Any]:
        """``DELETE /jobs/{id}``: forget the job, killing its command if it still runs."""
        with self.lock:
            job = self.record(project_id, job_id)
            if job.mmt_id:
                raise ApiError(
                    GRPC_FAILED_PRECONDITION,
                    f"failed precondition: job {job.id!r} is a machine of multi-machine job {job.mmt_id!r}; "
                    "delete the multi-machine job instead",
                )
            self.forget(job)
            self.context.changed()
        self.lifecycle.discard(job.id)
        return {}

    def forget(self, job: Job) -> None:
        """Drop a job's record, name and tag counts (under the lock; then :meth:`JobLifecycle.discard` it)."""
        del self.records[job.id]
        self._names.pop((job.project_id, job.name), None)
        self.tags.drop_usage(job.tag_ids)

    # ---------------------------------------------------------- python API

    def all_jobs(self) -> list[dict[str, Any]]:
        """Every job, newest first, as the API renders them."""
        with self.lock:
            return [self.render(j) for j in reversed(list(self.records.values()))]

    def find(self, job_id: str) -> dict[str, Any] | None:
        """One job as the API renders it, or ``None``."""
        with self.lock:
            job = self.records.get(job_id)
            return self.render(job) if job is not None else None

    # ---------------------------------------------------------- persistence

    def to_state(self) -> list[dict[str, Any]]:
        """Every job in the state file's form (under the lock)."""
        return [j.to_state() for j in self.records.values()]

    def load_state(self, saved: list[dict[str, Any]]) -> None:
        """Restore saved jobs in creation order and resume or settle the unfinished ones (under the lock)."""
        for raw in sorted(saved, key=lambda j: int(j["seq"])):
            job = Job.from_state(raw, self.config.max_log_lines)
            self.records[job.id] = job
            self._names[(job.project_id, job.name)] = job.id
            self.tags.add_usage(job.tag_ids)
            self.context.seq = max(self.context.seq, job.seq)
            self.lifecycle.resume(job)

    def shutdown(self) -> None:
        """Kill every running command (their jobs end as failed)."""
        self.lifecycle.shutdown()
