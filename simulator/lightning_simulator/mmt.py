"""Multi-machine jobs (MMT, ``/v1/projects/{id}/multi-machine-jobs``): the record, its wire enums and the service.

An MMT owns one sub-job (a normal :class:`~.jobrecord.Job` with ``multiMachineJobId`` and
``spec.rank``) per machine. The sub-jobs run through the ordinary job state machine; the
MMT's own state is derived from them by :meth:`MultiMachineJobService.refresh`::

    create -> PENDING --(every rank running)--> RUNNING --(every rank completed)--> COMPLETED
    any rank fails    -> the other ranks are stopped -> FAILED ("machine rank R (name) failed: ...")
    PUT desiredState STOP -> STOP -> (every rank stopped) -> STOPPED
"""

from __future__ import annotations

import contextlib
import copy
import functools
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .context import ServiceContext, unique_name
from .jobrecord import STOPPING_STATES, TERMINAL_STATES, Job, job_cost
from .jobs import JobService
from .jobspec import normalize_spec, parse_timed_env
from .paging import first_value
from .tags import TagService
from .wire import as_bool, as_int, as_str, camelize, invalid, not_found, now_ns, rfc3339

STATE_PREFIX = "MultiMachineJob_STATE_"
MMT_UNSPECIFIED = STATE_PREFIX + "UNSPECIFIED"
MMT_PENDING = STATE_PREFIX + "PENDING"
MMT_RUNNING = STATE_PREFIX + "RUNNING"
MMT_STOP = STATE_PREFIX + "STOP"
MMT_STOPPED = STATE_PREFIX + "STOPPED"
MMT_COMPLETED = STATE_PREFIX + "COMPLETED"
MMT_FAILED = STATE_PREFIX + "FAILED"
MMT_DELETE = STATE_PREFIX + "DELETE"
MMT_DELETED = STATE_PREFIX + "DELETED"
MMT_TERMINAL_STATES = frozenset({MMT_STOPPED, MMT_COMPLETED, MMT_FAILED, MMT_DELETED})
MMT_STATES = frozenset({MMT_UNSPECIFIED, MMT_PENDING, MMT_RUNNING, MMT_STOP, MMT_DELETE}) | MMT_TERMINAL_STATES

FAULT_TOLERANCE_STRATEGIES = frozenset(
    {
        "MULTI_MACHINE_JOB_FAULT_TOLERANCE_STRATEGY_UNSPECIFIED",
        "MULTI_MACHINE_JOB_FAULT_TOLERANCE_STRATEGY_RECREATE_NODE",
        "MULTI_MACHINE_JOB_FAULT_TOLERANCE_STRATEGY_RECREATE_NODE_AND_RESTART_ALL_PROCESSES",
        "MULTI_MACHINE_JOB_FAULT_TOLERANCE_STRATEGY_RECREATE_ALL_NODES",
    }
)

EVENT_INFO = "MULTI_MACHINE_JOB_EVENT_TYPE_INFO"
EVENT_WARNING = "MULTI_MACHINE_JOB_EVENT_TYPE_WARNING"

MAX_MACHINES = 256  # protects the host: every machine is a real process


@dataclass
class MultiMachineJob:
    """One multi-machine job; ``job_ids[rank]`` is the id of the sub-job running that rank."""

    id: str
    seq: int
    name: str
    project_id: str
    user_id: str
    machines: int
    spec: dict[str, Any]
    tag_ids: list[str]
    created_ns: int
    updated_ns: int
    master_port: int
    max_run_attempts: int = 0
    fault_tolerance: dict[str, Any] | None = None
    target_machine_ids: list[str] = field(default_factory=list)
    job_ids: list[str] = field(default_factory=list)
    state: str = MMT_PENDING
    desired_state: str = MMT_RUNNING
    message: str = ""
    failure: str = ""  # set once, by the first rank that failed
    started_ns: int | None = None
    stopped_ns: int | None = None
    events: list[dict[str, Any]] = field(default_factory=list)

    def to_state(self) -> dict[str, Any]:
        """JSON form for the state file."""
        return {
            "id": self.id,
            "seq": self.seq,
            "name": self.name,
            "projectId": self.project_id,
            "userId": self.user_id,
            "machines": self.machines,
            "spec": self.spec,
            "tagIds": self.tag_ids,
            "createdNs": self.created_ns,
            "updatedNs": self.updated_ns,
            "masterPort": self.master_port,
            "maxRunAttempts": self.max_run_attempts,
            "faultTolerance": self.fault_tolerance,
            "targetMachineIds": self.target_machine_ids,
            "jobIds": self.job_ids,
            "state": self.state,
            "desiredState": self.desired_state,
            "message": self.message,
            "failure": self.failure,
            "startedNs": self.started_ns,
            "stoppedNs": self.stopped_ns,
            "events": self.events,
        }

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> MultiMachineJob:
        """Rebuild an MMT saved by :meth:`to_state`."""
        return cls(
            id=data["id"],
            seq=int(data["seq"]),
            name=data["name"],
            project_id=data["projectId"],
            user_id=data["userId"],
            machines=int(data["machines"]),
            spec=data["spec"],
            tag_ids=list(data.get("tagIds", [])),
            created_ns=int(data["createdNs"]),
            updated_ns=int(data["updatedNs"]),
            master_port=int(data.get("masterPort", 0)),
            max_run_attempts=int(data.get("maxRunAttempts", 0)),
            fault_tolerance=data.get("faultTolerance"),
            target_machine_ids=list(data.get("targetMachineIds", [])),
            job_ids=list(data.get("jobIds", [])),
            state=data.get("state", MMT_PENDING),
            desired_state=data.get("desiredState", MMT_RUNNING),
            message=data.get("message", ""),
            failure=data.get("failure", ""),
            started_ns=data.get("startedNs"),
            stopped_ns=data.get("stoppedNs"),
            events=list(data.get("events", [])),
        )


