"""One trigger for "a Lightning resource changing phase", and the wait loop it shares with the worker.

The trigger's kwargs are a :class:`~airflow_provider_lightning.triggers.contract.WaitSpec`; its one event is a
:class:`~airflow_provider_lightning.triggers.contract.WaitEvent`. :class:`PhaseWait` is the wait loop: the
triggerer drives it (:meth:`LightningPhaseTrigger.run`), and so does the worker in blocking mode
(:func:`wait_in_worker`): one wait logic, two drivers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable
from dataclasses import replace
from typing import Any, TypeVar

import httpx
from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_lightning.api import logs
from airflow_provider_lightning.api.errors import LightningApiError, LightningConfigError
from airflow_provider_lightning.api.phases import Phase
from airflow_provider_lightning.api.registry import kind_named
from airflow_provider_lightning.api.state import ResourceState
from airflow_provider_lightning.api.stopping import STOP_RETRY, StopBudget, release
from airflow_provider_lightning.api.transport import Operation, RetryPolicy
from airflow_provider_lightning.hooks.lightning import LightningHook
from airflow_provider_lightning.hooks.settings import ConnectionSettings
from airflow_provider_lightning.triggers import poller
from airflow_provider_lightning.triggers.contract import EventStatus, Ownership, WaitEvent, WaitSpec

T = TypeVar("T")

KILL_MARGIN = 5.0  # seconds of Airflow's on_kill timeout left unused, so our own error is what gets logged
KILL_BUDGET = StopBudget()  # on_kill's budget; its total is replaced by :func:`kill_budget`
REPLAY_LINES = 100  #: most lines a late-starting wait writes of those already in the log (see PhaseWait)
LATE_START = 30.0  # a wait starting this long after its spec was made (plus one interval) starts late


def kill_budget() -> float:
    """Seconds ``on_kill`` may spend retrying: Airflow's ``[triggerer] on_kill_timeout`` minus a margin."""
    try:
        from airflow.providers.common.compat.sdk import conf

        timeout = conf.getfloat("triggerer", "on_kill_timeout", fallback=30.0)
    except Exception:  # no Airflow configuration (a bare script): Airflow's default
        timeout = 30.0
    return max(timeout - KILL_MARGIN, 1.0)


def _consume(task: asyncio.Future[Any]) -> None:
    """Retrieve a detached task's outcome, so one abandoned by a cancelled caller logs no asyncio warning."""
    if not task.cancelled():
        task.exception()


async def detached(awaitable: Awaitable[T]) -> T:
    """Await network I/O in a task of its own, so cancelling the caller never lands inside httpx/anyio.

    Airflow calls a trigger's ``on_kill`` only when the ``CancelledError`` carries its user-action message;
    a cancel that lands inside anyio's cancel scopes comes out as a new ``CancelledError`` without it. Here the
    caller only ever waits on a shield, whose cancellation keeps the message; the inner task is cancelled after.
    """
    task = asyncio.ensure_future(awaitable)
    task.add_done_callback(_consume)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        task.cancel()
        raise


def _hook(spec: WaitSpec, settings: ConnectionSettings | None = None,
          retry: RetryPolicy | None = None) -> LightningHook:
    hook = LightningHook(spec.lightning_conn_id, retry=retry)
    hook._settings = settings
    return hook


