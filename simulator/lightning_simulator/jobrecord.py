"""The record of one single-machine job, its state sets and its cost."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .catalog import price_per_second
from .logs import LogBuffer
from .wire import now_ns

TERMINAL_STATES = frozenset({"completed", "failed", "stopped", "deleted"})
STOPPING_STATES = frozenset({"stop", "stopping"})


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


def job_cost(job: Job) -> float:
    """What the job has cost so far (its machine's price over the time it ran)."""
    if job.started_ns is None:
        return 0.0
    end = job.stopped_ns if job.stopped_ns is not None else now_ns()
    seconds = max(0, end - job.started_ns) / 1e9
    return round(seconds * price_per_second(job.spec.get("instanceName", ""), job.spec.get("spot", False)), 8)
