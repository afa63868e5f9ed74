"""Lightning deployments: the spec model, its validation, the readiness rule and the upsert flow.

A deployment is upserted by name: created when missing, updated with a full-object ``PUT`` (as the SDK
does) only when a field this spec sets differs from the server's, and left alone otherwise, so running
the same spec twice creates no release. Stopping is scaling to zero the SDK way.

Ownership survives the process that created a deployment: an upsert given an ``owner`` key writes it into
the new deployment's ``releaseNotes`` (a ``V1Deployment`` field the official client sends and the server
keeps), so a later upsert with the same key (a retry after a worker died) knows it created the deployment.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from airflow_provider_lightning.api import wire
from airflow_provider_lightning.api.jobs import validate_env
from airflow_provider_lightning.api.machines import resolve_machine
from airflow_provider_lightning.api.names import validate_name
from airflow_provider_lightning.api.phases import Phase
from airflow_provider_lightning.api.resources import Finder, ListPage, LogSource, ResourceKind, Sweep, list_call
from airflow_provider_lightning.api.state import ResourceState
from airflow_provider_lightning.api.transport import ApiCall, Flow

METRICS = ("CPU", "GPU", "RPM")
STATE_PREFIX = "DEPLOYMENT_STATE_"
RUNNING_STATE = STATE_PREFIX + "RUNNING"
_STOPPED_STATES = {"STOPPED", "DELETED", "BALANCE_STOPPED", "FROZEN", "SHADOW_BANNED"}
_AUTOSCALE_KEYS = {"min_replicas", "max_replicas", "metric", "threshold"}
_PROBE_TIMINGS = ("failure_threshold", "initial_delay_seconds", "interval_seconds", "timeout_seconds")
_ROLLING_KEYS = {"max_surge", "max_unavailable"}
_OWNER_MARK = re.compile(r"\[airflow-owner:([0-9a-f]{8,64})\]")


# -- reading -----------------------------------------------------------------------------------


def _count(obj: Any, name: str) -> int:
    value = wire.number(obj, name)
    return int(value) if value is not None else 0


def desired_replicas(data: dict[str, Any]) -> int:
    """How many ready replicas make the deployment ready: ``replicas``, at least ``minReplicas``, at least 1."""
    autoscaling = wire.field(data, "autoscaling", {})
    return max(1, _count(data, "replicas"), _count(autoscaling, "min_replicas"))


def is_scaled_to_zero(data: dict[str, Any]) -> bool:
    """The SDK's ``is_stopped``: ``autoscaling.maxReplicas == 0``."""
    autoscaling = wire.field(data, "autoscaling", {})
    return wire.number(autoscaling, "max_replicas") == 0


def deployment_phase(data: dict[str, Any]) -> tuple[Phase, bool]:
    """The phase of a ``V1Deployment`` and whether replicas are failing (reference 8.5, readiness rule).

    RUNNING means ready: ``status.urls`` is non-empty, ready replicas reach the desired count and the
    current release's first replica runs. FAILED is the server's ``DEPLOYMENT_STATE_FAILED``. A deployment
    scaled to zero is STOPPING until no replica is left, then STOPPED.
    """
    status = wire.field(data, "status", {})
    state = wire.text(data, "current_state").upper().removeprefix(STATE_PREFIX)
    ready, failing = _count(status, "ready_replicas"), _count(status, "failing_replicas")
    if state == "FAILED":
        return Phase.FAILED, failing > 0
    if is_scaled_to_zero(data) or state in _STOPPED_STATES:
        left = ready + _count(status, "pending_replicas") + _count(status, "deleting_replicas")
        return (Phase.STOPPED if left == 0 and _count(data, "replicas") == 0 else Phase.STOPPING), False
    urls = wire.field(status, "urls", [])
    release = wire.text(status, "first_job_state_current_release").lower()
    if urls and ready >= desired_replicas(data) and release in ("", "running"):
        return Phase.RUNNING, False
    if urls and state == "SCALED_TO_0":  # idle with min 0: serves again on the next request
        return Phase.RUNNING, False
    return Phase.PENDING, failing > 0 and ready == 0