class LightningPhaseTrigger(BaseTrigger):
    """Wait until a Lightning resource reaches one of its target phases, without holding a worker.

    Its kwargs are the fields of :class:`~airflow_provider_lightning.triggers.contract.WaitSpec` (plain JSON,
    never credentials), so it is rebuilt from ``serialize()`` after a triggerer restart and continues where it
    was: the deadline is absolute. It yields one event, a ``WaitEvent`` payload.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__()
        self.spec = WaitSpec.from_kwargs(kwargs)
        kind_named(self.spec.kind)  # an unknown kind fails at defer time, not in the triggerer

    @classmethod
    def for_spec(cls, spec: WaitSpec) -> LightningPhaseTrigger:
        """The trigger that runs ``spec``."""
        return cls(**spec.to_kwargs())

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return f"{type(self).__module__}.{type(self).__qualname__}", self.spec.to_kwargs()

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Run the wait (:class:`PhaseWait`, through the shared poller when the kind allows) and yield its one event."""
        hook = _hook(self.spec)
        try:
            event = await PhaseWait(self.spec, hook, self.log, shared=True).wait()
        finally:
            await hook.aclose()  # nothing is held across the yield
        yield TriggerEvent(event.to_payload())

    async def on_kill(self) -> None:
        """Airflow 3.3+: the user killed the deferred task; stop (or delete) what the task owns.

        Rides through a short API outage until just before Airflow's ``[triggerer] on_kill_timeout``
        (see ``api.stopping``).
        """
        spec = self.spec
        if not spec.owns.owned:
            return
        hook = _hook(spec, retry=STOP_RETRY)
        kind = kind_named(spec.kind)
        label = f"{kind.label} {spec.resource_name or spec.resource_id}"
        flow = release(kind, spec.project_id, spec.resource_id, delete=spec.owns is Ownership.DELETE,
                       budget=replace(KILL_BUDGET, total=kill_budget()))
        try:
            done = await hook.arun(flow)
        except Exception as error:
            self.log.error("Task killed, but %s (%s) could not be stopped: %s", label, spec.resource_id, error)
            raise
        finally:
            await hook.aclose()
        self.log.warning("Task killed: %s %s (%s)", done, label, spec.resource_id)


def wait_in_worker(spec: WaitSpec, settings: ConnectionSettings, log: logging.Logger | Any) -> WaitEvent:
    """Run the wait in the worker (blocking mode) with the operator's connection settings."""
    hook = _hook(spec, settings)

    async def wait() -> WaitEvent:
        try:
            return await PhaseWait(spec, hook, log).wait()
        finally:
            await hook.aclose()

    return asyncio.run(wait())


