"""``V1JobSpec`` normalisation (every known field populated) and the timed-mode knobs read from ``spec.env``."""

from __future__ import annotations

from typing import Any

from .wire import as_bool, as_int, as_str, invalid

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


def parse_timed_env(env: dict[str, str]) -> tuple[float, int, int | None] | None:
    """Timed mode's ``(SIM_DURATION_SECONDS, SIM_EXIT_CODE, SIM_FAIL_RANK)``, or ``None`` when not both are set."""
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
