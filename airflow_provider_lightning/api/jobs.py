"""Lightning jobs: the request model, its validation and the job API calls."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from airflow_provider_lightning.api import wire
from airflow_provider_lightning.api.drive import artifacts_destination
from airflow_provider_lightning.api.machines import resolve_machine
from airflow_provider_lightning.api.names import validate_name
from airflow_provider_lightning.api.phases import Phase
from airflow_provider_lightning.api.resources import (
    Finder,
    ListPage,
    LogSource,
    ResourceKind,
    Sweep,
    list_call,
    put_body,
)
from airflow_provider_lightning.api.secrets import validate_secret_name
from airflow_provider_lightning.api.state import ResourceState
from airflow_provider_lightning.api.transport import ApiCall, Flow, paginate

# -- reading jobs and multi-machine jobs ------------------------------------------------------

_JOB_STATES: dict[str, Phase] = {
    "pending": Phase.PENDING,
    "creating": Phase.PENDING,
    "queued": Phase.PENDING,
    "running": Phase.RUNNING,
    "restarting": Phase.RUNNING,
    "stopping": Phase.STOPPING,
    "stop": Phase.STOPPING,
    "delete": Phase.STOPPING,
    "complete": Phase.STOPPING,  # exited, logs still being collected: not terminal
    "fail": Phase.STOPPING,
    "stopped": Phase.STOPPED,
    "deleted": Phase.STOPPED,
    "unspecified": Phase.PENDING,
    "cancelled": Phase.STOPPED,
    "completed": Phase.COMPLETED,
    "succeeded": Phase.COMPLETED,
    "failed": Phase.FAILED,
}


def job_phase(raw_state: str) -> Phase:
    """Map a raw job state (``running``, or the seed form ``JOB_STATE_RUNNING``) to a :class:`Phase`.

    Unknown values map to PENDING, as the SDK does: never terminal, so nothing is abandoned.
    """
    key = raw_state.strip().lower()
    for prefix in ("multimachinejob_state_", "multi_machine_job_state_", "job_state_", "state_"):
        if key.startswith(prefix):
            key = key[len(prefix):]
    return _JOB_STATES.get(key, Phase.PENDING)


def _raw_state(data: dict[str, Any]) -> str:
    state = wire.field(data, "state")
    if isinstance(state, str) and state:
        return state
    status = wire.field(data, "status")
    if isinstance(status, dict):
        return wire.text(status, "phase") or wire.text(status, "state")
    return ""


def read_job(data: Any, kind: str = "job") -> ResourceState:
    """Read a ``V1Job`` (camelCase, or the seed documents' snake_case with ``status.phase``)."""
    if not isinstance(data, dict) or not wire.text(data, "id"):
        raise ValueError(f"a {kind} has no id")
    raw_state = _raw_state(data)
    spec = wire.field(data, "spec", {})
    status = wire.field(data, "status", {})
    return ResourceState(
        kind=kind,
        id=wire.text(data, "id"),
        name=wire.text(data, "name"),
        phase=job_phase(raw_state),
        raw_state=raw_state,
        message=wire.text(data, "server_error") or wire.text(data, "message") or wire.text(status, "message"),
        created_at=wire.timestamp(data, "created_at"),
        started_at=wire.timestamp(data, "started_at") or wire.timestamp(status, "started_at"),
        stopped_at=wire.timestamp(data, "stopped_at") or wire.timestamp(status, "stopped_at"),
        total_cost=wire.number(data, "total_cost"),
        cloudspace_id=wire.text(spec, "cloudspace_id") or wire.text(data, "cloudspace_id"),
        raw=data,
    )


def read_mmt(data: Any) -> ResourceState:
    """Read a ``V1MultiMachineJob`` (state ``MultiMachineJob_STATE_*``, times under ``status``)."""
    return read_job(data, kind="mmt")


def exited(state: ResourceState) -> bool:
    """A job holds no machine once terminal, or once its workload exited (``complete``/``fail``: only its logs
    are still being collected); a stop then would only relabel it as stopped, so the SDK sends none."""
    exit_states = ("complete", "fail")
    return state.phase.is_terminal or state.raw_state.strip().lower().rsplit("_", 1)[-1] in exit_states


def _projects(project_id: str, collection: str) -> str:
    return f"/v1/projects/{wire.seg(project_id)}/{collection}"


def job_page(project_id: str, state: str | None, token: str, size: int) -> ApiCall[ListPage]:
    """One page of the teamspace's standalone jobs, newest first, in ``state`` (None: any state), for the
    shared poller (each entry read as ``GET /jobs/{id}`` reads it)."""
    params = {"state": state, "standalone": True, "limit": size, "pageToken": token or None}
    return list_call(_projects(project_id, "jobs"), params, "jobs", read_job)


def recent_jobs(project_id: str, token: str, size: int) -> ApiCall[ListPage]:
    """:func:`job_page` in any state: the teamspace's newest jobs."""
    return job_page(project_id, None, token, size)


def mmt_list(project_id: str, token: str = "", size: int = 0) -> ApiCall[ListPage]:
    """``GET /multi-machine-jobs``: every multi-machine job of the teamspace on one page (the list has no
    paging, so ``token`` and ``size`` are not sent), each entry read as ``GET /multi-machine-jobs/{id}`` reads it."""
    return list_call(_projects(project_id, "multi-machine-jobs"), {}, "multi_machine_jobs", read_mmt)


#: Jobs: the newest jobs page by page, then the running and pending jobs (``state=`` lists).
JOB_SWEEP = Sweep(recent=recent_jobs, by_state=job_page, active_states=("running", "pending"))
#: Multi-machine jobs: one list request answers every wait (no paging).
MMT_SWEEP = Sweep(recent=mmt_list)


JOB = ResourceKind(
    name="job",
    label="Lightning job",
    collection="jobs",
    read=read_job,
    stopper=put_body({"state": "stop"}),
    logs=LogSource(selector="jobIds"),
    finder=Finder("find", query="name"),
    sweep=JOB_SWEEP,
    web_app="jobs",
    at_rest=exited,
)

MMT = ResourceKind(
    name="mmt",
    label="Lightning multi-machine job",
    collection="multi-machine-jobs",
    read=read_mmt,
    stopper=put_body({"desiredState": "MultiMachineJob_STATE_STOP"}),
    logs=LogSource(selector="mmtId", per_machine=True),
    finder=Finder("{name}/getbyname"),
    sweep=MMT_SWEEP,
    web_app="mmt",
    at_rest=exited,
)


ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def validate_env(env: Mapping[str, Any] | None) -> dict[str, str]:
    """Check environment variables: valid names and string values (no silent ``str()`` of objects)."""
    if env is None:
        return {}
    if not isinstance(env, Mapping):
        raise ValueError(f"env must be a dict of str to str, got {type(env).__name__}")
    for key, value in env.items():
        if not isinstance(key, str) or not ENV_NAME_RE.match(key):
            raise ValueError(f"env name {key!r} is invalid: use letters, digits and '_', not starting with a digit")
        if not isinstance(value, str):
            raise ValueError(
                f"env value of {key!r} must be a string, got {type(value).__name__} ({value!r}); "
                "convert it explicitly, for example str(value) or json.dumps(value)"
            )
    return dict(env)


def validate_job_env(env: Mapping[str, Any] | None) -> dict[str, Any]:
    """:func:`validate_env`, where a value may also be ``{"fromSecret": "SECRET_NAME"}`` (read from a teamspace
    secret when the job starts); the secret name is checked like the SDK checks it, before any request."""
    if env is None:
        return {}
    if isinstance(env, (list, tuple)):
        env = from_entries(env)
    if not isinstance(env, Mapping):
        raise ValueError(f"env must be a dict of str to str, got {type(env).__name__}")
    literal = {k: v for k, v in env.items() if not isinstance(v, Mapping)}
    validate_env(literal)
    result: dict[str, Any] = {}
    for key, value in env.items():
        if isinstance(value, Mapping):
            validate_env({key: "x"})
            if set(value) != {"fromSecret"}:
                raise ValueError(
                    f"env value of {key!r} must be a string or {{'fromSecret': 'SECRET_NAME'}}, "
                    f"got a mapping with keys {sorted(map(str, value))}"
                )
            validate_secret_name(value["fromSecret"], f"env[{key!r}] fromSecret")
            result[key] = {"fromSecret": value["fromSecret"]}
        else:
            result[key] = value
    return result


def from_entries(entries: Sequence[Any]) -> dict[str, Any]:
    """The wire's ``V1EnvVar`` list (``[{"name", "value"}]`` / ``[{"name", "fromSecret"}]``) as the dict form."""
    env: dict[str, Any] = {}
    for entry in entries:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str) or len(set(entry) - {"name"}) != 1 \
                or not set(entry) - {"name"} <= {"value", "fromSecret"}:
            raise ValueError(
                "env entries must be {'name': ..., 'value': ...} or {'name': ..., 'fromSecret': ...}, "
                f"got {entry!r}"
            )
        name = entry["name"]
        if name in env:
            raise ValueError(f"env names {name!r} twice")
        env[name] = {"fromSecret": entry["fromSecret"]} if "fromSecret" in entry else entry["value"]
    return env


