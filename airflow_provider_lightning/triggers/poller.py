"""Shared polling: one sweep per interval answers every wait of an event loop, teamspace and resource kind.

Airflow's triggerer runs the triggers of all deferred tasks in one asyncio event loop. If each
wait read its own resource (one ``GET /jobs/{id}`` per job per poll interval, the pattern of the
Databricks and dbt Cloud providers), 10,000 deferred tasks would cost 10,000 requests per
interval. Instead, the waits of one event loop that share a connection, a teamspace (project),
a resource kind and a poll interval subscribe to one :class:`SharedPoller`. It has one hook, so
one HTTP client for all of them (job log reads are merged too, see ``triggers.logbatch``), and once per
interval it *sweeps*: it takes every wait that is waiting for a read and answers it from the cheapest
of the listings its kind offers, then with one ``GET`` each for the rest.

What a kind can list is a typed capability on the kind, its :class:`~airflow_provider_lightning.api.resources.Sweep`
(small list-call functions in the kind's own ``api`` module, each answer read exactly as the kind's ``GET``
reads it); the poller knows no kind. In this order:

1. **By ids** (only with 2 or more waiting): one request per batch of up to ``max_ids`` waited-for ids.
   Studios: ``GET /cloudspaces?ids=a&ids=b...``, each phase read from the listed Studio's embedded
   ``codeStatus`` (the answer of ``GET codestatus``); a Studio listed without one is read by its own GET.
2. **Recent scan** (only with 2 or more waiting): the kind's newest resources in any state, as many per
   page as useful, up to :data:`MAX_PAGE_SIZE`. Jobs: ``GET /jobs?standalone=true&limit=...``;
   deployments: ``GET /deployments?limit=...&pageToken=...``; multi-machine jobs: ``GET
   /multi-machine-jobs`` (no paging: one request lists them all). Resources airflow tasks started are
   usually among the newest, so this answers most waits, *including the ones that ended since the last
   sweep*. The scan goes on to the next page only while the last page saved at least one request: it
   found a waited-for resource that the active listing below could not find (one that is no longer
   pending or running), or any waited-for resource when no active listing follows. So it never sends
   more pages than there are waits. When the first page holds none of the waited-for resources (a busy
   teamspace buried them), the scan is skipped for the next :data:`SCAN_PROBE_EVERY` sweeps, unless
   waits joined since: new waits are usually for new resources, so the next sweep probes again (a
   triggerer picks up its triggers a few dozen at a time, oldest first, so the first sweep may see only
   the oldest jobs).
3. **Active listing** (jobs; only with 2 or more still unanswered): ``state=running`` and then
   ``state=pending`` lists, each page by page, only for states some unanswered job was last seen
   in. It finds long-running jobs that newer jobs pushed out of the recent pages. It never spends
   more requests than the GETs it would replace: when a listing reaches that budget it stops, and
   the listing is skipped for the next :data:`ACTIVE_PROBE_EVERY` sweeps.
4. **One ``GET`` per resource** for whatever is left (at most :data:`GET_CONCURRENCY` at a time), which
   is exactly what a wait alone does: a single waiting trigger costs one ``GET`` per interval, as
   before. Kinds without a ``Sweep`` (Studio commands, schedule runs) do not use a poller at all.

Whether a resource is found by a list is only an optimisation: one a list did not show is read by its
own ``GET``, so nothing depends on which filters the server accepts or on how it pages.
Answers are handed out as soon as their page arrives. A failed listing (after the transport's own
retries) reaches every wait it should have answered as that wait's poll error, so the existing
``max_poll_errors`` logic decides; the sweep loop itself never stops on an error. A listing the
server rejects as unsupported (400, 404, 405, 501) switches this poller to ``GET`` only.

The cost per sweep is about (waits' resources among the newest + active jobs) / page size requests plus
one ``GET`` per resource no list showed, against one ``GET`` per wait. When no list helps at all, a sweep
still sends the ``GET`` per wait, plus, once every 11 sweeps, one scan page and an active-listing
probe of at most as many pages as there are waits: about 1/11 more requests than a GET per wait.
The scale benchmark (``benchmarks/triggerer_scale.py``) measures the usual case.

Log reads: job waits' ``/page-logs`` reads are merged (``jobIds`` repeats). A multi-machine job's lines are
read by ``mmtId`` and a deployment's by ``deploymentId``, selectors that take one id, so those waits read their
logs one by one as before, through the poller's HTTP client.

A poller exists while at least one wait is subscribed. It belongs to the running event loop, so
a wait works the same whether it is alone, one of thousands, or was moved to another triggerer:
nothing is shared across processes and nothing about the poller is serialized. When the last
subscriber leaves (event sent, task killed, triggerer shutting down) the poller stops and closes
its HTTP client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass

from airflow_provider_lightning.api import logs
from airflow_provider_lightning.api.errors import LightningApiError
from airflow_provider_lightning.api.resources import ListPage, ResourceKind, Sweep
from airflow_provider_lightning.api.state import ResourceState
from airflow_provider_lightning.api.transport import Operation
from airflow_provider_lightning.hooks.lightning import LightningHook
from airflow_provider_lightning.triggers.logbatch import LogBatcher

log = logging.getLogger(__name__)

MAX_PAGE_SIZE = 500  # resources per list page (the server may send fewer; pages are followed either way)
MIN_PAGE_SIZE = 50
GET_CONCURRENCY = 20  # individual GETs in flight per poller (within httpx's keep-alive pool)
ACTIVE_PROBE_EVERY = 10  # sweeps to skip the active listing after it hit its request budget
SCAN_PROBE_EVERY = 10  # sweeps to skip the recent scan after its first page held none of the waited-for jobs
UNSUPPORTED_LIST_STATUSES = frozenset({400, 404, 405, 501})

Outcome = ResourceState | BaseException
PollerKey = tuple[str, str, str, float]  # (connection id, project id, kind, poll interval)

_POLLERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[PollerKey, SharedPoller]] = (
    weakref.WeakKeyDictionary()
)


class _ListUnsupported(Exception):
    """The server rejected the list request itself; this poller falls back to GETs."""


@dataclass
class PollerStats:
    """What a poller did (tests and the scale benchmark read it)."""

    sweeps: int = 0
    answers: int = 0  # reads answered (one per waiting subscriber per sweep)
    list_requests: int = 0
    get_requests: int = 0
    failed_sweeps: int = 0  # sweeps whose listing (or own code) failed and answered with an error
    longest_sweep: float = 0.0  # seconds


def can_share(kind: ResourceKind) -> bool:
    """Whether waits on this kind go through a shared poller (kinds with a :class:`Sweep`)."""
    return kind.sweep is not None


def pollers() -> dict[PollerKey, SharedPoller]:
    """The pollers of the running event loop (a copy)."""
    return dict(_POLLERS.get(asyncio.get_running_loop(), {}))


@contextlib.asynccontextmanager
async def subscription(
    conn_id: str, project_id: str, kind: ResourceKind, resource_id: str, poll_interval: float
) -> AsyncIterator[Subscription]:
    """Subscribe one wait to the poller of the running loop for its key; leave on exit (also on cancel)."""
    loop = asyncio.get_running_loop()
    key: PollerKey = (conn_id, project_id, kind.name, float(poll_interval))
    registry = _POLLERS.setdefault(loop, {})
    poller = registry.get(key)
    if poller is None or poller.closed:
        poller = registry[key] = SharedPoller(key, kind)
    poller.join(resource_id)
    try:
        yield Subscription(poller, resource_id)
    finally:
        await poller.leave(resource_id)


class Subscription:
    """One wait's handle on its poller: :meth:`read` returns the resource's state from the next sweep."""

    def __init__(self, poller: SharedPoller, resource_id: str) -> None:
        self.poller = poller
        self.resource_id = resource_id

    @property
    def hook(self) -> LightningHook:
        """The poller's hook (one HTTP client for every wait of the loop); usable while subscribed."""
        return self.poller.hook

    async def read(self) -> ResourceState:
        """The resource's state from the next sweep; raises what that sweep met for it (a poll error)."""
        return await self.poller.read(self.resource_id)

    async def read_logs(self, cursor: logs.LogCursor) -> tuple[list[logs.LogLine], logs.LogCursor]:
        """The job's log lines after ``cursor`` and the new cursor, from a read merged with other waits'."""
        return await self.poller.logs.read(self.resource_id, cursor)


