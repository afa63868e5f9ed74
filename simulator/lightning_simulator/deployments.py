"""Deployments: autoscaled services made of replica jobs, with numbered releases and a served endpoint.

A deployment owns *releases* (numbered snapshots of its ``spec``) and *replicas*: synthetic
:class:`~.jobrecord.Job` records with ``deploymentId`` and ``releaseId`` that run their release's command as a
local process (see "Replica processes" below) or, without a command, run nothing and only print a few log lines.
Lifecycle (reference sections 8 and 14)::

    create -> PENDING, release 1, replicas pending --(pending_seconds)--> replicas ready -> RUNNING
    PUT changing a release field -> release N+1: its replicas start while the old ones keep serving;
        once every new replica is ready the old ones drain (stop_seconds)
    PUT autoscaling.maxReplicas 0 (the SDK's stop) -> replicas drain -> replicas 0, STOPPED
    PUT desiredState RUNNING with maxReplicas >= 1 -> PENDING -> RUNNING

The replica count is the top-level ``replicas`` when autoscaling is disabled (or was not given),
else ``max(minReplicas, 1)`` capped at ``maxReplicas``. Fields absent from a PUT body keep their
value; read-only fields (``status``, ``currentState``, ``id``, ...) are ignored.

``status.urls`` stays empty until a replica is first ready and is then kept, also while stopped:
``{simulator url}/serve/{deploymentId}``, answered by :meth:`DeploymentService.serve` (503 while no replica
is ready, 404 once deleted): after the endpoint's auth check, the request is proxied to the process of the newest
ready replica (status, headers and body returned as they are; 502 when it cannot be reached), or, for a replica
without a process, ``GET /health`` answers ``{"status": "ok"}`` and anything else is echoed as JSON.

Replica environment: when a replica comes up, its ``spec.env`` entries ``{"name", "fromSecret"}`` get the
teamspace secret's value (a missing secret fails the replica, and so the deployment, naming the variable and the
secret), literal values and the command get the ``/teamspace`` mount of :mod:`.drive`, and
``LIGHTNING_TEAMSPACE_DIR`` is set (``DeploymentService.replica_runtime`` shows it to Python); the API returns
``fromSecret`` entries as sent, never a value.

Replica processes: a replica whose release has a command (``entrypoint`` + ``command``, the argv rules of image
and Studio jobs in ``runner``) runs it in its own process group, in a scratch folder (a copy of the Studio's
folder for Studio deployments), with that environment plus ``PORT``: a free ``127.0.0.1`` port standing for the
endpoint's first port (the container port, which the health check's port also means). Its output lines are the
replica's log lines. The replica stays pending until the process accepts connections on ``PORT`` and, with an
HTTP health check (``readinessProbe.httpGet``), that check answers 2xx (an ``exec`` check is not run); a process
that exits first, or is not ready within ``deployment_ready_timeout`` seconds (then killed), fails the replica with
its exit code and last output lines. A process that exits once ready fails its replica too (as ``fail`` does:
FAILED unless other replicas are ready). Draining a replica (stop, scale down, a new release replacing it), deleting
the deployment and stopping the simulator kill its process group. After a restart from the state file, ready
replicas start their process again. The failure knob below wins (its replicas run no process), and
``deployment_commands=False`` runs no process for any replica.

Failure knob, read from a release's ``spec.env`` (``LIGHTNING_SIM_DEPLOYMENT``):

* ``fail``: every replica fails its health check: ``failingReplicas`` > 0, ``status.message`` says
  why, ``currentState`` FAILED (RUNNING while replicas of an older release still serve).
* ``crashloop``: replicas crash-loop for ever: ``failingReplicas`` > 0, ``readyReplicas`` 0 and
  ``currentState`` stays PENDING.
"""

from __future__ import annotations

import base64
import binascii
import collections
import copy
import functools
import hmac
import json
import random
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, quote

