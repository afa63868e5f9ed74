"""The simulated account: one user, one owner (org or user) and one teamspace (project).

Renders the auth, org, membership, project and user-search payloads the SDK uses to
resolve ``owner/teamspace`` into a ``projectId``, and answers 404 for any other teamspace.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from .catalog import DEFAULT_CLUSTER_ID
from .wire import not_found


def stable_id(prefix: str, *parts: str) -> str:
    """A deterministic id such as ``org-1a2b3c4d5e6f`` derived from names (survives restarts)."""
    digest = hashlib.sha1("/".join(parts).encode()).hexdigest()[:12]
    return f"{prefix}-{digest}"


@dataclass(frozen=True)
class Identity:
    """Who the simulated caller is and which teamspace they own."""

    user_id: str
    username: str
    api_key: str
    owner_name: str
    teamspace_name: str
    created_at: str

    @property
    def user_owned(self) -> bool:
        """True when the teamspace is owned by the user rather than an organization."""
        return self.owner_name == self.username

    @property
    def org_id(self) -> str:
        """The organization's id ("" for a user-owned teamspace)."""
        return "" if self.user_owned else stable_id("org", self.owner_name)

    @property
    def owner_id(self) -> str:
        """The teamspace owner's id (org id or user id)."""
        return self.user_id if self.user_owned else self.org_id

    @property
    def owner_type(self) -> str:
        """``V1OwnerType`` of the teamspace owner."""
        return "user" if self.user_owned else "organization"

    @property
    def project_id(self) -> str:
        """The teamspace's ``projectId``."""
        return stable_id("project", self.owner_name, self.teamspace_name)

    @property
    def email(self) -> str:
        """The user's e-mail address."""
        return f"{self.username}@example.com"

    def require_project(self, project_id: str) -> None:
        """404 unless ``project_id`` is the simulated teamspace."""
        if project_id != self.project_id:
            raise not_found(f"project {project_id!r}")

    # ------------------------------------------------------------- payloads

    def whoami(self) -> dict[str, Any]:
        """``V1WhoamiResponse``."""
        return {
            "userId": self.user_id,
            "username": self.username,
            "email": self.email,
            "authType": "AUTH_TYPE_USER",
            "orgId": "",
            "projectId": "",
            "roleId": "",
            "apiKeyId": "",
        }

    def organization(self) -> dict[str, Any]:
        """``V1Organization`` of the owner org."""
        return {
            "id": self.org_id,
            "name": self.owner_name,
            "displayName": self.owner_name,
            "createdAt": self.created_at,
            "updatedAt": self.created_at,
            "defaultProjectId": self.project_id,
            "isPersonalOrg": False,
            "preferredCluster": DEFAULT_CLUSTER_ID,
            "creatorId": self.user_id,
            "description": "",
            "email": "",
            "domain": "",
        }

    def organizations(self) -> list[dict[str, Any]]:
        """The orgs the user belongs to."""
        return [] if self.user_owned else [self.organization()]

    def user(self) -> dict[str, Any]:
        """``V1GetUserResponse`` (the API key is never echoed)."""
        return {
            "id": self.user_id,
            "username": self.username,
            "email": self.email,
            "firstName": "Sim",
            "lastName": "User",
            "apiKey": "",
            "organizations": self.organizations(),
            "features": {},
            "status": "",
        }

    def search_user(self) -> dict[str, Any]:
        """``V1ExternalSearchUser`` for the user."""
        return {
            "id": self.user_id,
            "username": self.username,
            "email": self.email,
            "firstName": "Sim",
            "lastName": "User",
            "internal": False,
            "organization": "" if self.user_owned else self.owner_name,
            "pictureUrl": "",
            "role": "",
            "sb": False,
        }

    def membership(self) -> dict[str, Any]:
        """``V1Membership`` of the user in the teamspace."""
        return {
            "projectId": self.project_id,
            "name": self.teamspace_name,
            "displayName": self.teamspace_name,
            "description": "",
            "ownerId": self.owner_id,
            "ownerType": self.owner_type,
            "userId": self.user_id,
            "creatorId": self.user_id,
            "isDefault": True,
            "createdAt": self.created_at,
            "updatedAt": self.created_at,
            "balance": 0.0,
            "budgetingEnabled": False,
            "freeCreditsEnabled": False,
            "currentStorageBytes": "0",
            "datastoreCount": "0",
            "freeStorageBytes": "0",
            "jobCount": "0",
            "membershipCount": "1",
            "nextFreeCreditsGrant": "0",
            "quotas": None,
            "roles": [],
        }

    def project(self) -> dict[str, Any]:
        """``V1Project`` of the teamspace."""
        tabs = ["studio", "jobs", "deployments", "mmt", "pipelines", "models", "drive"]
        return {
            "id": self.project_id,
            "name": self.teamspace_name,
            "displayName": self.teamspace_name,
            "description": "",
            "ownerId": self.owner_id,
            "ownerType": self.owner_type,
            "creatorId": self.user_id,
            "createdAt": self.created_at,
            "updatedAt": self.created_at,
            "isDefault": True,
            "private": False,
            "abacEnabled": False,
            "lockOutUploads": False,
            "requiresUploadsSync": False,
            "currentStorageBytes": "0",
            "freeStorageBytes": "0",
            "numberOfFilesUploads": "0",
            "totalSizeUploadsBytes": "0",
            "layoutConfig": [{"slug": slug, "isEnabled": True} for slug in tabs],
            "projectSettings": {
                "defaultMachineType": "cpu-4",
                "preferredCluster": DEFAULT_CLUSTER_ID,
                "preferredDeploymentProvider": "",
                "preferredStudioProvider": "",
                "startStudioOnSpotInstance": False,
            },
            "quotas": None,
        }
