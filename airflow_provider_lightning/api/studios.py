"""Studios (cloudspaces): lookup, start/stop with their phase read from ``codestatus``, and commands.

A Studio's phase comes from its instance (``codestatus.inUse``): none means stopped (reference 10.3).
A command runs detached (``execute``) and is then read until its exit code is no longer ``-1`` (10.2);
it is described as its own resource kind, ``studio_command``, whose id is a :class:`CommandRef`,
so the generic phase trigger waits on it and streams its output.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from airflow_provider_lightning.api import wire
from airflow_provider_lightning.api.phases import Phase
from airflow_provider_lightning.api.resources import ListPage, LogSource, ResourceKind, Sweep, list_call, never
from airflow_provider_lightning.api.state import ResourceState
from airflow_provider_lightning.api.transport import ApiCall

INSTANCE_PREFIX = "CLOUD_SPACE_INSTANCE_STATE_"
_INSTANCE_PHASES = {
    "UNSPECIFIED": Phase.PENDING,
    "PENDING": Phase.PENDING,
    "IMAGE_BUILDING": Phase.PENDING,  # not mapped by the SDK (KeyError there)
    "RUNNING": Phase.RUNNING,
    "STOPPING": Phase.STOPPING,
    "STOPPED": Phase.STOPPED,
    "DELETED": Phase.STOPPED,
    "FAILED": Phase.FAILED,
}


def _pick(name: str):  # type: ignore[no-untyped-def]
    def parse(body: Any) -> dict[str, Any] | None:
        spaces = wire.field(body, "cloudspaces", [])
        for space in spaces if isinstance(spaces, list) else []:
            if isinstance(space, dict) and name in (wire.text(space, "name"), wire.text(space, "display_name")):
                return space
        return None

    return parse


def _base(project_id: str, studio_id: str = "") -> str:
    path = f"/v1/projects/{wire.seg(project_id)}/cloudspaces"
    return f"{path}/{wire.seg(studio_id)}" if studio_id else path


def find_studio(project_id: str, name: str) -> ApiCall[dict[str, Any] | None]:
    """Find a Studio by name in a teamspace; None when there is none."""
    return ApiCall("GET", _base(project_id), params={"name": name}, parse=_pick(name))


def instance_id(state: ResourceState) -> str:
    """The id of the Studio's current instance (``inUse.cloudSpaceInstanceId``), empty when stopped."""
    return wire.text(wire.field(state.raw, "in_use", {}), "cloud_space_instance_id")


def machine_of(state: ResourceState) -> str:
    """The machine slug of the Studio's current instance."""
    return wire.text(wire.field(wire.field(state.raw, "in_use", {}), "compute_config", {}), "name")


def read_code_status(data: Any) -> ResourceState:
    """Read ``codestatus``: no ``inUse`` instance is STOPPED; RUNNING needs ``topUpRestoreFinished``."""
    if not isinstance(data, dict):
        raise ValueError("codestatus is not an object")
    in_use = wire.field(data, "in_use")
    if not isinstance(in_use, dict) or not in_use:
        return ResourceState(kind="studio", id="", name="", phase=Phase.STOPPED, raw_state="no instance", raw=data)
    raw_state = wire.text(in_use, "phase")
    phase = _INSTANCE_PHASES.get(raw_state.upper().removeprefix(INSTANCE_PREFIX), Phase.PENDING)
    restored = wire.field(wire.field(in_use, "startup_status", {}), "top_up_restore_finished")
    if phase is Phase.RUNNING and restored is not True and str(restored).lower() != "true":
        phase = Phase.PENDING  # the machine runs, the Studio's files are still being restored
    return ResourceState(
        kind="studio",
        id=wire.text(in_use, "cloud_space_id"),
        name="",
        phase=phase,
        raw_state=raw_state,
        message=wire.text(in_use, "status_message"),
        started_at=wire.timestamp(in_use, "start_timestamp"),
        raw=data,
    )


def embedded_code_status(space: dict[str, Any]) -> dict[str, Any] | None:
    """A listed ``V1CloudSpace``'s ``codeStatus``: the same ``V1GetCloudSpaceInstanceStatusResponse`` that
    ``GET codestatus`` answers (the SDK reads a listed Studio's status from it too). None when the entry has none
    (null or absent): then only ``GET codestatus`` can tell, since a missing ``inUse`` would read as stopped."""
    status = wire.field(space, "code_status")
    return status if isinstance(status, dict) else None