from .auth import unauthenticated
from .context import ServiceContext
from .drive import DriveService, mount_teamspace
from .jobrecord import Job, job_cost
from .jobs import JobService
from .jobspec import normalize_spec
from .logs import LogBuffer
from .paging import first_value, page_token, parse_page_token
from .runner import CommandRunner, RunHandle, image_job_argv, job_environment, make_python_shim, studio_job_argv
from .serving import (
    PROXY_TIMEOUT,
    ProxyError,
    Upstream,
    accepts_connections,
    exit_text,
    free_port,
    http_probe,
    proxy,
    request_headers,
)
from .studios import StudioService
from .wire import (
    GRPC_ALREADY_EXISTS,
    GRPC_UNAVAILABLE,
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

STATE_PREFIX = "DEPLOYMENT_STATE_"
DEP_RUNNING = STATE_PREFIX + "RUNNING"
DEP_PENDING = STATE_PREFIX + "PENDING"
DEP_FAILED = STATE_PREFIX + "FAILED"
DEP_SCALED_TO_0 = STATE_PREFIX + "SCALED_TO_0"
DEP_STOPPED = STATE_PREFIX + "STOPPED"
DEPLOYMENT_STATES = frozenset(
    STATE_PREFIX + s
    for s in (
        "UNSPECIFIED",
        "RUNNING",
        "PENDING",
        "FAILED",
        "SCALED_TO_0",
        "STOPPED",
        "DELETED",
        "FROZEN",
        "BALANCE_STOPPED",
        "SHADOW_BANNED",
    )
)

EVENT_INFO = "DEPLOYMENT_EVENT_TYPE_INFO"
EVENT_WARNING = "DEPLOYMENT_EVENT_TYPE_WARNING"

MODE_ENV = "LIGHTNING_SIM_DEPLOYMENT"
MODES = ("", "fail", "crashloop")

# Changing one of these spec fields creates a new release (reference 8.5, plus the machine and path mappings).
RELEASE_FIELDS = (
    "image",
    "entrypoint",
    "command",
    "env",
    "readinessProbe",
    "clusterId",
    "spot",
    "quantity",
    "includeCredentials",
    "requestedRunDurationSeconds",
    "instanceName",
    "pathMappings",
)

LIVE_STATES = frozenset({"pending", "running", "failed"})  # replica job states that occupy a slot

READY_POLL_SECONDS = 0.1  # how often a starting replica's process is probed
OUTPUT_TAIL_LINES = 10  # last output lines quoted when a replica's process fails

_AUTOSCALING_INT64 = (
    "minReplicas",
    "maxReplicas",
    "idleThresholdSeconds",
    "scaleDownCooldownSeconds",
    "scaleUpCooldownSeconds",
    "expectedColdStartTime",
)
_PROBE_INT32 = ("failureThreshold", "initialDelaySeconds", "intervalSeconds", "timeoutSeconds")


# ------------------------------------------------------------- normalisation


def _non_negative(value: Any, name: str, default: int = 0) -> int:
    """An int32/int64 field sent as a number or a string; 400 when negative.

    :param value: the raw JSON value.
    :param name: the field name for the error message.
    :param default: used when absent.
    """
    number = as_int(value, default)
    if number < 0:
        raise invalid(f"{name} must not be negative")
    return number


def _object(raw: Any, name: str) -> dict[str, Any]:
    """A JSON object field (``{}`` when absent or null).

    :param raw: the raw JSON value.
    :param name: the field name for the error message.
    """
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise invalid(f"{name} must be an object")
    return raw


def normalize_autoscaling(raw: Any, replicas: int) -> dict[str, Any]:
    """``V1AutoscalingSpec`` in wire form (int64 fields as strings).

    :param raw: the request's ``autoscaling`` (``None``: disabled, fixed at ``replicas``).
    :param replicas: the top-level ``replicas``.
    """
    if raw is None:
        raw = {"enabled": False, "minReplicas": replicas, "maxReplicas": replicas}
    raw = _object(raw, "autoscaling")
    out: dict[str, Any] = {"enabled": as_bool(raw.get("enabled"))}
    for key in _AUTOSCALING_INT64:
        out[key] = str(_non_negative(raw.get(key), f"autoscaling.{key}"))
    if raw.get("maxReplicas") is None:  # absent (not "0", which means stop): at least one replica
        out["maxReplicas"] = str(max(int(out["minReplicas"]), 1))
    if 0 < int(out["maxReplicas"]) < int(out["minReplicas"]):
        raise invalid("autoscaling.minReplicas must not exceed autoscaling.maxReplicas")
    metrics = raw.get("targetMetric") or []
    if not isinstance(metrics, list):
        raise invalid("autoscaling.targetMetric must be a list")
    out["targetMetric"] = [_target_metric(m) for m in metrics]
    return out


def _target_metric(raw: Any) -> dict[str, Any]:
    """``V1AutoscalingTargetMetric`` in wire form.

    :param raw: one entry of ``autoscaling.targetMetric``.
    """
    raw = _object(raw, "autoscaling.targetMetric[]")
    return {
        "name": as_str(raw.get("name")),
        "target": as_str(raw.get("target")),
        "autoscalingWindowSeconds": str(as_int(raw.get("autoscalingWindowSeconds"))),
        "overflowPolicy": as_str(raw.get("overflowPolicy")) or "AUTOSCALING_OVERFLOW_POLICY_UNSPECIFIED",
        "targetUtilizationPercentage": as_str(raw.get("targetUtilizationPercentage")),
    }


def normalize_endpoint(raw: Any) -> dict[str, Any]:
    """``V1Endpoint`` (``ports`` as int64 strings, at least one) with a normalised ``auth``.

    :param raw: the request's ``endpoint``.
    """
    raw = _object(raw, "endpoint")
    ports = raw.get("ports") or []
    if not isinstance(ports, list):
        raise invalid("endpoint.ports must be a list")
    if not ports:
        raise invalid("endpoint.ports needs at least one port")
    return {
        "ports": [str(_port(p)) for p in ports],
        "auth": normalize_auth(raw.get("auth")),
        "customDomain": as_str(raw.get("customDomain")),
    }


def _port(value: Any) -> int:
    """A TCP port number (400 unless 1..65535).

    :param value: the raw JSON value (number or string).
    """
    port = as_int(value)
    if not 1 <= port <= 65535:
        raise invalid(f"endpoint port {value!r} must be between 1 and 65535")
    return port


def normalize_auth(raw: Any) -> dict[str, Any]:
    """``V1EndpointAuth``; an enabled one needs a token, a username and password, or ``userApiKey``.

    :param raw: the request's ``endpoint.auth``.
    """
    raw = _object(raw, "endpoint.auth")
    auth: dict[str, Any] = {
        "enabled": as_bool(raw.get("enabled")),
        "token": as_str(raw.get("token")),
        "tokens": [as_str(t) for t in raw.get("tokens") or []],
        "username": as_str(raw.get("username")),
        "password": as_str(raw.get("password")),
        "userApiKey": as_bool(raw.get("userApiKey")),
    }
    if auth["enabled"]:
        if bool(auth["username"]) != bool(auth["password"]):
            raise invalid("endpoint.auth needs both username and password")
        if not (auth["token"] or any(auth["tokens"]) or auth["username"] or auth["userApiKey"]):
            raise invalid("endpoint.auth is enabled but sets no token, username/password or userApiKey")
    return auth


def normalize_strategy(raw: Any) -> dict[str, Any]:
    """``V1DeploymentStrategy`` (int64 fields as strings); a rolling update (surge 1, unavailable 0) by default.

    :param raw: the request's ``strategy``.
    """
    raw = _object(raw, "strategy")
    rolling = _object(raw.get("rollingUpdate"), "strategy.rollingUpdate")
    name = "strategy.rollingUpdate."
    return {
        "type": as_str(raw.get("type")) or "rolling_update",
        "rollingUpdate": {
            "maxSurge": str(_non_negative(rolling.get("maxSurge"), name + "maxSurge", 1)),
            "maxUnavailable": str(_non_negative(rolling.get("maxUnavailable"), name + "maxUnavailable")),
            "shutdownDelayMinutes": as_int(rolling.get("shutdownDelayMinutes")),
        },
    }


def normalize_probe(raw: Any) -> dict[str, Any] | None:
    """``V1JobHealthCheckConfig`` with every field populated (``None`` when there is none).

    :param raw: the spec's ``readinessProbe``.
    """
    if not isinstance(raw, dict):
        return None
    http, command = raw.get("httpGet"), raw.get("exec")
    probe: dict[str, Any] = {
        "httpGet": None,
        "exec": {"command": as_str(command.get("command"))} if isinstance(command, dict) else None,
        "restartPolicy": as_str(raw.get("restartPolicy")),
        "useDefaultCheck": as_bool(raw.get("useDefaultCheck")),
    }
    if isinstance(http, dict):
        probe["httpGet"] = {
            "path": as_str(http.get("path")),
            "port": as_int(http.get("port")),
            "method": as_str(http.get("method")),
            "body": as_str(http.get("body")),
            "count": as_int(http.get("count")),
        }
    for key in _PROBE_INT32:
        probe[key] = as_int(raw.get(key))
    return probe


def release_mode(spec: dict[str, Any]) -> str:
    """The failure knob of a release: ``""``, ``"fail"`` or ``"crashloop"`` (400 on anything else).

    :param spec: a normalised job spec.
    """
    values = [e["value"] for e in spec["env"] if e["name"] == MODE_ENV]
    mode = values[-1].strip().lower() if values else ""
    if mode not in MODES:
        raise invalid(f"{MODE_ENV} must be 'fail' or 'crashloop', got {values[-1]!r}")
    return mode


def normalize_state(value: str) -> str:
    """``RUNNING``, ``running`` or ``DEPLOYMENT_STATE_RUNNING`` -> ``DEPLOYMENT_STATE_RUNNING`` (400 if unknown).

    :param value: a deployment state name.
    """
    text = value.strip()
    state = text if text in DEPLOYMENT_STATES else STATE_PREFIX + text.upper().removeprefix(STATE_PREFIX)
    if state not in DEPLOYMENT_STATES:
        raise invalid(f"unknown deployment state {value!r}")
    return state


def _health_check(spec: dict[str, Any], ports: list[str]) -> str:
    """How a replica's readiness is checked, for log lines and failure messages.

    :param spec: the release spec.
    :param ports: the endpoint's ports.
    """
    probe = spec["readinessProbe"] or {}
    if probe.get("httpGet"):
        http = probe["httpGet"]
        return f"health check on port {http['port'] or ports[0]} {http['path'] or '/'}"
    if probe.get("exec"):
        return f"health check command {probe['exec']['command']!r}"
    return f"health check on port {ports[0]} /health"


def _basic_credentials(value: str) -> str:
    """``user:password`` decoded from a Basic credential (``""`` when malformed).

    :param value: the base64 part of the header.
    """
    try:
        return base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return ""


def check_endpoint_auth(auth: dict[str, Any], header: str, check_user: Callable[[str | None], None]) -> None:
    """Raise a 401 unless ``header`` satisfies the endpoint's ``auth`` (nothing to check when disabled).

    :param auth: the normalised ``endpoint.auth``.
    :param header: the request's ``Authorization`` value.
    :param check_user: validates the simulator's own credentials (for ``userApiKey``), raising a 401.
    """
    if not auth["enabled"]:
        return
    scheme, _, value = header.strip().partition(" ")
    scheme, value = scheme.lower(), value.strip()
    tokens = [t for t in (auth["token"], *auth["tokens"]) if t]
    if scheme == "bearer" and any(hmac.compare_digest(value.encode(), t.encode()) for t in tokens):
        return
    expected = f"{auth['username']}:{auth['password']}".encode()
    if scheme == "basic" and auth["username"] and hmac.compare_digest(_basic_credentials(value).encode(), expected):
        return
    if auth["userApiKey"]:
        check_user(header or None)
        return
    raise unauthenticated("missing or invalid credentials for this deployment's endpoint")


def _payload(raw: bytes) -> Any:
    """A request body as JSON when it parses, else as text (``None`` when empty).

    :param raw: the body bytes.
    """
    if not raw.strip():
        return None
    text = raw.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


# -------------------------------------------------------------------- records


@dataclass
class Release:
    """A numbered snapshot of the release fields of a deployment's spec."""

    id: str
    version: int
    spec: dict[str, Any]
    replicas: int
    created_ns: int

    def to_state(self) -> dict[str, Any]:
        """JSON form for the state file."""
        return asdict(self)


@dataclass
class Replica:
    """One replica of one release: a synthetic job that runs no process."""

    job: Job
    release_id: str
    index: int
    crash_loop: bool = False
    env: dict[str, str] | None = field(default=None, repr=False)  # resolved when it came up (not saved)
    command: str = ""  # the command as its container would run it (``/teamspace`` mounted)
    # its process, while one runs (not saved): ``PORT``, the process (group) id, its last output lines and what the
    # readiness probe saw last
    port: int | None = None
    pid: int | None = None
    tail: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=OUTPUT_TAIL_LINES))
    probe_note: str = ""

    @property
    def live(self) -> bool:
        """True while it occupies a slot (pending, ready or failed)."""
        return self.job.state in LIVE_STATES

    def log(self, text: str) -> None:
        """Append one line, prefixed with the replica's number, to its log.

        :param text: the message after the prefix.
        """
        self.job.logs.append(f"replica {self.index} {text}", now_ns())

    def to_state(self) -> dict[str, Any]:
        """JSON form for the state file."""
        job = self.job.to_state()
        return {"releaseId": self.release_id, "index": self.index, "crashLoop": self.crash_loop, "job": job}

    @classmethod
    def from_state(cls, data: dict[str, Any], max_log_lines: int) -> Replica:
        """Rebuild a replica saved by :meth:`to_state`.

        :param data: the saved form.
        :param max_log_lines: log lines kept per replica.
        """
        return cls(Job.from_state(data["job"], max_log_lines), data["releaseId"], int(data["index"]), data["crashLoop"])


