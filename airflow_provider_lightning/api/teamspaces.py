"""Resolving a teamspace (``owner/teamspace``) to its project id, as the SDK does (reference section 4)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from airflow_provider_lightning.api import wire
from airflow_provider_lightning.api.errors import LightningConfigError
from airflow_provider_lightning.api.transport import ApiCall, Flow


@dataclass(frozen=True)
class Teamspace:
    """A resolved teamspace: the project id used in every path, plus the names used in web URLs."""

    project_id: str
    owner: str = ""
    name: str = ""

    @property
    def slug(self) -> str:
        return f"{self.owner}/{self.name}" if self.owner and self.name else self.project_id


def split_teamspace(teamspace: str) -> tuple[str, str]:
    """``"owner/teamspace"`` -> ``("owner", "teamspace")``; ValueError on any other shape."""
    owner, sep, name = (teamspace or "").strip().partition("/")
    if not sep or not owner or not name or "/" in name:
        raise LightningConfigError(
            f"teamspace must be written as 'owner/teamspace' (an organization or user name, a slash, "
            f"then the teamspace name), got {teamspace!r}"
        )
    return owner, name


def whoami() -> ApiCall[dict[str, Any]]:
    return ApiCall("GET", "/v1/auth/whoami")


def resolve(teamspace: str = "", project_id: str = "") -> Flow[Teamspace]:
    """Flow returning the :class:`Teamspace` for a name or an id (a few GETs, done once per hook)."""
    if project_id:
        project = yield ApiCall("GET", f"/v1/projects/{wire.seg(project_id)}")
        owner = teamspace.partition("/")[0] if teamspace else ""
        if not owner:
            owner = yield from _owner_name(wire.text(project, "owner_id"), wire.text(project, "owner_type"))
        return Teamspace(project_id, owner, wire.text(project, "name"))
    if not teamspace:
        me = yield whoami()
        if wire.text(me, "project_id"):  # scoped API keys are bound to one teamspace
            return (yield from resolve(project_id=wire.text(me, "project_id")))
        raise LightningConfigError(
            "no teamspace configured: set the connection extra 'teamspace' (owner/teamspace) or "
            "'project_id', or pass teamspace= to the operator"
        )
    owner, name = split_teamspace(teamspace)
    memberships = yield ApiCall(
        "GET", "/v1/memberships", params={"filterByUserId": True},
        parse=lambda body: [m for m in wire.field(body, "memberships", []) if isinstance(m, dict)],
    )
    named = [m for m in memberships if name in (wire.text(m, "name"), wire.text(m, "display_name"))]
    owner_ids: list[str] = []
    if named:
        org = yield ApiCall("GET", "/v1/orgs/", params={"name": owner}, none_if_missing=True)
        if org and wire.text(org, "id"):
            owner_ids.append(wire.text(org, "id"))
        if not any(wire.text(m, "owner_id") in owner_ids for m in named):
            owner_ids.extend((yield from _user_ids(owner)))
    matches = [m for m in named if wire.text(m, "owner_id") in owner_ids]
    if len(matches) > 1:
        raise LightningConfigError(f"teamspace {teamspace!r} is not unique; use the extra 'project_id' instead")
    if not matches:
        known = sorted({wire.text(m, "name") for m in memberships if wire.text(m, "name")})
        listed = ", ".join(known[:20]) if known else "none"
        raise LightningConfigError(
            f"teamspace {teamspace!r} does not exist or this user is not a member of it "
            f"(teamspaces this user belongs to: {listed})"
        )
    return Teamspace(wire.text(matches[0], "project_id"), owner, wire.text(matches[0], "name"))


def _user_ids(username: str) -> Flow[list[str]]:
    me = yield ApiCall("GET", "/v1/auth/user", none_if_missing=True)
    if me and wire.text(me, "username") == username:
        return [wire.text(me, "id")]
    found = yield ApiCall("GET", "/v1/users/search", params={"query": username}, none_if_missing=True)
    users = wire.field(found, "users", []) if isinstance(found, dict) else []
    return [wire.text(u, "id") for u in users if isinstance(u, dict) and wire.text(u, "username") == username]


def _owner_name(owner_id: str, owner_type: str) -> Flow[str]:
    if not owner_id:
        return ""
    if owner_type.lower() != "user":
        org = yield ApiCall("GET", f"/v1/orgs/{wire.seg(owner_id)}", none_if_missing=True)
        if org and wire.text(org, "name"):
            return wire.text(org, "name")
    me = yield ApiCall("GET", "/v1/auth/user", none_if_missing=True)
    if me and wire.text(me, "id") == owner_id:
        return wire.text(me, "username")
    return ""


def job_url(
    base_url: str, teamspace: Teamspace, job_name: str, studio_name: str = "", app_id: str = "jobs"
) -> str:
    """The web UI page of a job (``app_id="jobs"``), multi-machine job (``"mmt"``) or deployment (``""``).

    Reference 12.6 for jobs; deployments use ``{cloud}/{owner}/{teamspace}/jobs/{name}`` (8.5).
    """
    base = base_url.rstrip("/")
    query = f"?app_id={app_id}" if app_id else ""
    if not (teamspace.owner and teamspace.name):
        project = f"project_id={wire.seg(teamspace.project_id)}"
        return f"{base}/jobs/{wire.seg(job_name)}{query + '&' if query else '?'}{project}"
    root = f"{base}/{wire.seg(teamspace.owner)}/{wire.seg(teamspace.name)}"
    if studio_name and app_id == "jobs":
        return f"{root}/studios/{wire.seg(studio_name)}/app?app_id=jobs&job_name={wire.seg(job_name)}"
    return f"{root}/jobs/{wire.seg(job_name)}{query}"
