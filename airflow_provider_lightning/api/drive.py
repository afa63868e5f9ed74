"""The teamspace drive (``/v1/projects/{pid}/artifacts/...``): paths, listings and the JSON steps of an upload.

The drive is not in Lightning's OpenAPI description; its shapes come from the official SDK (reference
``lightning-api-data-and-pipelines.md`` section 2 and Appendix B). Listings follow ``nextCursor``; the two upload
POSTs use snake_case keys. Moving bytes (presigned PUTs, blob GETs) is :mod:`.transfer`'s job.

Two faults of the official client are not copied: a listing that fails (404, 403) is an error here, never an
empty folder, and folder downloads skip ``tree`` (folder) entries.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from airflow_provider_lightning.api import wire
from airflow_provider_lightning.api.errors import LightningApiError, LightningError
from airflow_provider_lightning.api.transport import ApiCall, Flow

#: A listing page's size (the API's ``atMost``).
PAGE_SIZE = 500
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class LightningDriveNotFound(LightningError, FileNotFoundError):
    """A drive path (a file or a folder) does not exist in the teamspace."""


@dataclass(frozen=True)
class DriveEntry:
    """One entry of a drive listing.

    :param path: path relative to the listed folder (``ckpt/model.pt``).
    :param is_dir: True for a folder (``type: tree``).
    :param size: bytes; None when the API gave none (folders; empty files read as 0).
    :param cluster_id: the cloud account holding it.
    :param last_modified: RFC3339 time of the last change, when given.
    """

    path: str
    is_dir: bool = False
    size: int | None = None
    cluster_id: str = ""
    last_modified: str | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict (what XCom carries)."""
        return {"path": self.path, "is_dir": self.is_dir, "size": self.size, "last_modified": self.last_modified}


def drive_path(path: Any, what: str = "drive path", *, allow_root: bool = False) -> str:
    """Normalise a drive path (``/teamspace/`` and leading ``/`` dropped); ValueError before any request.

    A path may not climb out of the drive (``..``) nor hold control characters.
    """
    if not isinstance(path, str):
        raise ValueError(f"{what} must be a string, got {type(path).__name__}")
    text = path.strip().replace("\\", "/")
    if _CONTROL.search(text):
        raise ValueError(f"{what} {path!r} holds a control character")
    text = text.lstrip("/")
    if text == "teamspace" or text.startswith("teamspace/"):
        text = text[len("teamspace"):].lstrip("/")
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ValueError(f"{what} {path!r} must not contain '..'")
    clean = "/".join(parts)
    if not clean and not allow_root:
        raise ValueError(f"{what} must name a file or folder in the teamspace drive, got {path!r}")
    return clean


def join(folder: str, relative: str) -> str:
    """``folder/relative`` as a drive path."""
    return drive_path(posixpath.join(folder, relative), allow_root=True) if folder else drive_path(relative)


def _url_path(project_id: str, kind: str, path: str) -> str:
    base = f"/v1/projects/{wire.seg(project_id)}/artifacts/{kind}"
    if path:
        return f"{base}/{quote(path, safe='/')}"
    return f"{base}/" if kind == "trees" else base  # the root listing is ``trees/``; upload requests go to ``blobs``


def blob_path(project_id: str, path: str) -> str:
    """The API path of a file's bytes (``GET``)."""
    return _url_path(project_id, "blobs", path)


def _entry(item: Any) -> DriveEntry | None:
    path = wire.text(item, "path")
    if not path:
        return None
    size = wire.number(item, "size")
    return DriveEntry(
        path=path,
        is_dir=wire.text(item, "type") == "tree",
        size=int(size) if size is not None else (None if wire.text(item, "type") == "tree" else 0),
        cluster_id=wire.text(item, "cluster_id"),
        last_modified=wire.timestamp(item, "last_modified"),
    )