def studios_by_ids(project_id: str, studio_ids: Sequence[str]) -> ApiCall[ListPage]:
    """``GET /cloudspaces?ids=a&ids=b...`` (one request, ``limit`` = the number of ids) for the shared poller:
    each listed Studio's phase read from its embedded ``codeStatus`` exactly as :func:`read_code_status` reads
    ``GET codestatus``; a Studio the answer leaves out, or lists without ``codeStatus``, is read by its own GET."""
    ids = list(studio_ids)
    return list_call(_base(project_id), {"ids": ids, "limit": str(len(ids))}, "cloudspaces", read_code_status,
                     entry=embedded_code_status)


#: Studios: one ``ids=`` list request per batch of waits.
STUDIO_SWEEP = Sweep(by_ids=studios_by_ids)


STUDIO = ResourceKind(
    name="studio",
    label="Lightning Studio",
    collection="cloudspaces",
    read=read_code_status,
    stopper=lambda _kind, project_id, studio_id: stop(project_id, studio_id),
    sweep=STUDIO_SWEEP,
    status_path="codestatus",
)


def start(project_id: str, studio_id: str, machine: str, interruptible: bool, max_runtime: int | None) -> ApiCall[Any]:
    """``POST /start`` with the compute config (machine slug, spot, optional max runtime in seconds)."""
    config: dict[str, Any] = {"name": machine, "spot": bool(interruptible)}
    if max_runtime:
        config["requestedRunDurationSeconds"] = str(int(max_runtime))
    return ApiCall("POST", _base(project_id, studio_id) + "/start", json={"computeConfig": config})


def stop(project_id: str, studio_id: str) -> ApiCall[Any]:
    return ApiCall("POST", _base(project_id, studio_id) + "/stop", json={})


# -- commands ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CommandRef:
    """A command session in a Studio; its :attr:`id` (``<studio id>:<session>``) is what a wait carries."""

    studio_id: str
    session: str

    @property
    def id(self) -> str:
        return f"{self.studio_id}:{self.session}"

    @classmethod
    def parse(cls, resource_id: str) -> CommandRef:
        studio_id, sep, session = resource_id.partition(":")
        if not (sep and studio_id and session):
            raise ValueError(f"a Studio command id is '<studio id>:<session>', got {resource_id!r}")
        return cls(studio_id, session)


def _command_path(project_id: str, resource_id: str) -> str:
    ref = CommandRef.parse(resource_id)
    return f"{_base(project_id, ref.studio_id)}/execute/{wire.seg(ref.session)}"


def read_command(data: Any) -> ResourceState:
    """Read ``{exitCode, output}``: ``-1`` is still running, 0 completed, anything else failed."""
    if not isinstance(data, dict):
        raise ValueError("a command answer is not an object")
    code = wire.number(data, "exit_code")
    running = code is None or code == -1
    phase = Phase.RUNNING if running else Phase.COMPLETED if code == 0 else Phase.FAILED
    message = "" if code in (None, -1, 0) else f"exit code {int(code)}"
    return ResourceState(kind="studio_command", id="", name="", phase=phase,
                         raw_state=f"exit code {int(code)}" if code is not None else "running", message=message,
                         raw=data)


def execute(project_id: str, studio_id: str, command: str) -> ApiCall[str]:
    """Run ``command`` detached in the Studio; returns the session name (an empty one is an error)."""

    def session(body: Any) -> str:
        name = wire.text(body, "session_name")
        if not name:
            raise ValueError("the Studio returned no session name for the command")
        return name

    return ApiCall("POST", _base(project_id, studio_id) + "/execute",
                   json={"command": command, "detached": True}, parse=session, idempotent=False)


STUDIO_COMMAND = ResourceKind(
    name="studio_command",
    label="Studio command",
    collection="cloudspaces",
    read=read_command,
    stopper=lambda _kind, project_id, resource_id: stop(project_id, CommandRef.parse(resource_id).studio_id),
    logs=LogSource(output_field="output"),
    at_rest=never,  # the command ended, its Studio still runs
    locate=_command_path,
)