class SharedPoller:
    """Reads the state of every subscribed resource once per poll interval (see the module docs)."""

    def __init__(self, key: PollerKey, kind: ResourceKind) -> None:
        self.key = key
        self.conn_id, self.project_id, _, self.interval = key
        self.kind = kind
        self.sweep = kind.sweep or Sweep()
        self.hook = LightningHook(self.conn_id)
        self.logs = LogBatcher(self.hook, self.project_id)
        self.stats = PollerStats()
        self.closed = False
        self._members: dict[str, int] = {}  # resource id -> subscribed waits
        self._waiting: dict[str, list[asyncio.Future[Outcome]]] = {}  # reads for the next sweep
        self._last_state: dict[str, str] = {}  # resource id -> raw state seen last (plans the listing)
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()  # set when a read starts waiting
        self._list_ok = can_share(kind)
        self._active_skip = 0
        self._scan_skip = 0
        self._joins = 0  # waits that ever joined (a scan skipped for the waits of then is probed again)
        self._scan_skip_joins = 0  # _joins when the scan was last skipped

    def __repr__(self) -> str:
        return f"SharedPoller({self.key!r}, {sum(self._members.values())} subscribed)"

    @property
    def subscribers(self) -> int:
        return sum(self._members.values())

    # -- membership ----------------------------------------------------------------------------

    def join(self, resource_id: str) -> None:
        self._members[resource_id] = self._members.get(resource_id, 0) + 1
        self._joins += 1
        self._ensure_running()

    async def leave(self, resource_id: str) -> None:
        left = self._members.get(resource_id, 0) - 1
        if left > 0:
            self._members[resource_id] = left
        else:
            self._members.pop(resource_id, None)
            self._last_state.pop(resource_id, None)
        if self._members or self.closed:
            return
        self.closed = True  # the next subscriber of this key gets a new poller
        registry = _POLLERS.get(asyncio.get_running_loop(), {})
        if registry.get(self.key) is self:
            del registry[self.key]
        task, self._task = self._task, None
        try:
            if task is not None and not task.done():
                task.cancel()
                await asyncio.wait([task])
            await self.logs.close()
        finally:
            await self.hook.aclose()

    def _ensure_running(self) -> None:
        if not self.closed and (self._task is None or self._task.done()):
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"lightning-poller {self.key}")
            self._task.add_done_callback(self._stopped)

    def _stopped(self, task: asyncio.Task[None]) -> None:
        """The sweep loop ended: answer waiting reads with an error instead of leaving them hanging."""
        if self._task is task:
            self._task = None
        error = None if task.cancelled() else task.exception()
        waiting, self._waiting = self._waiting, {}
        problem = error or RuntimeError("the shared Lightning poller stopped")
        for futures in waiting.values():
            for future in futures:
                if not future.done():
                    future.set_result(problem)

    # -- reads ---------------------------------------------------------------------------------

    async def read(self, resource_id: str) -> ResourceState:
        if self.closed:
            raise RuntimeError("read from a shared Lightning poller that has stopped")
        self._ensure_running()  # restarts a sweep loop that died, so a wait never hangs
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(resource_id, []).append(future)
        self._wake.set()
        try:
            outcome = await future
        finally:
            futures = self._waiting.get(resource_id)
            if futures is not None and future in futures:  # cancelled before a sweep took it
                futures.remove(future)
                if not futures:
                    del self._waiting[resource_id]
        if isinstance(outcome, BaseException):
            raise outcome.with_traceback(None)  # one error object answers many waits: keep its traceback short
        return outcome

    # -- sweeping ------------------------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time() + self.interval
        while True:
            await asyncio.sleep(max(0.0, due - loop.time()))
            batch, self._waiting = self._waiting, {}
            if batch:
                started = loop.time()
                try:
                    await self._sweep(batch)
                except Exception as error:  # never let one sweep stop the loop
                    self.stats.failed_sweeps += 1
                    log.warning("Polling %d Lightning %ss failed: %s", len(batch), self.kind.name, error)
                    self._answer_all(batch, error)
                finally:
                    self._answer_all(batch, RuntimeError("the shared Lightning poller did not read this resource"))
                    self.stats.longest_sweep = max(self.stats.longest_sweep, loop.time() - started)
            due += self.interval
            if due < loop.time():  # a sweep overran its interval: start the next one a full interval later
                due = loop.time() + self.interval
            if not self._waiting:  # nobody waits for the next sweep yet: sleep until someone does
                self._wake.clear()
                await self._wake.wait()

    async def _sweep(self, batch: dict[str, list[asyncio.Future[Outcome]]]) -> None:
        self.stats.sweeps += 1
        await self._ready()
        if self._list_ok and len(batch) >= 2:
            try:
                await self._list_by_ids(batch)
                if len(batch) >= 2:
                    active_next = self._active_skip == 0 and self.sweep.by_state is not None
                    await self._scan_recent(batch, active_next)
                if len(batch) >= 2:
                    await self._list_active(batch)
            except _ListUnsupported as error:
                self._list_ok = False
                log.warning("Listing Lightning %ss is not supported here (%s); reading each one instead",
                            self.kind.name, error.__cause__)
        if batch:
            await self._get_each(batch)

    async def _ready(self) -> None:
        """Create the hook's transport once, before requests run concurrently (they would each make one)."""
        if self.hook._transport is None:
            await self.hook.aget_settings()
            _ = self.hook.transport  # built from the settings just read, without blocking

    def _page_size(self, wanted: int) -> int:
        return max(MIN_PAGE_SIZE, min(MAX_PAGE_SIZE, 2 * wanted))

    async def _list(self, call: Operation[ListPage]) -> ListPage:
        """Send one list request of the kind's :class:`Sweep`; a rejected listing raises ``_ListUnsupported``."""
        self.stats.list_requests += 1
        try:
            page = await self.hook.arun(call)
        except LightningApiError as error:
            if error.status in UNSUPPORTED_LIST_STATUSES:
                raise _ListUnsupported(str(error)) from error
            raise
        return page if isinstance(page, ListPage) else ListPage()

    def _take(self, batch: dict[str, list[asyncio.Future[Outcome]]], page: ListPage) -> list[ResourceState]:
        """Answer the waiting reads whose resource is on this page; the states handed out."""
        found = []
        for resource_id in [rid for rid in page.entries if rid in batch]:
            state = page.state(resource_id)
            if state is not None:
                self._answer(batch, resource_id, state)
                found.append(state)
        return found

    async def _list_by_ids(self, batch: dict[str, list[asyncio.Future[Outcome]]]) -> None:
        """One request per group of at most ``max_ids`` waited-for ids (groups of near-equal size)."""
        by_ids = self.sweep.by_ids
        if by_ids is None:
            return
        ids = list(batch)
        groups = -(-len(ids) // max(2, self.sweep.max_ids))
        for group in range(groups):
            self._take(batch, await self._list(by_ids(self.project_id, ids[group::groups])))

    async def _scan_recent(self, batch: dict[str, list[asyncio.Future[Outcome]]], active_next: bool) -> None:
        recent = self.sweep.recent
        if recent is None:
            return
        if self._scan_skip > 0 and self._joins == self._scan_skip_joins:
            self._scan_skip -= 1
            return
        self._scan_skip = 0
        token, seen, size, first = "", set(), self._page_size(len(batch)), True
        active = self.sweep.active_states
        while batch:
            page = await self._list(recent(self.project_id, token, size))
            found = self._take(batch, page)
            token = page.next_token
            if first and not found:  # none of ours among the newest: stop scanning for a while
                self._scan_skip, self._scan_skip_joins = SCAN_PROBE_EVERY, self._joins
            first = False
            useful = [s for s in found if not (active_next and s.raw_state in active)]
            if not useful or not token or token in seen:
                return
            seen.add(token)

    async def _list_active(self, batch: dict[str, list[asyncio.Future[Outcome]]]) -> None:
        by_state = self.sweep.by_state
        if by_state is None:
            return
        if self._active_skip > 0:
            self._active_skip -= 1
            return
        budget = len(batch)  # never more list requests than the GETs they replace
        for state in self.sweep.active_states:
            if not any(self._last_state.get(rid, state) == state for rid in batch):
                continue  # no unanswered resource was last seen in this state
            token, seen, size = "", set(), self._page_size(len(batch))
            while batch:
                if budget == 0:
                    self._active_skip = ACTIVE_PROBE_EVERY
                    return
                budget -= 1
                page = await self._list(by_state(self.project_id, state, token, size))
                self._take(batch, page)
                token = page.next_token
                if not token or token in seen:
                    break
                seen.add(token)

    async def _get_each(self, batch: dict[str, list[asyncio.Future[Outcome]]]) -> None:
        queue = list(batch)

        async def worker() -> None:
            while queue:
                resource_id = queue.pop()
                self.stats.get_requests += 1
                outcome: Outcome
                try:
                    outcome = await self.hook.arun(self.kind.get(self.project_id, resource_id))
                except Exception as error:  # the wait decides what this error means
                    outcome = error
                self._answer(batch, resource_id, outcome)

        await asyncio.gather(*(worker() for _ in range(min(GET_CONCURRENCY, len(queue)))))

    def _answer(self, batch: dict[str, list[asyncio.Future[Outcome]]], resource_id: str, outcome: Outcome) -> None:
        futures = batch.pop(resource_id, None)
        if not futures:
            return
        if isinstance(outcome, ResourceState) and resource_id in self._members:
            self._last_state[resource_id] = outcome.raw_state
        for future in futures:
            if not future.done():
                future.set_result(outcome)
                self.stats.answers += 1

    def _answer_all(self, batch: dict[str, list[asyncio.Future[Outcome]]], outcome: Outcome) -> None:
        for resource_id in list(batch):
            self._answer(batch, resource_id, outcome)
