"""Connection settings for the Lightning API, read from an Airflow connection or the environment."""

from __future__ import annotations

import base64
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_lightning.api.errors import LightningConfigError

#: The API host of a connection (or environment fallback) that names none.
DEFAULT_URL = "https://lightning.ai"
# Total seconds per API call, retries included: a host that never answers fails a task in about this long.
DEFAULT_CALL_TIMEOUT = 60.0
ENV_FALLBACK = ("LIGHTNING_USER_ID", "LIGHTNING_API_KEY", "LIGHTNING_AUTH_TOKEN", "LIGHTNING_CLOUD_URL")


def _is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _as_bool(value: Any) -> bool:
    return value is True or str(value).strip().lower() in ("1", "true", "yes", "on")


def _as_number(extra: Mapping[str, Any], key: str, default: float, minimum: float) -> float:
    value = extra.get(key)
    if value in (None, ""):
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise LightningConfigError(f"connection extra {key!r} must be a number, got {value!r}") from None
    if number < minimum:
        raise LightningConfigError(f"connection extra {key!r} must be >= {minimum}, got {value!r}")
    return number


@dataclass(frozen=True)
class ConnectionSettings:
    """Everything needed to talk to the Lightning API (secrets are never part of ``repr``)."""

    conn_id: str
    base_url: str = DEFAULT_URL
    user_id: str = ""
    api_key: str = ""
    auth_token: str = ""
    teamspace: str = ""
    project_id: str = ""
    cluster_id: str = ""
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    max_attempts: int = 5
    call_timeout: float = DEFAULT_CALL_TIMEOUT
    verify: bool = True
    source: str = "connection"

    def __repr__(self) -> str:
        return (
            f"ConnectionSettings(conn_id={self.conn_id!r}, base_url={self.base_url!r}, "
            f"user_id={self.user_id!r}, teamspace={self.teamspace!r}, project_id={self.project_id!r})"
        )

    @property
    def secrets(self) -> list[str]:
        return [s for s in (self.api_key, self.auth_token) if s]

    def auth_header(self) -> str:
        """The ``Authorization`` header the SDK would send: Bearer JWT, else Basic user:key, else Bearer key."""
        if self.auth_token:
            return f"Bearer {self.auth_token}"
        if self.api_key and self.user_id:
            token = base64.b64encode(f"{self.user_id}:{self.api_key}".encode()).decode()
            return f"Basic {token}"
        if self.api_key:
            return f"Bearer {self.api_key}"
        raise LightningConfigError(self._fix("has no credentials"))

    def auth_hint(self) -> str:
        return self._fix("was refused by Lightning")

    def _fix(self, problem: str) -> str:
        where = (
            "the LIGHTNING_USER_ID / LIGHTNING_API_KEY environment variables"
            if self.source == "environment"
            else f"the Airflow connection {self.conn_id!r}"
        )
        return (
            f"The credentials from {where} {problem}: set login to your Lightning user id and password "
            "to an API key (lightning.ai > Profile > Keys), or the extra 'auth_token' to a JWT"
        )

    @classmethod
    def from_connection(cls, conn: Any, extra: Mapping[str, Any] | None = None) -> ConnectionSettings:
        """Read an Airflow connection (host, login = user id, password = API key, extras)."""
        extra = dict(extra if extra is not None else (conn.extra_dejson or {}))
        host = (conn.host or "").strip()
        if host and "://" not in host:
            scheme = (conn.schema or "").strip() or "https"
            port = f":{conn.port}" if conn.port else ""
            host = f"{scheme}://{host}{port}"
        elif host and conn.port and urlsplit(host).port is None:
            parts = urlsplit(host)
            host = f"{parts.scheme}://{parts.hostname}:{conn.port}{parts.path}"
        return cls.build(
            conn_id=conn.conn_id,
            base_url=host or DEFAULT_URL,
            user_id=(conn.login or "").strip(),
            api_key=(conn.password or "").strip(),
            extra=extra,
            source="connection",
        )

    @classmethod
    def from_env(cls, conn_id: str, environ: Mapping[str, str] | None = None) -> ConnectionSettings | None:
        """Read what Lightning Studios set (``LIGHTNING_USER_ID``, ``LIGHTNING_API_KEY`` ...); None if unset."""
        env = os.environ if environ is None else environ
        if not (env.get("LIGHTNING_API_KEY") or env.get("LIGHTNING_AUTH_TOKEN")):
            return None
        teamspace = ""
        if env.get("LIGHTNING_TEAMSPACE") and (env.get("LIGHTNING_ORG") or env.get("LIGHTNING_USERNAME")):
            owner = env.get("LIGHTNING_ORG") or env.get("LIGHTNING_USERNAME")
            teamspace = f"{owner}/{env['LIGHTNING_TEAMSPACE']}"
        extra = {
            "auth_token": env.get("LIGHTNING_AUTH_TOKEN", ""),
            "teamspace": teamspace,
            "project_id": env.get("LIGHTNING_CLOUD_PROJECT_ID", "") if not teamspace else "",
            "cluster_id": env.get("LIGHTNING_CLUSTER_ID", ""),
            "connect_timeout": env.get("LIGHTNING_CLOUD_CONNECT_TIMEOUT"),
            "read_timeout": env.get("LIGHTNING_CLOUD_READ_TIMEOUT"),
        }
        return cls.build(
            conn_id=conn_id,
            base_url=env.get("LIGHTNING_CLOUD_URL") or DEFAULT_URL,
            user_id=env.get("LIGHTNING_USER_ID", ""),
            api_key=env.get("LIGHTNING_API_KEY", ""),
            extra=extra,
            source="environment",
        )

    @classmethod
    def build(
        cls, *, conn_id: str, base_url: str, user_id: str, api_key: str, extra: Mapping[str, Any], source: str
    ) -> ConnectionSettings:
        """Validate and assemble settings; LightningConfigError names the bad field."""
        parts = urlsplit(base_url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise LightningConfigError(
                f"connection {conn_id!r}: host must be an http(s) URL such as https://lightning.ai, "
                f"got {base_url!r}"
            )
        insecure_ok = _as_bool(extra.get("allow_insecure_http", False))
        if parts.scheme == "http" and not _is_loopback(parts.hostname) and not insecure_ok:
            raise LightningConfigError(
                f"connection {conn_id!r}: plain http:// is only accepted for loopback hosts; use https:// "
                "or set the extra allow_insecure_http=true explicitly"
            )
        max_attempts = int(_as_number(extra, "max_attempts", 5, 1))
        settings = cls(
            conn_id=conn_id,
            base_url=f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}",
            user_id=user_id,
            api_key=api_key,
            auth_token=str(extra.get("auth_token") or "").strip(),
            teamspace=str(extra.get("teamspace") or "").strip(),
            project_id=str(extra.get("project_id") or "").strip(),
            cluster_id=str(extra.get("cluster_id") or "").strip(),
            connect_timeout=_as_number(extra, "connect_timeout", 10.0, 0.1),
            read_timeout=_as_number(extra, "read_timeout", 30.0, 0.1),
            max_attempts=max_attempts,
            call_timeout=_as_number(extra, "call_timeout", DEFAULT_CALL_TIMEOUT, 1.0),
            verify=not _as_bool(extra.get("insecure_skip_verify", False)),
            source=source,
        )
        settings.auth_header()  # fail now when there are no credentials
        if settings.teamspace:
            from airflow_provider_lightning.api.teamspaces import split_teamspace

            split_teamspace(settings.teamspace)
        return settings
