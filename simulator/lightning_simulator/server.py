"""HTTP layer: a keep-alive ``ThreadingHTTPServer``, routing, auth, fault injection and
JSON encoding for the Lightning REST paths, the admin paths, the signed log URLs and the presigned
storage URLs of drive uploads (``/__storage/...``, see :mod:`.drive`).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, BinaryIO
from urllib.parse import parse_qs, unquote, urlsplit

from . import catalog
from .auth import Authenticator
from .drive import (
    BLOB_QUERY,
    SSE_HEADER,
    SSE_VALUE,
    TREE_QUERY,
    Scope,
    StorageError,
    query_error,
    shape_error,
)
from .faults import NO_FAULT, FaultConfig, FaultInjector
from .identity import Identity
from .requestlog import RequestLog
from .serving import Upstream
from .state import Store
from .strict import WireModels
from .wire import (
    GRPC_INTERNAL,
    GRPC_NOT_FOUND,
    GRPC_UNAVAILABLE,
    ApiError,
    as_int,
    as_str,
    camel,
    camelize,
    error_body,
    invalid,
    not_found,
)

log = logging.getLogger(__name__)

LEGACY_PAGE_LINES = 1000
BODY_CHUNK = 1 << 20  # bytes read or written at a time when a body is streamed


class BodyStream:
    """A request body read piece by piece from the connection (``Content-Length`` or chunked)."""

    def __init__(self, rfile: Any, length: int, chunked: bool) -> None:
        self._rfile = rfile
        self._left = max(0, length)
        self._chunked = chunked
        self._chunk_left = 0
        self.done = not chunked and self._left == 0

    def read(self, size: int = BODY_CHUNK) -> bytes:
        """Up to ``size`` bytes of the body, ``b""`` at its end; ``ConnectionError`` if the client hangs up early."""
        if self.done:
            return b""
        if not self._chunked:
            data = self._rfile.read(min(size, self._left))
            if not data:
                raise ConnectionError("the client closed the connection before the end of the body")
            self._left -= len(data)
            self.done = self._left == 0
            return data
        if self._chunk_left == 0:
            size_line = self._rfile.readline(65537)
            if not size_line:
                raise ConnectionError("the client closed the connection before the end of the body")
            self._chunk_left = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
            if self._chunk_left == 0:
                while self._rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass
                self.done = True
                return b""
        data = self._rfile.read(min(size, self._chunk_left))
        if not data:
            raise ConnectionError("the client closed the connection before the end of the body")
        self._chunk_left -= len(data)
        if self._chunk_left == 0:
            self._rfile.readline(65537)
        return data

    def read_all(self) -> bytes:
        """The rest of the body."""
        chunks = []
        while chunk := self.read():
            chunks.append(chunk)
        return b"".join(chunks)

    def drain(self) -> None:
        """Read and drop the rest of the body (so the connection can serve the next request)."""
        while self.read():
            pass


@dataclass
class Request:
    """One parsed request as seen by a route handler."""

    method: str
    path: str
    params: dict[str, str]
    query: dict[str, list[str]]
    body: Any
    headers: dict[str, str]
    base_url: str
    raw_body: bytes = b""
    raw_query: str = ""
    authorization: str = ""  # kept out of ``headers``; only the served deployment endpoints read it
    stream: BodyStream | None = None  # the unread body of a ``stream`` route

    def q(self, name: str, default: str = "") -> str:
        """First value of query parameter ``name`` (camelCase; snake_case was normalised)."""
        values = self.query.get(name)
        return values[0] if values else default

    def json_body(self) -> dict[str, Any]:
        """The body as a JSON object (``{}`` when empty)."""
        if self.body is None:
            return {}
        if not isinstance(self.body, dict):
            raise invalid("the request body must be a JSON object")
        return self.body


@dataclass
class Response:
    """What a route handler answers: JSON (``body``), raw bytes (``raw``) or an open file streamed in chunks
    (``file``, ``file_size`` bytes; closed once sent). A 204 has no body."""

    status: int = 200
    body: Any = None
    raw: bytes | None = None
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    file: BinaryIO | None = None
    file_size: int = 0


Handler = Callable[[Request], Any]


@dataclass
class Route:
    """A method plus a path pattern such as ``/v1/projects/{projectId}/jobs/{id}``.

    A last segment ``{name*}`` matches the rest of the path (zero or more segments). A ``raw`` route
    gets its body unparsed (``Request.raw_body``) instead of as JSON; a ``stream`` route gets it unread
    (``Request.stream``), to copy large bodies without holding them in memory. ``wire=False`` routes are
    not in the OpenAPI snapshot and check their own shapes in strict wire mode.
    """

    method: str
    segments: list[str]
    handler: Handler
    auth: bool = True
    raw: bool = False
    stream: bool = False
    wire: bool = True

    def match(self, method: str, parts: list[str]) -> dict[str, str] | None:
        """Path parameters if ``parts`` matches (``None`` otherwise)."""
        segments, params = self.segments, {}
        if segments and segments[-1].endswith("*}"):
            segments = segments[:-1]
            if len(parts) < len(segments):
                return None
            params[self.segments[-1][1:-2]] = unquote("/".join(parts[len(segments) :]))
            parts = parts[: len(segments)]
        if method != self.method or len(parts) != len(segments):
            return None
        for pattern, part in zip(segments, parts, strict=True):
            if pattern.startswith("{") and pattern.endswith("}"):
                params[pattern[1:-1]] = unquote(part)
            elif pattern != part:
                return None
        return params


def _parse_query(raw: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, values in parse_qs(raw, keep_blank_values=True).items():
        name = camel(key[:-2] if key.endswith("[]") else key)
        out.setdefault(name, []).extend(values)
    return out


class Api:
    """Route table and handlers; holds no HTTP state."""

    wire_models: WireModels | None = None  # strict wire mode (see .strict); set by LightningSimulator.start

    def __init__(
        self,
        store: Store,
        identity: Identity,
        authenticator: Authenticator,
        faults: FaultInjector,
        request_log: RequestLog,
        secret: bytes,
    ) -> None:
        self.store = store
        self.identity = identity
        self.auth = authenticator
        self.faults = faults
        self.request_log = request_log
        self.secret = secret
        self.routes: list[Route] = []
        self._register()

    # ---------------------------------------------------------- registration

    def add(
        self,
        method: str,
        pattern: str,
        handler: Handler,
        auth: bool = True,
        raw: bool = False,
        stream: bool = False,
        wire: bool = True,
    ) -> None:
        """Register a route (earlier routes win; see :class:`Route` for ``raw``, ``stream`` and ``wire``)."""
        self.routes.append(Route(method, pattern.lstrip("/").split("/"), handler, auth, raw or stream, stream, wire))

    def _register(self) -> None:
        a = self.add
        # admin (no auth, never faulted)
        a("GET", "/__admin/health", lambda r: {"status": "ok"}, auth=False)
        a("GET", "/__admin/info", self.admin_info, auth=False)
        a("GET", "/__admin/faults", lambda r: self.faults.config.to_api(), auth=False)
        a("POST", "/__admin/faults", self.admin_set_faults, auth=False)
        a("PUT", "/__admin/faults", self.admin_set_faults, auth=False)
        a("DELETE", "/__admin/faults", self.admin_clear_faults, auth=False)
        a("GET", "/__admin/studios", self.admin_studios, auth=False)
        a("POST", "/__admin/studios", self.admin_add_studio, auth=False)
        a("GET", "/__admin/requests", self.admin_requests, auth=False)
        a("POST", "/__admin/reset-requests", self.admin_reset_requests, auth=False)
        a("DELETE", "/__admin/requests", self.admin_reset_requests, auth=False)
        a("GET", "/__admin/jobs", lambda r: {"jobs": self.store.jobs.all_jobs()}, auth=False)
        a("GET", "/__admin/mmts", lambda r: {"multiMachineJobs": self.store.mmts.all_mmts()}, auth=False)
        a("GET", "/__admin/clock", lambda r: self.store.schedules.clock(), auth=False)
        a("POST", "/__admin/clock", lambda r: self.store.schedules.move_clock(r.json_body()), auth=False)
        a("GET", "/__admin/deployments", self.admin_deployments, auth=False)
        # served deployment endpoints (their own auth, see .deployments)
        for method in ("GET", "POST", "PUT", "DELETE", "PATCH"):
            a(method, "/serve/{id}/{path*}", self.serve_deployment, auth=False, raw=True)
        # signed log URLs (no Authorization header, like a cloud-storage link)
        a("GET", "/__sim/logs/{id}", self.signed_log_text, auth=False)
        a("GET", "/__sim/jobs/{id}/log-pages/{page}", self.signed_log_page, auth=False)
        # presigned storage URLs of drive uploads (no Authorization; faulted like API paths)
        a("PUT", "/__storage/{uploadId}/{part}", self.storage_put, auth=False, stream=True)
        # auth
        a("POST", "/v1/auth/login", self.login, auth=False)
        a("POST", "/v1/auth/refresh", self.refresh)
        a("GET", "/v1/auth/whoami", lambda r: self.identity.whoami())
        a("GET", "/v1/auth/user", lambda r: self.identity.user())
        # orgs, memberships, users, projects
        a("GET", "/v1/orgs", self.list_orgs)
        a("GET", "/v1/orgs/{id}", self.get_org)
        a("GET", "/v1/memberships", self.list_memberships)
        a("GET", "/v1/users/search", self.search_users)
        a("GET", "/v1/users/profile/{username}", self.user_profile)
        a("GET", "/v1/projects/{id}", self.get_project)
        a("GET", "/v1/projects/{projectId}/projectclustersbindings", self.cluster_bindings)
        a("GET", "/v1/projects/{projectId}/memberships", self.project_memberships)
        # clusters and machines
        a("GET", "/v1/core/clusters", self.list_core_clusters)
        a("GET", "/v1/core/clusters/{id}", self.get_core_cluster)
        a("GET", "/v1/core/clusters/{id}/accelerators", self.cluster_accelerators)
        a("GET", "/v1/core/accelerators", self.default_accelerators)
        a("GET", "/v1/projects/{projectId}/clusters", self.project_clusters)
        a("GET", "/v1/projects/{projectId}/clusters/{id}/accelerators", self.project_cluster_accelerators)
        # studios (see .studios)
        a("GET", "/v1/projects/{projectId}/cloudspaces", self.list_studios)
        a("POST", "/v1/projects/{projectId}/cloudspaces", self.create_studio)
        a("GET", "/v1/projects/{projectId}/cloudspaces/{id}", self.get_studio)
        a("DELETE", "/v1/projects/{projectId}/cloudspaces/{id}", self.delete_studio)
        a("POST", "/v1/projects/{projectId}/cloudspaces/{id}/start", self.start_studio)
        a("POST", "/v1/projects/{projectId}/cloudspaces/{id}/stop", self.stop_studio)
        a("GET", "/v1/projects/{projectId}/cloudspaces/{id}/codestatus", self.studio_codestatus)
        a("GET", "/v1/projects/{projectId}/cloudspaces/{id}/codeconfig", self.studio_codeconfig)
        a("PUT", "/v1/projects/{projectId}/cloudspaces/{id}/codeconfig", self.update_studio_codeconfig)
        a("POST", "/v1/projects/{projectId}/cloudspaces/{id}/switch-confirm", self.studio_switch_confirm)
        a("POST", "/v1/projects/{projectId}/cloudspaces/{id}/keep-alive", self.studio_keep_alive)
        a("POST", "/v1/projects/{projectId}/cloudspaces/{id}/execute", self.studio_execute)
        a("GET", "/v1/projects/{projectId}/cloudspaces/{id}/execute/{session}/stream", self.studio_command_stream)
        a("GET", "/v1/projects/{projectId}/cloudspaces/{id}/execute/{session}", self.studio_command)
        # schedules (see .schedules)
        a("POST", "/v1/projects/{projectId}/schedules", self.create_schedule)
        a("GET", "/v1/projects/{projectId}/schedules", self.list_schedules)
        a("GET", "/v1/projects/{projectId}/schedules/{id}", self.get_schedule)
        a("PUT", "/v1/projects/{projectId}/schedules/{id}", self.update_schedule)
        a("DELETE", "/v1/projects/{projectId}/schedules/{id}", self.delete_schedule)
        runs = "/v1/projects/{projectId}/cloudspaces/{cloudspaceId}/schedules/{scheduleId}/runs"
        a("POST", runs, self.trigger_schedule_run)
        a("GET", runs, self.list_schedule_runs)
        a("GET", runs + "/{runId}", self.get_schedule_run)
        # jobs
        a("POST", "/v1/projects/{projectId}/jobs", self.create_job)
        a("GET", "/v1/projects/{projectId}/jobs", self.list_jobs)
        a("GET", "/v1/projects/{projectId}/jobs/find", self.find_job)
        a("GET", "/v1/projects/{projectId}/jobs/logs", self.search_job_logs)
        a("GET", "/v1/projects/{projectId}/jobs/{id}", self.get_job)
        a("PUT", "/v1/projects/{projectId}/jobs/{id}", self.update_job)
        a("DELETE", "/v1/projects/{projectId}/jobs/{id}", self.delete_job)
        a("GET", "/v1/projects/{projectId}/jobs/{id}/download-logs", self.download_logs)
        a("GET", "/v1/projects/{projectId}/jobs/{id}/page-logs", self.legacy_page_logs)
        a("GET", "/v1/projects/{projectId}/page-logs", self.page_logs)
        a("GET", "/v1/projects/{projectId}/workload-tags", self.list_tags)
        a("PUT", "/v1/projects/{projectId}/workloads/{workloadType}/{workloadId}/tags", self.set_tags)
        # teamspace secrets (see .secrets)
        a("GET", "/v1/projects/{projectId}/secrets", self.list_secrets)
        a("POST", "/v1/projects/{projectId}/secrets", self.create_secret)
        a("GET", "/v1/projects/{projectId}/secrets/{id}", self.get_secret)
        a("PUT", "/v1/projects/{projectId}/secrets/{id}", self.update_secret)
        a("DELETE", "/v1/projects/{projectId}/secrets/{id}", self.delete_secret)
        # the SDK reports failed calls (with their arguments, secret values included): accepted and dropped
        a("POST", "/v1/sdk-command-history", lambda r: {})
        # multi-machine jobs
        a("POST", "/v1/projects/{projectId}/multi-machine-jobs", self.create_mmt)
        a("GET", "/v1/projects/{projectId}/multi-machine-jobs", self.list_mmts)
        a("GET", "/v1/projects/{projectId}/multi-machine-jobs/{name}/getbyname", self.get_mmt_by_name)
        a("GET", "/v1/projects/{projectId}/multi-machine-jobs/{id}/events", self.mmt_events)
        a("GET", "/v1/projects/{projectId}/multi-machine-jobs/{id}", self.get_mmt)
        a("PUT", "/v1/projects/{projectId}/multi-machine-jobs/{id}", self.update_mmt)
        a("DELETE", "/v1/projects/{projectId}/multi-machine-jobs/{id}", self.delete_mmt)
        # deployments (see .deployments)
        a("POST", "/v1/projects/{projectId}/deployments", self.create_deployment)
        a("GET", "/v1/projects/{projectId}/deployments", self.list_deployments)
        a("GET", "/v1/projects/{projectId}/deployments/{name}/getbyname", self.get_deployment_by_name)
        a("GET", "/v1/projects/{projectId}/deployments/{id}/status", self.deployment_status)
        a("GET", "/v1/projects/{projectId}/deployments/{id}/events", self.deployment_events)
        a("GET", "/v1/projects/{projectId}/deployments/{id}/releases", self.deployment_releases)
        a("GET", "/v1/projects/{projectId}/deployments/{id}", self.get_deployment)
        a("PUT", "/v1/projects/{projectId}/deployments/{id}", self.update_deployment)
        a("DELETE", "/v1/projects/{projectId}/deployments/{id}", self.delete_deployment)
        # the teamspace drive (see .drive): not in the OpenAPI client, raw requests in the SDK
        drive = "/v1/projects/{projectId}/artifacts"
        for scope in (drive, drive + "/cloudspaces/{studioId}"):
            a("GET", scope + "/trees/{path*}", self.drive_list, wire=False)
            a("DELETE", scope + "/trees/{path*}", self.drive_delete_tree, wire=False)
            a("POST", scope + "/blobs/complete", self.drive_complete, wire=False)
            a("POST", scope + "/blobs", self.drive_upload, wire=False)
            a("GET", scope + "/blobs/{path*}", self.drive_download, wire=False)
            a("DELETE", scope + "/blobs/{path*}", self.drive_delete_blob, wire=False)
        a("GET", "/v1/projects/{projectOwnerName}/{projectName}/jobs/{jobName}", self.get_job_by_slugs)
        a("GET", "/v1/projects/{owner}/{teamspace}/deployments/{name}", self.get_deployment_by_slugs)

    def resolve(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        """The first route matching ``method`` and ``path``."""
        parts = path.lstrip("/").split("/")
        for route in self.routes:
            params = route.match(method, parts)
            if params is not None:
                return route, params
        return None

    # ------------------------------------------------------------- signing

    def sign(self, job_id: str) -> str:
        """Signature that makes a log URL usable without credentials."""
        return hmac.new(self.secret, job_id.encode(), hashlib.sha256).hexdigest()[:32]

    def _check_signature(self, req: Request) -> str:
        job_id = req.params["id"]
        if not hmac.compare_digest(req.q("sig"), self.sign(job_id)):
            raise ApiError(7, "permission denied: invalid or missing signature")
        return job_id

    def sign_storage(self, upload_id: str, part: int) -> str:
        """Signature of the presigned URL of one part of a drive upload."""
        message = f"storage:{upload_id}:{part}".encode()
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()[:40]

    # -------------------------------------------------------------- admin

    def admin_info(self, req: Request) -> dict[str, Any]:
        ident = self.identity
        return {
            "url": req.base_url,
            "userId": ident.user_id,
            "username": ident.username,
            "teamspace": f"{ident.owner_name}/{ident.teamspace_name}",
            "projectId": ident.project_id,
            "orgId": ident.org_id,
            "clusterId": catalog.DEFAULT_CLUSTER_ID,
            "driveRoot": str(self.store.drive.root),
        }

    def admin_set_faults(self, req: Request) -> dict[str, Any]:
        try:
            config = FaultConfig.from_api(req.json_body())
        except (TypeError, ValueError) as exc:
            raise invalid(str(exc)) from None
        self.faults.set(config)
        return config.to_api()

    def admin_clear_faults(self, req: Request) -> dict[str, Any]:
        self.faults.clear()
        return self.faults.config.to_api()

    def admin_studios(self, req: Request) -> dict[str, Any]:
        return self.store.studios.list_studios(self.identity.project_id, {})

    def admin_add_studio(self, req: Request) -> dict[str, Any]:
        return self.store.studios.add(as_str(req.json_body().get("name")))

    def admin_deployments(self, req: Request) -> dict[str, Any]:
        return {"deployments": self.store.deployments.all_deployments()}

    def admin_requests(self, req: Request) -> dict[str, Any]:
        return {"requests": [r.to_api() for r in self.request_log.snapshot()]}

    def admin_reset_requests(self, req: Request) -> dict[str, Any]:
        self.request_log.clear()
        return {}

    # --------------------------------------------------------- signed URLs

    def signed_log_text(self, req: Request) -> Response:
        job_id = self._check_signature(req)
        text = self.store.logs.log_text(job_id)
        return Response(raw=text.encode("utf-8"), content_type="text/plain; charset=utf-8")

    def signed_log_page(self, req: Request) -> Any:
        job_id = self._check_signature(req)
        page = as_int(req.params["page"].removesuffix(".json"))
        return self.store.logs.legacy_page(job_id, page, LEGACY_PAGE_LINES)

    # ---------------------------------------------------------------- auth

    def login(self, req: Request) -> dict[str, Any]:
        body = camelize(req.json_body())
        token = self.auth.login(as_str(body.get("apiKey")), as_str(body.get("username")))
        return {"token": token}

    def refresh(self, req: Request) -> dict[str, Any]:
        duration = as_int(camelize(req.json_body()).get("duration"), 43_200) or 43_200
        return {"token": self.auth.issue_token(min(max(duration, 900), 129_600))}

    # ------------------------------------------------------ orgs, projects

    def list_orgs(self, req: Request) -> dict[str, Any]:
        name = req.q("name")
        orgs = [o for o in self.identity.organizations() if not name or o["name"] == name]
        return {"organizations": orgs}

    def get_org(self, req: Request) -> dict[str, Any]:
        org_id, name = req.params["id"], req.q("name")
        for org in self.identity.organizations():
            if (org_id and org["id"] == org_id) or (not org_id and name and org["name"] == name):
                return org
        raise not_found(f"organization {org_id or name!r}")

    def list_memberships(self, req: Request) -> dict[str, Any]:
        org_id = req.q("organizationId")
        membership = self.identity.membership()
        if org_id and org_id != self.identity.org_id:
            return {"memberships": []}
        return {"memberships": [membership]}

    def project_memberships(self, req: Request) -> dict[str, Any]:
        self.identity.require_project(req.params["projectId"])
        ident = self.identity
        return {
            "memberships": [
                {
                    "projectId": ident.project_id,
                    "userId": ident.user_id,
                    "username": ident.username,
                    "email": ident.email,
                    "displayName": ident.username,
                    "createdAt": ident.created_at,
                    "roleId": "owner",
                }
            ]
        }

    def search_users(self, req: Request) -> dict[str, Any]:
        query = req.q("query").lower()
        user = self.identity.search_user()
        users = [user] if not query or query in user["username"].lower() or query in user["email"] else []
        return {"users": users, "nextPageToken": "", "previousPageToken": "", "totalSize": str(len(users))}

    def user_profile(self, req: Request) -> dict[str, Any]:
        if req.params["username"] != self.identity.username:
            raise not_found(f"user {req.params['username']!r}")
        return self.identity.search_user()

    def get_project(self, req: Request) -> dict[str, Any]:
        self.identity.require_project(req.params["id"])
        return self.identity.project()

    def cluster_bindings(self, req: Request) -> dict[str, Any]:
        project_id = req.params["projectId"]
        self.identity.require_project(project_id)
        return {"clusters": [catalog.cluster_binding(project_id, self.identity.created_at)]}

    # ------------------------------------------------------------ clusters

    def _cluster(self) -> dict[str, Any]:
        return catalog.cluster(self.identity.created_at)

    def list_core_clusters(self, req: Request) -> dict[str, Any]:
        return {"clusters": [self._cluster()], "defaultCluster": catalog.DEFAULT_CLUSTER_ID}

    def get_core_cluster(self, req: Request) -> dict[str, Any]:
        if req.params["id"] != catalog.DEFAULT_CLUSTER_ID:
            raise not_found(f"cluster {req.params['id']!r}")
        return self._cluster()

    def cluster_accelerators(self, req: Request) -> dict[str, Any]:
        if req.params["id"] != catalog.DEFAULT_CLUSTER_ID:
            raise not_found(f"cluster {req.params['id']!r}")
        return {"accelerator": catalog.accelerators()}

    def default_accelerators(self, req: Request) -> dict[str, Any]:
        provider = req.q("cloudProvider").upper()
        if provider and provider not in ("AWS", "CLOUD_PROVIDER_UNSPECIFIED"):
            return {"accelerator": []}
        return {"accelerator": catalog.accelerators()}

    def project_clusters(self, req: Request) -> dict[str, Any]:
        self.identity.require_project(req.params["projectId"])
        return {"clusters": [self._cluster()]}

    def project_cluster_accelerators(self, req: Request) -> dict[str, Any]:
        self.identity.require_project(req.params["projectId"])
        return self.cluster_accelerators(req)

    # ------------------------------------------------------------- studios

    def list_studios(self, req: Request) -> dict[str, Any]:
        return self.store.studios.list_studios(req.params["projectId"], req.query)

    def get_studio(self, req: Request) -> dict[str, Any]:
        return self.store.studios.get(req.params["projectId"], req.params["id"])

    def create_studio(self, req: Request) -> dict[str, Any]:
        return self.store.studios.create(req.params["projectId"], req.json_body())

    def delete_studio(self, req: Request) -> dict[str, Any]:
        return self.store.studios.delete(req.params["projectId"], req.params["id"])

    def start_studio(self, req: Request) -> dict[str, Any]:
        return self.store.studios.start(req.params["projectId"], req.params["id"], req.json_body())

    def stop_studio(self, req: Request) -> dict[str, Any]:
        return self.store.studios.stop(req.params["projectId"], req.params["id"])

    def studio_codestatus(self, req: Request) -> dict[str, Any]:
        return self.store.studios.code_status(req.params["projectId"], req.params["id"])

    def studio_codeconfig(self, req: Request) -> dict[str, Any]:
        return self.store.studios.code_config(req.params["projectId"], req.params["id"])

    def update_studio_codeconfig(self, req: Request) -> dict[str, Any]:
        p = req.params
        return self.store.studios.update_code_config(p["projectId"], p["id"], req.json_body())

    def studio_switch_confirm(self, req: Request) -> dict[str, Any]:
        return self.store.studios.switch_confirm(req.params["projectId"], req.params["id"])

    def studio_keep_alive(self, req: Request) -> dict[str, Any]:
        return self.store.studios.keep_alive(req.params["projectId"], req.params["id"])

    def studio_execute(self, req: Request) -> dict[str, Any]:
        return self.store.studios.execute(req.params["projectId"], req.params["id"], req.json_body())

    def studio_command(self, req: Request) -> dict[str, Any]:
        p = req.params
        return self.store.studios.command_result(p["projectId"], p["id"], p["session"])

    def studio_command_stream(self, req: Request) -> Response:
        # NDJSON (one StreamResult per line) although the content type says JSON, like the platform
        p = req.params
        lines = self.store.studios.command_stream(p["projectId"], p["id"], p["session"])
        payload = "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines)
        return Response(raw=payload.encode("utf-8"))

    # ------------------------------------------------------------ schedules

    def create_schedule(self, req: Request) -> dict[str, Any]:
        return self.store.schedules.create(req.params["projectId"], req.json_body())

    def list_schedules(self, req: Request) -> dict[str, Any]:
        return self.store.schedules.list_schedules(req.params["projectId"], req.query)

    def get_schedule(self, req: Request) -> dict[str, Any]:
        return self.store.schedules.get(req.params["projectId"], req.params["id"])

    def update_schedule(self, req: Request) -> dict[str, Any]:
        return self.store.schedules.update(req.params["projectId"], req.params["id"], req.json_body())

    def delete_schedule(self, req: Request) -> dict[str, Any]:
        return self.store.schedules.delete(req.params["projectId"], req.params["id"])

    def trigger_schedule_run(self, req: Request) -> dict[str, Any]:
        p = req.params
        return self.store.schedules.trigger(p["projectId"], p["cloudspaceId"], p["scheduleId"])

    def list_schedule_runs(self, req: Request) -> dict[str, Any]:
        p = req.params
        return self.store.schedules.list_runs(p["projectId"], p["cloudspaceId"], p["scheduleId"])

    def get_schedule_run(self, req: Request) -> dict[str, Any]:
        p = req.params
        return self.store.schedules.get_run(p["projectId"], p["cloudspaceId"], p["scheduleId"], p["runId"])

    # ----------------------------------------------------------------- jobs

    def create_job(self, req: Request) -> dict[str, Any]:
        return self.store.jobs.create(req.params["projectId"], req.json_body())

    def list_jobs(self, req: Request) -> dict[str, Any]:
        return self.store.jobs.list_jobs(req.params["projectId"], req.query)

    def find_job(self, req: Request) -> dict[str, Any]:
        name = req.q("name")
        if not name:
            raise invalid("name is required")
        return self.store.jobs.get_by_name(req.params["projectId"], name)

    def get_job(self, req: Request) -> dict[str, Any]:
        return self.store.jobs.get(req.params["projectId"], req.params["id"])

    def update_job(self, req: Request) -> dict[str, Any]:
        return self.store.jobs.update(req.params["projectId"], req.params["id"], req.json_body())

    def delete_job(self, req: Request) -> dict[str, Any]:
        return self.store.jobs.delete(req.params["projectId"], req.params["id"])

    def get_job_by_slugs(self, req: Request) -> dict[str, Any]:
        ident = self.identity
        owner = req.params["projectOwnerName"]
        project = req.params["projectName"]
        if owner == "-":
            owner = req.q("projectOwnerName")
        if project == "-":
            project = req.q("projectName")
        project_id = req.q("projectId")
        if project_id:
            self.identity.require_project(project_id)
        elif (owner, project) != (ident.owner_name, ident.teamspace_name):
            raise not_found(f"teamspace {owner}/{project!s}")
        return self.store.jobs.get_by_name(ident.project_id, req.params["jobName"])

    def download_logs(self, req: Request) -> dict[str, Any]:
        # A job id, or a multi-machine job id plus ``rank`` (what ``Job.download_logs`` sends for an MMT).
        job_id = self.store.logs.log_job_id(req.params["projectId"], req.params["id"], as_int(req.q("rank"), 0))
        return {"url": f"{req.base_url}/__sim/logs/{job_id}?sig={self.sign(job_id)}"}

    def legacy_page_logs(self, req: Request) -> dict[str, Any]:
        job_id = req.params["id"]
        pages = self.store.logs.legacy_pages(req.params["projectId"], job_id, req.base_url, LEGACY_PAGE_LINES)
        for page in pages["pages"]:
            page["url"] += f"?sig={self.sign(job_id)}"
        return pages

    def page_logs(self, req: Request) -> dict[str, Any]:
        return self.store.logs.page_logs(req.params["projectId"], req.query)

    def search_job_logs(self, req: Request) -> dict[str, Any]:
        query = dict(req.query)
        query["jobIds"] = [i for i in query.pop("id", []) if i]
        result = self.store.logs.page_logs(req.params["projectId"], query)
        return {"entries": result["entries"], "followUrl": ""}

    def list_tags(self, req: Request) -> dict[str, Any]:
        return self.store.tags.list_tags(req.params["projectId"])

    def set_tags(self, req: Request) -> dict[str, Any]:
        p = req.params
        return self.store.tags.set_workload_tags(p["projectId"], p["workloadType"], p["workloadId"], req.json_body())

    # ------------------------------------------------------------- secrets

    def list_secrets(self, req: Request) -> dict[str, Any]:
        return self.store.secrets.list_secrets(req.params["projectId"], req.q("type"))

    def create_secret(self, req: Request) -> dict[str, Any]:
        return self.store.secrets.create(req.params["projectId"], req.json_body())

    def get_secret(self, req: Request) -> dict[str, Any]:
        return self.store.secrets.get(req.params["projectId"], req.params["id"])

    def update_secret(self, req: Request) -> dict[str, Any]:
        return self.store.secrets.update(req.params["projectId"], req.params["id"], req.json_body())

    def delete_secret(self, req: Request) -> dict[str, Any]:
        return self.store.secrets.delete(req.params["projectId"], req.params["id"])

    # ------------------------------------------------------ multi-machine jobs

    def create_mmt(self, req: Request) -> dict[str, Any]:
        return self.store.mmts.create(req.params["projectId"], req.json_body())

    def list_mmts(self, req: Request) -> dict[str, Any]:
        return self.store.mmts.list_mmts(req.params["projectId"], req.query)

    def get_mmt_by_name(self, req: Request) -> dict[str, Any]:
        return self.store.mmts.get_by_name(req.params["projectId"], req.params["name"])

    def get_mmt(self, req: Request) -> dict[str, Any]:
        return self.store.mmts.get(req.params["projectId"], req.params["id"])

    def update_mmt(self, req: Request) -> dict[str, Any]:
        return self.store.mmts.update(req.params["projectId"], req.params["id"], req.json_body())

    def delete_mmt(self, req: Request) -> dict[str, Any]:
        return self.store.mmts.delete(req.params["projectId"], req.params["id"])

    def mmt_events(self, req: Request) -> dict[str, Any]:
        return self.store.mmts.events(req.params["projectId"], req.params["id"], req.query)

    # ---------------------------------------------------------- deployments

    def create_deployment(self, req: Request) -> dict[str, Any]:
        return self.store.deployments.create(req.params["projectId"], req.json_body())

    def list_deployments(self, req: Request) -> dict[str, Any]:
        return self.store.deployments.list_deployments(req.params["projectId"], req.query)

    def get_deployment_by_name(self, req: Request) -> dict[str, Any]:
        return self.store.deployments.get_by_name(req.params["projectId"], req.params["name"])

    def get_deployment_by_slugs(self, req: Request) -> dict[str, Any]:
        p, ident = req.params, self.identity
        if (p["owner"], p["teamspace"]) != (ident.owner_name, ident.teamspace_name):
            raise not_found(f"teamspace {p['owner']}/{p['teamspace']}")
        return self.store.deployments.get_by_name(ident.project_id, p["name"])

    def get_deployment(self, req: Request) -> dict[str, Any]:
        return self.store.deployments.get(req.params["projectId"], req.params["id"])

    def update_deployment(self, req: Request) -> dict[str, Any]:
        return self.store.deployments.update(req.params["projectId"], req.params["id"], req.json_body())

    def delete_deployment(self, req: Request) -> dict[str, Any]:
        return self.store.deployments.delete(req.params["projectId"], req.params["id"])

    def deployment_status(self, req: Request) -> dict[str, Any]:
        return self.store.deployments.status(req.params["projectId"], req.params["id"])

    def deployment_events(self, req: Request) -> dict[str, Any]:
        return self.store.deployments.events(req.params["projectId"], req.params["id"], req.query)

    def deployment_releases(self, req: Request) -> dict[str, Any]:
        return self.store.deployments.list_releases(req.params["projectId"], req.params["id"])

    def serve_deployment(self, req: Request) -> dict[str, Any] | Response:
        answer = self.store.deployments.serve(req.params["id"], req, self.auth.check)
        if isinstance(answer, Upstream):  # a replica process's answer, as it is
            return Response(answer.status, raw=answer.body, content_type=answer.content_type, headers=answer.headers)
        return answer

    # ---------------------------------------------------------------- drive

    def _drive_scope(self, req: Request, query: frozenset[str] = frozenset(), body: str = "") -> Scope:
        """The request's drive scope, after the strict-mode check of its query and body (Appendix B shapes)."""
        if self.wire_models is not None:
            where = f"{req.method} {req.path}"
            name = query_error(req.query, query)
            if name is not None:
                raise invalid(f'unknown query parameter "{name}" of {where} (strict wire mode; --lenient accepts it)')
            field_name = shape_error(body, req.body) if body else None
            if field_name is not None:
                raise invalid(
                    f'unknown field "{field_name}" in body of {where} (strict wire mode: the drive\'s JSON shape '
                    "has no such field; --lenient accepts it)"
                )
        return self.store.drive.scope(req.params["projectId"], req.params.get("studioId", ""))

    def _drive_done(self, req: Request) -> Any:
        """What a delete answers: ``{}``, or an empty 204 in the Studio scope (what the SDK's Studio expects)."""
        return Response(204, raw=b"") if req.params.get("studioId") else {}

    def drive_list(self, req: Request) -> dict[str, Any]:
        scope = self._drive_scope(req, TREE_QUERY)
        return self.store.drive.list_tree(scope, req.params["path"], req.query)

    def drive_download(self, req: Request) -> Response:
        scope = self._drive_scope(req, BLOB_QUERY)
        handle, size = self.store.drive.open_blob(scope, req.params["path"])
        return Response(content_type="application/octet-stream", file=handle, file_size=size)

    def drive_upload(self, req: Request) -> dict[str, Any]:
        scope = self._drive_scope(req, body="upload")
        base = req.base_url

        def url_for(upload_id: str, part: int) -> str:
            return f"{base}/__storage/{upload_id}/{part}?sig={self.sign_storage(upload_id, part)}"

        return self.store.drive.request_upload(scope, req.json_body(), url_for)

    def drive_complete(self, req: Request) -> dict[str, Any]:
        scope = self._drive_scope(req, body="complete")
        return self.store.drive.complete(scope, req.json_body())

    def drive_delete_blob(self, req: Request) -> Any:
        self.store.drive.delete_blob(self._drive_scope(req), req.params["path"])
        return self._drive_done(req)

    def drive_delete_tree(self, req: Request) -> Any:
        self.store.drive.delete_tree(self._drive_scope(req), req.params["path"])
        return self._drive_done(req)

    def storage_put(self, req: Request) -> Response:
        """``PUT /__storage/{uploadId}/{part}?sig=``: one part of a drive upload, S3-style answers."""
        upload_id, part_text = req.params["uploadId"], req.params["part"]
        try:
            part = int(part_text) if part_text.isdigit() else 0
            if not part or not hmac.compare_digest(req.q("sig"), self.sign_storage(upload_id, part)):
                raise StorageError(403, "SignatureDoesNotMatch", "the request signature does not match this URL")
            if req.headers.get(SSE_HEADER) != SSE_VALUE:
                raise StorageError(
                    403,
                    "AccessDenied",
                    f"this URL was signed with the header {SSE_HEADER}: {SSE_VALUE}, which the request must send",
                )
            assert req.stream is not None
            etag = self.store.drive.put_part(upload_id, part, req.stream)
        except StorageError as exc:
            return Response(exc.status, raw=exc.xml(), content_type="application/xml")
        return Response(200, raw=b"", content_type="text/plain", headers={"ETag": etag})


