"""Teamspace secrets: list, find by name and create-or-update by name, as the SDK does (reference section 3).

The API never returns a secret's value; this module sends it in exactly one request body (create or update)
and never puts it in a log line or an exception message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from airflow_provider_lightning.api import wire
from airflow_provider_lightning.api.transport import ApiCall, Flow

#: What a teamspace secret may be called (checked before any request): it becomes an environment variable.
SECRET_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: The wire type of a generic secret (the SDK's ``SecretType.GENERIC``); a missing type counts as generic.
GENERIC = "SECRET_TYPE_UNSPECIFIED"


@dataclass(frozen=True)
class Secret:
    """A teamspace secret as the API describes it: never its value.

    :param id: the secret's id.
    :param name: the secret's name.
    :param type: its ``V1SecretType`` (``SECRET_TYPE_UNSPECIFIED`` for a generic secret).
    """

    id: str
    name: str
    type: str = GENERIC

    @property
    def generic(self) -> bool:
        """True for a generic secret (the kind jobs read as environment variables)."""
        return self.type in ("", GENERIC)


@dataclass(frozen=True)
class SetResult:
    """What ``set_secret`` did: the secret and whether it was ``"created"`` or ``"updated"``."""

    secret: Secret
    action: str


def validate_secret_name(name: Any, what: str = "secret name") -> str:
    """Check a secret name against ``^[A-Za-z_][A-Za-z0-9_]*$``; ValueError (naming only the name) otherwise."""
    if not isinstance(name, str) or not SECRET_NAME_RE.match(name):
        raise ValueError(
            f"{what} {name!r} is invalid: use letters, digits and '_', not starting with a digit "
            f"(it must match {SECRET_NAME_RE.pattern})"
        )
    return name


def _secret(item: Any) -> Secret:
    return Secret(wire.text(item, "id"), wire.text(item, "name"), wire.text(item, "type") or GENERIC)


def _path(project_id: str, secret_id: str = "") -> str:
    base = f"/v1/projects/{wire.seg(project_id)}/secrets"
    return f"{base}/{wire.seg(secret_id)}" if secret_id else base


def list_secrets(project_id: str) -> ApiCall[list[Secret]]:
    """``GET /secrets``: every secret of the teamspace (no paging on this endpoint)."""
    return ApiCall(
        "GET",
        _path(project_id),
        parse=lambda body: [_secret(s) for s in wire.field(body, "secrets", []) or [] if isinstance(s, dict)],
    )


def find_secret(project_id: str, name: str, secret_type: str = GENERIC) -> Flow[Secret | None]:
    """The secret with this name and type (generic by default), or None."""
    found: list[Secret] = yield list_secrets(project_id)
    wanted_generic = secret_type in ("", GENERIC)
    for secret in found:
        if secret.name == name and (secret.generic if wanted_generic else secret.type == secret_type):
            return secret
    return None


def set_secret(project_id: str, name: str, value: str) -> Flow[SetResult]:
    """Create a generic secret, or update the value of the generic secret of that name (the SDK's ``set_secret``).

    :raises ValueError: a bad name or a value that is not a string (before any request; the value is not quoted).
    """
    validate_secret_name(name)
    if not isinstance(value, str):
        raise ValueError(f"the value of secret {name!r} must be a string, got {type(value).__name__}")
    existing = yield from find_secret(project_id, name)
    if existing is not None:
        body = yield ApiCall("PUT", _path(project_id, existing.id), json={"value": value})
        return SetResult(_secret(body) if wire.text(body, "id") else existing, "updated")
    body = yield ApiCall(
        "POST", _path(project_id), json={"name": name, "type": GENERIC, "value": value}, idempotent=False
    )
    return SetResult(_secret(body), "created")


def delete_secret(project_id: str, secret_id: str) -> ApiCall[Any]:
    """``DELETE /secrets/{id}`` (None when it was already gone)."""
    return ApiCall("DELETE", _path(project_id, secret_id), json={}, none_if_missing=True)