def list_folder(
    project_id: str, folder: str, *, recursive: bool = False, cluster_id: str = "", page_size: int = PAGE_SIZE
) -> Flow[list[DriveEntry]]:
    """Flow listing a folder (every page); a missing folder raises :class:`LightningDriveNotFound`.

    A recursive listing holds files only, with paths relative to ``folder``.
    """
    entries: list[DriveEntry] = []
    cursor = ""
    seen: set[str] = set()
    while True:
        params: dict[str, Any] = {"recursive": "true" if recursive else "false", "atMost": page_size}
        if cursor:
            params["cursor"] = cursor
        if cluster_id:
            params["clusterId"] = cluster_id
        page = yield ApiCall("GET", _url_path(project_id, "trees", folder), params=params, none_if_missing=True)
        if page is None:
            raise LightningDriveNotFound(f"drive folder {folder or '/'!r} does not exist in the teamspace")
        items = wire.field(page, "tree", [])
        for item in items if isinstance(items, list) else []:
            entry = _entry(item)
            if entry is not None and _safe_relative(entry.path):
                entries.append(entry)
        cursor = wire.text(page, "next_cursor")
        if not cursor or cursor in seen:
            return [e for e in entries if not (recursive and e.is_dir)]
        seen.add(cursor)


def _safe_relative(path: str) -> bool:
    """An entry path from the server that stays inside the listed folder (a hostile answer is dropped)."""
    return not path.startswith("/") and ".." not in path.split("/") and not _CONTROL.search(path)


def path_info(project_id: str, path: str) -> Flow[DriveEntry | None]:
    """Flow: the entry for ``path`` (file or folder), found in its parent's listing; None when it does not exist."""
    parent, name = posixpath.split(path)
    try:
        entries = yield from list_folder(project_id, parent)
    except LightningDriveNotFound:
        return None
    for entry in entries:
        if entry.path.rstrip("/") == name:
            return DriveEntry(path, entry.is_dir, entry.size, entry.cluster_id, entry.last_modified)
    return None


# -- upload steps (snake_case bodies, Appendix B) ------------------------------------------------


@dataclass(frozen=True)
class UploadUrl:
    """Where to PUT one part: the presigned URL and the headers it must carry (and no others).

    :param url: absolute presigned URL on the storage host.
    :param headers: headers the PUT must send (for example ``x-amz-server-side-encryption``).
    :param part_number: 1-based part number (multipart uploads).
    """

    url: str
    headers: dict[str, str]
    part_number: int = 1


@dataclass(frozen=True)
class UploadTicket:
    """The answer to an upload request: the upload id, the URLs, and whether ``complete`` must follow."""

    upload_id: str
    urls: list[UploadUrl]
    complete_required: bool


def _ticket(body: Any) -> UploadTicket:
    results = wire.field(body, "results", [])
    if not isinstance(results, list) or not results:
        raise ValueError("the answer holds no upload result")
    first = results[0]
    urls = []
    for n, item in enumerate(wire.field(first, "urls", []) or [], start=1):
        headers = wire.field(item, "headers", {}) or {}
        part = wire.number(item, "part_number")
        url = wire.text(item, "url")
        if not url:
            raise ValueError("an upload URL is empty")
        urls.append(UploadUrl(url, {str(k): str(v) for k, v in headers.items()}, int(part) if part else n))
    if not urls:
        raise ValueError("the answer holds no upload URL")
    return UploadTicket(wire.text(first, "upload_id"), urls, bool(wire.field(first, "complete_required", False)))


def _blobs_body(blob: dict[str, Any], cluster_id: str) -> dict[str, Any]:
    body: dict[str, Any] = {"blobs": [blob]}
    if cluster_id:
        body["cluster_id"] = cluster_id
    return body


def request_upload(
    project_id: str, path: str, *, parts: int = 0, part_size: int = 0, cluster_id: str = "", content_type: str = ""
) -> ApiCall[UploadTicket]:
    """Ask for upload URLs: one URL (``parts=0``) or a multipart upload of ``parts`` parts of ``part_size`` bytes.

    Retried like any read: an abandoned request only leaves an upload nobody completes.
    """
    blob: dict[str, Any] = {"path": path}
    if content_type:
        blob["content_type"] = content_type
    if parts:
        blob.update(parts=parts, part_size=part_size)
    return ApiCall("POST", _url_path(project_id, "blobs", ""), json=_blobs_body(blob, cluster_id), parse=_ticket)


