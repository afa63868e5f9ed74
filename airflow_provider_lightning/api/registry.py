"""The one registry of resource kinds: name -> the module attribute that describes it.

Kinds are imported on first use, so reading a wait spec does not load every kind's module.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow_provider_lightning.api.resources import ResourceKind

_KINDS: dict[str, tuple[str, str]] = {
    "job": ("airflow_provider_lightning.api.jobs", "JOB"),
    "mmt": ("airflow_provider_lightning.api.jobs", "MMT"),
    "deployment": ("airflow_provider_lightning.api.deployments", "DEPLOYMENT"),
    "studio": ("airflow_provider_lightning.api.studios", "STUDIO"),
    "studio_command": ("airflow_provider_lightning.api.studios", "STUDIO_COMMAND"),
    "schedule_run": ("airflow_provider_lightning.api.schedules", "SCHEDULE_RUN"),
}


def kind_names() -> list[str]:
    """Every registered kind name, sorted."""
    return sorted(_KINDS)


def kind_named(name: str) -> ResourceKind:
    """The kind called ``name``; ValueError lists the known kinds."""
    try:
        module, attribute = _KINDS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown Lightning resource kind {name!r}; known: {', '.join(kind_names())}") from None
    kind: ResourceKind = getattr(importlib.import_module(module), attribute)
    return kind
