"""One trigger for "a Lightning resource changing phase", and the wait loop it shares with sync mode."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Sequence
from typing import Any, TypeVar

import httpx
from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_lightning import DEFAULT_CONN_ID
from airflow_provider_lightning.api import logs
from airflow_provider_lightning.api.errors import LightningApiError, LightningConfigError
from airflow_provider_lightning.api.phases import Phase
from airflow_provider_lightning.api.resources import ResourceKind, ResourceState, kind_named
from airflow_provider_lightning.api.transport import Operation, RetryPolicy
from airflow_provider_lightning.hooks.lightning import LightningHook
from airflow_provider_lightning.hooks.settings import ConnectionSettings
from airflow_provider_lightning.triggers import poller

T = TypeVar("T")

# Event statuses (what ``execute_complete`` receives in ``event["status"]``).
SUCCESS, FAILED, TIMEOUT, ERROR = "success", "failed", "timeout", "error"

KILL_PAUSES = (1.0, 2.0, 3.0)  # seconds between two kill attempts (the last one repeats)
KILL_RETRY = RetryPolicy(max_attempts=3, backoff_initial=0.25, backoff_max=1.0, retry_after_max=2.0)  # per request
KILL_READ_SECONDS = 5.0  # longest a kill attempt waits to read the resource before sending the stop anyway
KILL_ATTEMPT_SECONDS = 10.0  # longest one stop or delete request may take, retries included
KILL_MARGIN = 5.0  # seconds of Airflow's on_kill timeout left unused, so our own error is what gets logged


def kill_budget() -> float:
    """Seconds ``on_kill`` may spend retrying: Airflow's ``[triggerer] on_kill_timeout`` minus a margin."""
    try:
        from airflow.sdk import conf

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