@dataclass
class Deployment:
    """One deployment: its configuration, releases, replicas and events."""

    id: str
    name: str
    project_id: str
    user_id: str
    created_ns: int
    updated_ns: int
    spec: dict[str, Any]
    replicas: int
    autoscaling: dict[str, Any]
    endpoint: dict[str, Any]
    strategy: dict[str, Any]
    desired_state: str = DEP_RUNNING
    current_state: str = DEP_PENDING
    release_id: str = ""
    served: bool = False  # a replica has been ready once: status.urls is filled from then on
    release_notes: str = ""  # kept as given on create or update, like the platform
    releases: list[Release] = field(default_factory=list)
    pods: list[Replica] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)

    def target(self) -> int:
        """How many replicas should be up right now."""
        if self.desired_state != DEP_RUNNING:
            return 0
        auto = self.autoscaling
        if auto["enabled"]:
            return min(max(int(auto["minReplicas"]), 1), int(auto["maxReplicas"]))
        return self.replicas

    def release(self, release_id: str) -> Release:
        """The release with id ``release_id``.

        :param release_id: a release id of this deployment.
        """
        return next(r for r in self.releases if r.id == release_id)

    def live(self, release_id: str | None = None) -> list[Replica]:
        """Replicas occupying a slot, optionally only those of one release.

        :param release_id: restrict to this release (``None``: every release).
        """
        return [p for p in self.pods if p.live and (release_id is None or p.release_id == release_id)]

    def counts(self) -> dict[str, int]:
        """``readyReplicas``, ``pendingReplicas``, ``failingReplicas`` and ``deletingReplicas``."""
        states = [(p.job.state, p.crash_loop) for p in self.pods]
        return {
            "readyReplicas": sum(s == "running" for s, _ in states),
            "pendingReplicas": sum(s == "pending" and not crash for s, crash in states),
            "failingReplicas": sum(s == "failed" or (s == "pending" and crash) for s, crash in states),
            "deletingReplicas": sum(s == "stopping" for s, _ in states),
        }

    def derive_state(self) -> str:
        """``currentState`` as the replicas make it (while draining to zero, the previous one is kept)."""
        live = self.live()
        if self.target() == 0:
            if live or any(p.job.state == "stopping" for p in self.pods):
                return self.current_state
            return DEP_STOPPED if self.desired_state == DEP_STOPPED else DEP_SCALED_TO_0
        if any(p.job.state == "running" for p in live):
            return DEP_RUNNING
        if any(p.job.state == "failed" for p in live):
            return DEP_FAILED
        return DEP_PENDING

    def first_job_state(self, release_id: str) -> str:
        """State of a release's first live replica (or of its latest one when none is live).

        :param release_id: the release to look at.
        """
        mine = [p for p in self.pods if p.release_id == release_id]
        live = [p for p in mine if p.live]
        if live:
            return min(live, key=lambda p: p.job.created_ns).job.state
        return max(mine, key=lambda p: p.job.updated_ns).job.state if mine else ""

    def message(self) -> str:
        """``status.message``: why the first failing replica fails (``""`` when none does)."""
        failing = [p for p in self.live() if p.job.state == "failed" or p.crash_loop]
        return failing[0].job.message if failing else ""

    def to_state(self) -> dict[str, Any]:
        """JSON form for the state file."""
        return {
            "id": self.id,
            "name": self.name,
            "projectId": self.project_id,
            "userId": self.user_id,
            "createdNs": self.created_ns,
            "updatedNs": self.updated_ns,
            "spec": self.spec,
            "replicas": self.replicas,
            "autoscaling": self.autoscaling,
            "endpoint": self.endpoint,
            "strategy": self.strategy,
            "desiredState": self.desired_state,
            "currentState": self.current_state,
            "releaseId": self.release_id,
            "served": self.served,
            "releaseNotes": self.release_notes,
            "releases": [r.to_state() for r in self.releases],
            "pods": [p.to_state() for p in self.pods],
            "events": self.events,
        }

    @classmethod
    def from_state(cls, data: dict[str, Any], max_log_lines: int) -> Deployment:
        """Rebuild a deployment saved by :meth:`to_state`.

        :param data: the saved form.
        :param max_log_lines: log lines kept per replica.
        """
        return cls(
            id=data["id"],
            name=data["name"],
            project_id=data["projectId"],
            user_id=data["userId"],
            created_ns=int(data["createdNs"]),
            updated_ns=int(data["updatedNs"]),
            spec=data["spec"],
            replicas=int(data["replicas"]),
            autoscaling=data["autoscaling"],
            endpoint=data["endpoint"],
            strategy=data["strategy"],
            desired_state=data["desiredState"],
            current_state=data["currentState"],
            release_id=data["releaseId"],
            served=bool(data["served"]),
            release_notes=str(data.get("releaseNotes") or ""),
            releases=[Release(**r) for r in data["releases"]],
            pods=[Replica.from_state(p, max_log_lines) for p in data["pods"]],
            events=list(data["events"]),
        )


# --------------------------------------------------------------------- service


class ServedRequest(Protocol):
    """What :meth:`DeploymentService.serve` reads of an HTTP request (a :class:`~.server.Request`)."""

    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    raw_query: str
    raw_body: bytes
    authorization: str


