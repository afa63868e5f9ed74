"""Stop (or delete) what a task owns unless it already ended: one flow, one retry budget.

Every place that releases remote work a task owns goes through :func:`release`: an operator's
``on_kill``, the stop after a wall-clock timeout, the trigger's ``on_kill`` (Airflow 3.3+), a
deployment's teardown after a failure and a Studio stopped after its command. It is a flow (see
``api.transport``), so the worker runs it synchronously and the triggerer on its event loop.

It rides through a short API outage: each request has a short total time (:class:`StopBudget`), a
failed round is tried again after a short pause, and the whole flow ends by ``budget.total``. A read
that fails or hangs never holds the stop back; a 404 means the resource is already gone; a refused
request (401, 403, 400) is not retried.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from typing import Any

import httpx

from airflow_provider_lightning.api.errors import LightningApiError
from airflow_provider_lightning.api.resources import ResourceKind
from airflow_provider_lightning.api.state import ResourceState
from airflow_provider_lightning.api.transport import ApiCall, Flow, Operation, Pause, RetryPolicy

log = logging.getLogger(__name__)

# Per-request retries while stopping: quick, and a server's Retry-After is capped, so one request cannot
# spend the whole budget sleeping.
STOP_RETRY = RetryPolicy(max_attempts=3, backoff_initial=0.25, backoff_max=1.0, retry_after_max=2.0)


class StopFailedError(RuntimeError):
    """The resource could not be stopped within the budget; it may still be running."""


@dataclass(frozen=True)
class StopBudget:
    """How long releasing a resource may take.

    :param total: seconds for the whole flow, pauses included.
    :param read_seconds: longest wait for the read that tells whether the resource already ended.
    :param request_seconds: longest one stop or delete request may take, its retries included.
    :param pauses: seconds between two rounds (the last one repeats).
    """

    total: float = 25.0
    read_seconds: float = 5.0
    request_seconds: float = 10.0
    pauses: tuple[float, ...] = (1.0, 2.0, 3.0)


def _within(call: ApiCall[Any], seconds: float, deadline: float) -> ApiCall[Any]:
    return replace(call, timeout=max(min(seconds, deadline - time.monotonic()), 0.1))


def _run(operation: Operation[Any], seconds: float, deadline: float) -> Flow[Any]:
    """Run a call or a sub-flow, each of its calls bounded by ``seconds`` and the deadline."""
    if isinstance(operation, ApiCall):
        return (yield _within(operation, seconds, deadline))
    try:
        step = next(operation)
        while True:
            try:
                result = yield _within(step, seconds, deadline) if isinstance(step, ApiCall) else step
            except Exception as error:
                step = operation.throw(error)
            else:
                step = operation.send(result)
    except StopIteration as stop:
        return stop.value
    finally:
        operation.close()


def _release_once(kind: ResourceKind, project_id: str, resource_id: str, delete: bool, budget: StopBudget,
                  deadline: float) -> Flow[str]:
    """One round: what was done (``stopped``, ``deleted``, ``already gone``, ``nothing to stop (...)``)."""
    try:
        if delete:
            deleted = yield from _run(kind.delete(project_id, resource_id), budget.request_seconds, deadline)
            return "already gone" if deleted is None else "deleted"
        state: ResourceState | None
        try:
            state = yield from _run(kind.get(project_id, resource_id), budget.read_seconds, deadline)
        except LightningApiError as error:
            if error.not_found or not error.retryable:
                raise
            state = None  # could not read it: send the stop anyway
        except httpx.HTTPError:
            state = None
        if state is not None and kind.at_rest(state):
            return f"nothing to stop ({state.phase.value})"
        yield from _run(kind.stop(project_id, resource_id), budget.request_seconds, deadline)
        return "stopped"
    except LightningApiError as error:
        if error.not_found:
            return "already gone"
        raise


def release(kind: ResourceKind, project_id: str, resource_id: str, *, delete: bool = False,
            budget: StopBudget | None = None) -> Flow[str]:
    """Flow: stop (or with ``delete``, delete) the resource unless it already ended; returns what was done.

    :param kind: the resource's kind.
    :param project_id: teamspace (project) id.
    :param resource_id: the resource's id.
    :param delete: delete the resource instead of stopping it.
    :param budget: how long it may take (default :class:`StopBudget`).
    :raises StopFailedError: when the budget ran out; the resource may still be running.
    :raises LightningApiError: when the API refused the request (not retried).
    """
    budget = budget or StopBudget()
    deadline = time.monotonic() + budget.total
    pauses = iter(budget.pauses)
    label = f"{kind.label} {resource_id}"
    while True:
        problem: BaseException
        try:
            return (yield from _release_once(kind, project_id, resource_id, delete, budget, deadline))
        except LightningApiError as error:
            if not error.retryable:
                raise
            problem = error
        except (httpx.HTTPError, TimeoutError) as error:
            problem = error
        pause = next(pauses, budget.pauses[-1])
        if time.monotonic() + pause >= deadline:
            raise StopFailedError(
                f"{label} could not be {'deleted' if delete else 'stopped'} within {budget.total:.0f} s; it may "
                f"still be running. Last error: {problem}"
            ) from problem
        log.warning("%s %s failed (%s); trying again in %.0f s", "Deleting" if delete else "Stopping", label,
                    problem, pause)
        yield Pause(pause)
