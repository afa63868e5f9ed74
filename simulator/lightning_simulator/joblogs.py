"""The log endpoints: ``/page-logs``, ``download-logs`` and the legacy pages, over jobs, MMT ranks and replicas."""

from __future__ import annotations

import functools
from typing import Any

from .context import ServiceContext
from .deployments import DeploymentService
from .jobrecord import Job
from .jobs import JobService
from .logs import LogBuffer, LogLine, filter_lines
from .mmt import MultiMachineJobService
from .paging import first_value, page_token, parse_page_token
from .wire import as_int, invalid, not_found, parse_rfc3339, rfc3339


def _page_count(job: Job, page_lines: int) -> int:
    """Number of legacy log pages of ``page_lines`` lines."""
    return max(1, -(-len(job.logs.lines) // page_lines))


class LogService:
    """Reads the logs of jobs, of the ranks of multi-machine jobs and of deployment replicas."""

    def __init__(
        self,
        context: ServiceContext,
        jobs: JobService,
        mmts: MultiMachineJobService,
        deployments: DeploymentService,
    ) -> None:
        self.context = context
        self.lock = context.lock
        self.jobs = jobs
        self.mmts = mmts
        self.deployments = deployments

    def _log_buffers(self, project_id: str, job_ids: list[str]) -> list[LogBuffer]:
        """The log buffers of these jobs, each once (404 for an unknown one)."""
        return [self.jobs.record(project_id, job_id).logs for job_id in dict.fromkeys(job_ids)]

    def page_logs(self, project_id: str, query: dict[str, list[str]]) -> dict[str, Any]:
        """``GET /page-logs``: the unified logs API for jobs (``jobIds``) and multi-machine jobs (``mmtId``).

        Several jobs (or every rank of an MMT) are merged into one timeline; each entry's
        ``resourceId`` is the id of the (sub-)job that printed it.
        """

        first = functools.partial(first_value, query)
        job_ids = [j for j in query.get("jobIds", []) if j]
        selectors = ("deploymentId", "mmtId", "sandboxId")
        if not job_ids and not any(first(s) for s in selectors) and not query.get("sandboxCommandIds"):
            raise invalid("one of jobIds, deploymentId, mmtId, sandboxId or sandboxCommandIds is required")
        since = parse_rfc3339(first("since")) if first("since") else None
        until = parse_rfc3339(first("until")) if first("until") else None
        page_size = as_int(first("pageSize"), 0) or 1000
        if page_size < 0:
            raise invalid("pageSize must be positive")
        offset = parse_page_token(first("pageToken"))
        with self.lock:
            self.context.require_project(project_id)
            mmt_id = first("mmtId")
            if mmt_id:
                job_ids = job_ids + [j for j in self.mmts.record(project_id, mmt_id).job_ids if j in self.jobs.records]
            deployment_id = first("deploymentId")
            if deployment_id:  # every replica of a deployment, or those of them in jobIds
                buffers = self.deployments.log_buffers(project_id, deployment_id, job_ids)
            else:
                buffers = self._log_buffers(project_id, job_ids)
            if not buffers:  # sandboxes are not simulated: nothing to read
                return {"entries": [], "nextPageToken": "", "followUrl": ""}
            lines = filter_lines(
                buffers,
                since_ns=since,
                until_ns=until,
                query=first("query"),
                min_severity=first("severity"),
            )
            page: list[LogLine] = lines[offset : offset + page_size]
            more = offset + page_size < len(lines)
            return {
                "entries": [line.to_api() for line in page],
                "nextPageToken": page_token(offset + page_size) if more else "",
                "followUrl": "",
            }

    def log_job_id(self, project_id: str, job_or_mmt_id: str, rank: int = 0) -> str:
        """The job whose log ``/jobs/{id}/download-logs`` serves: the job itself, or rank ``rank`` of an MMT."""
        with self.lock:
            self.context.require_project(project_id)
            if job_or_mmt_id in self.jobs.records:
                return self.jobs.record(project_id, job_or_mmt_id).id
            replica = self.deployments.replica_job(job_or_mmt_id)
            if replica is not None and replica.project_id == project_id:
                return replica.id
            mmt = self.mmts.records.get(job_or_mmt_id)
            if mmt is None or mmt.project_id != project_id:
                raise not_found(f"job {job_or_mmt_id!r}")
            if not 0 <= rank < len(mmt.job_ids) or mmt.job_ids[rank] not in self.jobs.records:
                raise not_found(f"rank {rank} of multi-machine job {mmt.id!r}")
            return mmt.job_ids[rank]

    def log_text(self, job_id: str) -> str:
        """The plain-text log file of a job (``[RFC3339Nano] message`` lines)."""
        with self.lock:
            job = self.jobs.records.get(job_id) or self.deployments.replica_job(job_id)
            if job is None:
                raise not_found(f"job {job_id!r}")
            return job.logs.text()

    def legacy_pages(self, project_id: str, job_id: str, base_url: str, page_lines: int) -> dict[str, Any]:
        """``GET /jobs/{id}/page-logs``: legacy page descriptors whose urls serve JSON arrays."""
        with self.lock:
            job = self.jobs.record(project_id, job_id)
            lines = job.logs.lines
            pages = []
            for number in range(_page_count(job, page_lines)):
                chunk = lines[number * page_lines : (number + 1) * page_lines]
                start = chunk[0].ts_ns if chunk else job.created_ns
                end = chunk[-1].ts_ns if chunk else job.created_ns
                pages.append(
                    {
                        "pageNumber": str(number),
                        "start": rfc3339(start),
                        "end": rfc3339(end),
                        "totalLines": str(len(chunk)),
                        "url": f"{base_url}/__sim/jobs/{job.id}/log-pages/{number}",
                    }
                )
            return {"pages": pages, "followUrl": ""}

    def legacy_page(self, job_id: str, number: int, page_lines: int) -> list[dict[str, Any]]:
        """Body of one legacy log page: snake_case entries."""
        with self.lock:
            job = self.jobs.records.get(job_id)
            if job is None:
                raise not_found(f"job {job_id!r}")
            chunk = job.logs.lines[number * page_lines : (number + 1) * page_lines]
            return [line.to_legacy() for line in chunk]