# ------------------------------------------------------------------ HTTP


class ApiHTTPServer(ThreadingHTTPServer):
    """Threaded HTTP/1.1 server bound to the simulator's :class:`Api`."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], api: Api, verbose: bool = False) -> None:
        self.api = api
        self.verbose = verbose
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def track(self, conn: socket.socket, open_: bool) -> None:
        """Remember (or forget) a client connection so :meth:`close_connections` can end it."""
        with self._connections_lock:
            if open_:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def close_connections(self) -> None:
        """Shut down every open keep-alive connection (after ``shutdown()``, nothing is served)."""
        with self._connections_lock:
            conns = list(self._connections)
            self._connections.clear()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    @property
    def url(self) -> str:
        """``http://host:port`` of the listening socket."""
        host, port = self.server_address[:2]
        if isinstance(host, bytes):
            host = host.decode()
        return f"http://{host}:{port}"

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quietly ignore clients that hang up; report anything else."""
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError, socket.timeout)):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes: avoid the 40 ms delayed-ACK stall
    server_version = "LightningSimulator/1.0"
    sys_version = ""
    timeout = 300  # idle keep-alive connections are closed after this many seconds
    server: ApiHTTPServer

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    # ----------------------------------------------------------------- body

    def _body_stream(self) -> BodyStream:
        chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        length = 0 if chunked else int(self.headers.get("Content-Length") or 0)
        return BodyStream(self.rfile, length, chunked)

    def _read_body(self) -> bytes:
        return self._body_stream().read_all()

    # ------------------------------------------------------------- dispatch

    def _dispatch(self, method: str) -> None:
        api = self.server.api
        has_auth = bool(self.headers.get("Authorization"))
        split = urlsplit(self.path)
        path = split.path or "/"
        found = api.resolve(method, path)
        stream: BodyStream | None = None
        raw_body = b""
        try:
            if found is not None and found[0].stream:
                stream = self._body_stream()  # read by the handler (or drained below)
            else:
                raw_body = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            self._finish(method, Response(400, error_body(3, "invalid argument: unreadable request body")), has_auth)
            return
        try:
            self._serve(api, method, path, split.query, found, raw_body, stream, has_auth)
        finally:
            if stream is not None and not stream.done:
                try:
                    stream.drain()
                except (ValueError, OSError):
                    self.close_connection = True

    def _serve(
        self,
        api: Api,
        method: str,
        path: str,
        query: str,
        found: tuple[Route, dict[str, str]] | None,
        raw_body: bytes,
        stream: BodyStream | None,
        has_auth: bool,
    ) -> None:
        admin = path.startswith("/__admin/")
        decision = NO_FAULT
        if not admin:
            decision = api.faults.decide(path)
            if decision.latency:
                time.sleep(decision.latency)
            if decision.action == "drop":
                api.request_log.record(method, self.path, 0, has_auth)
                self._drop()
                return
            if stream is not None and decision.action in ("429", "503"):
                try:
                    stream.drain()  # answered without reading it: keep the connection usable
                except (ValueError, OSError):
                    self.close_connection = True
            if decision.action == "429":
                # Whole seconds as RFC 9110 delta-seconds; a fractional setting (handy for fast tests) is
                # sent as a decimal such as "0.1", which float()-based clients accept.
                value = decision.retry_after
                retry = str(int(value)) if value == int(value) else f"{value:g}"
                resp = Response(429, error_body(8, "resource exhausted: injected rate limit"), headers={})
                resp.headers["Retry-After"] = retry
                self._finish(method, resp, has_auth)
                return
            if decision.action == "503":
                self._finish(
                    method, Response(503, error_body(GRPC_UNAVAILABLE, "unavailable: injected fault")), has_auth
                )
                return
        resp = self._handle(api, method, path, query, found, raw_body, stream)
        if not admin and decision.action == "drop_response":
            # The work is done (a job may have been created), but the client never hears about it.
            if resp.file is not None:
                resp.file.close()
            api.request_log.record(method, self.path, 0, has_auth)
            self._drop()
            return
        self._finish(method, resp, has_auth)

    def _handle(
        self,
        api: Api,
        method: str,
        path: str,
        query: str,
        found: tuple[Route, dict[str, str]] | None,
        raw_body: bytes,
        stream: BodyStream | None = None,
    ) -> Response:
        try:
            if found is None:
                if path.startswith("/v1/"):
                    api.auth.check(self.headers.get("Authorization"))
                raise ApiError(GRPC_NOT_FOUND, f"not found: no route for {method} {path}")
            route, params = found
            if route.auth:
                api.auth.check(self.headers.get("Authorization"))
            body: Any = None
            if raw_body.strip() and not route.raw:
                try:
                    body = json.loads(raw_body.decode("utf-8", errors="replace"))
                except ValueError:
                    raise invalid("the request body is not valid JSON") from None
            if api.wire_models is not None and route.wire:
                api.wire_models.check(method, path, query, body)
            host = self.headers.get("Host") or self.server.url.removeprefix("http://")
            req = Request(
                method=method,
                path=path,
                params=params,
                query=_parse_query(query),
                body=body,
                headers={k.lower(): v for k, v in self.headers.items() if k.lower() != "authorization"},
                base_url=f"http://{host}",
                raw_body=raw_body,
                raw_query=query,
                authorization=self.headers.get("Authorization") or "",
                stream=stream,
            )
            result = route.handler(req)
            return result if isinstance(result, Response) else Response(200, result)
        except ApiError as exc:
            return Response(exc.status, exc.body())
        except ConnectionError:  # the client hung up while sending a streamed body
            self.close_connection = True
            return Response(400, error_body(3, "invalid argument: the request body ended early"))
        except Exception as exc:  # any bug becomes a 500, never a dropped connection
            traceback.print_exc()
            return Response(500, error_body(GRPC_INTERNAL, f"internal: {type(exc).__name__}: {exc}"))

    # --------------------------------------------------------------- output

    def _finish(self, method: str, resp: Response, has_auth: bool) -> None:
        # Recorded before answering, so a client that got its response always finds it in the log.
        self.server.api.request_log.record(method, self.path, resp.status, has_auth)
        self._send(resp)

    def _send(self, resp: Response) -> None:
        if resp.file is not None:
            self._send_file(resp, resp.file)
            return
        if resp.status == 204:
            payload = b""
        elif resp.raw is not None:
            payload = resp.raw
        else:
            payload = json.dumps(resp.body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        self._send_headers(resp, len(payload))
        self.wfile.write(payload)
        self.wfile.flush()

    def _send_headers(self, resp: Response, length: int) -> None:
        self.send_response(resp.status)
        if resp.status != 204:
            if resp.content_type:  # "" only for a proxied answer that had none
                self.send_header("Content-Type", resp.content_type)
            self.send_header("Content-Length", str(length))
        for key, value in resp.headers.items():
            self.send_header(key, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()

    def _send_file(self, resp: Response, handle: BinaryIO) -> None:
        """Stream an open file in chunks (never read into memory as a whole), then close it."""
        try:
            self._send_headers(resp, resp.file_size)
            left = resp.file_size
            while left > 0:
                chunk = handle.read(min(BODY_CHUNK, left))
                if not chunk:  # the file shrank meanwhile: the client sees a short body
                    self.close_connection = True
                    break
                self.wfile.write(chunk)
                left -= len(chunk)
            self.wfile.flush()
        finally:
            handle.close()

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)
