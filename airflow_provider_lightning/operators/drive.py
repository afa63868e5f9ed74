"""Operators that move data between the worker and the teamspace drive, and download job artifacts."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_provider_lightning import DEFAULT_CONN_ID
from airflow_provider_lightning.operators.base import is_template, make_hook

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_lightning.api.transfer import TransferResult
    from airflow_provider_lightning.hooks.lightning import LightningHook

MiB = 1024 * 1024


def progress_logger(log: Any, verb: str, what: str, every: float = 5.0) -> Callable[[int, int], None]:
    """A ``(done, total)`` callback that logs progress at most every ``every`` seconds, and at the end."""
    started = time.monotonic()
    last = [0.0]

    def report(done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - last[0] < every:
            return
        last[0] = now
        rate = done / MiB / max(now - started, 1e-6)
        share = f" ({100 * done / total:.0f}%)" if total else ""
        log.info("%s %s: %.1f of %.1f MiB%s, %.1f MiB/s", verb, what, done / MiB, total / MiB, share, rate)

    return report


def _check_path(value: Any, what: str, *, allow_root: bool = False) -> None:
    from airflow_provider_lightning.api.drive import drive_path

    if not is_template(value):
        drive_path(value, what, allow_root=allow_root)


def _summary(results: list[TransferResult], path: str, uri: str) -> dict[str, Any]:
    return {
        "path": path,
        "uri": uri,
        "files": [r.to_json() for r in results],
        "size": sum(r.size for r in results),
    }


class _DriveOperator(BaseOperator):
    """What the drive operators share: the connection, the teamspace and the hook.

    :param lightning_conn_id: Airflow connection id of type ``lightning`` (templated).
    :param teamspace: teamspace (``owner/name``) overriding the connection's (templated).
    """

    template_fields: Sequence[str] = ("lightning_conn_id", "teamspace")
    ui_color = "#792ee5"
    ui_fgcolor = "#ffffff"

    def __init__(self, *, lightning_conn_id: str = DEFAULT_CONN_ID, teamspace: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(lightning_conn_id, str) or not lightning_conn_id:
            raise ValueError(f"lightning_conn_id must be a connection id, got {lightning_conn_id!r}")
        self.lightning_conn_id = lightning_conn_id
        self.teamspace = teamspace
        self._hook: LightningHook | None = None

    def _get_hook(self) -> LightningHook:
        if self._hook is None:
            self._hook = make_hook(self.lightning_conn_id, self.teamspace)
        return self._hook

    def _record_outlets(self, context: Context, extra: dict[str, Any]) -> None:
        """Put ``extra`` on the asset events of this task's ``lightning://`` outlets."""
        from airflow_provider_lightning.assets import SCHEME

        events = context.get("outlet_events")
        for outlet in self.outlets or []:
            if str(getattr(outlet, "uri", "")).startswith(f"{SCHEME}://") and events is not None:
                events[outlet].extra.update(extra)