def read_deployment(data: Any) -> ResourceState:
    """Read a ``V1Deployment`` (camelCase or snake_case)."""
    if not isinstance(data, dict) or not wire.text(data, "id"):
        raise ValueError("a deployment has no id")
    phase, failing = deployment_phase(data)
    status = wire.field(data, "status", {})
    urls = wire.field(status, "urls", [])
    return ResourceState(
        kind="deployment",
        id=wire.text(data, "id"),
        name=wire.text(data, "name"),
        phase=phase,
        raw_state=wire.text(data, "current_state") or wire.text(status, "first_job_state_current_release"),
        message=wire.text(status, "message"),
        created_at=wire.timestamp(data, "created_at"),
        total_cost=wire.number(data, "total_cost"),
        cloudspace_id=wire.text(data, "cloudspace_id"),
        failing=failing,
        detail={"urls": [u for u in urls if isinstance(u, str)] if isinstance(urls, list) else [],
                "release_id": wire.text(data, "release_id")},
        raw=data,
    )


def urls_of(state: ResourceState) -> list[str]:
    """The deployment's public base URLs (``status.urls``)."""
    return list(state.detail.get("urls") or [])


def release_of(state: ResourceState) -> str:
    return str(state.detail.get("release_id") or "")


def _scale_to_zero(kind: ResourceKind, project_id: str, deployment_id: str) -> Flow[ResourceState]:
    """Flow: read the deployment and ``PUT`` it back with ``minReplicas = maxReplicas = 0`` (the SDK's stop)."""
    current = yield kind.get(project_id, deployment_id)
    if is_scaled_to_zero(current.raw):
        return current  # type: ignore[no-any-return]
    body = copy.deepcopy(current.raw)
    autoscaling = body.setdefault("autoscaling", {})
    autoscaling.update(minReplicas="0", maxReplicas="0")
    return (yield ApiCall("PUT", kind.path(project_id, deployment_id), json=body, parse=read_deployment))


def deployment_page(project_id: str, token: str, size: int) -> ApiCall[ListPage]:
    """One page of the teamspace's deployments (``limit``/``pageToken``; the server's order, newest first) for
    the shared poller, each entry read as ``GET /deployments/{id}`` reads it."""
    path = f"/v1/projects/{wire.seg(project_id)}/deployments"
    return list_call(path, {"limit": size, "pageToken": token or None}, "deployments", read_deployment)


#: Deployments: the teamspace's deployments page by page, while the pages answer waits.
DEPLOYMENT_SWEEP = Sweep(recent=deployment_page)


DEPLOYMENT = ResourceKind(
    name="deployment",
    label="Lightning deployment",
    collection="deployments",
    read=read_deployment,
    stopper=_scale_to_zero,
    logs=LogSource(selector="deploymentId"),
    finder=Finder("{name}/getbyname"),
    sweep=DEPLOYMENT_SWEEP,
    web_app="",
    at_rest=lambda state: state.phase is Phase.STOPPED,  # a failed deployment's replicas may still retry
)


# -- spec --------------------------------------------------------------------------------------