def env_entries(env: Mapping[str, Any]) -> list[dict[str, str]]:
    """``V1EnvVar`` entries: ``{name, value}``, or ``{name, fromSecret}`` for a value read from a secret."""
    return [
        {"name": k, "fromSecret": v["fromSecret"]} if isinstance(v, Mapping) else {"name": k, "value": v}
        for k, v in env.items()
    ]


def parse_path_mappings(mappings: Mapping[str, str] | None) -> list[dict[str, str]]:
    """``{"/data": "conn:sub/path"}`` -> ``[{containerPath, connectionName, connectionPath}]`` (SDK format)."""
    result = []
    for container_path, target in (mappings or {}).items():
        if not isinstance(container_path, str) or not container_path.startswith("/"):
            raise ValueError(f"path_mappings key {container_path!r} must be an absolute container path")
        if not isinstance(target, str) or not target:
            raise ValueError(f"path_mappings[{container_path!r}] must be 'connection' or 'connection:path'")
        name, _, sub = target.partition(":")
        result.append({"connectionName": name, "connectionPath": sub, "containerPath": container_path})
    return result


@dataclass(frozen=True)
class JobRequest:
    """A validated job submission.

    :param name: job name (the server may suffix it on a clash; always read the answer's name).
    :param command: shell command; required for Studio jobs, optional for image jobs.
    :param machine: machine name or slug; resolved to the wire slug on validation.
    :param image: container image (container job); exclusive with ``studio``.
    :param studio: Studio name whose snapshot the job runs in; exclusive with ``image``.
    :param entrypoint: container entrypoint; ``sh -c`` by default when a command is given.
    :param env: environment variables: str to str, or str to ``{"fromSecret": "SECRET_NAME"}`` for a value
        read from a teamspace secret when the job starts.
    :param interruptible: run on a spot/interruptible machine.
    :param cluster_id: cloud account; empty lets Lightning choose.
    :param max_run_attempts: platform-side attempts (1 = no platform retry); None leaves it unset.
    :param path_mappings: ``{"/container/path": "connection[:path]"}`` data connection mounts.
    :param tags: tag names.
    :param image_secret_ref: teamspace secret holding registry credentials (image jobs).
    :param allow_custom_machine: pass an unknown machine string through as a raw instance type.
    :param num_machines: machines to run on; 2 or more makes a multi-machine (MMT) job.
    :param artifacts_destination: where an image job's artifacts persist, ``<connection type>:<connection
        name>:<path>`` (``spec.artifactsDestination``); a Studio job's always go to the drive's ``jobs/<name>``.
    """

    name: str
    command: str = ""
    machine: str = "CPU"
    image: str = ""
    studio: str = ""
    entrypoint: str | None = None
    env: Mapping[str, Any] = field(default_factory=dict)
    interruptible: bool = False
    cluster_id: str = ""
    max_run_attempts: int | None = None
    path_mappings: Mapping[str, str] = field(default_factory=dict)
    tags: Sequence[str] = ()
    image_secret_ref: str = ""
    allow_custom_machine: bool = False
    num_machines: int = 1
    artifacts_destination: str = ""

    @property
    def kind(self) -> ResourceKind:
        """JOB for one machine, MMT for several."""
        return MMT if self.num_machines > 1 else JOB

    def validated(self) -> JobRequest:
        """Return a copy with the machine resolved; ValueError names the first bad argument."""
        validate_name(self.name, "job name")
        if isinstance(self.num_machines, bool) or not isinstance(self.num_machines, int) or self.num_machines < 1:
            raise ValueError(f"num_machines must be an integer >= 1, got {self.num_machines!r}")
        if bool(self.image) == bool(self.studio):
            raise ValueError(
                "give exactly one of image= (a container job) or studio= (a job from a Studio snapshot); "
                f"got {'both' if self.image else 'neither'}"
            )
        if not isinstance(self.command, str):
            raise ValueError(f"command must be a string, got {type(self.command).__name__}")
        if self.studio and not self.command.strip():
            raise ValueError(f"command is required for a Studio job (studio={self.studio!r}) and must not be empty")
        if self.studio and self.entrypoint:
            raise ValueError("entrypoint can only be set for image jobs, not for Studio jobs")
        if self.studio and self.image_secret_ref:
            raise ValueError("image_secret_ref can only be set for image jobs")
        if self.artifacts_destination:
            if self.studio:
                raise ValueError(
                    "artifacts_destination can only be set for image jobs: a Studio job's artifacts always go to the "
                    "teamspace drive folder jobs/<job name>"
                )
            artifacts_destination(self.artifacts_destination)
        if self.max_run_attempts is not None and (
            not isinstance(self.max_run_attempts, int) or self.max_run_attempts < 1
        ):
            raise ValueError(f"max_run_attempts must be an integer >= 1, got {self.max_run_attempts!r}")
        if isinstance(self.tags, str) or not isinstance(self.tags, (list, tuple)):
            raise ValueError(f"tags must be a list of strings, got {self.tags!r}")
        for tag in self.tags:
            if not isinstance(tag, str) or not tag.strip():
                raise ValueError(f"tags must be non-empty strings, got {tag!r}")
        env = validate_job_env(self.env)
        if self.path_mappings is not None and not isinstance(self.path_mappings, Mapping):
            raise ValueError(f"path_mappings must be a dict, got {type(self.path_mappings).__name__}")
        parse_path_mappings(self.path_mappings)
        slug = resolve_machine(self.machine, allow_custom=self.allow_custom_machine)
        return replace(self, machine=slug, env=env, path_mappings=dict(self.path_mappings or {}), tags=list(self.tags))

    def body(self, *, cloudspace_id: str = "", default_cluster_id: str = "") -> dict[str, Any]:
        """The ``JobsServiceCreateJobBody`` JSON, as the SDK sends it."""
        spec: dict[str, Any] = {
            "cloudspaceId": cloudspace_id,
            "clusterId": self.cluster_id or default_cluster_id,
            "command": self.command,
            "env": env_entries(self.env),
            "image": self.image,
            "imageClusterCredentials": False,
            "imageSecretRef": self.image_secret_ref,
            "instanceName": self.machine,
            "pathMappings": parse_path_mappings(self.path_mappings),
            "runId": "",
            "spot": bool(self.interruptible),
            "volumes": [],
        }
        if self.image:
            if self.entrypoint is not None:
                if self.entrypoint:
                    spec["entrypoint"] = self.entrypoint
            elif self.command:
                spec["entrypoint"] = "sh -c"
        if self.max_run_attempts is not None:
            spec["maxRunAttempts"] = self.max_run_attempts
        if self.artifacts_destination:
            spec["artifactsDestination"] = self.artifacts_destination
        body: dict[str, Any] = {"name": self.name, "spec": spec}
        if self.num_machines > 1:  # MMT: run attempts at the top level, no volumes in the spec
            spec.pop("volumes")
            attempts = spec.pop("maxRunAttempts", None)
            body.update(machines=self.num_machines, clusterId=spec["clusterId"])
            if attempts is not None:
                body["maxRunAttempts"] = attempts
                if attempts > 1:
                    body["faultTolerance"] = {
                        "strategy": "MULTI_MACHINE_JOB_FAULT_TOLERANCE_STRATEGY_RECREATE_ALL_NODES"
                    }
        if self.tags:
            body["tags"] = list(self.tags)
        return body


