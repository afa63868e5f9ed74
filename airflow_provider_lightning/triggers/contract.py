"""The typed contract between operators, sensors and the phase trigger.

* :class:`WaitSpec` is what an operator asks the trigger to wait for; it *is* the trigger's kwargs
  (``serialize()`` returns :meth:`WaitSpec.to_kwargs`, plain JSON).
* :class:`WaitEvent` is the one event the wait sends back. It carries everything ``execute_complete``
  needs: the resource's id, name and web page, what the task owns of it, the phase, the failure text,
  the log tail and the kind-specific results the operator handed to the spec (a deployment's action
  and changes). Nothing depends on ``defer(kwargs=...)`` (``dag.test()`` drops them) or on XCom pulls
  (they need the map index).
* :func:`validate_execute_complete_event` is the one decoder every operator and sensor resumes through.

Import-light: DAG files import the operators, which import this module only when they run.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from airflow_provider_lightning import DEFAULT_CONN_ID
from airflow_provider_lightning.api.phases import Phase
from airflow_provider_lightning.api.state import ResourceState


class EventStatus(str, enum.Enum):
    """How a wait ended."""

    SUCCESS = "success"  # the resource reached a target phase
    FAILED = "failed"  # the resource ended (or kept failing) in a phase that is not a target
    TIMEOUT = "timeout"  # the wait's deadline passed first
    ERROR = "error"  # the resource could not be read (gone, credentials refused, too many failed polls)

    def __str__(self) -> str:
        return self.value


class Ownership(str, enum.Enum):
    """What a task owns of the resource it waits on, and so what it does when the task is killed or fails."""

    NONE = "none"  # it only watches: never stopped by the task
    STOP = "stop"  # it started it: stopped on kill, timeout or failure
    DELETE = "delete"  # it created it: deleted on kill, stopped on timeout or failure (kept for inspection)

    def __str__(self) -> str:
        return self.value

    @property
    def owned(self) -> bool:
        """Whether the task stops (or deletes) the resource when it is killed or fails."""
        return self is not Ownership.NONE


class InvalidEventError(ValueError):
    """A trigger event payload that is not a :class:`WaitEvent` (unknown or missing status, no resource id)."""


def _float_or_none(value: Any, what: str) -> float | None:
    if value is None:
        return None
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{what} must be a finite number, got {value!r}")
    return number


@dataclass(frozen=True)
class WaitSpec:
    """What to wait for: the trigger's kwargs, typed.

    :param kind: resource kind name (``"job"``), see ``api.registry``.
    :param resource_id: id of the resource to watch.
    :param project_id: teamspace (project) id the resource lives in.
    :param lightning_conn_id: Airflow connection id.
    :param target_phases: phases that end the wait successfully.
    :param poll_interval: seconds between two reads of the resource.
    :param deadline: absolute UNIX time after which the wait ends with ``timeout``; None waits forever.
    :param stream_logs: write new log lines of the resource into the task log while waiting.
    :param log_cursor: where log streaming stopped (``{"since", "lines", "offset"}``), to not repeat lines.
    :param log_tail_lines: how many last log lines a failure event carries.
    :param owns: what the task owns of the resource (see :class:`Ownership`).
    :param max_poll_errors: consecutive failed polls (after the transport's own retries) before giving up.
    :param resource_name: the resource's name, for messages and results.
    :param url: the resource's page in the Lightning web UI, carried into the event.
    :param failing_grace: seconds a resource may report failing replicas before the wait fails; None never.
    :param fail_on_terminal: end the wait when the resource ends in a phase that is not a target; False keeps
        waiting (a stopped Studio can be started again).
    :param results: kind-specific JSON values the operator needs back in ``execute_complete`` (a deployment's
        upsert action and changes).
    """

    kind: str
    resource_id: str
    project_id: str
    lightning_conn_id: str = DEFAULT_CONN_ID
    target_phases: tuple[str, ...] = (Phase.COMPLETED.value,)
    poll_interval: float = 15.0
    deadline: float | None = None
    stream_logs: bool = True
    log_cursor: Mapping[str, Any] = field(default_factory=dict)
    log_tail_lines: int = 20
    owns: Ownership = Ownership.NONE
    max_poll_errors: int = 5
    resource_name: str = ""
    url: str = ""
    failing_grace: float | None = None
    fail_on_terminal: bool = True
    results: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.kind or not self.resource_id:
            raise ValueError("a wait needs a resource kind and a resource id")
        targets = [self.target_phases] if isinstance(self.target_phases, str) else list(self.target_phases)
        if not targets:
            raise ValueError("target_phases must name at least one phase")
        set_ = object.__setattr__  # normalise once, so serialize() and equality see one form
        set_(self, "target_phases", tuple(Phase.parse(p).value for p in targets))
        set_(self, "owns", Ownership(self.owns))
        set_(self, "poll_interval", float(self.poll_interval))
        if self.poll_interval <= 0 or not math.isfinite(self.poll_interval):
            raise ValueError(f"poll_interval must be a positive number of seconds, got {self.poll_interval!r}")
        set_(self, "deadline", _float_or_none(self.deadline, "deadline"))
        set_(self, "failing_grace", _float_or_none(self.failing_grace, "failing_grace"))
        set_(self, "log_tail_lines", int(self.log_tail_lines))
        if self.log_tail_lines < 0:
            raise ValueError(f"log_tail_lines must be 0 or more, got {self.log_tail_lines!r}")
        set_(self, "max_poll_errors", max(int(self.max_poll_errors), 1))
        set_(self, "log_cursor", dict(self.log_cursor or {}))
        set_(self, "results", dict(self.results or {}))

    @property
    def targets(self) -> frozenset[Phase]:
        return frozenset(Phase(p) for p in self.target_phases)

    def to_kwargs(self) -> dict[str, Any]:
        """Plain JSON kwargs (what the trigger's ``serialize()`` returns); never credentials."""
        data: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        data["target_phases"] = list(self.target_phases)
        data["owns"] = self.owns.value
        data["log_cursor"] = dict(self.log_cursor)
        data["results"] = dict(self.results)
        return data

    @classmethod
    def from_kwargs(cls, kwargs: Mapping[str, Any]) -> WaitSpec:
        """Rebuild from :meth:`to_kwargs`; also reads the kwargs of triggers serialized by version 0.1."""
        data = dict(kwargs)
        stop_on_kill, kill_action = data.pop("stop_on_kill", None), data.pop("kill_action", None)
        if "owns" not in data and stop_on_kill is not None:
            data["owns"] = (Ownership.DELETE if kill_action == "delete" else Ownership.STOP) if stop_on_kill \
                else Ownership.NONE
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise TypeError(f"unknown wait arguments: {', '.join(unknown)}")
        return cls(**data)

    def event(
        self,
        status: EventStatus,
        state: ResourceState | None,
        message: str,
        *,
        log_tail: Sequence[str] = (),
        log_cursor: Mapping[str, Any] | None = None,
    ) -> WaitEvent:
        """The event that ends this wait (also built in the worker for a resource that already ended)."""
        return WaitEvent(
            status=EventStatus(status),
            kind=self.kind,
            resource_id=self.resource_id,
            resource_name=self.resource_name or (state.name if state else ""),
            url=self.url,
            owns=self.owns,
            message=message,
            log_tail=tuple(log_tail),
            log_cursor=dict(self.log_cursor if log_cursor is None else log_cursor),
            resource=state,
            results=dict(self.results),
        )


@dataclass(frozen=True)
class WaitEvent:
    """How a wait ended, with what ``execute_complete`` needs (the payload of the trigger's one event).

    :param status: how the wait ended.
    :param kind: resource kind name.
    :param resource_id: id of the resource.
    :param resource_name: its name.
    :param url: its page in the Lightning web UI ("" when unknown).
    :param owns: what the task owns of it.
    :param message: what happened, in one sentence (the server's reason on failure).
    :param log_tail: last log lines (failures only).
    :param log_cursor: where log streaming stopped.
    :param resource: the last state read, if any.
    :param results: the spec's kind-specific results, handed back unchanged.
    """

    status: EventStatus
    kind: str
    resource_id: str
    resource_name: str = ""
    url: str = ""
    owns: Ownership = Ownership.NONE
    message: str = ""
    log_tail: tuple[str, ...] = ()
    log_cursor: Mapping[str, Any] = field(default_factory=dict)
    resource: ResourceState | None = None
    results: Mapping[str, Any] = field(default_factory=dict)

    @property
    def succeeded(self) -> bool:
        return self.status is EventStatus.SUCCESS

    @property
    def phase(self) -> Phase | None:
        """The resource's last known phase."""
        return self.resource.phase if self.resource is not None else None

    def to_payload(self) -> dict[str, Any]:
        """Plain JSON (what ``TriggerEvent`` carries)."""
        return {
            "status": self.status.value,
            "kind": self.kind,
            "resource_id": self.resource_id,
            "resource_name": self.resource_name,
            "url": self.url,
            "owns": self.owns.value,
            "phase": self.phase.value if self.phase else "",
            "message": self.message,
            "log_tail": list(self.log_tail),
            "log_cursor": dict(self.log_cursor),
            "resource": self.resource.to_json() if self.resource is not None else None,
            "results": dict(self.results),
        }

    @classmethod
    def from_payload(cls, payload: Any) -> WaitEvent:
        """Read a payload; :class:`InvalidEventError` for anything that is not one (unknown or missing status)."""
        if not isinstance(payload, Mapping):
            raise InvalidEventError(f"a Lightning trigger event must be a mapping, got {payload!r}")
        try:
            status = EventStatus(payload.get("status"))
        except ValueError:
            known = ", ".join(s.value for s in EventStatus)
            raise InvalidEventError(
                f"a Lightning trigger event has status {payload.get('status')!r}; expected one of {known}"
            ) from None
        kind, resource_id = payload.get("kind"), payload.get("resource_id")
        if not (isinstance(kind, str) and kind and isinstance(resource_id, str) and resource_id):
            raise InvalidEventError(f"a Lightning trigger event names no resource kind and id: {payload!r}")
        try:
            resource = ResourceState.from_json(payload["resource"]) if payload.get("resource") else None
            owns = Ownership(payload.get("owns") or Ownership.NONE)
        except (TypeError, ValueError, KeyError) as error:
            raise InvalidEventError(f"a Lightning trigger event is malformed ({error}): {payload!r}") from None
        tail = payload.get("log_tail") or []
        return cls(
            status=status,
            kind=kind,
            resource_id=resource_id,
            resource_name=str(payload.get("resource_name") or (resource.name if resource else "")),
            url=str(payload.get("url") or ""),
            owns=owns,
            message=str(payload.get("message") or ""),
            log_tail=tuple(str(line) for line in tail) if isinstance(tail, (list, tuple)) else (),
            log_cursor=dict(payload.get("log_cursor") or {}),
            resource=resource,
            results=dict(payload.get("results") or {}),
        )

    def describe(self, what: str = "", *, extra: str = "", page_label: str = "Page",
                 tail_label: str = "log lines") -> str:
        """The failure text shown to users: what failed, the reason, the web page and the log tail.

        :param what: what failed, put before the reason ("" for the reason alone).
        :param extra: a sentence part added after the reason (what was done about it).
        :param page_label: how the web page is introduced ("Job page").
        :param tail_label: what the tail lines are ("log lines", "output lines").
        """
        text = (f"{what}: {self.message}" if what else self.message) + extra
        if self.url:
            text += f". {page_label}: {self.url}"
        if self.log_tail:
            lines = "\n".join(f"    {line}" for line in self.log_tail)
            text += f"\nLast {len(self.log_tail)} {tail_label}:\n{lines}"
        return text


def validate_execute_complete_event(event: Any) -> WaitEvent:
    """The one decoder every Lightning operator and sensor resumes through.

    Raises ``AirflowException`` for a payload that is not a :class:`WaitEvent`, naming what is wrong.
    """
    try:
        return WaitEvent.from_payload(event)
    except InvalidEventError as error:
        from airflow.providers.common.compat.sdk import AirflowException

        raise AirflowException(f"Unexpected event from the Lightning trigger: {error}") from None