class DeploymentService:
    """Deployments: releases, replica rollout and the served endpoint, under the shared lock."""

    def __init__(self, context: ServiceContext, jobs: JobService) -> None:
        """Attach to the shared context.

        :param context: the shared lock, settings, identity and timers.
        :param jobs: checks specs and renders replicas as jobs (replica ids never collide with job ids); its
            Studios are those whose folder a Studio deployment's replicas run in.
        """
        self.context = context
        self.jobs = jobs
        self.studios: StudioService = jobs.studios
        self.lock = context.lock
        self.config = context.config
        self.scheduler = context.scheduler
        self.items: dict[str, Deployment] = {}
        self._names: dict[tuple[str, str], str] = {}
        seed = context.config.seed
        self._rng = random.Random(None if seed is None else f"deployments-{seed}")
        self.base_url = ""  # the simulator's URL, set once its server listens (for status.urls)
        # ``(project id, secret name) -> value or None``: what ``{"name", "fromSecret"}`` env entries get
        self.secret_value: Callable[[str, str], str | None] = lambda project_id, name: None
        self.drive: DriveService | None = None  # the /teamspace mount of commands and env values
        self.work_dir = context.work_dir
        self.runner = CommandRunner(self._on_line, self._on_exit, kill_grace=self.config.kill_grace)
        self._shim_dir = make_python_shim(self.work_dir / "bin")
        self._owners: dict[str, str] = {}  # replica job id -> deployment id, while its process runs

    # ------------------------------------------------------------ helpers

    def _new_id(self, prefix: str) -> str:
        """A fresh id such as ``dep_1a2b3c4d5e6f`` (never one of a job, replica or deployment).

        :param prefix: the id's prefix, separator included.
        """
        while True:
            candidate = f"{prefix}{self._rng.getrandbits(48):012x}"
            taken = candidate in self.items or candidate in self.jobs.records
            if not taken and self.replica_job(candidate) is None:
                return candidate

    def _get(self, project_id: str, deployment_id: str) -> Deployment:
        """The deployment, or a 404.

        :param project_id: the teamspace.
        :param deployment_id: the deployment's id.
        """
        self.context.require_project(project_id)
        dep = self.items.get(deployment_id)
        if dep is None or dep.project_id != project_id:
            raise not_found(f"deployment {deployment_id!r}")
        return dep

    def _event(self, dep: Deployment, kind: str, action: str, reason: str, message: str, job_id: str = "") -> None:
        """Record a ``V1DeploymentEvent``.

        :param dep: the deployment.
        :param kind: INFO or WARNING.
        :param action: what was done, such as ``Release``.
        :param reason: why, in one word, such as ``NewRelease``.
        :param message: the human-readable text.
        :param job_id: the replica concerned, if any.
        """
        dep.events.append(
            {
                "id": self._new_id("evt_"),
                "deploymentId": dep.id,
                "projectId": dep.project_id,
                "releaseId": dep.release_id,
                "jobId": job_id,
                "type": kind,
                "action": action,
                "reason": reason,
                "message": message,
                "timestamp": rfc3339(now_ns()),
            }
        )

    def _spec(self, project_id: str, raw: dict[str, Any]) -> dict[str, Any]:
        """A validated, normalised spec with the platform's defaults (cluster, machine) filled in.

        :param project_id: the teamspace.
        :param raw: the requested spec (camelCase).
        """
        spec = normalize_spec(raw)
        self.jobs.check_spec(project_id, spec, "deployments")
        if spec["cloudspaceId"] and spec["entrypoint"]:
            raise invalid("entrypoint is not allowed for deployments that run in a Studio environment")
        spec["readinessProbe"] = normalize_probe(spec["readinessProbe"])
        release_mode(spec)
        return spec

    @staticmethod
    def _desired_state(body: dict[str, Any], current: str, autoscaling: dict[str, Any]) -> str:
        """``desiredState`` after a create or update: ``maxReplicas`` 0 or a STOPPED request stops it.

        :param body: the request (camelCase).
        :param current: the state so far.
        :param autoscaling: the new autoscaling.
        """
        raw = as_str(body.get("desiredState")).strip()
        requested = normalize_state(raw) if raw else ""
        if int(autoscaling["maxReplicas"]) == 0 or requested in (DEP_STOPPED, DEP_SCALED_TO_0):
            return DEP_STOPPED
        return DEP_RUNNING if requested == DEP_RUNNING else current

    def _rename(self, dep: Deployment, name: str) -> None:
        """Give ``dep`` a new unique name (409 when another deployment has it).

        :param dep: the deployment.
        :param name: the wanted name.
        """
        owner = self._names.get((dep.project_id, name))
        if owner is not None and owner != dep.id:
            raise ApiError(GRPC_ALREADY_EXISTS, f"deployment with name {name!r} already exists")
        self._names.pop((dep.project_id, dep.name), None)
        dep.name = name
        self._names[(dep.project_id, name)] = dep.id

    # ------------------------------------------------------------- render

    def url(self, dep: Deployment) -> str:
        """The served endpoint's base URL.

        :param dep: the deployment.
        """
        return f"{self.base_url}/serve/{dep.id}"

    def render(self, dep: Deployment) -> dict[str, Any]:
        """The deployment as ``V1Deployment`` JSON.

        :param dep: the deployment.
        """
        urls = [self.url(dep)] if dep.served else []
        return {
            "id": dep.id,
            "name": dep.name,
            "projectId": dep.project_id,
            "userId": dep.user_id,
            "createdAt": rfc3339(dep.created_ns),
            "updatedAt": rfc3339(dep.updated_ns),
            "replicas": dep.replicas,
            "autoscaling": copy.deepcopy(dep.autoscaling),
            "endpoint": {**copy.deepcopy(dep.endpoint), "urls": list(urls)},
            "spec": copy.deepcopy(dep.spec),
            "strategy": copy.deepcopy(dep.strategy),
            "cloudspaceId": dep.spec["cloudspaceId"],
            "releaseId": dep.release_id,
            "desiredState": dep.desired_state,
            "currentState": dep.current_state,
            "status": self.render_status(dep),
            "totalCost": round(sum(job_cost(p.job) for p in dep.pods), 8),
            "Source": "",
            "acknowledgedWarnings": [],
            "byomSpec": None,
            "isPublished": False,
            "releaseNotes": dep.release_notes,
            "visibility": None,
            "weightVersion": "",
        }

    def render_status(self, dep: Deployment) -> dict[str, Any]:
        """``V1DeploymentStatus``.

        :param dep: the deployment.
        """
        return {
            **dep.counts(),
            "queuedReplicas": 0,
            "urls": [self.url(dep)] if dep.served else [],
            "message": dep.message(),
            "firstJobStateCurrentRelease": dep.first_job_state(dep.release_id),
            "requiresMaintenance": False,
            "requiresMaintenanceStartedAt": None,
        }

    def _render_release(self, dep: Deployment, release: Release) -> dict[str, Any]:
        """``V1DeploymentRelease``.

        :param dep: the deployment.
        :param release: one of its releases.
        """
        return {
            "id": release.id,
            "version": release.version,
            "replicas": release.replicas,
            "spec": copy.deepcopy(release.spec),
            "firstJobState": dep.first_job_state(release.id),
            "archived": False,
            "notes": "",
            "projectId": dep.project_id,
            "userId": dep.user_id,
            "createdAt": rfc3339(release.created_ns),
        }

    def _render_replica(self, dep: Deployment, pod: Replica) -> dict[str, Any]:
        """The replica as ``V1Job`` JSON.

        :param dep: its deployment.
        :param pod: the replica.
        """
        return {**self.jobs.render(pod.job), "deploymentId": dep.id, "releaseId": pod.release_id}

    # ----------------------------------------------------------- endpoints

    def create(self, project_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /deployments``: validate, store as PENDING with release 1 and start its replicas.

        :param project_id: the teamspace.
        :param body: ``JobsServiceCreateDeploymentBody``.
        """
        body = camelize(body)
        name = as_str(body.get("name")).strip()
        if not name:
            raise invalid("deployment name is required")
        raw_spec = dict(_object(body.get("spec"), "spec"))
        for key in ("cloudspaceId", "clusterId"):  # top-level copies of spec fields
            raw_spec[key] = raw_spec.get(key) or as_str(body.get(key))
        endpoint = normalize_endpoint(body.get("endpoint"))
        replicas = _non_negative(body.get("replicas"), "replicas", 1)
        autoscaling = normalize_autoscaling(body.get("autoscaling"), replicas)
        strategy = normalize_strategy(body.get("strategy"))
        with self.lock:
            spec = self._spec(project_id, raw_spec)
            if (project_id, name) in self._names:
                raise ApiError(GRPC_ALREADY_EXISTS, f"deployment with name {name!r} already exists")
            now = now_ns()
            dep = Deployment(
                id=self._new_id("dep_"),
                name=name,
                project_id=project_id,
                user_id=self.context.identity.user_id,
                created_ns=now,
                updated_ns=now,
                spec=spec,
                replicas=replicas,
                autoscaling=autoscaling,
                endpoint=endpoint,
                strategy=strategy,
                release_notes=as_str(body.get("releaseNotes")),
            )
            dep.desired_state = self._desired_state(body, DEP_RUNNING, autoscaling)
            if "replicas" not in body:
                dep.replicas = dep.target()
            self.items[dep.id] = dep
            self._names[(project_id, name)] = dep.id
            self._new_release(dep, [])
            message = f"deployment created: release 1 with {dep.target()} replica(s)"
            self._event(dep, EVENT_INFO, "Create", "Created", message)
            self._reconcile(dep)
            return self.render(dep)

    def get(self, project_id: str, deployment_id: str) -> dict[str, Any]:
        """``GET /deployments/{id}``.

        :param project_id: the teamspace.
        :param deployment_id: the deployment's id.
        """
        with self.lock:
            return self.render(self._get(project_id, deployment_id))

    def get_by_name(self, project_id: str, name: str) -> dict[str, Any]:
        """``GET /deployments/{name}/getbyname``: 404 when no deployment has that name.

        :param project_id: the teamspace.
        :param name: the deployment's name.
        """
        with self.lock:
            self.context.require_project(project_id)
            deployment_id = self._names.get((project_id, name))
            if deployment_id is None:
                raise not_found(f"deployment with name {name!r}")
            return self.render(self.items[deployment_id])

    def list_deployments(self, project_id: str, query: dict[str, list[str]]) -> dict[str, Any]:
        """``GET /deployments``: newest first (``sortOrder=asc`` reverses), ``limit``/``pageToken`` paging.

        :param project_id: the teamspace.
        :param query: the query parameters (``cloudspaceId``, ``userIds``, ...).
        """
        first = functools.partial(first_value, query)
        as_bool(first("standalone"))  # validated only
        cloudspace_id = first("cloudspaceId")
        user_ids = {u for u in query.get("userIds", []) if u}
        limit = as_int(first("limit"), 0) or 100
        if limit < 0:
            raise invalid("limit must be positive")
        offset = parse_page_token(first("pageToken"))
        with self.lock:
            self.context.require_project(project_id)
            deps = [
                d
                for d in self.items.values()
                if d.project_id == project_id
                and (not cloudspace_id or d.spec["cloudspaceId"] == cloudspace_id)
                and (not user_ids or d.user_id in user_ids)
            ]
            if first("sortOrder").lower() not in ("asc", "ascending", "sort_order_asc"):
                deps.reverse()
            more = offset + limit < len(deps)
            return {
                "deployments": [self.render(d) for d in deps[offset : offset + limit]],
                "nextPageToken": page_token(offset + limit) if more else "",
                "previousPageToken": "",
            }

    def update(self, project_id: str, deployment_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """``PUT /deployments/{id}``: apply the fields present (a changed release field makes a new release).

        :param project_id: the teamspace.
        :param deployment_id: the deployment's id.
        :param body: the (full or partial) deployment.
        """
        body = camelize(body)
        with self.lock:
            dep = self._get(project_id, deployment_id)
            spec = dep.spec
            if body.get("spec") is not None:
                spec = self._spec(project_id, {**dep.spec, **_object(body["spec"], "spec")})
            replicas = dep.replicas
            if body.get("replicas") is not None:
                replicas = _non_negative(body["replicas"], "replicas")
            autoscaling = dep.autoscaling
            if body.get("autoscaling") is not None:
                merged = {**dep.autoscaling, **_object(body["autoscaling"], "autoscaling")}
                autoscaling = normalize_autoscaling(merged, dep.replicas)
            endpoint = dep.endpoint
            if body.get("endpoint") is not None:
                endpoint = normalize_endpoint({**dep.endpoint, **_object(body["endpoint"], "endpoint")})
            strategy = dep.strategy if body.get("strategy") is None else normalize_strategy(body["strategy"])
            desired = self._desired_state(body, dep.desired_state, autoscaling)
            name = as_str(body.get("name")).strip()
            if name and name != dep.name:
                self._rename(dep, name)
            if body.get("releaseNotes") is not None:
                dep.release_notes = as_str(body["releaseNotes"])
            changed = [key for key in RELEASE_FIELDS if spec[key] != dep.spec[key]]
            before = dep.target()
            dep.spec, dep.replicas, dep.autoscaling = spec, replicas, autoscaling
            dep.endpoint, dep.strategy, dep.desired_state = endpoint, strategy, desired
            if dep.replicas == 0:
                dep.replicas = dep.target()  # started again through autoscaling
            if changed:
                self._new_release(dep, changed)
            self._note_target(dep, before)
            self._reconcile(dep)
            return self.render(dep)

    def delete(self, project_id: str, deployment_id: str) -> dict[str, Any]:
        """``DELETE /deployments/{id}``: forget the deployment and its replicas.

        :param project_id: the teamspace.
        :param deployment_id: the deployment's id.
        """
        with self.lock:
            dep = self._get(project_id, deployment_id)
            del self.items[dep.id]
            self._names.pop((project_id, dep.name), None)
            self.context.changed()
            job_ids = [p.job.id for p in dep.pods]
        for job_id in job_ids:  # gone at once, like the deployment
            self.runner.terminate(job_id, "deleted", grace=0)
            shutil.rmtree(self._scratch(job_id), ignore_errors=True)
        return {}

    def status(self, project_id: str, deployment_id: str) -> dict[str, Any]:
        """``GET /deployments/{id}/status``.

        :param project_id: the teamspace.
        :param deployment_id: the deployment's id.
        """
        with self.lock:
            return self.render_status(self._get(project_id, deployment_id))

    def events(self, project_id: str, deployment_id: str, query: dict[str, list[str]]) -> dict[str, Any]:
        """``GET /deployments/{id}/events``: oldest first; ``releaseId`` filters, ``limit`` keeps the newest N.

        :param project_id: the teamspace.
        :param deployment_id: the deployment's id.
        :param query: the query parameters.
        """
        release_id = first_value(query, "releaseId")
        limit = as_int(first_value(query, "limit"), 0)
        if limit < 0:
            raise invalid("limit must be positive")
        with self.lock:
            dep = self._get(project_id, deployment_id)
            events = [dict(e) for e in dep.events if not release_id or e["releaseId"] == release_id]
        return {"events": events[-limit:] if limit else events}

    def list_releases(self, project_id: str, deployment_id: str) -> dict[str, Any]:
        """``GET /deployments/{id}/releases``: newest first.

        :param project_id: the teamspace.
        :param deployment_id: the deployment's id.
        """
        with self.lock:
            dep = self._get(project_id, deployment_id)
            return {"releases": [self._render_release(dep, r) for r in reversed(dep.releases)]}

    def list_replicas(self, project_id: str, deployment_id: str, states: set[str]) -> dict[str, Any]:
        """``GET /jobs?deploymentId=``: the replica jobs, newest first (no paging).

        :param project_id: the teamspace.
        :param deployment_id: the deployment's id.
        :param states: keep only these (empty: all).
        """
        with self.lock:
            dep = self._get(project_id, deployment_id)
            pods = [p for p in reversed(dep.pods) if not states or p.job.state in states]
            return {"jobs": [self._render_replica(dep, p) for p in pods], "nextPageToken": "", "previousPageToken": ""}

    def log_buffers(self, project_id: str, deployment_id: str, job_ids: list[str]) -> list[LogBuffer]:
        """The log buffers behind ``GET /page-logs?deploymentId=`` (under the lock).

        :param project_id: the teamspace.
        :param deployment_id: the deployment's id.
        :param job_ids: keep only these replicas (empty: all).
        """
        dep = self._get(project_id, deployment_id)
        return [p.job.logs for p in dep.pods if not job_ids or p.job.id in job_ids]

    def replica_job(self, job_id: str) -> Job | None:
        """The job of a replica of any deployment, or ``None`` (under the lock).

        :param job_id: the replica's job id.
        """
        return next((p.job for d in self.items.values() for p in d.pods if p.job.id == job_id), None)

    def serve(
        self, deployment_id: str, req: ServedRequest, check_user: Callable[[str | None], None]
    ) -> dict[str, Any] | Upstream:
        """The served endpoint ``/serve/{id}/{path}``: the answer of the newest ready replica's process, or, when it
        runs none, ``GET /health`` or a JSON echo of the request.

        :param deployment_id: the deployment's id.
        :param req: the HTTP request (``path`` parameter = the rest of the path).
        :param check_user: validates the simulator's own credentials, for ``endpoint.auth.userApiKey``.
        """
        with self.lock:
            dep = self.items.get(deployment_id)
            if dep is None:
                raise not_found(f"deployment {deployment_id!r}")
            check_endpoint_auth(dep.endpoint["auth"], req.authorization, check_user)
            ready = [p for p in dep.pods if p.job.state == "running"]
            if not ready:
                state = dep.current_state.removeprefix(STATE_PREFIX)
                raise ApiError(GRPC_UNAVAILABLE, f"unavailable: deployment {dep.name!r} has no ready replica ({state})")
            pod = max(ready, key=lambda p: (dep.release(p.release_id).version, p.job.created_ns))
            if pod.port is None or self.runner.get(pod.job.id) is None:
                return self._echo(dep, dep.release(pod.release_id), req)
            port, where = pod.port, f"replica {pod.index} of deployment {dep.name!r}"
            headers = request_headers(req.headers)
            if req.authorization and not dep.endpoint["auth"]["enabled"]:
                headers["Authorization"] = req.authorization  # the platform checked nothing: it is the server's
        prefix = f"/serve/{deployment_id}"
        rest = req.path[len(prefix) :] if req.path.startswith(prefix) else quote(req.params["path"])
        target = "/" + rest.lstrip("/") + (f"?{req.raw_query}" if req.raw_query else "")
        try:
            return proxy(port, req.method, target, headers, req.raw_body, PROXY_TIMEOUT)
        except ProxyError as exc:
            kind = "gateway timeout" if exc.status == 504 else "bad gateway"
            message = f"{kind}: {where} did not answer on its port: {exc.message}"
            raise ApiError(GRPC_UNAVAILABLE, message, status=exc.status) from None

    @staticmethod
    def _echo(dep: Deployment, release: Release, req: ServedRequest) -> dict[str, Any]:
        """What a replica without a process answers: ``GET /health`` or a JSON echo of the request.

        :param dep: the deployment.
        :param release: the release of the replica that answers.
        :param req: the HTTP request.
        """
        path = "/" + req.params["path"]
        if req.method == "GET" and path.rstrip("/") == "/health":
            return {"status": "ok"}
        return {
            "deployment": dep.name,
            "deploymentId": dep.id,
            "release": release.version,
            "image": release.spec["image"],
            "method": req.method,
            "path": path,
            "query": {k: v[0] if len(v) == 1 else v for k, v in parse_qs(req.raw_query, True).items()},
            "body": _payload(req.raw_body),
        }

    # ---------------------------------------------------------- lifecycle

    def _new_release(self, dep: Deployment, changed: list[str]) -> None:
        """Snapshot the spec as the next release and make it current (its replicas start on reconcile).

        :param dep: the deployment.
        :param changed: the release fields that changed (empty for the first release: the create event tells).
        """
        release = Release(
            id=self._new_id("rel_"),
            version=len(dep.releases) + 1,
            spec=copy.deepcopy(dep.spec),
            replicas=dep.target(),
            created_ns=now_ns(),
        )
        dep.releases.append(release)
        dep.release_id = release.id
        if changed:
            message = f"release {release.version} created: {', '.join(changed)} changed"
            self._event(dep, EVENT_INFO, "Release", "NewRelease", message)

    def _note_target(self, dep: Deployment, before: int) -> None:
        """Record a start, stop or scale event when the replica count changed.

        :param dep: the deployment.
        :param before: the replica count before the update.
        """
        after = dep.target()
        if after == before:
            return
        if after == 0:
            self._event(dep, EVENT_INFO, "Stop", "StopRequested", f"stopping: draining {before} replica(s)")
        elif before == 0:
            self._event(dep, EVENT_INFO, "Start", "StartRequested", f"starting {after} replica(s)")
        else:
            self._event(dep, EVENT_INFO, "Scale", "ReplicasChanged", f"scaling from {before} to {after} replica(s)")

    def _reconcile(self, dep: Deployment) -> None:
        """Bring the replicas in line with the target count and the current release (under the lock).

        :param dep: the deployment.
        """
        target = dep.target()
        if target == 0:
            for pod in dep.live():
                self._drain(dep, pod, "the deployment was stopped")
        else:
            self._scale(dep, dep.live(dep.release_id), target)
            ready = [p for p in dep.live(dep.release_id) if p.job.state == "running"]
            old = [p for p in dep.live() if p.release_id != dep.release_id]
            if len(ready) >= target and old:
                version = dep.release(dep.release_id).version
                message = f"release {version} is ready; draining older replicas"
                self._event(dep, EVENT_INFO, "Rollout", "ReleaseReady", message)
                for pod in old:
                    self._drain(dep, pod, f"replaced by release {version}")
        self._settle(dep)

    def _scale(self, dep: Deployment, current: list[Replica], target: int) -> None:
        """Start or drain replicas of the current release until ``target`` occupy a slot.

        :param dep: the deployment.
        :param current: its live replicas of the current release.
        :param target: the wanted count.
        """
        used = {p.index for p in current}
        free = (i for i in range(target + len(current)) if i not in used)
        for index in [next(free) for _ in range(target - len(current))]:
            self._add_replica(dep, index)
        surplus = sorted(current, key=lambda p: (p.job.state == "running", -p.index))[: max(0, len(current) - target)]
        for pod in surplus:
            self._drain(dep, pod, "scaled down")

    def _settle(self, dep: Deployment) -> None:
        """Update ``currentState`` (with an event), ``replicas`` after a stop, and mark the change.

        :param dep: the deployment.
        """
        state = dep.derive_state()
        if state in (DEP_STOPPED, DEP_SCALED_TO_0):
            dep.replicas = 0
        if state != dep.current_state:
            kind = EVENT_WARNING if state == DEP_FAILED else EVENT_INFO
            short = state.removeprefix(STATE_PREFIX)
            detail = f": {dep.counts()['readyReplicas']}/{dep.target()} replica(s) ready" if dep.target() else ""
            self._event(dep, kind, "StateChanged", short, f"deployment is {short}{detail}")
            dep.current_state = state
        dep.updated_ns = now_ns()
        self.context.changed()

    def _add_replica(self, dep: Deployment, index: int) -> None:
        """Start a pending replica of the current release; it comes up after ``pending_seconds``.

        :param dep: the deployment.
        :param index: the replica's number within the release.
        """
        release = dep.release(dep.release_id)
        job_id = self._new_id("job-")
        now = now_ns()
        spec = copy.deepcopy(release.spec)
        job = Job(
            id=job_id,
            seq=0,
            name=f"{dep.name}-r{release.version}-{index}",
            project_id=dep.project_id,
            user_id=dep.user_id,
            spec=spec,
            tag_ids=[],
            logs=LogBuffer(job_id, self.config.max_log_lines),
            created_ns=now,
            updated_ns=now,
        )
        pod = Replica(job, release.id, index)
        dep.pods.append(pod)
        pod.log(f"of release {release.version} scheduled on {spec['instanceName']} in {spec['clusterId']}")
        pod.log(f"pulling image {spec['image']}" if spec["image"] else f"copying Studio {spec['cloudspaceId']}")
        self.scheduler.call_later(self.config.pending_seconds, self._replica_up, dep.id, job_id)

    def _find(self, deployment_id: str, job_id: str) -> tuple[Deployment, Replica] | None:
        """A deployment and one of its replicas, or ``None`` once either is gone.

        :param deployment_id: the deployment's id.
        :param job_id: the replica's job id.
        """
        dep = self.items.get(deployment_id)
        pod = next((p for p in dep.pods if p.job.id == job_id), None) if dep else None
        return (dep, pod) if dep and pod else None

    def _replica_up(self, deployment_id: str, job_id: str) -> None:
        """Scheduler callback: a pending replica becomes ready, fails or starts crash-looping.

        :param deployment_id: the deployment's id.
        :param job_id: the replica's job id.
        """
        with self.lock:
            found = self._find(deployment_id, job_id)
            if found is None or found[1].job.state != "pending":
                return
            dep, pod = found
            spec = dep.release(pod.release_id).spec
            runtime = self._runtime(dep.project_id, spec)
            if isinstance(runtime, str):
                self._fail(dep, pod, f"replica {pod.index} failed: {runtime}", "SecretNotFound")
                self._reconcile(dep)
                return
            pod.env, pod.command = runtime
            mode = release_mode(spec)
            check = _health_check(spec, dep.endpoint["ports"])
            command = " ".join(part for part in (spec["entrypoint"], spec["command"]) if part)
            argv = self._argv(dep.project_id, spec)
            if argv is not None and self._runs_process(dep, spec):
                self._launch(dep, pod, spec, argv)
                self._reconcile(dep)
                return
            pod.log(f"container started: {command}" if command else "container started")
            if mode == "fail":
                self._fail(dep, pod, f"replica {pod.index} failed: {check} failed")
            elif mode == "crashloop":
                self._crash(dep, pod)
            else:
                self._ready(dep, pod, check)
            self._reconcile(dep)

    def _runs_process(self, dep: Deployment, spec: dict[str, Any]) -> bool:
        """True when a replica of this release runs its command (it has one, and no failure knob is set).

        :param dep: the deployment.
        :param spec: the release's spec.
        """
        if not self.config.deployment_commands or release_mode(spec):
            return False
        return self._argv(dep.project_id, spec) is not None

    def _argv(self, project_id: str, spec: dict[str, Any]) -> list[str] | None:
        """The argv a replica's container runs, as for image and Studio jobs (``None``: it has no command).

        :param project_id: the teamspace.
        :param spec: the release's spec.
        """
        teamspace = str(self.drive.teamspace_dir(project_id)) if self.drive is not None else ""

        def mount(text: str) -> str:
            return mount_teamspace(text, teamspace) if teamspace else text

        if spec["cloudspaceId"]:
            return studio_job_argv(mount(spec["command"])) if spec["command"].strip() else None
        return image_job_argv(mount(spec["entrypoint"]), mount(spec["command"]))

    def _scratch(self, job_id: str) -> Path:
        """The working folder of a replica's process.

        :param job_id: the replica's job id.
        """
        return self.work_dir / "replicas" / job_id

    def _launch(self, dep: Deployment, pod: Replica, spec: dict[str, Any], argv: list[str]) -> None:
        """Start a replica's command on a free ``PORT`` and probe it until it is ready (under the lock).

        :param dep: the deployment.
        :param pod: the replica, pending, with its environment resolved.
        :param spec: the release's spec.
        :param argv: what to run.
        """
        job_id = pod.job.id
        scratch = self._scratch(job_id)
        try:
            shutil.rmtree(scratch, ignore_errors=True)
            source = self.studios.studio_dir(spec["cloudspaceId"]) if spec["cloudspaceId"] else None
            if source is not None and source.is_dir():
                shutil.copytree(source, scratch, symlinks=True)
            else:
                scratch.mkdir(parents=True, exist_ok=True)
            port = free_port()
            env = job_environment({**(pod.env or {}), "PORT": str(port)}, self._shim_dir)
            handle = self.runner.start(job_id, argv, scratch, env)
        except OSError as exc:
            self._fail(dep, pod, f"replica {pod.index} failed: could not start the command: {exc}", "ContainerFailed")
            return
        self._owners[job_id] = dep.id
        pod.port, pod.pid, pod.probe_note = port, handle.pid, ""
        pod.tail.clear()
        container_port = dep.endpoint["ports"][0]
        pod.log(f"container started (pid {handle.pid}, PORT={port} for port {container_port}): {pod.command}")
        probe = (spec["readinessProbe"] or {}).get("httpGet")
        if probe:  # its port is a container port too: the process has one, PORT
            request = f"{probe['method'] or 'GET'} {probe['path'] or '/'}"
            what = f"health check {request} on port {probe['port'] or container_port}"
        else:
            what = f"connection check on port {container_port}"
        threading.Thread(
            target=self._await_ready,
            args=(dep.id, job_id, handle, port, probe, f"{what} (PORT={port})"),
            name=f"sim-ready-{job_id}",
            daemon=True,
        ).start()

    def _await_ready(
        self, deployment_id: str, job_id: str, handle: RunHandle, port: int, probe: dict[str, Any] | None, what: str
    ) -> None:
        """Readiness thread: poll the process until it serves (ready), exits (see :meth:`_on_exit`) or times out.

        :param deployment_id: the deployment's id.
        :param job_id: the replica's job id.
        :param handle: the replica's process.
        :param port: its ``PORT``.
        :param probe: the spec's ``readinessProbe.httpGet`` (``None``: a TCP connection is enough).
        :param what: the check, for log lines and messages.
        """
        deadline = time.monotonic() + self.config.deployment_ready_timeout
        while handle.process.poll() is None and not handle.done.is_set():
            note = ""
            if not accepts_connections(port):
                note = f"{what}: no connection"
            elif probe is not None:
                path = probe["path"] or "/"
                status = http_probe(port, path, probe["method"] or "GET", probe["body"])
                if status is None or not 200 <= status < 300:
                    note = f"{what}: " + (f"answered {status}" if status is not None else "no answer")
            with self.lock:
                found = self._find(deployment_id, job_id)
                if found is None or found[1].job.state != "pending":
                    return  # drained or deleted meanwhile: its process is being killed
                dep, pod = found
                if not note and handle.process.poll() is None:
                    self._ready(dep, pod, what)
                    self._reconcile(dep)
                    return
                pod.probe_note = note
            if time.monotonic() >= deadline:
                self.runner.terminate(job_id, "unready", grace=0)  # the exit fails the replica
                return
            handle.done.wait(READY_POLL_SECONDS)

    def _on_line(self, job_id: str, text: str) -> None:
        """A line of a replica's output: one log line of the replica.

        :param job_id: the replica's job id.
        :param text: the line.
        """
        with self.lock:
            found = self._find(self._owners.get(job_id, ""), job_id)
            if found is not None:
                found[1].job.logs.append(text, now_ns())
                found[1].tail.append(text[:500])
                self.context.changed()

    def _on_exit(self, job_id: str, code: int, reason: str | None) -> None:
        """A replica's process ended: a starting or ready replica fails; a draining one only notes it.

        :param job_id: the replica's job id.
        :param code: the return code (negative: killed by that signal).
        :param reason: why the simulator killed it (``stop``, ``deleted``, ``unready``, ``shutdown``), if it did.
        """
        with self.lock:
            found = self._find(self._owners.pop(job_id, ""), job_id)
            if found is None:
                return
            dep, pod = found
            pod.job.exit_code = code
            pod.pid = None
            state, how = pod.job.state, exit_text(code)
            output = "; last output:\n" + "\n".join(pod.tail) if pod.tail else "; it printed nothing"
            if reason == "shutdown":
                pod.log(f"container {how}: the simulator shut down")
            elif state == "pending" and reason == "unready":
                timeout = self.config.deployment_ready_timeout
                message = (
                    f"replica {pod.index} failed: not ready after {timeout:g} s ({pod.probe_note or 'no answer'}); "
                    f"the container was killed and {how}{output}"
                )
                self._fail(dep, pod, message, "ReadinessTimeout")
            elif state == "pending" and reason is None:
                message = f"replica {pod.index} failed: the container {how} before it was ready{output}"
                self._fail(dep, pod, message, "ContainerExited")
            elif state == "running" and reason is None:
                self._fail(dep, pod, f"replica {pod.index} failed: the container {how}{output}", "ContainerExited")
            else:
                pod.log(f"container {how}")
                pod.job.updated_ns = now_ns()
            self._reconcile(dep)

    def _ready(self, dep: Deployment, pod: Replica, check: str) -> None:
        """Mark a replica ready (serving).

        :param dep: the deployment.
        :param pod: the replica.
        :param check: the health check description.
        """
        job = pod.job
        job.state = "running"
        job.started_ns = job.updated_ns = now_ns()
        for port in dep.endpoint["ports"]:
            pod.log(f"serving on port {port}")
        pod.log(f"{check} passed: ready")
        dep.served = True
        self._event(dep, EVENT_INFO, "ReplicaReady", "Ready", f"replica {pod.index} is ready", job.id)

    def _runtime(self, project_id: str, spec: dict[str, Any]) -> tuple[dict[str, str], str] | str:
        """A replica's environment and command, or why it cannot start (a missing secret).

        :param project_id: the teamspace.
        :param spec: the release's spec.
        """
        env: dict[str, str] = {}
        teamspace = str(self.drive.teamspace_dir(project_id)) if self.drive is not None else ""

        def mount(text: str) -> str:
            return mount_teamspace(text, teamspace) if teamspace else text

        for item in spec["env"]:
            secret = item.get("fromSecret", "")
            if not secret:
                env[item["name"]] = mount(item["value"])
                continue
            value = self.secret_value(project_id, secret)
            if value is None:
                return (
                    f"environment variable {item['name']!r} references secret {secret!r}, "
                    "which does not exist in this teamspace"
                )
            env[item["name"]] = value
        if teamspace:
            env["LIGHTNING_TEAMSPACE_DIR"] = teamspace
        command = " ".join(mount(part) for part in (spec["entrypoint"], spec["command"]) if part)
        return env, command

    def replica_runtime(self, id_or_name: str) -> dict[str, Any] | None:
        """Python API: ``{jobId, release, command, env, pid, port}`` of the newest ready replica, ``None`` when none is
        ready.

        ``env`` holds the resolved secret values: it is never sent over HTTP. ``pid`` (its process group id) and
        ``port`` (its ``PORT``) are ``None`` when it runs no process.

        :param id_or_name: the deployment's id or name.
        """
        with self.lock:
            dep = self.items.get(id_or_name) or next((d for d in self.items.values() if d.name == id_or_name), None)
            if dep is None:
                raise KeyError(id_or_name)
            ready = [p for p in dep.pods if p.job.state == "running"]
            if not ready:
                return None
            pod = max(ready, key=lambda p: (dep.release(p.release_id).version, p.job.created_ns))
            if pod.env is None:  # restored from the state file: resolved again
                runtime = self._runtime(dep.project_id, dep.release(pod.release_id).spec)
                if isinstance(runtime, str):
                    return None
                pod.env, pod.command = runtime
            return {
                "jobId": pod.job.id,
                "release": dep.release(pod.release_id).version,
                "command": pod.command,
                "env": dict(pod.env),
                "pid": pod.pid,
                "port": pod.port,
            }

    def _fail(self, dep: Deployment, pod: Replica, message: str, reason: str = "HealthCheckFailed") -> None:
        """Mark a replica failed.

        :param dep: the deployment.
        :param pod: the replica.
        :param message: why (becomes ``status.message``).
        :param reason: the event's one-word reason.
        """
        job = pod.job
        job.state = "failed"
        job.message = job.server_error = message
        job.stopped_ns = job.updated_ns = now_ns()
        job.started_ns = job.started_ns or job.stopped_ns
        pod.log(f"error: {message}")
        self._event(dep, EVENT_WARNING, "ReplicaFailed", reason, message, job.id)

    def _crash(self, dep: Deployment, pod: Replica) -> None:
        """Make a replica crash-loop for ever (it stays pending and counts as failing).

        :param dep: the deployment.
        :param pod: the replica.
        """
        job = pod.job
        pod.crash_loop = True
        job.message = f"replica {pod.index} is crash-looping: the container exited with code 1"
        job.updated_ns = now_ns()
        pod.log("error: the container exited with code 1")
        pod.log("back-off restarting failed container (CrashLoopBackOff)")
        self._event(dep, EVENT_WARNING, "ReplicaFailing", "CrashLoopBackOff", job.message, job.id)

    def _drain(self, dep: Deployment, pod: Replica, reason: str) -> None:
        """Start stopping a replica; it is gone after ``stop_seconds``.

        :param dep: the deployment.
        :param pod: the replica.
        :param reason: why (kept as the job's message unless it failed).
        """
        job = pod.job
        job.message = job.message or f"replica stopped: {reason}"
        job.state = "stopping"
        job.updated_ns = now_ns()
        pod.log(f"stopping: {reason}")
        self.runner.terminate(job.id, "stop")  # SIGTERM its process group, SIGKILL after kill_grace
        self.scheduler.call_later(self.config.stop_seconds, self._replica_gone, dep.id, job.id)

    def _replica_gone(self, deployment_id: str, job_id: str) -> None:
        """Scheduler callback: a stopping replica has stopped.

        :param deployment_id: the deployment's id.
        :param job_id: the replica's job id.
        """
        with self.lock:
            found = self._find(deployment_id, job_id)
            if found is None or found[1].job.state != "stopping":
                return
            if self.runner.get(job_id) is not None:  # its process is still being killed
                self.scheduler.call_later(READY_POLL_SECONDS / 2, self._replica_gone, deployment_id, job_id)
                return
            dep, pod = found
            pod.job.state = "stopped"
            pod.job.stopped_ns = pod.job.stopped_ns or now_ns()
            pod.job.updated_ns = now_ns()
            pod.log("stopped")
            self._reconcile(dep)

    # ------------------------------------------------- python API, state file

    def all_deployments(self) -> list[dict[str, Any]]:
        """Every deployment, newest first, as ``V1Deployment`` JSON."""
        with self.lock:
            return [self.render(d) for d in reversed(list(self.items.values()))]

    def find(self, id_or_name: str) -> dict[str, Any] | None:
        """One deployment by id or name as ``V1Deployment`` JSON, or ``None``.

        :param id_or_name: the deployment's id or name.
        """
        with self.lock:
            dep = self.items.get(id_or_name) or next((d for d in self.items.values() if d.name == id_or_name), None)
            return self.render(dep) if dep is not None else None

    def to_state(self) -> list[dict[str, Any]]:
        """Every deployment in the state file's form (under the lock)."""
        return [d.to_state() for d in self.items.values()]

    def load_state(self, saved: list[dict[str, Any]]) -> None:
        """Restore saved deployments and re-arm the timers of pending and stopping replicas.

        :param saved: what :meth:`to_state` returned.
        """
        with self.lock:
            for raw in saved:
                dep = Deployment.from_state(raw, self.config.max_log_lines)
                self.items[dep.id] = dep
                self._names[(dep.project_id, dep.name)] = dep.id
                for pod in dep.pods:
                    if pod.job.state == "running" and self._runs_process(dep, dep.release(pod.release_id).spec):
                        pod.job.state = "pending"  # its process did not survive the restart: started again
                        pod.log("the simulator restarted: starting the container again")
                    if pod.job.state == "pending" and not pod.crash_loop:
                        self.scheduler.call_later(self.config.pending_seconds, self._replica_up, dep.id, pod.job.id)
                    elif pod.job.state == "stopping":
                        self.scheduler.call_later(self.config.stop_seconds, self._replica_gone, dep.id, pod.job.id)

    def shutdown(self) -> None:
        """Kill every replica's process group (the replicas keep their state, for the state file)."""
        self.runner.kill_all()