def resign_parts(project_id: str, path: str, upload_id: str, part_numbers: list[int], cluster_id: str = "") -> Flow[
    list[UploadUrl]
]:
    """Flow: fresh URLs for parts of an open multipart upload (one request per part, as the API answers one)."""
    urls = []
    for number in part_numbers:
        blob = {"path": path, "upload_id": upload_id, "part_numbers": [number]}
        ticket = yield ApiCall(
            "POST", _url_path(project_id, "blobs", ""), json=_blobs_body(blob, cluster_id), parse=_ticket
        )
        urls.append(UploadUrl(ticket.urls[0].url, ticket.urls[0].headers, number))
    return urls


def complete_upload(
    project_id: str, path: str, *, upload_id: str = "", etags: dict[int, str] | None = None, cluster_id: str = ""
) -> ApiCall[Any]:
    """Finish an upload; a multipart one lists every part's ``ETag`` verbatim (quotes kept)."""
    blob: dict[str, Any] = {"path": path}
    if upload_id:
        blob["upload_id"] = upload_id
    if etags:
        blob["parts"] = [{"part_number": n, "etag": etags[n]} for n in sorted(etags)]
    return ApiCall("POST", _url_path(project_id, "blobs", "complete"), json=_blobs_body(blob, cluster_id))


def needs_cloud_account(path: str) -> bool:
    """Whether an upload to ``path`` needs a cloud account (everything but ``lightning_storage/``)."""
    return not (path == "lightning_storage" or path.startswith("lightning_storage/"))


def default_cloud_account(project_id: str) -> Flow[str]:
    """Flow: the cloud account uploads go to when none is given, as the official client picks it: the teamspace's
    preferred cluster, else its only cluster binding; "" when it has neither."""
    project = yield ApiCall("GET", f"/v1/projects/{wire.seg(project_id)}")
    preferred = wire.text(wire.field(project, "project_settings", {}), "preferred_cluster")
    if preferred:
        return preferred
    bindings = yield ApiCall("GET", f"/v1/projects/{wire.seg(project_id)}/projectclustersbindings")
    clusters = wire.field(bindings, "clusters", [])
    ids = {wire.text(c, "cluster_id") for c in clusters if isinstance(c, dict)} - {""}
    return ids.pop() if len(ids) == 1 else ""


def delete_path(project_id: str, path: str, *, folder: bool) -> ApiCall[Any]:
    """Delete a file, or a folder and everything in it."""
    return ApiCall("DELETE", _url_path(project_id, "trees" if folder else "blobs", path), none_if_missing=True)


def is_missing(error: BaseException) -> bool:
    """True for a 404 from the API."""
    return isinstance(error, LightningApiError) and error.status == 404


# -- where a job's artifacts live (reference section 1.1) ---------------------------------------


def artifacts_destination(value: Any) -> str:
    """Check ``spec.artifactsDestination`` (``<connection type>:<connection name>:<path>``); ValueError otherwise."""
    if not isinstance(value, str) or value.count(":") != 2:
        raise ValueError(
            f"artifacts_destination must be '<connection type>:<connection name>:<path>' "
            f"(for example 's3:my-bucket:runs/train'), got {value!r}"
        )
    kind, name, path = value.split(":")
    if not kind.strip() or not name.strip() or not path.strip():
        raise ValueError(f"artifacts_destination {value!r} has an empty part")
    drive_path(path, "artifacts_destination path")
    return value


def artifacts_folder(job_name: str, *, studio_job: bool, destination: str = "") -> str | None:
    """The drive folder of a job's artifacts: ``jobs/<name>`` (Studio job), the destination's folder (image job
    with ``artifacts_destination``), else None (an image job's outputs are not persisted)."""
    if studio_job:
        return f"jobs/{job_name}"
    if destination:
        kind, name, path = artifacts_destination(destination).split(":")
        return drive_path(f"{kind}_connections/{name}/{path}")
    return None


def drive_uri(owner: str, teamspace: str, path: str) -> str:
    """``lit://<owner>/<teamspace>/<path>``: the URI the official client gives a drive path."""
    return f"lit://{owner}/{teamspace}/{path}"