# -- calls -------------------------------------------------------------------------------------


def delete_job(project_id: str, job_id: str, cloudspace_id: str = "") -> ApiCall[Any]:
    return ApiCall("DELETE", JOB.path(project_id, job_id), params={"cloudspaceId": cloudspace_id})


def list_jobs(
    project_id: str,
    *,
    state: str | None = None,
    standalone: bool | None = None,
    cloudspace_id: str | None = None,
    multi_machine_job_id: str | None = None,
    limit: int | None = None,
    page_size: int = 100,
) -> Flow[list[ResourceState]]:
    """Flow listing jobs (newest first as the server sorts them), following pages up to ``limit``."""
    params: dict[str, Any] = {
        "state": state,
        "standalone": standalone,
        "cloudspaceId": cloudspace_id,
        "multiMachineJobId": multi_machine_job_id,
    }

    def page(token: str) -> ApiCall[Any]:
        query = {**params, "limit": page_size, "pageToken": token or None}
        return ApiCall("GET", JOB.path(project_id), params=query)

    raw = yield from paginate(page, "jobs", limit=limit)
    return [read_job(item) for item in raw if isinstance(item, dict) and wire.text(item, "id")]


def rank_of(job: ResourceState) -> int:
    """The machine rank of an MMT sub-job (``spec.rank``), 0 when absent."""
    rank = wire.number(wire.field(job.raw, "spec", {}), "rank")
    return int(rank) if rank is not None else 0


def download_logs_url(project_id: str, job_id: str, cloudspace_id: str = "") -> ApiCall[str]:
    """The signed URL of a finished job's full log (fetch it without the Authorization header)."""
    return ApiCall(
        "GET",
        JOB.path(project_id, job_id) + "/download-logs",
        params={"cloudspaceId": cloudspace_id},
        parse=lambda body: wire.text(body, "url"),
    )


def create_job(project_id: str, body: dict[str, Any], *, max_attempts: int = 3) -> Flow[ResourceState]:
    """Flow: create a job (one machine, or several when ``body`` has ``machines``) never twice."""
    kind = MMT if "machines" in body else JOB
    return (yield from kind.create(project_id, body, max_attempts=max_attempts))