class LightningDriveUploadOperator(_DriveOperator):
    """Upload a local file or folder to the teamspace drive.

    Large files go in parts PUT in parallel on presigned URLs; a failed part is sent again on a fresh URL, and a
    retried task resumes an interrupted upload instead of starting over. Progress goes to the task log. Returns
    ``{"path", "uri", "files": [{"path", "size", ...}], "size"}``.

    :param local_path: the local file or folder to upload (templated).
    :param remote_path: drive path of the file, or of the folder a local folder's files go into (templated).
    :param cluster_id: cloud account to store the files in (default: the connection's ``cluster_id``).
    :param part_size: bytes per part of a multipart upload (default 100 MiB).
    :param multipart_threshold: files larger than this many bytes go in parts (default 100 MiB).
    :param max_workers: parts uploaded at the same time.
    """

    template_fields: Sequence[str] = (*_DriveOperator.template_fields, "local_path", "remote_path")

    def __init__(
        self,
        *,
        local_path: str,
        remote_path: str,
        cluster_id: str | None = None,
        part_size: int = 100 * MiB,
        multipart_threshold: int = 100 * MiB,
        max_workers: int = 4,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.local_path = local_path
        self.remote_path = remote_path
        self.cluster_id = cluster_id
        self.part_size = part_size
        self.multipart_threshold = multipart_threshold
        self.max_workers = max_workers
        if not isinstance(local_path, str) or not local_path:
            raise ValueError(f"local_path must be a path, got {local_path!r}")
        _check_path(remote_path, "remote_path")
        for what, value in (("part_size", part_size), ("multipart_threshold", multipart_threshold),
                            ("max_workers", max_workers)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{what} must be a positive integer, got {value!r}")
        if part_size < 5 * MiB:
            raise ValueError(f"part_size must be at least 5 MiB (object stores reject smaller parts), got {part_size}")

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_lightning.api.drive import drive_path

        _check_path(self.remote_path, "remote_path")
        hook = self._get_hook()
        remote = drive_path(self.remote_path)
        self.log.info("Uploading %s to drive path %s of teamspace %s", self.local_path, remote, hook.teamspace.slug)
        results = hook.upload_to_drive(
            self.local_path, remote, cluster_id=self.cluster_id, threshold=self.multipart_threshold,
            part_size=self.part_size, workers=self.max_workers,
            progress=progress_logger(self.log, "Uploaded", remote),
        )
        summary = _summary(results, remote, hook.drive_uri(remote))
        self.log.info("Uploaded %d file(s), %d bytes, in %d requests", len(results), summary["size"],
                      sum(r.requests for r in results))
        self._record_outlets(context, {"size": summary["size"], "files": len(results)})
        return summary


class LightningDriveDownloadOperator(_DriveOperator):
    """Download a teamspace drive file, or a whole folder, to the worker.

    Every file is checked against the size the listing gave and written under a temporary name until complete.
    A missing path, or a folder without files, fails the task (never a silent empty download). Returns
    ``{"path", "uri", "local_path", "files", "size"}``.

    :param remote_path: the drive file or folder (templated).
    :param local_path: the local file (for a drive file) or folder (for a drive folder) (templated).
    :param allow_empty: accept a drive folder that holds no files.
    """

    template_fields: Sequence[str] = (*_DriveOperator.template_fields, "remote_path", "local_path")

    def __init__(self, *, remote_path: str, local_path: str, allow_empty: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.remote_path = remote_path
        self.local_path = local_path
        self.allow_empty = allow_empty
        _check_path(remote_path, "remote_path", allow_root=True)
        if not isinstance(local_path, str) or not local_path:
            raise ValueError(f"local_path must be a path, got {local_path!r}")

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_lightning.api.drive import drive_path

        _check_path(self.remote_path, "remote_path", allow_root=True)
        hook = self._get_hook()
        remote = drive_path(self.remote_path, allow_root=True)
        results = hook.download_from_drive(remote, self.local_path, allow_empty=self.allow_empty,
                                           progress=progress_logger(self.log, "Downloaded", remote or "/"))
        summary = {**_summary(results, remote, hook.drive_uri(remote)), "local_path": self.local_path}
        self.log.info("Downloaded %d file(s), %d bytes, to %s", len(results), summary["size"], self.local_path)
        return summary


class LightningJobArtifactsOperator(_DriveOperator):
    """List a Lightning job's artifacts, or download them to the worker (per machine for a multi-machine job).

    A Studio job's artifacts are its drive folder ``jobs/<job name>``; an image job's are its
    ``artifacts_destination``. Returns ``{"job_name", "files": [{"path", "size", ...}], "size"}`` (paths start with
    the machine's job name for a multi-machine job); fails when the job has no artifacts.

    :param job_name: name of the job (exclusive with ``job_id``) (templated).
    :param job_id: id of the job (templated).
    :param kind: ``"job"`` or ``"mmt"`` (a multi-machine job).
    :param local_dir: download into this local folder; None lists only (templated).
    :param path: only this sub-folder of the artifacts (templated).
    """

    template_fields: Sequence[str] = (*_DriveOperator.template_fields, "job_name", "job_id", "local_dir", "path")

    def __init__(
        self,
        *,
        job_name: str | None = None,
        job_id: str | None = None,
        kind: str = "job",
        local_dir: str | None = None,
        path: str = "",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if bool(job_name) == bool(job_id):
            raise ValueError("give exactly one of job_name= or job_id=")
        if kind not in ("job", "mmt"):
            raise ValueError(f"kind must be 'job' or 'mmt', got {kind!r}")
        self.job_name = job_name
        self.job_id = job_id
        self.kind = kind
        self.local_dir = local_dir
        self.path = path
        if path:
            _check_path(path, "path")

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.providers.common.compat.sdk import AirflowException

        hook = self._get_hook()
        job: Any = self.job_id
        if self.job_name:
            job = hook.find_job(self.job_name, kind=self.kind)
            if job is None:
                raise AirflowException(f"no Lightning {self.kind} named {self.job_name!r} in {hook.teamspace.slug}")
        if self.local_dir:
            results = hook.download_job_artifacts(job, self.local_dir, kind=self.kind, path=self.path,
                                                  progress=progress_logger(self.log, "Downloaded", "artifacts"))
            files = [r.to_json() for r in results]
        else:
            files = [e.to_json() for e in hook.list_job_artifacts(job, kind=self.kind, path=self.path)]
        size = sum(f["size"] or 0 for f in files)
        self.log.info("%d artifact file(s), %d bytes%s", len(files), size,
                      f", downloaded to {self.local_dir}" if self.local_dir else "")
        name = self.job_name or getattr(job, "name", "") or str(job)
        return {"job_name": name, "files": files, "size": size, "local_dir": self.local_dir}
