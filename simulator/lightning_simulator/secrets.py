"""Teamspace secrets: ``GET/POST /secrets`` and ``GET/PUT/DELETE /secrets/{id}`` (reference section 3).

A ``V1Secret`` never carries its value: values stay in this module and only reach a job's process, as the
environment variable an ``{"name", "fromSecret"}`` entry of ``spec.env`` names (see :meth:`SecretService.value`).
"""

from __future__ import annotations

import re
from typing import Any

from . import catalog
from .context import ServiceContext
from .wire import GRPC_ALREADY_EXISTS, ApiError, as_str, invalid, not_found, now_ns, rfc3339

SECRET_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
GENERIC_TYPE = "SECRET_TYPE_UNSPECIFIED"
SECRET_TYPES = frozenset(
    {
        GENERIC_TYPE,
        "SECRET_TYPE_DOCKER_REGISTRY",
        "SECRET_TYPE_GCP_CREDENTIALS",
        "SECRET_TYPE_SNOWFLAKE_CREDENTIALS",
        "SECRET_TYPE_R2_CREDENTIALS",
        "SECRET_TYPE_ACCESS_CREDENTIALS",
        "SECRET_TYPE_SSH_PRIVATE_KEY",
        "SECRET_TYPE_HF_TOKEN",
    }
)


def _secret_type(raw: Any) -> str:
    kind = as_str(raw) or GENERIC_TYPE
    if kind not in SECRET_TYPES:
        raise invalid(f"unknown secret type {kind!r}")
    return kind


class SecretService:
    """The teamspace's secrets: records (``V1Secret`` without the value) plus the values, kept apart."""

    def __init__(self, context: ServiceContext) -> None:
        self.context = context
        self.lock = context.lock
        self.records: dict[str, dict[str, Any]] = {}  # id -> V1Secret JSON (no value)
        self._values: dict[str, str] = {}  # id -> value

    def _get(self, project_id: str, secret_id: str) -> dict[str, Any]:
        self.context.require_project(project_id)
        record = self.records.get(secret_id)
        if record is None or record["projectId"] != project_id:
            raise not_found(f"secret {secret_id!r}")
        return record

    def list_secrets(self, project_id: str, secret_type: str = "") -> dict[str, Any]:
        """``GET /secrets`` (optionally one ``type``); no paging fields, like the platform."""
        with self.lock:
            self.context.require_project(project_id)
            kind = _secret_type(secret_type) if secret_type else ""
            return {
                "secrets": [
                    dict(r) for r in self.records.values() if r["projectId"] == project_id and kind in ("", r["type"])
                ]
            }

    def create(self, project_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /secrets {name, type, value}``: the same name and type twice is a conflict."""
        with self.lock:
            self.context.require_project(project_id)
            name = as_str(body.get("name"))
            if not SECRET_NAME_RE.match(name):
                raise invalid(f"secret name {name!r} must match {SECRET_NAME_RE.pattern}")
            kind = _secret_type(body.get("type"))
            for other in self.records.values():
                if other["projectId"] == project_id and other["name"] == name and other["type"] == kind:
                    raise ApiError(GRPC_ALREADY_EXISTS, f"a secret named {name!r} of type {kind} already exists")
            created = rfc3339(now_ns())
            ident = self.context.identity
            record: dict[str, Any] = {
                "id": self.context.new_id("secret", self.records),
                "name": name,
                "type": kind,
                "projectId": project_id,
                "orgId": ident.org_id,
                "userId": ident.user_id,
                "clusterId": catalog.DEFAULT_CLUSTER_ID,
                "createdAt": created,
                "updatedAt": created,
            }
            self.records[record["id"]] = record
            self._values[record["id"]] = as_str(body.get("value"))
            self.context.changed()
            return dict(record)

    def get(self, project_id: str, secret_id: str) -> dict[str, Any]:
        """``GET /secrets/{id}``."""
        with self.lock:
            return dict(self._get(project_id, secret_id))

    def update(self, project_id: str, secret_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """``PUT /secrets/{id} {value}``: only the value changes."""
        with self.lock:
            record = self._get(project_id, secret_id)
            self._values[secret_id] = as_str(body.get("value"))
            record["updatedAt"] = rfc3339(now_ns())
            self.context.changed()
            return dict(record)

    def delete(self, project_id: str, secret_id: str) -> dict[str, Any]:
        """``DELETE /secrets/{id}``."""
        with self.lock:
            self._get(project_id, secret_id)
            del self.records[secret_id]
            self._values.pop(secret_id, None)
            self.context.changed()
            return {}

    def value(self, project_id: str, name: str) -> str | None:
        """The value a ``fromSecret: name`` env entry gets (a generic secret first), or ``None`` if there is none."""
        matches = [r for r in self.records.values() if r["projectId"] == project_id and r["name"] == name]
        if not matches:
            return None
        matches.sort(key=lambda r: r["type"] != GENERIC_TYPE)
        return self._values.get(matches[0]["id"], "")

    def to_state(self) -> list[dict[str, Any]]:
        """Every secret with its value, for the (local) state file."""
        return [{**r, "value": self._values.get(r["id"], "")} for r in self.records.values()]

    def load_state(self, saved: list[dict[str, Any]]) -> None:
        """Restore :meth:`to_state`."""
        for item in saved:
            record = dict(item)
            value = as_str(record.pop("value", ""))
            self.records[record["id"]] = record
            self._values[record["id"]] = value
