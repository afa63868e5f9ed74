"""Moving bytes to and from the teamspace drive (worker side, synchronous).

* **Upload** (reference section 2.3): a file up to ``threshold`` bytes goes in one presigned PUT, a larger one in
  parts PUT in parallel; both end with the ``complete`` call. A part that fails is PUT again on a freshly signed
  URL; the parts already stored are never sent twice. The upload id and the parts' ETags are kept in a small
  state file, so a retried task resumes an interrupted multipart upload instead of starting over.
* **Download** (section 2.4): the blob is streamed into a ``.partial`` file beside the target and renamed into
  place only when its length matches what the listing and ``Content-Length`` announced; network failures, 408,
  429, 5xx and truncated bodies are retried. Folder downloads skip folder entries and fail on a missing folder.

Presigned PUTs go through
:meth:`~airflow_provider_lightning.api.transport.Transport.storage_client`, which never carries the API credentials.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import tenacity

from airflow_provider_lightning.api import drive
from airflow_provider_lightning.api.errors import RETRYABLE_STATUSES, LightningApiError, LightningError
from airflow_provider_lightning.api.transport import Transport, parse_retry_after

log = logging.getLogger(__name__)

MiB = 1024 * 1024
#: Files up to this size go in one PUT (the official client's ``LIGHTNING_MULTIPART_THRESHOLD``).
DEFAULT_THRESHOLD = 100 * MiB
#: Part size of a multipart upload (the official client's default).
DEFAULT_PART_SIZE = 100 * MiB
#: The API accepts at most this many parts; the part size grows to stay under it.
MAX_PARTS = 10_000
CHUNK = 1 * MiB
#: Storage answers after which a part is PUT again on a fresh URL.
_RESIGN_STATUSES = frozenset({401, 403, 408, 429, 500, 502, 503, 504})
_NETWORK_ERRORS = (httpx.TransportError,)

Progress = Callable[[int, int], None]


class LightningTransferError(LightningError):
    """Bytes could not be moved to or from the drive (after the retries)."""


@dataclass
class TransferResult:
    """What one file transfer did.

    :param path: the drive path.
    :param local_path: the local file.
    :param size: bytes moved.
    :param sha256: hex digest of the bytes ("" for a multipart upload, whose parts' ETags the server checks).
    :param requests: HTTP requests made (API calls and storage PUTs or GETs).
    :param parts: parts uploaded by this call (0 for a download).
    :param resumed_parts: parts an earlier, interrupted try had already stored.
    """

    path: str
    local_path: str
    size: int
    sha256: str
    requests: int = 0
    parts: int = 0
    resumed_parts: int = 0

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict (what XCom carries)."""
        return {"path": self.path, "local_path": self.local_path, "size": self.size, "sha256": self.sha256}


class _Retry(LightningTransferError):
    """An attempt failed in a way worth another try (what is raised when the tries run out)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _retrying(transport: Transport, what: str) -> tenacity.Retrying:
    policy = transport.retry

    def wait(state: tenacity.RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        asked = getattr(error, "retry_after", None)
        backoff = tenacity.wait_random_exponential(multiplier=policy.backoff_initial, max=policy.backoff_max)(state)
        return min(asked, policy.retry_after_max) if asked is not None else backoff

    def before_sleep(state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.warning(
            "%s failed (attempt %d of %d): %s; retrying", what, state.attempt_number, policy.max_attempts, error
        )

    return tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(_Retry),
        stop=tenacity.stop_after_attempt(policy.max_attempts),
        wait=wait,
        before_sleep=before_sleep,
        reraise=True,
    )


def _file_chunks(path: Path, offset: int, length: int, digest: Any = None) -> Iterator[bytes]:
    with path.open("rb") as handle:
        handle.seek(offset)
        left = length
        while left > 0:
            chunk = handle.read(min(CHUNK, left))
            if not chunk:
                raise LightningTransferError(f"{path} shrank while it was being uploaded")
            if digest is not None:
                digest.update(chunk)
            left -= len(chunk)
            yield chunk


def _storage_error(response: httpx.Response) -> str:
    text = response.read()[:300].decode("utf-8", errors="replace")
    return f"storage answered {response.status_code}: {' '.join(text.split())}"


class _Counter:
    def __init__(self) -> None:
        self.value = 0
        self._lock = threading.Lock()

    def add(self, n: int = 1) -> None:
        with self._lock:
            self.value += n


@dataclass
class _UploadState:
    """The resumable part of a multipart upload, kept on local disk between tries."""

    file: Path
    upload_id: str = ""
    etags: dict[int, str] = field(default_factory=dict)

    @classmethod
    def load(cls, file: Path) -> _UploadState:
        try:
            data = json.loads(file.read_text())
            return cls(file, str(data["upload_id"]), {int(k): str(v) for k, v in data["etags"].items()})
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return cls(file)

    def save(self) -> None:
        tmp = self.file.with_suffix(f".{uuid.uuid4().hex[:8]}.tmp")
        tmp.write_text(json.dumps({"upload_id": self.upload_id, "etags": self.etags}))
        os.replace(tmp, self.file)

    def forget(self) -> None:
        with contextlib.suppress(OSError):
            self.file.unlink()


def state_dir() -> Path:
    """Where interrupted uploads are remembered (``$AIRFLOW_LIGHTNING_UPLOAD_STATE_DIR`` or the temp dir)."""
    root = os.environ.get("AIRFLOW_LIGHTNING_UPLOAD_STATE_DIR") or os.path.join(
        tempfile.gettempdir(), "airflow-lightning-uploads"
    )
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _state_file(project_id: str, remote: str, local: Path, part_size: int) -> Path:
    stat = local.stat()
    key = f"{project_id}\0{remote}\0{local.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}\0{part_size}"
    return state_dir() / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.json"


def plan_parts(size: int, part_size: int) -> tuple[int, int]:
    """``(parts, part_size)`` for a multipart upload of ``size`` bytes (part size grown past 10,000 parts)."""
    if part_size <= 0:
        raise ValueError(f"part_size must be positive, got {part_size}")
    part_size = max(part_size, math.ceil(size / MAX_PARTS))
    return max(1, math.ceil(size / part_size)), part_size


def upload_file(
    transport: Transport,
    project_id: str,
    local_path: str | os.PathLike[str],
    remote_path: str,
    *,
    cluster_id: str = "",
    threshold: int = DEFAULT_THRESHOLD,
    part_size: int = DEFAULT_PART_SIZE,
    workers: int = 4,
    progress: Progress | None = None,
    resume: bool = True,
) -> TransferResult:
    """Upload one local file to ``remote_path`` in the drive; see the module docstring for the protocol.

    :param transport: the hook's transport (API calls and storage PUTs).
    :param project_id: the teamspace's project id.
    :param local_path: the file to upload.
    :param remote_path: drive path of the file (a folder path is not accepted: name the file).
    :param cluster_id: cloud account to store it in; "" lets the API choose.
    :param threshold: files larger than this go multipart.
    :param part_size: bytes per part of a multipart upload.
    :param workers: parts PUT at the same time.
    :param progress: called with ``(bytes done, total)`` as parts finish.
    :param resume: keep the multipart state on disk so that a retry resumes it.
    """
    local = Path(local_path)
    if not local.is_file():
        raise FileNotFoundError(f"local file {str(local)!r} does not exist or is not a file")
    remote = drive.drive_path(remote_path)
    size = local.stat().st_size
    counter = _Counter()
    if size <= threshold:
        sha = _upload_single(transport, project_id, local, remote, size, cluster_id, counter)
        if progress:
            progress(size, size)
        return TransferResult(remote, str(local), size, sha, counter.value, parts=1)
    parts, part_size = plan_parts(size, part_size)
    state = _UploadState.load(_state_file(project_id, remote, local, part_size)) if resume else _UploadState(Path())
    resumed = 0
    if state.upload_id:
        resumed = _resume(transport, project_id, remote, state, parts, cluster_id, counter)
    if not state.upload_id:
        ticket = transport.run(drive.request_upload(
            project_id, remote, parts=parts, part_size=part_size, cluster_id=cluster_id
        ))
        counter.add()
        if len(ticket.urls) != parts:
            raise LightningTransferError(f"asked for {parts} upload URLs, got {len(ticket.urls)}")
        state.upload_id, state.etags = ticket.upload_id, {}
        urls = {u.part_number: u for u in ticket.urls}
        if resume:
            state.save()
    else:
        missing = [n for n in range(1, parts + 1) if n not in state.etags]
        urls = {u.part_number: u for u in transport.run(
            drive.resign_parts(project_id, remote, state.upload_id, missing, cluster_id)
        )}
        counter.add(len(missing))
    done = _Counter()
    done.add(sum(min(part_size, size - (n - 1) * part_size) for n in state.etags))
    lock = threading.Lock()

    def put(number: int) -> None:
        offset = (number - 1) * part_size
        length = min(part_size, size - offset)
        url = urls[number]
        for attempt in _retrying(transport, f"uploading part {number} of {parts} of {remote}"):
            with attempt:
                if attempt.retry_state.attempt_number > 1:
                    fresh = drive.resign_parts(project_id, remote, state.upload_id, [number], cluster_id)
                    url = transport.run(fresh)[0]
                    counter.add()
                etag = _put(transport, url, local, offset, length, counter)
        with lock:
            state.etags[number] = etag
            if resume:
                state.save()
        done.add(length)
        if progress:
            progress(done.value, size)

    todo = [n for n in range(1, parts + 1) if n not in state.etags]
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(todo) or 1))) as pool:
        for future in [pool.submit(put, n) for n in todo]:
            future.result()
    try:
        transport.run(drive.complete_upload(
            project_id, remote, upload_id=state.upload_id, etags=state.etags, cluster_id=cluster_id
        ))
    except LightningApiError as error:  # the answer to an earlier complete was lost: is the file there?
        counter.add()
        info = transport.run(drive.path_info(project_id, remote)) if error.status == 404 else None
        if info is None or info.size != size:
            state.forget()
            raise
    counter.add()
    state.forget()
    # Parts go in parallel, so no running digest of the whole file: its parts' ETags were checked by ``complete``.
    return TransferResult(remote, str(local), size, "", counter.value, parts=len(todo), resumed_parts=resumed)


def _resume(
    transport: Transport, project_id: str, remote: str, state: _UploadState, parts: int, cluster_id: str,
    counter: _Counter,
) -> int:
    """Check that an interrupted upload is still open (by re-signing one part); 0 and a fresh start otherwise."""
    missing = [n for n in range(1, parts + 1) if n not in state.etags] or [1]
    try:
        transport.run(drive.resign_parts(project_id, remote, state.upload_id, missing[:1], cluster_id))
        counter.add()
    except LightningApiError as error:
        counter.add()
        if error.status not in (400, 404):
            raise
        log.info("The interrupted upload of %s is gone on the server (%s); starting again", remote, error.status)
        state.upload_id, state.etags = "", {}
        return 0
    log.info("Resuming the upload of %s: %d of %d parts are already stored", remote, len(state.etags), parts)
    return len(state.etags)


def _put(
    transport: Transport, url: drive.UploadUrl, local: Path, offset: int, length: int, counter: _Counter,
    digest: Any = None,
) -> str:
    """PUT ``length`` bytes at ``offset`` of ``local`` to a presigned URL with exactly its headers; the ETag."""
    headers = {**url.headers, "Content-Length": str(length)}
    client = transport.storage_client()
    counter.add()
    try:
        request = client.build_request(
            "PUT", url.url, headers=headers, content=_file_chunks(local, offset, length, digest),
            timeout=httpx.Timeout(max(60.0, transport.timeout.read or 60.0), connect=transport.timeout.connect),
        )
        # httpx adds no header of its own choosing to a presigned request (the signature may cover them)
        request.headers.pop("Transfer-Encoding", None)
        response = client.send(request)
    except _NETWORK_ERRORS as error:
        raise _Retry(f"{type(error).__name__}: {error}") from error
    if response.status_code in _RESIGN_STATUSES:
        raise _Retry(_storage_error(response), parse_retry_after(response.headers.get("retry-after")))
    if response.status_code >= 300:
        raise LightningTransferError(f"uploading to the drive failed: {_storage_error(response)}")
    return response.headers.get("etag", "")


def _upload_single(
    transport: Transport, project_id: str, local: Path, remote: str, size: int, cluster_id: str, counter: _Counter,
) -> str:
    """One PUT (on a fresh URL after a failure), then ``complete`` when the API asks; the bytes' sha256."""
    complete_required = False
    sent = hashlib.sha256()
    for attempt in _retrying(transport, f"uploading {remote}"):
        with attempt:
            ticket = transport.run(drive.request_upload(project_id, remote, cluster_id=cluster_id))
            counter.add()
            sent = hashlib.sha256()
            _put(transport, ticket.urls[0], local, 0, size, counter, sent)
            complete_required = ticket.complete_required
    if complete_required:
        transport.run(drive.complete_upload(project_id, remote, cluster_id=cluster_id))
        counter.add()
    return sent.hexdigest()


# -- download ------------------------------------------------------------------------------------


def download_file(
    transport: Transport,
    project_id: str,
    remote_path: str,
    local_path: str | os.PathLike[str],
    *,
    expected_size: int | None = None,
    progress: Progress | None = None,
) -> TransferResult:
    """Stream one drive file to ``local_path`` (its folders created); a missing file raises
    :class:`~airflow_provider_lightning.api.drive.LightningDriveNotFound`."""
    remote = drive.drive_path(remote_path)
    target = Path(local_path)
    target.parent.mkdir(parents=True, exist_ok=True)
    counter = _Counter()
    result: TransferResult | None = None
    for attempt in _retrying(transport, f"downloading {remote}"):
        with attempt:
            result = _get(transport, project_id, remote, target, expected_size, counter, progress)
    assert result is not None
    return result


def _get(
    transport: Transport, project_id: str, remote: str, target: Path, expected_size: int | None, counter: _Counter,
    progress: Progress | None,
) -> TransferResult:
    client = transport.sync_client()
    partial = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.partial")
    digest = hashlib.sha256()
    counter.add()
    written = 0
    try:
        with client.stream("GET", drive.blob_path(project_id, remote), follow_redirects=True) as response:
            status = response.status_code
            if status == 404:
                raise drive.LightningDriveNotFound(f"drive file {remote!r} does not exist in the teamspace")
            if status in RETRYABLE_STATUSES:
                raise _Retry(f"the API answered {status}", parse_retry_after(response.headers.get("retry-after")))
            if status >= 300:
                body = response.read()[:512].decode("utf-8", errors="replace")
                raise LightningApiError(status, " ".join(body.split()), method="GET", path=f"artifacts/blobs/{remote}")
            announced = response.headers.get("content-length")
            encoded = response.headers.get("content-encoding") or response.headers.get("transfer-encoding")
            total = expected_size if expected_size is not None else int(announced) if announced else 0
            with partial.open("wb") as out:
                last = time.monotonic()
                for chunk in response.iter_bytes(CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    written += len(chunk)
                    if progress and time.monotonic() - last > 5:
                        progress(written, total)
                        last = time.monotonic()
        if announced and not encoded and int(announced) != written:
            raise _Retry(f"the download of {remote} was cut at {written} of {announced} bytes")
        if expected_size is not None and expected_size != written:
            raise _Retry(f"{remote} is {written} bytes, the listing said {expected_size}")
        os.replace(partial, target)
    except _NETWORK_ERRORS as error:
        raise _Retry(f"{type(error).__name__}: {error}") from error
    finally:
        with contextlib.suppress(OSError):
            partial.unlink()
    if progress:
        progress(written, written)
    return TransferResult(remote, str(target), written, digest.hexdigest(), counter.value)


def download_folder(
    transport: Transport,
    project_id: str,
    remote_folder: str,
    local_dir: str | os.PathLike[str],
    *,
    workers: int = 8,
    allow_empty: bool = False,
    progress: Progress | None = None,
) -> list[TransferResult]:
    """Download every file under a drive folder into ``local_dir`` (same relative paths).

    A missing folder raises :class:`~airflow_provider_lightning.api.drive.LightningDriveNotFound`; an empty one
    too, unless ``allow_empty``. Folder entries are never fetched as files.
    """
    folder = drive.drive_path(remote_folder, allow_root=True)
    entries = [e for e in transport.run(drive.list_folder(project_id, folder, recursive=True)) if not e.is_dir]
    if not entries and not allow_empty:
        raise drive.LightningDriveNotFound(f"drive folder {folder or '/'!r} holds no files")
    root = Path(local_dir).resolve()
    total = sum(e.size or 0 for e in entries)
    done = _Counter()

    def fetch(entry: drive.DriveEntry) -> TransferResult:
        target = (root / entry.path).resolve()
        if root not in target.parents:
            raise LightningTransferError(f"refusing to write {entry.path!r} outside {root}")
        result = download_file(transport, project_id, drive.join(folder, entry.path), target,
                               expected_size=entry.size)
        result.path = entry.path
        done.add(result.size)
        if progress:
            progress(done.value, total)
        return result

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(entries) or 1))) as pool:
        return list(pool.map(fetch, entries))
