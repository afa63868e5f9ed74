"""The teamspace drive (``/v1/projects/{id}/artifacts/...``, reference section 2 and Appendix B), kept on disk.

Layout: one folder per teamspace, ``<drive root>/<projectId>/<drive path>``. The Studio-scoped variants
(``.../artifacts/cloudspaces/{studioId}/...``) work on the Studio's own folder instead. Uploads in progress
live in ``<drive root>/.uploads/<upload id>/<part number>`` until they are completed (an upload that is
never completed leaves nothing in the drive) and do not survive a restart.

* Listing (``GET .../trees/{path}``): sorted by path, ``atMost`` entries a page (default 100), an opaque
  ``nextCursor`` (``""`` on the last page). Non-recursive: the direct children, files (``blob``) and folders
  (``tree``). Recursive: every file below the folder, paths relative to it, no folder entries (what the SDK's
  folder download needs). ``size`` is left out for empty files and folders. A folder that does not exist, or a
  path that is a file, is a 404 (the drive root always exists). Symbolic links are not listed or served.
* Uploads (``POST .../blobs``, snake_case bodies): exactly one blob a request. Every upload gets an
  ``upload_id`` and one presigned URL per part (a single-part upload has one part), served by the simulator
  itself at ``PUT {url}/__storage/{upload_id}/{part}?sig=...``: no ``Authorization``, the signature and the
  listed ``x-amz-server-side-encryption: AES256`` header are required (403 otherwise), the answer carries the
  part's ``ETag`` (``"<md5 hex>"``, quotes included). ``POST .../blobs/complete`` checks every part (and
  each ``etag`` given) and moves the file into place atomically. Project-scope uploads need ``cluster_id``
  except under ``lightning_storage/`` (400 whose message names ``ClusterID``, like the platform).
* Job artifacts (``artifacts_folder``, reference 1.1): a Studio job writes to ``jobs/<job name>``, an
  image job with ``spec.artifactsDestination = "<type>:<name>:<path>"`` to ``<type>_connections/<name>/<path>``;
  the job's process gets that folder as ``LIGHTNING_ARTIFACTS_DIR``.
* The ``/teamspace`` mount: on Lightning a machine sees drive path ``X`` at ``/teamspace/X``. The simulator
  cannot create ``/teamspace``, so it rewrites a leading ``/teamspace`` in job and deployment commands and in
  literal env values to the teamspace's folder (``mount_teamspace``) and sets ``LIGHTNING_TEAMSPACE_DIR``.
"""

from __future__ import annotations

import base64
import bisect
import contextlib
import errno
import hashlib
import os
import re
import shutil
import stat
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from .catalog import DEFAULT_CLUSTER_ID
from .context import ServiceContext
from .wire import ApiError, as_int, as_str, camel, invalid, not_found, now_ns

UPLOADS_FOLDER = ".uploads"
SSE_HEADER = "x-amz-server-side-encryption"
SSE_VALUE = "AES256"
MAX_PARTS = 10_000  # what S3-style stores allow
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 10_000
COPY_CHUNK = 1 << 20
LIGHTNING_STORAGE = "lightning_storage/"

# the JSON shapes of Appendix B (snake_case; camelCase spellings accepted too)
TREE_QUERY = frozenset({"recursive", "cursor", "clusterId", "atMost"})
BLOB_QUERY = frozenset({"clusterId"})
UPLOAD_TOP = frozenset({"blobs", "clusterId"})
UPLOAD_BLOB = frozenset({"path", "contentType", "parts", "partSize", "uploadId", "partNumbers"})
COMPLETE_TOP = frozenset({"blobs", "clusterId"})
COMPLETE_BLOB = frozenset({"path", "uploadId", "parts"})
COMPLETE_PART = frozenset({"partNumber", "etag"})

# "/teamspace" where a path starts (start of text, after a space, a quote or a shell/option separator) and
# ends (end of text, "/", a space or a quote): "/teamspaces", "/x/teamspace" and "$HOME/teamspace" are left alone
_TEAMSPACE_RE = re.compile(r"(?<![^\s\"'=:(;|&<>`,])/teamspace(?=$|/|\s|[\"'])")


