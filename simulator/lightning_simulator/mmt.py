"""Multi-machine jobs (MMT): the record, its wire enums and events.

An MMT owns one sub-job (a normal :class:`~.state.Job` with ``multiMachineJobId`` and
``spec.rank``) per machine. The sub-jobs run through the ordinary job state machine; the
MMT's own state is derived from them by :meth:`~.state.Store._evaluate_mmt`::

    create -> PENDING --(every rank running)--> RUNNING --(every rank completed)--> COMPLETED
    any rank fails    -> the other ranks are stopped -> FAILED ("machine rank R (name) failed: ...")
    PUT desiredState STOP -> STOP -> (every rank stopped) -> STOPPED
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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