def normalize_mmt_state(value: str) -> str:
    """Accept ``MultiMachineJob_STATE_STOP`` as well as ``STOP`` / ``stop`` (400 on anything else)."""
    text = value.strip()
    if text in MMT_STATES:
        return text
    candidate = STATE_PREFIX + text.upper().removeprefix(STATE_PREFIX.upper())
    if candidate in MMT_STATES:
        return candidate
    return ""


# --------------------------------------------------------------------- service


class MultiMachineJobService:
    """Multi-machine jobs: one sub-job per machine, and the MMT's state derived from its sub-jobs."""

    def __init__(self, context: ServiceContext, jobs: JobService, tags: TagService) -> None:
        """Follow the sub-jobs in ``jobs``.

        :param context: the shared lock, settings, ids and timers.
        :param jobs: runs the sub-jobs; every job change re-derives its MMT's state.
        :param tags: resolves and renders MMT tags.
        """
        self.context = context
        self.lock = context.lock
        self.config = context.config
        self.jobs = jobs
        self.tags = tags
        self.records: dict[str, MultiMachineJob] = {}
        self._names: dict[tuple[str, str], str] = {}
        self._busy: set[str] = set()  # MMTs being re-evaluated (re-entrancy guard)
        self._dirty: set[str] = set()  # ... and those that changed again meanwhile
        self._deferred = False  # restoring the state file: re-evaluated once every sub-job is back
        jobs.subscribe(self._job_changed)
        jobs.lifecycle.add_environment(self._machine_environment)
        tags.register_workload(("multi_machine_job", "multimachinejob", "mmt"), self.record, self._touch)

    # ------------------------------------------------------------- helpers

    def _job_changed(self, job: Job) -> None:
        if job.mmt_id:
            self.refresh(job.mmt_id)

    def _machine_environment(self, job: Job) -> dict[str, str]:
        """What the platform injects into every machine of a multi-machine job (nothing for other jobs)."""
        mmt = self.records.get(job.mmt_id) if job.mmt_id else None
        if mmt is None:
            return {}
        return {
            "NODE_RANK": str(job.spec.get("rank", 0)),
            "WORLD_SIZE": str(mmt.machines),
            "NUM_NODES": str(mmt.machines),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(mmt.master_port),
            "LIGHTNING_MMT_ID": mmt.id,
            "LIGHTNING_MMT_NAME": mmt.name,
        }

    def record(self, project_id: str, mmt_id: str) -> MultiMachineJob:
        """The multi-machine job, or a 404 (under the lock)."""
        self.context.require_project(project_id)
        mmt = self.records.get(mmt_id)
        if mmt is None or mmt.project_id != project_id:
            raise not_found(f"multi-machine job {mmt_id!r}")
        return mmt

    def _touch(self, mmt: MultiMachineJob) -> None:
        mmt.updated_ns = now_ns()
        self.context.changed()

    def _subjobs(self, mmt: MultiMachineJob) -> list[Job]:
        return [self.jobs.records[j] for j in mmt.job_ids if j in self.jobs.records]

    def _event(self, mmt: MultiMachineJob, kind: str, action: str, reason: str, message: str, job_id: str = "") -> None:
        mmt.events.append(
            {
                "id": self.context.new_id("evt", ()),
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
        in_use = {m.master_port for m in self.records.values() if m.state not in MMT_TERMINAL_STATES}
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
        while self.jobs.name_taken(project_id, name):
            n += 1
            name = f"{mmt_name}-{rank}v{n}"
        return name

    # -------------------------------------------------------------- render

    def render(self, mmt: MultiMachineJob) -> dict[str, Any]:
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
            "totalCost": round(sum(job_cost(j) for j in subjobs), 8),
            "maxRunAttempts": mmt.max_run_attempts,
            "currentRunAttempt": 1,
            "faultTolerance": dict(mmt.fault_tolerance) if mmt.fault_tolerance is not None else None,
            "parentMultiMachineJobId": "",
            "targetMachineIds": list(mmt.target_machine_ids),
            "tags": self.tags.render(mmt.tag_ids),
            "createdAt": rfc3339(mmt.created_ns),
            "updatedAt": rfc3339(mmt.updated_ns),
            "message": mmt.message,
            "pipelineId": "",
            "requiresMaintenance": False,
        }

    # ----------------------------------------------------------- endpoints

    def create(self, project_id: str, body: dict[str, Any]) -> dict[str, Any]:
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
            parse_timed_env({e["name"]: e["value"] for e in spec["env"]})  # 400 before creating anything
        with self.lock:
            self.context.require_project(project_id)
            self.jobs.check_spec(project_id, spec, "multi-machine jobs")
            tag_ids = self.tags.resolve(project_id, body.get("tags"))
            now = now_ns()
            mmt = MultiMachineJob(
                id=self.context.new_id("mmt", self.records),
                seq=self.context.next_seq(),
                name=unique_name(self._names, project_id, name),
                project_id=project_id,
                user_id=self.context.identity.user_id,
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
            self.records[mmt.id] = mmt
            self._names[(project_id, mmt.name)] = mmt.id
            self.tags.add_usage(tag_ids)
            self._event(mmt, EVENT_INFO, "Create", "Created", f"multi-machine job created with {machines} machine(s)")
            for rank in range(machines):
                sub_spec = copy.deepcopy(spec)
                sub_spec["rank"] = rank
                name_for_rank = self._subjob_name(project_id, mmt.name, rank)
                job = self.jobs.add(project_id, name_for_rank, sub_spec, [], mmt_id=mmt.id)
                mmt.job_ids.append(job.id)
                self._event(
                    mmt, EVENT_INFO, "CreateJob", "MachineScheduled", f"machine rank {rank} is job {job.name}", job.id
                )
            self.context.changed()
            return self.render(mmt)

    def get(self, project_id: str, mmt_id: str) -> dict[str, Any]:
        """``GET /multi-machine-jobs/{id}``."""
        with self.lock:
            return self.render(self.record(project_id, mmt_id))

    def get_by_name(self, project_id: str, name: str) -> dict[str, Any]:
        """``GET /multi-machine-jobs/{name}/getbyname``: 404 if no MMT has that name."""
        with self.lock:
            self.context.require_project(project_id)
            mmt_id = self._names.get((project_id, name))
            if mmt_id is None:
                raise not_found(f"multi-machine job with name {name!r}")
            return self.render(self.records[mmt_id])

    def list_mmts(self, project_id: str, query: dict[str, list[str]]) -> dict[str, Any]:
        """``GET /multi-machine-jobs`` (filters ``cloudspaceId`` and ``userId``; no paging), newest first."""

        first = functools.partial(first_value, query)
        as_bool(first("standalone"))  # validated only
        cloudspace_id, user_id = first("cloudspaceId"), first("userId")
        with self.lock:
            self.context.require_project(project_id)
            return {
                "multiMachineJobs": [
                    self.render(m)
                    for m in reversed(list(self.records.values()))
                    if m.project_id == project_id
                    and (not cloudspace_id or m.spec.get("cloudspaceId") == cloudspace_id)
                    and (not user_id or m.user_id == user_id)
                ]
            }

    def update(self, project_id: str, mmt_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """``PUT /multi-machine-jobs/{id}``: ``{"desiredState": "MultiMachineJob_STATE_STOP"}`` stops it."""
        body = camelize(body)
        with self.lock:
            mmt = self.record(project_id, mmt_id)
            raw = as_str(body.get("desiredState")).strip()
            if raw:
                wanted = normalize_mmt_state(raw)
                if wanted in (MMT_STOP, MMT_STOPPED):
                    self._request_stop(mmt)
                elif wanted not in (MMT_RUNNING, MMT_UNSPECIFIED):  # RUNNING: it already is (or ended)
                    raise invalid(f"unsupported desiredState {raw!r}: only MultiMachineJob_STATE_STOP can be requested")
            return self.render(mmt)

    def _request_stop(self, mmt: MultiMachineJob) -> None:
        if mmt.state in MMT_TERMINAL_STATES:
            return  # stopping a finished MMT changes nothing
        if mmt.desired_state != MMT_STOP:
            mmt.desired_state = MMT_STOP
            mmt.state = MMT_STOP
            if not mmt.failure:
                mmt.message = "Multi-machine job stopped by user"
            self._event(mmt, EVENT_INFO, "Stop", "StopRequested", "stop requested by the user")
            self._touch(mmt)
        self._stop_ranks(mmt, "")
        self.refresh(mmt.id)

    def _stop_ranks(self, mmt: MultiMachineJob, reason: str) -> None:
        for job in self._subjobs(mmt):
            if job.state in TERMINAL_STATES or job.state in STOPPING_STATES:
                continue
            job.stop_reason = reason
            self.jobs.lifecycle.request_stop(job)

    def delete(self, project_id: str, mmt_id: str) -> dict[str, Any]:
        """``DELETE /multi-machine-jobs/{id}``: forget the MMT and its sub-jobs, killing their commands."""
        with self.lock:
            mmt = self.record(project_id, mmt_id)
            del self.records[mmt.id]
            self._names.pop((project_id, mmt.name), None)
            self.tags.drop_usage(mmt.tag_ids)
            subjobs = self._subjobs(mmt)
            for job in subjobs:
                self.jobs.forget(job)
            self.context.changed()
        for job in subjobs:
            self.jobs.lifecycle.discard(job.id)
        return {}

    def events(self, project_id: str, mmt_id: str, query: dict[str, list[str]]) -> dict[str, Any]:
        """``GET /multi-machine-jobs/{id}/events`` (oldest first; ``limit`` keeps the newest N)."""
        limit = as_int((query.get("limit") or [""])[0], 0)
        if limit < 0:
            raise invalid("limit must be positive")
        with self.lock:
            events = [dict(e) for e in self.record(project_id, mmt_id).events]
        return {"events": events[-limit:] if limit else events}

    # ------------------------------------------------------ derived state

    def refresh(self, mmt_id: str) -> None:
        """Re-derive an MMT's state after one of its sub-jobs changed (re-entrant calls are folded)."""
        if self._deferred:
            return
        with self.lock:
            if mmt_id in self._busy:
                self._dirty.add(mmt_id)
                return
            self._busy.add(mmt_id)
            try:
                while True:
                    self._dirty.discard(mmt_id)
                    self._evaluate(mmt_id)
                    if mmt_id not in self._dirty:
                        return
            finally:
                self._busy.discard(mmt_id)

    def _evaluate(self, mmt_id: str) -> None:
        mmt = self.records.get(mmt_id)
        if mmt is None or mmt.state in MMT_TERMINAL_STATES:
            return
        subjobs = self._subjobs(mmt)
        self._touch(mmt)  # the machine counts changed
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

    # ---------------------------------------------------------- python API

    def all_mmts(self) -> list[dict[str, Any]]:
        """Every multi-machine job, newest first, as the API renders them."""
        with self.lock:
            return [self.render(m) for m in reversed(list(self.records.values()))]

    def find(self, mmt_id: str) -> dict[str, Any] | None:
        """One multi-machine job as the API renders it, or ``None``."""
        with self.lock:
            mmt = self.records.get(mmt_id)
            return self.render(mmt) if mmt is not None else None

    # ---------------------------------------------------------- persistence

    def to_state(self) -> list[dict[str, Any]]:
        """Every multi-machine job in the state file's form (under the lock)."""
        return [m.to_state() for m in self.records.values()]

    def load_state(self, saved: list[dict[str, Any]]) -> None:
        """Restore saved MMTs in creation order; their sub-jobs come back with the jobs (see :meth:`deferred`)."""
        for raw in sorted(saved, key=lambda m: int(m["seq"])):
            mmt = MultiMachineJob.from_state(raw)
            self.records[mmt.id] = mmt
            self._names[(mmt.project_id, mmt.name)] = mmt.id
            self.tags.add_usage(mmt.tag_ids)
            self.context.seq = max(self.context.seq, mmt.seq)

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """Hold re-evaluation while the sub-jobs are restored, then re-evaluate every MMT (under the lock)."""
        self._deferred = True
        try:
            yield
        finally:
            self._deferred = False
        for mmt in list(self.records.values()):
            self.refresh(mmt.id)