def _int(value: Any, what: str, minimum: int = 0, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum or (
        maximum is not None and value > maximum
    ):
        bounds = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        raise ValueError(f"{what} must be an integer {bounds}, got {value!r}")
    return value


def _keys(value: Any, what: str, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{what} must be a dict, got {type(value).__name__}")
    unknown = set(value) - allowed
    if unknown:
        raise ValueError(f"{what} has unknown keys {sorted(unknown)}; allowed: {sorted(allowed)}")
    return dict(value)


def _autoscaling(value: Any, replicas: int | None, gpu: bool) -> dict[str, Any]:
    """``autoscale`` (min_replicas, max_replicas, metric, threshold) -> ``V1AutoscalingSpec`` JSON."""
    given = _keys(value or {}, "autoscale", _AUTOSCALE_KEYS)
    fixed = replicas if replicas is not None and value is None else None
    low = _int(given.get("min_replicas", fixed if fixed is not None else 0), "autoscale min_replicas")
    high = _int(given.get("max_replicas", fixed if fixed is not None else max(low, 1)), "autoscale max_replicas", 1)
    if low > high:
        raise ValueError(f"autoscale min_replicas ({low}) must not be above max_replicas ({high})")
    if replicas is not None and not low <= replicas <= high:
        raise ValueError(f"replicas ({replicas}) must be between min_replicas ({low}) and max_replicas ({high})")
    metric = given.get("metric", "GPU" if gpu else "CPU")
    if metric not in METRICS:
        raise ValueError(f"autoscale metric must be one of {', '.join(METRICS)}, got {metric!r}")
    threshold = given.get("threshold", 90)
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold <= 100:
        raise ValueError(f"autoscale threshold must be a number between 0 and 100, got {threshold!r}")
    target = str(int(threshold)) if float(threshold).is_integer() else str(threshold)
    return {
        "enabled": True,
        "minReplicas": str(low),
        "maxReplicas": str(high),
        "targetMetric": [{"name": metric, "target": target}],
    }


def _probe(value: Any, ports: list[int]) -> dict[str, Any]:
    """``health_check`` ({"http": {"path", "port"}} or {"exec": "cmd"}, plus timings) -> ``readinessProbe``."""
    given = _keys(value, "health_check", {"http", "exec", *_PROBE_TIMINGS})
    if ("http" in given) == ("exec" in given):
        raise ValueError(
            "health_check needs exactly one of 'http' ({'path': '/health', 'port': 8000}) or 'exec' ('command'); "
            f"got {'both' if 'http' in given else 'neither'}"
        )
    probe: dict[str, Any] = {"failureThreshold": 3600, "initialDelaySeconds": 0, "intervalSeconds": 1,
                             "timeoutSeconds": 30}
    for key in _PROBE_TIMINGS:
        if key in given:
            probe[wire.camel(key)] = _int(given[key], f"health_check {key}", minimum=0)
    if "http" in given:
        http = _keys(given["http"], "health_check http", {"path", "port", "method"})
        path = http.get("path", "/health")
        if not isinstance(path, str) or not path.startswith("/"):
            raise ValueError(f"health_check http path must start with '/', got {path!r}")
        port = _int(http.get("port", ports[0]), "health_check http port", 1, 65535)
        if port not in ports:
            raise ValueError(f"health_check http port {port} is not one of the deployment's ports {ports}")
        probe["httpGet"] = {"path": path, "port": port, **({"method": http["method"]} if "method" in http else {})}
    else:
        command = given["exec"]
        command = command.get("command") if isinstance(command, Mapping) else command
        if not isinstance(command, str) or not command.strip():
            raise ValueError(f"health_check exec must be a non-empty command string, got {given['exec']!r}")
        probe["exec"] = {"command": command}
    return probe


def _auth(value: Any) -> dict[str, Any]:
    """``auth``: {"token": ...}, {"username", "password"} or {"user_api_key": True} -> ``V1EndpointAuth``."""
    given = _keys(value, "auth", {"token", "username", "password", "user_api_key"})
    modes = [m for m in ("token", "username", "user_api_key") if given.get(m)]
    if len(modes) != 1 or (given.get("password") and modes != ["username"]):
        raise ValueError(
            "auth must be exactly one of {'token': ...}, {'username': ..., 'password': ...} or "
            f"{{'user_api_key': True}}; got keys {sorted(given)}"
        )
    if modes == ["username"]:
        if not isinstance(given.get("password"), str) or not given["password"]:
            raise ValueError("auth with a username needs a non-empty password")
        return {"enabled": True, "username": str(given["username"]), "password": given["password"]}
    if modes == ["token"]:
        if not isinstance(given["token"], str):
            raise ValueError("auth token must be a string")
        return {"enabled": True, "token": given["token"]}
    return {"enabled": True, "userApiKey": True}


@dataclass(frozen=True)
class DeploymentSpec:
    """A validated deployment spec.

    :param name: deployment name (the upsert key).
    :param image: container image (exclusive with ``studio``).
    :param studio: Studio name to deploy from (exclusive with ``image``; needs a ``command``).
    :param command: command that starts the server.
    :param entrypoint: container entrypoint (image deployments only).
    :param machine: machine name or slug per replica.
    :param interruptible: run replicas on interruptible (spot) machines.
    :param env: environment variables (str to str).
    :param secrets: ``{"ENV_NAME": "teamspace-secret-name"}`` injected from teamspace secrets.
    :param ports: ports the server listens on (at least one).
    :param replicas: fixed number of replicas (min = max = replicas unless ``autoscale`` is given).
    :param autoscale: ``{"min_replicas", "max_replicas", "metric": CPU|GPU|RPM, "threshold": 0-100}``.
    :param health_check: ``{"http": {"path", "port"}}`` or ``{"exec": "command"}`` plus optional timings.
    :param auth: endpoint auth: ``{"token"}``, ``{"username", "password"}`` or ``{"user_api_key": True}``.
    :param rolling_update: ``{"max_surge": 1, "max_unavailable": 0}`` for new releases.
    :param cluster_id: cloud account; empty lets Lightning choose.
    :param include_credentials: give the replicas the user's Lightning credentials (SDK default True).
    :param max_runtime_seconds: stop replicas after this many seconds.
    :param allow_custom_machine: pass an unknown machine string through as a raw instance type.
    """

    name: str
    image: str = ""
    studio: str = ""
    command: str = ""
    entrypoint: str | None = None
    machine: str = "CPU"
    interruptible: bool = False
    env: Mapping[str, str] = field(default_factory=dict)
    secrets: Mapping[str, str] = field(default_factory=dict)
    ports: Sequence[int] = (8000,)
    replicas: int | None = None
    autoscale: Mapping[str, Any] | None = None
    health_check: Mapping[str, Any] | None = None
    auth: Mapping[str, Any] | None = None
    rolling_update: Mapping[str, Any] | None = None
    cluster_id: str = ""
    include_credentials: bool = True
    max_runtime_seconds: int | None = None
    allow_custom_machine: bool = False

    def validated(self) -> DeploymentSpec:
        """Return a copy with the machine resolved; ValueError names the first bad argument."""
        validate_name(self.name, "deployment name")
        if bool(self.image) == bool(self.studio):
            raise ValueError(
                "give exactly one of image= (a container image) or studio= (deploy from a Studio); "
                f"got {'both' if self.image else 'neither'}"
            )
        if not isinstance(self.command, str):
            raise ValueError(f"command must be a string, got {type(self.command).__name__}")
        if self.studio and not self.command.strip():
            raise ValueError(f"command is required to deploy from a Studio (studio={self.studio!r})")
        if self.studio and self.entrypoint:
            raise ValueError("entrypoint can only be set for image deployments, not for Studio deployments")
        if not isinstance(self.ports, (int, list, tuple, set, frozenset, type(None))):  # str is a sequence too
            raise ValueError(f"ports must be a list of port numbers, for example [8000], got {self.ports!r}")
        ports = [self.ports] if isinstance(self.ports, int) else list(self.ports or [])
        if not ports:
            raise ValueError("ports must name at least one port the server listens on, for example ports=[8000]")
        ports = [_int(p, "port", 1, 65535) for p in ports]
        if self.replicas is not None:
            _int(self.replicas, "replicas", 1)
        env = validate_env(self.env)
        if not isinstance(self.secrets or {}, Mapping):
            raise ValueError(f"secrets must be a dict of env name to secret name, got {type(self.secrets).__name__}")
        secrets = dict(self.secrets or {})
        validate_env({k: "x" for k in secrets})
        for key, secret in secrets.items():
            if not isinstance(secret, str) or not secret:
                raise ValueError(f"secrets[{key!r}] must be the name of a teamspace secret")
            if key in env:
                raise ValueError(f"{key!r} is both in env and in secrets; give it once")
        if self.max_runtime_seconds is not None:
            _int(self.max_runtime_seconds, "max_runtime_seconds", 1)
        slug = resolve_machine(self.machine, allow_custom=self.allow_custom_machine)
        spec = replace(self, machine=slug, env=env, secrets=secrets, ports=ports)
        spec.body()  # autoscale, health check, auth and rolling update are checked while building
        return spec

    @property
    def gpu(self) -> bool:
        return self.machine.startswith("lit-") or "gpu" in self.machine

    def body(self, *, cloudspace_id: str = "", default_cluster_id: str = "") -> dict[str, Any]:
        """The ``JobsServiceCreateDeploymentBody`` JSON (int64 fields as strings, as the API returns them)."""
        ports = list(self.ports)
        cluster = self.cluster_id or default_cluster_id
        env = [{"name": k, "value": v} for k, v in self.env.items()]
        env += [{"name": k, "fromSecret": v} for k, v in self.secrets.items()]
        spec: dict[str, Any] = {
            "command": self.command,
            "env": env,
            "image": self.image,
            "includeCredentials": bool(self.include_credentials),
            "instanceName": self.machine,
            "spot": bool(self.interruptible),
        }
        if cluster:  # empty: Lightning chooses, and an upsert does not fight its choice
            spec["clusterId"] = cluster
        if self.entrypoint:
            spec["entrypoint"] = self.entrypoint
        if self.health_check is not None:
            spec["readinessProbe"] = _probe(self.health_check, ports)
        if self.max_runtime_seconds is not None:
            spec["requestedRunDurationSeconds"] = str(self.max_runtime_seconds)
        endpoint: dict[str, Any] = {"ports": [str(p) for p in ports]}
        if self.auth is not None:
            endpoint["auth"] = _auth(self.auth)
        rolling = _keys(self.rolling_update or {}, "rolling_update", _ROLLING_KEYS)
        surge = _int(rolling.get("max_surge", 1), "rolling_update max_surge")
        unavailable = _int(rolling.get("max_unavailable", 0), "rolling_update max_unavailable")
        if surge == unavailable == 0:
            raise ValueError("rolling_update max_surge and max_unavailable cannot both be 0")
        body: dict[str, Any] = {
            "name": self.name,
            "autoscaling": _autoscaling(self.autoscale, self.replicas, self.gpu),
            "endpoint": endpoint,
            "spec": spec,
            "strategy": {
                "type": "rolling_update",
                "rollingUpdate": {"maxSurge": str(surge), "maxUnavailable": str(unavailable)},
            },
        }
        if self.replicas is not None or self.autoscale is None:
            body["replicas"] = self.replicas if self.replicas is not None else 1
        if cluster:
            body["clusterId"] = cluster
        if cloudspace_id:
            body["cloudspaceId"] = cloudspace_id
        return body


# -- upsert ------------------------------------------------------------------------------------


def _norm(value: Any) -> Any:
    """Compare-friendly form: int64 strings as ints, empties as None, named lists sorted by name."""
    if isinstance(value, bool) or value is None:
        return value or None
    if isinstance(value, str):
        return int(value) if value.isdigit() else (value or None)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        items = [_norm(v) for v in value]
        if items and all(isinstance(i, dict) and "name" in i for i in items):
            items.sort(key=lambda i: str(i["name"]))
        return items or None
    if isinstance(value, dict):
        return {k: _norm(v) for k, v in value.items()} or None
    return value or None


def _same(desired: Any, actual: Any) -> bool:
    """Whether ``actual`` already has every value ``desired`` sets (extra server fields are ignored)."""
    desired, actual = _norm(desired), _norm(actual)
    if isinstance(desired, dict):
        actual = actual if isinstance(actual, dict) else {}
        return all(_same(v, actual.get(k)) for k, v in desired.items())
    if isinstance(desired, list) and isinstance(actual, list):
        return len(desired) == len(actual) and all(_same(d, a) for d, a in zip(desired, actual, strict=True))
    return bool(desired == actual)


def merge(existing: dict[str, Any], body: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The full object to ``PUT`` (the fetched one with this spec applied) and the changed field names."""
    merged = copy.deepcopy(existing)
    changes: list[str] = []
    for key, value in body.items():
        if key == "spec":
            spec = merged.setdefault("spec", {})
            for name, wanted in value.items():
                if not _same(wanted, wire.field(spec, wire.snake(name))):
                    spec[name] = wanted
                    changes.append(f"spec.{name}")
        elif key != "name" and not _same(value, wire.field(existing, wire.snake(key))):
            current = merged.get(key)
            merged[key] = {**current, **value} if isinstance(current, dict) and isinstance(value, dict) else value
            changes.append(key)
    if is_scaled_to_zero(existing):
        merged["desiredState"] = RUNNING_STATE
        changes.append("desiredState (start)")
    return merged, changes


def owner_note(owner: str, about: str = "") -> str:
    """The ``releaseNotes`` text that marks a deployment as created by ``owner`` (a hex key).

    :param owner: the ownership key (hex digits), e.g. a digest of dag, task, run and map index.
    :param about: a human-readable description put before the marker.
    """
    if not re.fullmatch(r"[0-9a-f]{8,64}", owner):
        raise ValueError(f"owner must be 8 to 64 lowercase hex digits, got {owner!r}")
    return f"{about} [airflow-owner:{owner}]".strip()


def owner_of(data: dict[str, Any]) -> str:
    """The ownership key a deployment's ``releaseNotes`` carries ('' when none)."""
    found = _OWNER_MARK.search(str(wire.field(data, "release_notes") or ""))
    return found.group(1) if found else ""


@dataclass(frozen=True)
class Upserted:
    """The result of an upsert: the deployment, what was done and which fields changed."""

    state: ResourceState
    action: str  # "created", "updated" or "unchanged"
    changes: tuple[str, ...] = ()
    started: bool = False  # the deployment was scaled to zero and this upsert started it again
    ours: bool = False  # created by the upsert's owner: by this call, or by an earlier one with the same key


def upsert(project_id: str, body: dict[str, Any], *, owner: str = "", note: str = "") -> Flow[Upserted]:
    """Flow: create the deployment named ``body["name"]``, or update it only where it differs.

    :param owner: ownership key written into a new deployment's ``releaseNotes`` (see :func:`owner_note`);
        an existing deployment carrying the same key is reported as ``ours``. Empty: no marker.
    :param note: the human-readable part of that ``releaseNotes`` text.
    """
    existing = yield DEPLOYMENT.find(project_id, body["name"])
    if existing is None:
        create = {**body, "releaseNotes": owner_note(owner, note)} if owner else body
        created = yield from DEPLOYMENT.create(project_id, create)
        return Upserted(created, "created", ours=bool(owner))
    ours = bool(owner) and owner_of(existing.raw) == owner
    merged, changes = merge(existing.raw, body)
    if not changes:
        return Upserted(existing, "unchanged", ours=ours)
    updated = yield ApiCall("PUT", DEPLOYMENT.path(project_id, existing.id), json=merged, parse=read_deployment)
    return Upserted(updated, "updated", tuple(changes), started=is_scaled_to_zero(existing.raw), ours=ours)
