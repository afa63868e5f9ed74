"""Batched log streaming: the job waits of one shared poller read their new log lines together.

A wait that streams its job's log reads ``/page-logs`` once per poll. With thousands of running jobs
that is one request per job per interval, as many as the state reads the shared poller saves. The
unified logs API takes repeated ``jobIds`` and merges their lines into one timeline, each line naming
its job in ``resourceId``. So the :class:`LogBatcher` of a poller collects the log reads that arrive
within :data:`GATHER_SECONDS` (the waits answered by one sweep ask together), sorts them by cursor so
jobs with similar cursors share a read, and sends one merged read per :data:`BATCH_SIZE` jobs from the
oldest ``since`` of its group. Each wait then keeps the lines after its own cursor, as before.

A read of one job is the same request a wait alone sends. A merged read the server refuses (400), or
one that names a job that is gone (404), is repeated job by job; lines that name none of the jobs read
(no ``resourceId``) turn merging off for this poller. Errors reach the waits, which treat log errors as
best effort: they never end a wait.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from airflow_provider_lightning.api import logs
from airflow_provider_lightning.api.errors import LightningApiError
from airflow_provider_lightning.hooks.lightning import LightningHook

log = logging.getLogger(__name__)

BATCH_SIZE = 50  # jobs per merged read (the job ids go in the URL)
GATHER_SECONDS = 0.05  # how long reads are collected before they are sent
CONCURRENCY = 4  # merged reads in flight
PAGES_PER_JOB = 5  # the page budget of one read grows with its jobs, as if each read alone ...
MAX_PAGES = 50  # ... up to this many pages

LogOutcome = tuple[list[logs.LogLine], logs.LogCursor] | BaseException


@dataclass
class _Read:
    resource_id: str
    cursor: logs.LogCursor
    future: asyncio.Future[LogOutcome]


@dataclass
class LogStats:
    """What a batcher did (tests and the scale benchmark read it)."""

    reads: int = 0  # log reads asked for by waits
    merged_reads: int = 0  # reads sent for 2 or more jobs
    single_reads: int = 0  # reads sent for one job (alone, or after a merged read failed)
    pending: list[int] = field(default_factory=list)  # jobs per drained batch (the last few)


class LogBatcher:
    """Reads the new log lines of many jobs of one teamspace with merged ``/page-logs`` reads."""

    def __init__(self, hook: LightningHook, project_id: str) -> None:
        self.hook = hook
        self.project_id = project_id
        self.stats = LogStats()
        self.merging = True
        self._pending: list[_Read] = []
        self._task: asyncio.Task[None] | None = None
        self._limit = asyncio.Semaphore(CONCURRENCY)

    async def read(self, resource_id: str, cursor: logs.LogCursor) -> tuple[list[logs.LogLine], logs.LogCursor]:
        """The lines of ``resource_id`` after ``cursor``, and the new cursor (from the next merged read)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[LogOutcome] = loop.create_future()
        self._pending.append(_Read(resource_id, cursor, future))
        self.stats.reads += 1
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._drain(), name=f"lightning-logs {self.project_id}")
        outcome = await future
        if isinstance(outcome, BaseException):
            raise outcome.with_traceback(None)
        return outcome

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task])
        for pending in self._pending:
            if not pending.future.done():
                pending.future.set_result(RuntimeError("the Lightning log reader stopped"))
        self._pending = []

    async def _drain(self) -> None:
        while self._pending:
            await asyncio.sleep(GATHER_SECONDS)
            batch = [r for r in self._pending if not r.future.done()]  # a cancelled wait's read is dropped
            self._pending = []
            self.stats.pending = [*self.stats.pending[-9:], len(batch)]
            await asyncio.gather(*(self._read_group_limited(group) for group in self._groups(batch)))

    async def _read_group_limited(self, group: dict[str, _Read]) -> None:
        async with self._limit:
            await self._read_group(group)

    def _groups(self, batch: list[_Read]) -> list[dict[str, _Read]]:
        """Jobs with similar cursors together, at most :data:`BATCH_SIZE` each, each job once per group."""
        groups: list[dict[str, _Read]] = []
        current: dict[str, _Read] = {}
        for read in sorted(batch, key=lambda r: r.cursor.since):
            if read.resource_id in current or len(current) >= (BATCH_SIZE if self.merging else 1):
                groups.append(current)
                current = {}
            current[read.resource_id] = read
        if current:
            groups.append(current)
        return groups

    async def _read_group(self, group: dict[str, _Read]) -> None:
        if len(group) == 1:
            (read,) = group.values()
            self._answer(read, await self._read_one(read))
            return
        self.stats.merged_reads += 1
        cursors = {resource_id: read.cursor for resource_id, read in group.items()}
        pages = min(PAGES_PER_JOB * len(group), MAX_PAGES)
        try:
            lines = await self.hook.arun(logs.new_lines_many(self.project_id, cursors, max_pages=pages))
        except logs.UnsplittableLogs as error:
            if self.merging:
                log.warning("Reading the logs of several Lightning jobs at once does not work here (%s); "
                            "reading each job's log alone", error)
            self.merging = False
        except LightningApiError as error:
            if error.status not in (400, 404):
                self._answer_all(group, error)
                return
            if error.status == 400:
                self.merging = False
        except Exception as error:  # the waits decide what an error means for them
            self._answer_all(group, error)
            return
        else:
            for resource_id, read in group.items():
                self._answer(read, lines[resource_id])
            return
        for read in group.values():  # the merged read failed: job by job
            self._answer(read, await self._read_one(read))

    async def _read_one(self, read: _Read) -> LogOutcome:
        self.stats.single_reads += 1
        try:
            result = await self.hook.arun(
                logs.new_lines_many(self.project_id, {read.resource_id: read.cursor}, max_pages=PAGES_PER_JOB)
            )
        except Exception as error:
            return error
        return result[read.resource_id]

    @staticmethod
    def _answer(read: _Read, outcome: LogOutcome) -> None:
        if not read.future.done():
            read.future.set_result(outcome)

    def _answer_all(self, group: dict[str, _Read], outcome: BaseException) -> None:
        for read in group.values():
            self._answer(read, outcome)