class LightningPhaseTrigger(BaseTrigger):
    """Wait until a Lightning resource reaches one of ``target_phases``, without holding a worker.

    Kwargs are plain JSON values (never credentials), so the trigger is rebuilt from ``serialize()``
    after a triggerer restart and continues where it was: the deadline is absolute and the log
    cursor says which lines were already written.

    :param kind: resource kind (``"job"``), see ``api.resources.KINDS``.
    :param resource_id: id of the resource to watch.
    :param project_id: teamspace (project) id the resource lives in.
    :param lightning_conn_id: Airflow connection id.
    :param target_phases: phases that end the wait successfully (default ``["completed"]``).
    :param poll_interval: seconds between two reads of the resource.
    :param deadline: absolute UNIX time after which a ``timeout`` event is sent; None waits forever.
    :param stream_logs: write new log lines of the resource into the task log while waiting.
    :param log_cursor: where log streaming stopped (``{"since", "line"}``), to not repeat lines.
    :param log_tail_lines: how many last log lines a failure event carries.
    :param stop_on_kill: stop the resource when a user kills the deferred task (Airflow 3.3+);
        True only for resources this task started.
    :param max_poll_errors: consecutive failed polls (after the transport's own retries) before giving up.
    :param resource_name: display name for log messages.
    :param failing_grace: seconds a resource may report failing replicas without becoming ready before the
        wait fails; None never fails on that alone.
    :param kill_action: what ``on_kill`` does to the resource: ``"stop"`` or ``"delete"``.
    :param fail_on_terminal: end the wait when the resource ends in a phase that is not a target; False keeps
        waiting (a stopped Studio can be started again).
    """

    def __init__(
        self,
        *,
        kind: str,
        resource_id: str,
        project_id: str,
        lightning_conn_id: str = DEFAULT_CONN_ID,
        target_phases: Sequence[str] = ("completed",),
        poll_interval: float = 15.0,
        deadline: float | None = None,
        stream_logs: bool = True,
        log_cursor: dict[str, Any] | None = None,
        log_tail_lines: int = 20,
        stop_on_kill: bool = False,
        max_poll_errors: int = 5,
        resource_name: str = "",
        failing_grace: float | None = None,
        kill_action: str = "stop",
        fail_on_terminal: bool = True,
    ) -> None:
        super().__init__()
        kind_named(kind)
        self.kind = kind
        self.resource_id = resource_id
        self.project_id = project_id
        self.lightning_conn_id = lightning_conn_id
        self.target_phases = [Phase.parse(p).value for p in target_phases]
        self.poll_interval = float(poll_interval)
        self.deadline = deadline
        self.stream_logs = stream_logs
        self.log_cursor = log_cursor or {}
        self.log_tail_lines = int(log_tail_lines)
        self.stop_on_kill = stop_on_kill
        self.max_poll_errors = int(max_poll_errors)
        self.resource_name = resource_name
        self.failing_grace = None if failing_grace is None else float(failing_grace)
        if kill_action not in ("stop", "delete"):
            raise ValueError(f"kill_action must be 'stop' or 'delete', got {kill_action!r}")
        self.kill_action = kill_action
        self.fail_on_terminal = fail_on_terminal
        self._settings: ConnectionSettings | None = None  # set by the sync driver, never serialized

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "kind": self.kind,
                "resource_id": self.resource_id,
                "project_id": self.project_id,
                "lightning_conn_id": self.lightning_conn_id,
                "target_phases": list(self.target_phases),
                "poll_interval": self.poll_interval,
                "deadline": self.deadline,
                "stream_logs": self.stream_logs,
                "log_cursor": dict(self.log_cursor),
                "log_tail_lines": self.log_tail_lines,
                "stop_on_kill": self.stop_on_kill,
                "max_poll_errors": self.max_poll_errors,
                "resource_name": self.resource_name,
                "failing_grace": self.failing_grace,
                "kill_action": self.kill_action,
                "fail_on_terminal": self.fail_on_terminal,
            },
        )

    def _hook(self, retry: RetryPolicy | None = None) -> LightningHook:
        hook = LightningHook(self.lightning_conn_id, retry=retry)
        hook._settings = self._settings
        return hook

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = self._hook()
        try:
            event = await PhaseWait(self, hook, shared=self._settings is None).wait()
        finally:
            await hook.aclose()  # nothing is held across the yield
        yield TriggerEvent(event)

    async def on_kill(self) -> None:
        """Airflow 3.3+: the user killed the deferred task; stop (or delete) the remote work this task started.

        Rides through a short API outage: requests retry with short pauses (not the transport's long backoff)
        until just before Airflow's ``[triggerer] on_kill_timeout``; a failed read never keeps the stop from
        being sent.
        """
        if not self.stop_on_kill:
            return
        hook = self._hook(retry=KILL_RETRY)
        kind = kind_named(self.kind)
        label = f"{kind.label} {self.resource_name or self.resource_id}"
        deadline = time.monotonic() + kill_budget()
        pauses = iter(KILL_PAUSES)
        try:
            while True:
                try:
                    done = await self._kill_once(hook, kind, deadline)
                    self.log.warning("Task killed: %s %s (%s)", done, label, self.resource_id)
                    return
                except LightningApiError as error:
                    if not error.retryable:
                        self.log.error("Task killed, but %s could not be stopped: %s", label, error)
                        raise
                    problem: BaseException = error
                except (httpx.HTTPError, TimeoutError) as error:
                    problem = error
                pause = next(pauses, KILL_PAUSES[-1])
                if time.monotonic() + pause >= deadline:
                    message = (f"{label} ({self.resource_id}) could not be stopped before the kill timeout; it may "
                               f"still be running: {problem!r}")
                    self.log.error("Task killed, but %s", message)
                    raise RuntimeError(message) from problem
                self.log.warning("Kill: stopping %s failed (%r); trying again in %.0f s", label, problem, pause)
                await asyncio.sleep(pause)
        finally:
            await hook.aclose()

    async def _kill_once(self, hook: LightningHook, kind: ResourceKind, deadline: float) -> str:
        """One attempt at the kill action before ``deadline``; returns what was done ("stopped", ...)."""

        def within(limit: float) -> float:
            return max(min(deadline - time.monotonic(), limit), 0.1)

        try:
            if self.kill_action == "delete":
                deleted = await asyncio.wait_for(
                    hook.arun(kind.delete(self.project_id, self.resource_id)), within(KILL_ATTEMPT_SECONDS)
                )
                return "already gone" if deleted is None else "deleted"
            try:
                state: ResourceState | None = await asyncio.wait_for(
                    hook.arun(kind.get(self.project_id, self.resource_id)), within(KILL_READ_SECONDS)
                )
            except LightningApiError as error:
                if not error.retryable:
                    raise
                state = None  # could not read it: send the stop anyway
            except (httpx.HTTPError, TimeoutError):
                state = None
            if state is not None and state.phase.is_terminal:
                return f"nothing to stop ({state.phase.value})"
            stop = kind.stop(self.project_id, self.resource_id)
            await asyncio.wait_for(hook.arun(stop), within(KILL_ATTEMPT_SECONDS))
            return "stopped"
        except LightningApiError as error:
            if error.not_found:
                return "already gone"
            raise

    def run_sync(self, settings: ConnectionSettings) -> dict[str, Any]:
        """Run the same wait in the worker (non-deferrable mode) and return the event payload."""
        self._settings = settings
        hook = self._hook()

        async def wait() -> dict[str, Any]:
            try:
                return await PhaseWait(self, hook).wait()
            finally:
                await hook.aclose()

        return asyncio.run(wait())