class StorageError(Exception):
    """An error of the presigned storage URLs, answered S3-style (XML ``<Error><Code>``)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def xml(self) -> bytes:
        """The S3-style error document."""
        text = self.message.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{self.code}</Code><Message>{text}</Message></Error>"
        ).encode()


class Readable(Protocol):
    """A request body read piece by piece (``b""`` at its end)."""

    def read(self, size: int = ...) -> bytes:
        """Up to ``size`` bytes."""
        ...


class StudioFolders(Protocol):
    """Where the Studio-scoped drive variants read and write (the Studio service)."""

    def get(self, project_id: str, studio_id: str) -> dict[str, Any]:
        """The Studio (404 when it does not exist)."""
        ...

    def studio_dir(self, studio_id: str) -> Path:
        """The Studio's folder."""
        ...


# ------------------------------------------------------------------ paths


def drive_path(raw: str, what: str = "path", allow_root: bool = False) -> str:
    """A relative drive path with empty segments dropped; 400 on ``.``/``..`` segments (or an empty path).

    :param raw: the path as sent (already URL-decoded).
    :param what: how the error message calls it.
    :param allow_root: accept the empty path (the root of the drive).
    """
    if "\x00" in raw:
        raise invalid(f"{what} {raw!r} contains a NUL character")
    parts = [p for p in raw.split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise invalid(f"{what} {raw!r} must not contain '.' or '..' segments")
    if not parts and not allow_root:
        raise invalid(f"{what} must name a file, got {raw!r}")
    return "/".join(parts)


def upload_path(raw: str) -> str:
    """An upload's destination: a leading ``/`` and ``teamspace/`` stripped (like the SDK), then checked."""
    text = raw.lstrip("/")
    text = text.removeprefix("teamspace/")
    return drive_path(text, "blob path")


def check_artifacts_destination(value: str) -> tuple[str, str, str]:
    """``(type, name, path)`` of ``spec.artifactsDestination = "<type>:<name>:<path>"``; 400 when malformed."""
    parts = value.split(":")
    hint = 'artifactsDestination must look like "<connection type>:<connection name>:<path>" (e.g. "s3:bucket:out")'
    if len(parts) != 3 or not all(p.strip() for p in parts):
        raise invalid(f"{hint}, got {value!r}")
    kind, name, path = parts
    for part in (kind, name):
        if "/" in part or part in (".", ".."):
            raise invalid(f"{hint}: the connection type and name must be single names, got {value!r}")
    try:
        folder = drive_path(path, "artifactsDestination path")
    except ApiError:
        raise invalid(f"{hint}: its path must stay inside the connection (no '..'), got {value!r}") from None
    return kind, name, folder


def artifacts_folder(spec: dict[str, Any], job_name: str) -> str | None:
    """The drive folder a job's artifacts go to (reference 1.1), or ``None`` (an image job without a destination).

    :param spec: the job's ``V1JobSpec``.
    :param job_name: the ``V1Job`` name.
    """
    if not spec.get("image"):
        return drive_path(f"jobs/{job_name}", "job artifacts folder")
    destination = as_str(spec.get("artifactsDestination"))
    if not destination:
        return None
    kind, name, path = check_artifacts_destination(destination)
    return f"{kind}_connections/{name}/{path}"


def mount_teamspace(text: str, teamspace_dir: Path | str) -> str:
    """``text`` with every leading ``/teamspace`` path replaced by the teamspace's drive folder.

    :param text: a command or an env value.
    :param teamspace_dir: ``<drive root>/<projectId>``.
    """
    if "/teamspace" not in text:
        return text
    target = str(teamspace_dir).rstrip("/")
    return _TEAMSPACE_RE.sub(lambda m: target, text)


def _lookup(body: dict[str, Any], snake: str) -> Any:
    """``body[snake]``, or its camelCase spelling."""
    if snake in body:
        return body[snake]
    return body.get(camel(snake))


def _unknown(value: dict[str, Any], allowed: frozenset[str], prefix: str) -> str | None:
    for key in value:
        if camel(str(key)) not in allowed:
            return f"{prefix}.{key}" if prefix else str(key)
    return None


def shape_error(kind: str, body: Any) -> str | None:
    """The first field of a drive POST body that Appendix B does not list (strict wire mode), or ``None``.

    :param kind: ``"upload"`` or ``"complete"``.
    :param body: the parsed JSON body.
    """
    if not isinstance(body, dict):
        return None
    top, blob_keys = (UPLOAD_TOP, UPLOAD_BLOB) if kind == "upload" else (COMPLETE_TOP, COMPLETE_BLOB)
    found = _unknown(body, top, "")
    if found:
        return found
    for i, blob in enumerate(body.get("blobs") or []):
        if not isinstance(blob, dict):
            continue
        found = _unknown(blob, blob_keys, f"blobs[{i}]")
        if found:
            return found
        if kind == "complete":
            for j, part in enumerate(_lookup(blob, "parts") or []):
                if isinstance(part, dict):
                    found = _unknown(part, COMPLETE_PART, f"blobs[{i}].parts[{j}]")
                    if found:
                        return found
    return None


def query_error(query: dict[str, list[str]], allowed: frozenset[str]) -> str | None:
    """The first query parameter a drive GET does not take (strict wire mode), or ``None``."""
    for name in query:
        if name not in allowed:
            return name
    return None


def _timestamp(mtime_ns: int) -> str:
    """RFC3339 with milliseconds and ``Z`` (what S3-style listings send)."""
    secs, nanos = divmod(mtime_ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{nanos // 1_000_000:03d}Z"


def _encode_cursor(after: str) -> str:
    return base64.urlsafe_b64encode(f"after:{after}".encode()).decode().rstrip("=")


def _decode_cursor(token: str) -> str:
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        raise invalid(f"malformed cursor {token!r}") from None
    kind, sep, after = text.partition(":")
    if kind != "after" or not sep:
        raise invalid(f"malformed cursor {token!r}")
    return after


# ---------------------------------------------------------------- records


@dataclass(frozen=True)
class Scope:
    """Where a drive request reads and writes: a teamspace's drive folder or a Studio's folder."""

    project_id: str
    root: Path
    studio_id: str = ""  # set for the Studio-scoped variants


@dataclass
class Upload:
    """An upload in progress: its destination and the parts received so far."""

    id: str
    scope: Scope
    path: str
    parts: int
    part_size: int
    multipart: bool
    content_type: str
    cluster_id: str
    created_ns: int
    etags: dict[int, str] = field(default_factory=dict)
    sizes: dict[int, int] = field(default_factory=dict)
    last_put_ns: int = 0

    @property
    def complete(self) -> bool:
        """Every part has arrived."""
        return len(self.etags) == self.parts


@dataclass(frozen=True)
class _Entry:
    path: str
    is_dir: bool
    size: int
    mtime_ns: int


UrlFor = Callable[[str, int], str]


# ---------------------------------------------------------------- service


class DriveService:
    """The teamspace drive on disk: listings, downloads, deletes and the presigned multipart uploads."""

    def __init__(self, context: ServiceContext, root: Path, studios: StudioFolders) -> None:
        """Keep the drive under ``root`` (created; uploads left over from an earlier run are dropped).

        :param context: the shared settings and identity.
        :param root: ``<drive root>``: one folder per teamspace below it.
        :param studios: resolves the Studio-scoped variants to the Studio's folder.
        """
        self.context = context
        self.root = Path(root)
        self.studios = studios
        self.uploads_dir = self.root / UPLOADS_FOLDER
        self._lock = threading.Lock()  # the drive's own: disk work never holds the store's lock
        self._uploads: dict[str, Upload] = {}
        self._completed: dict[str, tuple[str, str]] = {}  # upload id -> (scope root, path): a repeated complete
        self.completed_uploads: list[dict[str, Any]] = []  # python API: what was completed, oldest first
        self.root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.uploads_dir, ignore_errors=True)
        self.uploads_dir.mkdir(parents=True, exist_ok=True)

    # ----------------------------------------------------------- scopes

    def teamspace_dir(self, project_id: str) -> Path:
        """``<drive root>/<projectId>`` (created): what ``/teamspace`` stands for."""
        folder = self.root / project_id
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def scope(self, project_id: str, studio_id: str = "") -> Scope:
        """The project scope, or a Studio's (404 when the teamspace or the Studio does not exist)."""
        self.context.require_project(project_id)
        if studio_id:
            self.studios.get(project_id, studio_id)
            folder = self.studios.studio_dir(studio_id)
            folder.mkdir(parents=True, exist_ok=True)
            return Scope(project_id, folder, studio_id)
        return Scope(project_id, self.teamspace_dir(project_id))

    def job_artifacts_dir(self, project_id: str, spec: dict[str, Any], job_name: str) -> Path | None:
        """The folder on disk a job's ``LIGHTNING_ARTIFACTS_DIR`` points at, ``None`` when it keeps none."""
        folder = artifacts_folder(spec, job_name)
        return None if folder is None else self.teamspace_dir(project_id) / folder

    # ----------------------------------------------------------- listing

    def list_tree(self, scope: Scope, raw_path: str, query: dict[str, list[str]]) -> dict[str, Any]:
        """``GET .../trees/{path}``: one page of the folder's entries (see the module docs)."""
        path = drive_path(raw_path, allow_root=True)
        first = {k: v[0] for k, v in query.items() if v}
        recursive_text = first.get("recursive", "").strip().lower()
        if recursive_text not in ("", "true", "false", "1", "0"):
            raise invalid(f'recursive must be "true" or "false", got {first.get("recursive")!r}')
        recursive = recursive_text in ("true", "1")
        at_most = as_int(first.get("atMost"), DEFAULT_PAGE_SIZE) if first.get("atMost") else DEFAULT_PAGE_SIZE
        if not 1 <= at_most <= MAX_PAGE_SIZE:
            raise invalid(f"atMost must be between 1 and {MAX_PAGE_SIZE}, got {at_most}")
        after = _decode_cursor(first["cursor"]) if first.get("cursor") else None
        folder = scope.root / path if path else scope.root
        try:
            info = os.lstat(folder)
        except (FileNotFoundError, NotADirectoryError):
            raise not_found(f"folder {path!r}") from None
        if not stat.S_ISDIR(info.st_mode):
            raise not_found(f"folder {path!r} (it is a file: list its parent folder, or GET it through blobs)")
        entries = sorted(self._walk(folder, recursive), key=lambda e: e.path)
        start = 0 if after is None else bisect.bisect_right([e.path for e in entries], after)
        page = entries[start : start + at_most]
        more = start + at_most < len(entries)
        return {
            "tree": [self._render(e) for e in page],
            "nextCursor": _encode_cursor(page[-1].path) if more and page else "",
        }

    @staticmethod
    def _walk(folder: Path, recursive: bool) -> Iterable[_Entry]:
        pending = [("", folder)]
        while pending:
            prefix, current = pending.pop()
            try:
                items = list(os.scandir(current))
            except (FileNotFoundError, NotADirectoryError, PermissionError):
                continue
            for item in items:
                rel = f"{prefix}{item.name}"
                try:
                    info = item.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if stat.S_ISDIR(info.st_mode):
                    if recursive:
                        pending.append((f"{rel}/", Path(item.path)))
                    else:
                        yield _Entry(rel, True, 0, info.st_mtime_ns)
                elif stat.S_ISREG(info.st_mode):
                    yield _Entry(rel, False, info.st_size, info.st_mtime_ns)

    @staticmethod
    def _render(entry: _Entry) -> dict[str, Any]:
        out: dict[str, Any] = {"path": entry.path, "type": "tree" if entry.is_dir else "blob"}
        if not entry.is_dir and entry.size:
            out["size"] = entry.size
        out["clusterId"] = DEFAULT_CLUSTER_ID
        out["lastModified"] = _timestamp(entry.mtime_ns)
        return out

    # ---------------------------------------------------- read and delete

    def open_blob(self, scope: Scope, raw_path: str) -> tuple[BinaryIO, int]:
        """``GET .../blobs/{path}``: the open file and its size (404 for a folder or a missing file)."""
        path = drive_path(raw_path)
        target = scope.root / path
        try:
            if not stat.S_ISREG(os.lstat(target).st_mode):  # a folder or a symbolic link
                raise FileNotFoundError(path)
            handle = open(target, "rb")  # noqa: SIM115 - the HTTP layer streams it and closes it
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise not_found(f"file {path!r}") from None
        return handle, os.fstat(handle.fileno()).st_size

    def delete_blob(self, scope: Scope, raw_path: str) -> None:
        """``DELETE .../blobs/{path}`` (404 when there is no file there)."""
        path = drive_path(raw_path)
        target = scope.root / path
        try:
            info = os.lstat(target)
        except (FileNotFoundError, NotADirectoryError):
            raise not_found(f"file {path!r}") from None
        if stat.S_ISDIR(info.st_mode):
            raise not_found(f"file {path!r} (it is a folder: DELETE it through trees)")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(target)

    def delete_tree(self, scope: Scope, raw_path: str) -> None:
        """``DELETE .../trees/{path}``: the folder and everything below it (404 when there is no folder there)."""
        path = drive_path(raw_path, "folder path", allow_root=True)
        if not path:
            raise invalid("refusing to delete the root of the drive: name a folder")
        target = scope.root / path
        try:
            info = os.lstat(target)
        except (FileNotFoundError, NotADirectoryError):
            raise not_found(f"folder {path!r}") from None
        if not stat.S_ISDIR(info.st_mode):
            raise not_found(f"folder {path!r} (it is a file: DELETE it through blobs)")
        shutil.rmtree(target, ignore_errors=True)

    # ----------------------------------------------------------- uploads

    @staticmethod
    def _one_blob(body: dict[str, Any]) -> dict[str, Any]:
        blobs = body.get("blobs")
        if not isinstance(blobs, list) or len(blobs) != 1 or not isinstance(blobs[0], dict):
            count = len(blobs) if isinstance(blobs, list) else 0
            raise invalid(f"blobs must hold exactly one object, got {count}")
        return blobs[0]

    def _check_destination(self, scope: Scope, path: str) -> None:
        """400 when ``path`` is a folder or lies below a file."""
        target = scope.root / path
        if target.is_dir() and not target.is_symlink():
            raise invalid(f"blob path {path!r} is a folder")
        parent = target.parent
        while parent != scope.root and parent != parent.parent:
            if parent.exists() and not parent.is_dir():
                raise invalid(f"blob path {path!r} lies below {str(parent.relative_to(scope.root))!r}, which is a file")
            parent = parent.parent

    def request_upload(self, scope: Scope, body: dict[str, Any], url_for: UrlFor) -> dict[str, Any]:
        """``POST .../blobs``: a new single-part or multipart upload, or fresh URLs for parts of one in progress.

        :param scope: where the file goes.
        :param body: ``{"blobs": [{"path", "content_type"?, "parts"?, "part_size"?, "upload_id"?,
            "part_numbers"?}], "cluster_id"?}``.
        :param url_for: ``(upload id, part number) -> presigned URL``.
        """
        blob = self._one_blob(body)
        path = upload_path(as_str(_lookup(blob, "path")))
        cluster_id = as_str(_lookup(body, "cluster_id"))
        upload_id = as_str(_lookup(blob, "upload_id"))
        part_numbers = _lookup(blob, "part_numbers")
        if upload_id:
            return self._resign(scope, path, upload_id, part_numbers, url_for)
        if part_numbers is not None:
            raise invalid("part_numbers re-signs parts of an upload in progress: it needs upload_id")
        if not scope.studio_id:
            if not cluster_id and not path.startswith(LIGHTNING_STORAGE):
                raise invalid(
                    f"ClusterID is required: uploads outside {LIGHTNING_STORAGE} need cluster_id "
                    f"(a cloud account of the teamspace, e.g. {DEFAULT_CLUSTER_ID!r})"
                )
            if cluster_id and cluster_id != DEFAULT_CLUSTER_ID:
                raise not_found(f"cluster {cluster_id!r} (ClusterID)")
        raw_parts, raw_size = _lookup(blob, "parts"), _lookup(blob, "part_size")
        multipart = raw_parts is not None
        parts = as_int(raw_parts, 0) if multipart else 1
        if multipart and not 1 <= parts <= MAX_PARTS:
            raise invalid(f"parts must be between 1 and {MAX_PARTS}, got {raw_parts!r}")
        part_size = as_int(raw_size, 0) if raw_size is not None else 0
        if multipart and part_size < 1:
            raise invalid(f"part_size must be a positive number of bytes with parts, got {raw_size!r}")
        if not multipart and raw_size is not None:
            raise invalid("part_size needs parts")
        self._check_destination(scope, path)
        content_type = as_str(_lookup(blob, "content_type"))
        with self._lock:
            upload = Upload(
                id=uuid.uuid4().hex,
                scope=scope,
                path=path,
                parts=parts,
                part_size=part_size,
                multipart=multipart,
                content_type=content_type,
                cluster_id=cluster_id,
                created_ns=now_ns(),
            )
            (self.uploads_dir / upload.id).mkdir(parents=True, exist_ok=True)
            self._uploads[upload.id] = upload
        return self._urls_result(upload, range(1, parts + 1), url_for)

    def _resign(self, scope: Scope, path: str, upload_id: str, numbers: Any, url_for: UrlFor) -> dict[str, Any]:
        if not isinstance(numbers, list) or not numbers:
            raise invalid("re-signing an upload needs part_numbers (a non-empty list of part numbers)")
        with self._lock:
            upload = self._pending(scope, path, upload_id)
            wanted = []
            for raw in numbers:
                number = as_int(raw, 0)
                if not 1 <= number <= upload.parts:
                    raise invalid(f"part number {raw!r} is outside 1..{upload.parts} of upload {upload_id!r}")
                wanted.append(number)
        return self._urls_result(upload, wanted, url_for)

    def _pending(self, scope: Scope, path: str, upload_id: str) -> Upload:
        """An upload in progress of this scope and path (under the lock)."""
        upload = self._uploads.get(upload_id)
        if upload is None or upload.scope != scope:
            raise not_found(f"upload {upload_id!r}")
        if upload.path != path:
            raise invalid(f"upload {upload_id!r} is for {upload.path!r}, not {path!r}")
        return upload

    @staticmethod
    def _urls_result(upload: Upload, numbers: Iterable[int], url_for: UrlFor) -> dict[str, Any]:
        urls = [
            {"url": url_for(upload.id, n), "part_number": n, "headers": {SSE_HEADER: SSE_VALUE}} for n in numbers
        ]
        result = {"path": upload.path, "upload_id": upload.id, "urls": urls, "complete_required": True}
        return {"results": [result]}

    def check_storage_put(self, upload_id: str, part: int) -> None:
        """404/400 (S3-style) before a part's body is read: the upload must be in progress, the part in range."""
        with self._lock:
            upload = self._uploads.get(upload_id)
            if upload is None:
                raise StorageError(404, "NoSuchUpload", f"upload {upload_id} does not exist or was completed")
            if not 1 <= part <= upload.parts:
                raise StorageError(400, "InvalidArgument", f"part number {part} is outside 1..{upload.parts}")

    def put_part(self, upload_id: str, part: int, body: Readable) -> str:
        """``PUT /__storage/{upload_id}/{part}``: store the part (replacing an earlier copy); its quoted ETag.

        The body is copied to disk in chunks, never held in memory as a whole.
        """
        self.check_storage_put(upload_id, part)
        folder = self.uploads_dir / upload_id
        tmp = folder / f".{part}.{uuid.uuid4().hex}.tmp"
        digest = hashlib.md5(usedforsecurity=False)
        size = 0
        try:
            with open(tmp, "wb") as out:
                while chunk := body.read(COPY_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
        except FileNotFoundError:  # the upload was completed or forgotten meanwhile
            raise StorageError(404, "NoSuchUpload", f"upload {upload_id} does not exist or was completed") from None
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        etag = f'"{digest.hexdigest()}"'
        with self._lock:
            upload = self._uploads.get(upload_id)
            if upload is None:
                with contextlib.suppress(OSError):
                    tmp.unlink()
                raise StorageError(404, "NoSuchUpload", f"upload {upload_id} does not exist or was completed")
            os.replace(tmp, folder / str(part))
            upload.etags[part] = etag
            upload.sizes[part] = size
            upload.last_put_ns = now_ns()
        return etag

    def complete(self, scope: Scope, body: dict[str, Any]) -> dict[str, Any]:
        """``POST .../blobs/complete``: check the parts, assemble them in order and move the file into place."""
        blob = self._one_blob(body)
        path = upload_path(as_str(_lookup(blob, "path")))
        upload_id = as_str(_lookup(blob, "upload_id"))
        listed = _lookup(blob, "parts")
        with self._lock:
            repeated = upload_id not in self._uploads and self._completed.get(upload_id) == (str(scope.root), path)
            if upload_id and repeated:
                return {}  # a repeated complete (its first answer was lost)
            if upload_id:
                upload = self._pending(scope, path, upload_id)
            else:
                found = self._latest_single(scope, path)
                if found is None:
                    return {}  # a repeated complete (its first answer was lost)
                upload = found
            self._check_parts(upload, listed)
            del self._uploads[upload.id]
            self._completed[upload.id] = (str(scope.root), path)
        try:
            self._assemble(upload)
        finally:
            shutil.rmtree(self.uploads_dir / upload.id, ignore_errors=True)
        record = {
            "path": upload.path,
            "uploadId": upload.id,
            "studioId": scope.studio_id,
            "parts": upload.parts,
            "multipart": upload.multipart,
            "size": sum(upload.sizes.values()),
            "contentType": upload.content_type,
            "clusterId": upload.cluster_id,
        }
        with self._lock:
            self.completed_uploads.append(record)
        return {}

    def _latest_single(self, scope: Scope, path: str) -> Upload | None:
        """The newest single-part upload of ``path`` whose bytes arrived (a complete without ``upload_id``);
        ``None`` when there is none but ``path`` was completed before (under the lock)."""
        candidates = [
            u for u in self._uploads.values() if u.scope == scope and u.path == path and not u.multipart and u.complete
        ]
        if candidates:
            return max(candidates, key=lambda u: u.last_put_ns)
        if any(p == (str(scope.root), path) for p in self._completed.values()):
            return None
        if any(u.scope == scope and u.path == path and u.multipart for u in self._uploads.values()):
            raise invalid(f"completing the multipart upload of {path!r} needs its upload_id and parts")
        raise invalid(f"nothing was uploaded to {path!r}: PUT the bytes to the URL POST .../blobs returned first")

    @staticmethod
    def _check_parts(upload: Upload, listed: Any) -> None:
        """400 unless every part arrived and each listed ``etag`` is the stored one (under the lock)."""
        if listed is None:
            if upload.multipart:
                raise invalid(f"completing multipart upload {upload.id!r} needs parts: [{{part_number, etag}}, ...]")
        else:
            if not isinstance(listed, list):
                raise invalid("parts must be a list of {part_number, etag}")
            seen: set[int] = set()
            for item in listed:
                if not isinstance(item, dict):
                    raise invalid("parts must be a list of {part_number, etag}")
                number = as_int(_lookup(item, "part_number"), 0)
                if not 1 <= number <= upload.parts:
                    raise invalid(f"part number {number} is outside 1..{upload.parts} of upload {upload.id!r}")
                if number in seen:
                    raise invalid(f"part {number} is listed twice")
                seen.add(number)
                stored = upload.etags.get(number)
                if stored is None:
                    raise invalid(f"part {number} of upload {upload.id!r} was never uploaded")
                etag = as_str(_lookup(item, "etag"))
                if etag != stored:
                    raise invalid(f"part {number}: etag {etag!r} does not match the uploaded part's ETag {stored!r}")
            missing = [n for n in range(1, upload.parts + 1) if n not in seen]
            if missing:
                raise invalid(f"part {missing[0]} of upload {upload.id!r} is missing from parts")
        absent = [n for n in range(1, upload.parts + 1) if n not in upload.etags]
        if absent:
            raise invalid(f"part {absent[0]} of upload {upload.id!r} was never uploaded")

    def _assemble(self, upload: Upload) -> None:
        folder = self.uploads_dir / upload.id
        if upload.parts == 1:
            source = folder / "1"
        else:
            source = folder / "assembled"
            with open(source, "wb") as out:
                for n in range(1, upload.parts + 1):
                    with open(folder / str(n), "rb") as part:
                        shutil.copyfileobj(part, out, COPY_CHUNK)
        target = upload.scope.root / upload.path
        try:
            self._check_destination(upload.scope, upload.path)
            target.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise invalid(f"blob path {upload.path!r} lies below a file") from None
        try:
            os.replace(source, target)
        except IsADirectoryError:
            raise invalid(f"blob path {upload.path!r} is a folder") from None
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            tmp = target.parent / f".{target.name}.{upload.id}.partial"  # another file system: copy, then rename
            try:
                shutil.copyfile(source, tmp)
                os.replace(tmp, target)
            finally:
                with contextlib.suppress(OSError):
                    tmp.unlink()

    def pending_uploads(self) -> list[dict[str, Any]]:
        """Python API: the uploads in progress (path, uploadId, parts, partsReceived, contentType)."""
        with self._lock:
            return [
                {
                    "path": u.path,
                    "uploadId": u.id,
                    "studioId": u.scope.studio_id,
                    "parts": u.parts,
                    "partsReceived": sorted(u.etags),
                    "contentType": u.content_type,
                }
                for u in self._uploads.values()
            ]

