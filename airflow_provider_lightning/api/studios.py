"""Studio (cloudspace) lookups needed by jobs; the Studio operators build on these."""

from __future__ import annotations

from typing import Any

from airflow_provider_lightning.api import wire
from airflow_provider_lightning.api.transport import ApiCall


def _pick(name: str):  # type: ignore[no-untyped-def]
    def parse(body: Any) -> dict[str, Any] | None:
        spaces = wire.field(body, "cloudspaces", [])
        for space in spaces if isinstance(spaces, list) else []:
            if isinstance(space, dict) and name in (wire.text(space, "name"), wire.text(space, "display_name")):
                return space
        return None

    return parse


def find_studio(project_id: str, name: str) -> ApiCall[dict[str, Any] | None]:
    """Find a Studio by name in a teamspace; None when there is none."""
    return ApiCall(
        "GET", f"/v1/projects/{wire.seg(project_id)}/cloudspaces", params={"name": name}, parse=_pick(name)
    )


def get_studio(project_id: str, studio_id: str) -> ApiCall[dict[str, Any] | None]:
    return ApiCall(
        "GET", f"/v1/projects/{wire.seg(project_id)}/cloudspaces/{wire.seg(studio_id)}", none_if_missing=True
    )