class PhaseWait:
    """The wait loop: poll, stream logs, honour the deadline, tolerate transient errors; one result.

    With ``shared`` (the triggerer) and a kind that can be listed, the reads come from the event loop's
    shared poller (``triggers.poller``): one sweep per interval for every wait of the teamspace, through
    one HTTP client; a wait that is alone still costs one ``GET`` per interval.
    """

    def __init__(self, trigger: LightningPhaseTrigger, hook: LightningHook, shared: bool = False) -> None:
        self.t = trigger
        self.hook = hook
        self.kind = kind_named(trigger.kind)
        self.shared = shared and poller.can_share(self.kind)
        self.subscription: poller.Subscription | None = None
        self.targets = {Phase(p) for p in trigger.target_phases}
        self.cursor = logs.LogCursor.from_json(trigger.log_cursor)
        self.output_offset = int(trigger.log_cursor.get("offset", 0) or 0)  # kinds whose answer holds the output
        self.tail: deque[tuple[str, str]] = deque(maxlen=max(trigger.log_tail_lines, 1) * 8)
        self.ranks: dict[str, int] = {}  # sub-job id -> machine rank (multi-machine kinds)
        self.log = trigger.log
        self.label = f"{self.kind.label} {trigger.resource_name or trigger.resource_id}"
        self.failing_since: float | None = None

    async def _call(self, operation: Operation[T]) -> T:
        """Run one API operation through the wait's hook, detached from cancellation (see :func:`detached`)."""
        return await detached(self.hook.arun(operation))

    def _event(
        self, status: str, state: ResourceState | None, message: str, tail: list[str] | None = None
    ) -> dict[str, Any]:
        if tail is None:
            tail = [text for _, text in self.tail][-self.t.log_tail_lines:] if status != SUCCESS else []
        return {
            "status": status,
            "kind": self.t.kind,
            "resource_id": self.t.resource_id,
            "resource": state.to_json() if state else None,
            "message": message,
            "log_tail": tail,
            "log_cursor": {**self.cursor.to_json(), "offset": self.output_offset},
        }

    async def _machines(self) -> list[ResourceState]:
        from airflow_provider_lightning.api import jobs

        subjobs = await self._call(jobs.list_jobs(self.t.project_id, multi_machine_job_id=self.t.resource_id))
        self.ranks = {job.id: jobs.rank_of(job) for job in subjobs}
        return sorted(subjobs, key=jobs.rank_of)

    def _prefix(self, state: ResourceState, resource_id: str) -> str:
        name = state.name or self.t.resource_id
        return f"{name} rank {self.ranks[resource_id]}" if resource_id in self.ranks else name

    async def _failure(self, state: ResourceState) -> dict[str, Any]:
        """A failure event; for multi-machine kinds it names the failed rank(s) and shows their log tail."""
        reason = state.message or f"ended as {state.raw_state or state.phase.value}"
        message = f"{self.label} ended in phase {state.phase.value}: {reason}"
        if not self.kind.has_machines:
            return self._event(FAILED, state, message)
        try:
            machines = await self._machines()
        except (LightningApiError, httpx.HTTPError) as error:
            self.log.warning("Could not list the machines of %s: %s", self.label, error)
            return self._event(FAILED, state, message)
        failed = [m for m in machines if m.phase is Phase.FAILED] or [m for m in machines if not m.phase.is_success]
        ranks = {m.id: self.ranks[m.id] for m in failed}
        details = "; ".join(
            f"rank {ranks[m.id]} ({m.name}) {m.phase.value}: {m.message or m.raw_state}" for m in failed
        )
        tail = [f"[rank {ranks[rid]}] {text}" for rid, text in self.tail if rid in ranks][-self.t.log_tail_lines:]
        return self._event(FAILED, state, f"{message}. Failed machines: {details or 'unknown'}", tail)

    def _read_output(self, state: ResourceState) -> None:
        """Kinds that return their whole output on every read: write the part not written yet."""
        output = state.raw.get(self.kind.output_field) if isinstance(state.raw, dict) else None
        if not isinstance(output, str) or len(output) <= self.output_offset:
            return
        new, self.output_offset = output[self.output_offset:], len(output)
        complete, _, partial = new.rpartition("\n")
        if partial and not state.phase.is_terminal:  # keep a half-written line for the next read
            self.output_offset -= len(partial)
            new = complete
        for text in new.splitlines():
            self.tail.append(("", text))
            if self.t.stream_logs:
                self.log.info("[%s] %s", self.t.resource_name or self.kind.label, text)

    async def _read_logs(self, state: ResourceState) -> None:
        if self.kind.output_field:
            self._read_output(state)
            return
        if not self.kind.log_selector:
            return
        try:
            if self.subscription is not None and self.kind.log_selector == "jobIds":  # merged with other waits'
                lines, self.cursor = await self.subscription.read_logs(self.cursor)
            else:
                lines, self.cursor = await self._call(
                    logs.new_lines(self.t.project_id, self.kind.log_selector, self.t.resource_id, self.cursor)
                )
        except Exception as error:  # logs are best effort: a hostile answer must not end the wait
            self.log.warning("Could not read the logs of %s: %r", self.label, error)
            return
        if self.kind.has_machines and any(ln.resource_id not in self.ranks for ln in lines):
            try:
                await self._machines()
            except (LightningApiError, httpx.HTTPError) as error:
                self.log.warning("Could not list the machines of %s: %s", self.label, error)
        for line in lines:
            text = line.render()
            self.tail.append((line.resource_id, text))
            if self.t.stream_logs:
                self.log.info("[%s] %s", self._prefix(state, line.resource_id), text)

    async def wait(self) -> dict[str, Any]:
        if not self.shared:
            return await self._wait()
        async with poller.subscription(
            self.t.lightning_conn_id, self.t.project_id, self.kind, self.t.resource_id, self.t.poll_interval
        ) as self.subscription:
            self.hook = self.subscription.hook  # logs and machines too: one HTTP client per loop
            return await self._wait()

    async def _read(self, remaining: float | None) -> ResourceState:
        """The resource's state one poll interval (or what is left before the deadline) from now."""
        if self.subscription is not None and (remaining is None or remaining >= self.t.poll_interval):
            return await self.subscription.read()
        await asyncio.sleep(self.t.poll_interval if remaining is None else min(self.t.poll_interval, remaining))
        return await self._call(self.kind.get(self.t.project_id, self.t.resource_id))

    async def _wait(self) -> dict[str, Any]:
        errors = 0
        state: ResourceState | None = None
        while True:
            remaining = None if self.t.deadline is None else self.t.deadline - time.time()
            if remaining is not None and remaining <= 0:
                return self._event(
                    TIMEOUT, state, f"{self.label} did not reach {sorted(p.value for p in self.targets)} "
                    f"before the deadline (last phase: {state.phase.value if state else 'unknown'})",
                )
            try:
                state = await self._read(remaining)
                errors = 0
            except LightningConfigError as error:
                return self._event(ERROR, state, str(error))
            except LightningApiError as error:
                if error.not_found or error.status in (401, 403):
                    return self._event(ERROR, state, f"cannot read {self.label}: {error}")
                errors += 1
                self.log.warning("Polling %s failed (%d of %d in a row): %s", self.label, errors,
                                 self.t.max_poll_errors, error)
            except httpx.HTTPError as error:
                errors += 1
                self.log.warning("Polling %s failed (%d of %d in a row): %r", self.label, errors,
                                 self.t.max_poll_errors, error)
            except Exception as error:  # a hostile answer must not crash the triggerer
                errors += 1
                self.log.warning("Polling %s failed unexpectedly (%d of %d in a row): %r", self.label, errors,
                                 self.t.max_poll_errors, error)
            if errors:
                if errors >= self.t.max_poll_errors:
                    return self._event(ERROR, state, f"polling {self.label} failed {errors} times in a row")
                continue
            assert state is not None
            has_logs = state.phase in (Phase.RUNNING, Phase.STOPPING) or state.phase.is_terminal
            if has_logs and (self.t.stream_logs or (state.phase.is_terminal and not state.phase.is_success)):
                await self._read_logs(state)
            if state.phase in self.targets:
                return self._event(SUCCESS, state, f"{self.label} is {state.phase.value}")
            if state.phase.is_terminal and (self.t.fail_on_terminal or state.phase is Phase.FAILED):
                return await self._failure(state)
            if self._failing_too_long(state):
                await self._read_logs(state)
                return self._event(
                    FAILED, state, f"{self.label} kept failing for {self.t.failing_grace:.0f} s without becoming "
                    f"ready: {state.message or state.raw_state or 'replicas failing'}",
                )

    def _failing_too_long(self, state: ResourceState) -> bool:
        """Whether the resource has reported failing replicas for longer than the grace period."""
        if not state.failing or self.t.failing_grace is None:
            self.failing_since = None
            return False
        now = time.time()
        self.failing_since = self.failing_since or now
        return now - self.failing_since >= self.t.failing_grace