class PhaseWait:
    """The wait loop: poll, stream logs, honour the deadline, tolerate transient errors; one event.

    With ``shared`` (the triggerer) and a kind the shared poller can list, the reads come from the event
    loop's shared poller (``triggers.poller``): one sweep per interval for every wait of the teamspace,
    through one HTTP client; a wait that is alone still costs one ``GET`` per interval.

    Log lines are written once: the cursor carries on from ``spec.log_cursor``. A wait that starts late (a
    retry that re-attached to the job of an earlier try, or a trigger rebuilt after a triggerer restart) may
    find lines an earlier wait already wrote; of the lines already in the log when it starts it writes at most
    the last :data:`REPLAY_LINES`, after one line saying how many it skipped.
    """

    def __init__(self, spec: WaitSpec, hook: LightningHook, log: logging.Logger | Any, shared: bool = False) -> None:
        self.spec = spec
        self.hook = hook
        self.log = log
        self.kind = kind_named(spec.kind)
        self.shared = shared and poller.can_share(self.kind)
        self.subscription: poller.Subscription | None = None
        self.targets = spec.targets
        self.cursor = logs.LogCursor.from_json(dict(spec.log_cursor))
        self.output_offset = int(spec.log_cursor.get("offset", 0) or 0)  # kinds whose answer holds the output
        self.tail: deque[tuple[str, str]] = deque(maxlen=max(spec.log_tail_lines, 1) * 8)
        self.ranks: dict[str, int] = {}  # sub-job id -> machine rank (multi-machine kinds)
        self.label = f"{self.kind.label} {spec.resource_name or spec.resource_id}"
        self.failing_since: float | None = None
        late = time.time() - float(spec.log_cursor.get("made_at") or time.time()) > spec.poll_interval + LATE_START
        self.replay: int | None = REPLAY_LINES if late or spec.log_cursor.get("reattached") else None

    async def _call(self, operation: Operation[T]) -> T:
        """Run one API operation through the wait's hook, detached from cancellation (see :func:`detached`)."""
        return await detached(self.hook.arun(operation))

    def _event(self, status: EventStatus, state: ResourceState | None, message: str,
               tail: list[str] | None = None) -> WaitEvent:
        if tail is None:
            tail = self._last([text for _, text in self.tail]) if status is not EventStatus.SUCCESS else []
        cursor = {**self.cursor.to_json(), "offset": self.output_offset}
        return self.spec.event(status, state, message, log_tail=tail, log_cursor=cursor)

    def _last(self, lines: list[str]) -> list[str]:
        """The last ``log_tail_lines`` lines (none for 0)."""
        return lines[-self.spec.log_tail_lines:] if self.spec.log_tail_lines > 0 else []

    async def _machines(self) -> list[ResourceState]:
        from airflow_provider_lightning.api import jobs

        subjobs = await self._call(jobs.list_jobs(self.spec.project_id, multi_machine_job_id=self.spec.resource_id))
        self.ranks = {job.id: jobs.rank_of(job) for job in subjobs}
        return sorted(subjobs, key=jobs.rank_of)

    def _prefix(self, state: ResourceState, resource_id: str) -> str:
        name = state.name or self.spec.resource_id
        return f"{name} rank {self.ranks[resource_id]}" if resource_id in self.ranks else name

    async def _failure(self, state: ResourceState) -> WaitEvent:
        """A failure event; for multi-machine kinds it names the failed rank(s) and shows their log tail."""
        reason = state.message or f"ended as {state.raw_state or state.phase.value}"
        message = f"{self.label} ended in phase {state.phase.value}: {reason}"
        if not self.kind.has_machines:
            return self._event(EventStatus.FAILED, state, message)
        try:
            machines = await self._machines()
        except (LightningApiError, httpx.HTTPError) as error:
            self.log.warning("Could not list the machines of %s: %s", self.label, error)
            return self._event(EventStatus.FAILED, state, message)
        failed = [m for m in machines if m.phase is Phase.FAILED] or [m for m in machines if not m.phase.is_success]
        ranks = {m.id: self.ranks[m.id] for m in failed}
        details = "; ".join(
            f"rank {ranks[m.id]} ({m.name}) {m.phase.value}: {m.message or m.raw_state}" for m in failed
        )
        tail = self._last([f"[rank {ranks[rid]}] {text}" for rid, text in self.tail if rid in ranks])
        return self._event(EventStatus.FAILED, state, f"{message}. Failed machines: {details or 'unknown'}", tail)

    def _write(self, lines: list[tuple[str, str, str]]) -> None:
        """Keep lines for the tail and write them to the task log; a late start writes only the last few."""
        skipped = 0
        if self.replay is not None:
            skipped, self.replay = max(len(lines) - self.replay, 0), None
        for number, (resource_id, prefix, text) in enumerate(lines):
            self.tail.append((resource_id, text))
            if not self.spec.stream_logs or number < skipped:
                continue
            if number == skipped and skipped:
                self.log.info("[%s] ... %d earlier log lines not repeated here (an earlier try or triggerer wrote "
                              "them; the full log is on the resource's page)", prefix, skipped)
            self.log.info("[%s] %s", prefix, text)

    def _read_output(self, state: ResourceState) -> None:
        """Kinds that return their whole output on every read: write the part not written yet."""
        output = state.raw.get(self.kind.logs.output_field) if isinstance(state.raw, dict) else None
        if not isinstance(output, str) or len(output) <= self.output_offset:
            return
        new, self.output_offset = output[self.output_offset:], len(output)
        complete, _, partial = new.rpartition("\n")
        if partial and not state.phase.is_terminal:  # keep a half-written line for the next read
            self.output_offset -= len(partial)
            new = complete
        prefix = self.spec.resource_name or self.kind.label
        self._write([("", prefix, text) for text in new.splitlines()])

    async def _read_logs(self, state: ResourceState) -> None:
        source = self.kind.logs
        if source.output_field:
            self._read_output(state)
            return
        if not source.selector:
            return
        try:
            if self.subscription is not None and source.mergeable:  # merged with other waits'
                lines, self.cursor = await self.subscription.read_logs(self.cursor)
            else:
                lines, self.cursor = await self._call(
                    logs.new_lines(self.spec.project_id, source.selector, self.spec.resource_id, self.cursor)
                )
        except Exception as error:  # logs are best effort: a hostile answer must not end the wait
            self.log.warning("Could not read the logs of %s: %r", self.label, error)
            return
        if self.kind.has_machines and any(ln.resource_id not in self.ranks for ln in lines):
            try:
                await self._machines()
            except (LightningApiError, httpx.HTTPError) as error:
                self.log.warning("Could not list the machines of %s: %s", self.label, error)
        self._write([(ln.resource_id, self._prefix(state, ln.resource_id), ln.render()) for ln in lines])

    async def wait(self) -> WaitEvent:
        if not self.shared:
            return await self._wait()
        async with poller.subscription(
            self.spec.lightning_conn_id, self.spec.project_id, self.kind, self.spec.resource_id,
            self.spec.poll_interval,
        ) as self.subscription:
            self.hook = self.subscription.hook  # logs and machines too: one HTTP client per loop
            return await self._wait()

    async def _read(self, remaining: float | None) -> ResourceState:
        """The resource's state one poll interval (or what is left before the deadline) from now."""
        interval = self.spec.poll_interval
        if self.subscription is not None and (remaining is None or remaining >= interval):
            return await self.subscription.read()
        await asyncio.sleep(interval if remaining is None else min(interval, remaining))
        return await self._call(self.kind.get(self.spec.project_id, self.spec.resource_id))

    async def _wait(self) -> WaitEvent:
        errors = 0
        last_error = ""
        state: ResourceState | None = None
        spec = self.spec
        while True:
            remaining = None if spec.deadline is None else spec.deadline - time.time()
            if remaining is not None and remaining <= 0:
                return self._event(
                    EventStatus.TIMEOUT, state, f"{self.label} did not reach {sorted(spec.target_phases)} "
                    f"before the deadline (last phase: {state.phase.value if state else 'unknown'})",
                )
            try:
                state = await self._read(remaining)
                errors = 0
            except LightningConfigError as error:
                return self._event(EventStatus.ERROR, state, str(error))
            except LightningApiError as error:
                if error.not_found or error.status in (401, 403):
                    return self._event(EventStatus.ERROR, state, f"cannot read {self.label}: {error}")
                errors, last_error = errors + 1, str(error)
            except httpx.HTTPError as error:
                errors, last_error = errors + 1, f"{type(error).__name__}: {error}"
            except Exception as error:  # a hostile answer must not crash the triggerer
                errors, last_error = errors + 1, f"unexpected {error!r}"
            if errors:
                self.log.warning("Polling %s failed (%d of %d in a row): %s", self.label, errors,
                                 spec.max_poll_errors, last_error)
                if errors >= spec.max_poll_errors:
                    return self._event(EventStatus.ERROR, state,
                                       f"polling {self.label} failed {errors} times in a row; last error: {last_error}")
                continue
            assert state is not None
            has_logs = state.phase in (Phase.RUNNING, Phase.STOPPING) or state.phase.is_terminal
            if has_logs and (spec.stream_logs or (state.phase.is_terminal and not state.phase.is_success)):
                await self._read_logs(state)
            if state.phase in self.targets:
                return self._event(EventStatus.SUCCESS, state, f"{self.label} is {state.phase.value}")
            if state.phase.is_terminal and (spec.fail_on_terminal or state.phase is Phase.FAILED):
                return await self._failure(state)
            if self._failing_too_long(state):
                await self._read_logs(state)
                return self._event(
                    EventStatus.FAILED, state, f"{self.label} kept failing for {spec.failing_grace:.0f} s without "
                    f"becoming ready: {state.message or state.raw_state or 'replicas failing'}",
                )

    def _failing_too_long(self, state: ResourceState) -> bool:
        """Whether the resource has reported failing replicas for longer than the grace period."""
        if not state.failing or self.spec.failing_grace is None:
            self.failing_since = None
            return False
        now = time.time()
        self.failing_since = self.failing_since or now
        return now - self.failing_since >= self.spec.failing_grace
