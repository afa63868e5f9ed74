"""The hook's data methods: the teamspace drive, job artifacts and job results (mixed into ``LightningHook``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from airflow_provider_lightning.api import drive, results, transfer
from airflow_provider_lightning.api.jobs import JOB, MMT, list_jobs, rank_of

if TYPE_CHECKING:
    from airflow_provider_lightning.api.resources import ResourceKind
    from airflow_provider_lightning.api.state import ResourceState
    from airflow_provider_lightning.api.teamspaces import Teamspace
    from airflow_provider_lightning.api.transport import Operation, Transport
    from airflow_provider_lightning.hooks.settings import ConnectionSettings

T = TypeVar("T")


class _Hook(Protocol):
    """What the mixin needs from the hook it is mixed into."""

    @property
    def project_id(self) -> str: ...

    @property
    def teamspace(self) -> Teamspace: ...

    @property
    def settings(self) -> ConnectionSettings: ...

    @property
    def transport(self) -> Transport: ...

    def run(self, operation: Operation[T]) -> T: ...

    def get(self, kind: str | ResourceKind, resource_id: str) -> ResourceState: ...


class LightningDriveMixin:
    """Teamspace drive, job artifacts and job results; every path is checked before any request."""

    # -- the drive ---------------------------------------------------------------------------------

    def list_drive(self: _Hook, path: str = "", *, recursive: bool = False) -> list[drive.DriveEntry]:
        """List a drive folder (every page); LightningDriveNotFound when it does not exist.

        :param path: folder in the teamspace drive ("" for the root); ``/teamspace/`` prefixes are accepted.
        :param recursive: list every file below it (files only) instead of its direct children.
        """
        folder = drive.drive_path(path, allow_root=True)
        return self.run(drive.list_folder(self.project_id, folder, recursive=recursive))

    def drive_path_info(self: _Hook, path: str) -> drive.DriveEntry | None:
        """The drive entry at ``path`` (``is_dir``, ``size``), or None when nothing is there.

        :param path: a file or folder in the teamspace drive.
        """
        return self.run(drive.path_info(self.project_id, drive.drive_path(path)))

    def upload_to_drive(
        self: _Hook,
        local_path: str | os.PathLike[str],
        remote_path: str,
        *,
        cluster_id: str | None = None,
        threshold: int = transfer.DEFAULT_THRESHOLD,
        part_size: int = transfer.DEFAULT_PART_SIZE,
        workers: int = 4,
        progress: transfer.Progress | None = None,
    ) -> list[transfer.TransferResult]:
        """Upload a local file, or every file under a local folder, to the drive (resumable multipart uploads).

        :param local_path: a local file or folder.
        :param remote_path: drive path of the file, or of the folder the local folder's files go into.
        :param cluster_id: cloud account to store it in (default: the connection's ``cluster_id``).
        :param threshold: files larger than this many bytes go in parts.
        :param part_size: bytes per part.
        :param workers: parts PUT at the same time.
        :param progress: called with ``(bytes done, total bytes)``.
        :return: one result per file (drive path, size, requests made).
        """
        local = Path(local_path)
        remote = drive.drive_path(remote_path)
        account = self.settings.cluster_id if cluster_id is None else cluster_id
        if not account and drive.needs_cloud_account(remote):
            account = LightningDriveMixin.default_cloud_account(self)
        if local.is_dir():
            files = sorted(p for p in local.rglob("*") if p.is_file())
            if not files:
                raise FileNotFoundError(f"local folder {str(local)!r} holds no files")
            pairs = [(p, drive.join(remote, p.relative_to(local).as_posix())) for p in files]
        elif local.is_file():
            pairs = [(local, remote)]
        else:
            raise FileNotFoundError(f"local path {str(local)!r} does not exist")
        total = sum(p.stat().st_size for p, _ in pairs)
        sent = 0
        out = []
        for path, target in pairs:
            def each(done: int, _size: int, base: int = sent) -> None:
                if progress:
                    progress(base + done, total)

            out.append(transfer.upload_file(
                self.transport, self.project_id, path, target, cluster_id=account, threshold=threshold,
                part_size=part_size, workers=workers, progress=each,
            ))
            sent += path.stat().st_size
        return out

    def default_cloud_account(self: _Hook) -> str:
        """The cloud account uploads go to when neither the call nor the connection names one (the teamspace's
        preferred cluster, else its only one); read once per hook."""
        cached: str | None = getattr(self, "_default_cloud_account", None)
        if cached is None:
            cached = self.run(drive.default_cloud_account(self.project_id))
            self._default_cloud_account = cached  # type: ignore[attr-defined]
        return cached

    def download_from_drive(
        self: _Hook,
        remote_path: str,
        local_path: str | os.PathLike[str],
        *,
        progress: transfer.Progress | None = None,
        allow_empty: bool = False,
    ) -> list[transfer.TransferResult]:
        """Download a drive file to ``local_path``, or a drive folder into the local folder ``local_path``.

        :param remote_path: a file or folder in the drive ("" or "/" for the whole drive).
        :param local_path: the local file (for a drive file) or folder (for a drive folder).
        :param progress: called with ``(bytes done, total bytes)``.
        :param allow_empty: accept a folder with no files (otherwise LightningDriveNotFound, never a silent
            empty download).
        """
        remote = drive.drive_path(remote_path, allow_root=True)
        info = self.run(drive.path_info(self.project_id, remote)) if remote else None
        if remote and info is None:
            raise drive.LightningDriveNotFound(f"drive path {remote!r} does not exist in teamspace "
                                               f"{self.teamspace.slug}")
        if info is not None and not info.is_dir:
            return [transfer.download_file(self.transport, self.project_id, remote, local_path,
                                           expected_size=info.size, progress=progress)]
        return transfer.download_folder(self.transport, self.project_id, remote, local_path,
                                        allow_empty=allow_empty, progress=progress)

    def delete_from_drive(self: _Hook, path: str) -> bool:
        """Delete a drive file or folder (with its contents); False when nothing was there.

        :param path: a file or folder in the drive.
        """
        remote = drive.drive_path(path)
        info = self.run(drive.path_info(self.project_id, remote))
        if info is None:
            return False
        return self.run(drive.delete_path(self.project_id, remote, folder=info.is_dir)) is not None

    def drive_uri(self: _Hook, path: str) -> str:
        """``lit://<owner>/<teamspace>/<path>`` for a drive path (the official client's URI form).

        :param path: a file or folder in the drive.
        """
        ts = self.teamspace
        return drive.drive_uri(ts.owner, ts.name, drive.drive_path(path, allow_root=True))

    # -- job artifacts -----------------------------------------------------------------------------

    def job_artifacts_folders(self: _Hook, job: str | ResourceState, *, kind: str = "job") -> dict[str, str | None]:
        """The drive folder of each machine's artifacts: ``{job name: folder}``; one entry for a one-machine job,
        one per machine (rank order) for a multi-machine job. None: an image job without ``artifacts_destination``.

        :param job: the job's id or state.
        :param kind: ``"job"`` or ``"mmt"`` (default: the state's kind).
        """
        resolved = getattr(job, "kind", kind) if not isinstance(job, str) else kind
        job_id = job if isinstance(job, str) else job.id
        if resolved == MMT.name:
            machines = sorted(self.run(list_jobs(self.project_id, multi_machine_job_id=job_id)), key=rank_of)
        else:
            machines = [self.get(JOB, job_id)]
        return {m.name: _folder_of(m) for m in machines}

    def list_job_artifacts(
        self: _Hook, job: str | ResourceState, *, kind: str = "job", path: str = "", recursive: bool = True
    ) -> list[drive.DriveEntry]:
        """List a job's artifacts (files, recursively by default); paths start with ``<machine job name>/`` for a
        multi-machine job. LightningDriveNotFound when the job has no artifacts folder (yet).

        :param job: the job's id or state.
        :param kind: ``"job"`` or ``"mmt"``.
        :param path: a sub-folder of the artifacts.
        :param recursive: list every file below (default) or the direct children only.
        """
        multi, folders = _persisted_folders(self, job, kind, path)
        entries: list[drive.DriveEntry] = []
        for name, sub in folders:
            found = self.run(drive.list_folder(self.project_id, sub, recursive=recursive))
            prefix = f"{name}/" if multi else ""
            entries += [drive.DriveEntry(prefix + e.path, e.is_dir, e.size, e.cluster_id, e.last_modified)
                        for e in found]
        return entries

    def download_job_artifacts(
        self: _Hook,
        job: str | ResourceState,
        local_dir: str | os.PathLike[str],
        *,
        kind: str = "job",
        path: str = "",
        progress: transfer.Progress | None = None,
    ) -> list[transfer.TransferResult]:
        """Download a job's artifacts into ``local_dir`` (``local_dir/<machine job name>/`` per machine of a
        multi-machine job); LightningDriveNotFound when there are none.

        :param job: the job's id or state.
        :param kind: ``"job"`` or ``"mmt"``.
        :param local_dir: local folder to download into.
        :param path: only this sub-folder of the artifacts.
        :param progress: called with ``(bytes done, total bytes)`` per machine.
        """
        multi, folders = _persisted_folders(self, job, kind, path)
        out: list[transfer.TransferResult] = []
        for name, sub in folders:
            target = Path(local_dir) / name if multi else Path(local_dir)
            try:
                out += transfer.download_folder(self.transport, self.project_id, sub, target, progress=progress)
            except drive.LightningDriveNotFound as error:
                raise drive.LightningDriveNotFound(f"job {name} has no artifacts at {sub}: {error}") from None
        return out

    def read_job_result(
        self: _Hook, job: str | ResourceState, *, kind: str = "job", max_bytes: int = results.DEFAULT_MAX_BYTES
    ) -> tuple[bool, Any]:
        """``(found, value)``: the JSON result the job wrote (rank 0 for a multi-machine job), see
        the data guide (``docs/operators/data.rst``). LightningResultError when it is too large or not JSON.

        :param job: the job's id or state.
        :param kind: ``"job"`` or ``"mmt"``.
        :param max_bytes: the largest result accepted.
        """
        folders = LightningDriveMixin.job_artifacts_folders(self, job, kind=kind)
        name, folder = next(iter(folders.items()))
        if folder is None:
            raise results.LightningResultError(_not_persisted(name))
        return self.run(results.read_result(self.project_id, folder, max_bytes=max_bytes))


def _persisted_folders(
    hook: _Hook, job: str | ResourceState, kind: str, path: str
) -> tuple[bool, list[tuple[str, str]]]:
    """Whether the job has several machines, and ``(machine job name, drive folder)`` of each machine's artifacts
    (``path`` below them); LightningDriveNotFound for an image job whose outputs are not persisted."""
    resolved = kind if isinstance(job, str) else job.kind
    folders = LightningDriveMixin.job_artifacts_folders(hook, job, kind=resolved)
    out = []
    for name, folder in folders.items():
        if folder is None:
            raise drive.LightningDriveNotFound(_not_persisted(name))
        out.append((name, drive.join(folder, path) if path else folder))
    return resolved == MMT.name, out


def _folder_of(job: ResourceState) -> str | None:
    from airflow_provider_lightning.api import wire

    spec = wire.field(job.raw, "spec", {})
    return drive.artifacts_folder(
        job.name, studio_job=not wire.text(spec, "image"), destination=wire.text(spec, "artifacts_destination")
    )


def _not_persisted(name: str) -> str:
    return (f"job {name} is an image job without artifacts_destination: its outputs are not persisted (set "
            "artifacts_destination='<connection type>:<connection name>:<path>')")
