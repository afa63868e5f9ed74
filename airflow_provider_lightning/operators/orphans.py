"""Release the remote work of a task whose worker died on its last try (an ``on_failure_callback``).

When a worker dies (``kill -9``, out of memory, a lost machine), no operator code runs: Airflow fails the task
by heartbeat timeout and runs the task's failure callbacks in the dag-processor. With a retry left, the retry
adopts the work (the job's id in the task state store or its try name; the deployment's ownership marker) and
releases it when it fails. After the last try nothing would, so every job, multi-machine job and deployment
operator carries :func:`release_orphans` as a failure callback: it finds the work of this task instance and
stops it. Jobs are found by the digest in their names (dag, task, run and map index: ``<base>-<8 hex>``,
``-t<n>`` for later tries), deployments by the owner key in their release notes; a deployment the task only
updated or started again is not found (nothing on it says so).

When the task failed in its own process (``context["exception"]`` is set), the operator has already released
what it owned, so the callback does nothing and makes no request.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_lightning.api.resources import ListPage, ResourceKind
    from airflow_provider_lightning.api.transport import ApiCall
    from airflow_provider_lightning.hooks.lightning import LightningHook

    #: One page of a list: ``(project_id, page token) -> GET``.
    Lister = Callable[[str, str], ApiCall[ListPage]]

log = logging.getLogger(__name__)

MAX_PAGES = 20  # list pages read at most per kind (newest first): 10,000 jobs at 500 a page


def release_orphans(context: Any) -> None:
    """Failure callback: after a worker died, stop the job or deployment this task instance left running."""
    if context.get("exception") is not None:
        return  # failed in its own process: the operator released what it owned
    task, ti = context.get("task"), context.get("ti")
    if task is None or ti is None:
        return
    operator_class = getattr(task, "operator_class", None) or type(task)  # a mapped task: the class it maps
    release = getattr(operator_class, "release_orphaned_work", None)
    if release is None:
        return
    try:
        for line in release(_Arguments(task), context):
            log.warning("Task %s.%s[%s] failed without its worker: %s", ti.dag_id, ti.task_id,
                        getattr(ti, "map_index", -1), line)
    except Exception as error:  # a callback must not raise; say what could not be done
        log.error("Could not release the Lightning work of %s.%s after its worker died: %s", ti.dag_id,
                  ti.task_id, error)


def with_release(callbacks: Any) -> list[Callable[..., Any]]:
    """``callbacks`` (None, one callable or a list) with :func:`release_orphans` added once, last."""
    if callbacks is None:
        found: list[Callable[..., Any]] = []
    elif callable(callbacks):
        found = [callbacks]
    else:
        found = list(callbacks)
    return found if release_orphans in found else [*found, release_orphans]


def release_listed(arguments: Any, lists: Sequence[tuple[ResourceKind, Lister]],
                   is_mine: Callable[[ListPage, str], bool]) -> list[str]:
    """Release (stop, or scale to zero) every listed resource ``is_mine`` accepts; what was done.

    :param arguments: the task's constructor arguments (``lightning_conn_id``, ``teamspace``).
    :param lists: each list to read, with the kind its entries are: read page by page, at most :data:`MAX_PAGES`.
    :param is_mine: whether a page's entry (by id) is this task instance's work, still to release.
    """
    from airflow_provider_lightning import DEFAULT_CONN_ID
    from airflow_provider_lightning.api.stopping import STOP_RETRY, release
    from airflow_provider_lightning.operators.base import make_hook

    hook = make_hook(arguments.get("lightning_conn_id", DEFAULT_CONN_ID), arguments.get("teamspace", None),
                     retry=STOP_RETRY)
    done: list[str] = []
    try:
        for kind, lister in lists:
            for page in _pages(hook, lister):
                for resource_id in [rid for rid in page.entries if is_mine(page, rid)]:
                    result = hook.run(release(kind, hook.project_id, resource_id))
                    if result.startswith("nothing to stop"):
                        continue
                    state = page.state(resource_id)
                    name = state.name if state is not None else resource_id
                    done.append(f"{kind.label.removeprefix('Lightning ')} {name} ({resource_id}) {result}")
    finally:
        hook.close()
    return done


def _pages(hook: LightningHook, lister: Lister) -> Iterator[ListPage]:
    """The pages of one list, newest first, until the last one (or :data:`MAX_PAGES`)."""
    token, seen = "", set()
    for _ in range(MAX_PAGES):
        page = hook.run(lister(hook.project_id, token))
        yield page
        token = page.next_token
        if not token or token in seen:
            return
        seen.add(token)


def job_name_pattern(task_key: str) -> re.Pattern[str]:
    """Names of the jobs one task instance submits: ``<base>-<8 hex>`` and ``<base>-<8 hex>-t<n>``."""
    return re.compile(rf"-{re.escape(task_key[:8])}(-t\d+)?$")


class _Arguments:
    """An operator's constructor arguments, for a task or a mapped task (its ``partial`` arguments)."""

    def __init__(self, task: Any) -> None:
        self.task = task
        self.partial: dict[str, Any] | None = getattr(task, "partial_kwargs", None)

    def get(self, name: str, default: Any) -> Any:
        value = self.partial.get(name, default) if self.partial is not None else getattr(self.task, name, default)
        return default if isinstance(value, str) and "{{" in value else value
