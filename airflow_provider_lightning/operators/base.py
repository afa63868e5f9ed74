"""What every Lightning operator shares: its arguments, waiting, resuming, and stopping what it owns."""

from __future__ import annotations

import hashlib
import math
import re
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_provider_lightning import DEFAULT_CONN_ID
from airflow_provider_lightning.api.names import MAX_NAME_LENGTH

if TYPE_CHECKING:  # DAG files import operators on every parse: keep the API layer out of it
    from airflow.sdk import Context

    from airflow_provider_lightning.hooks.lightning import LightningHook
    from airflow_provider_lightning.triggers.contract import Ownership, WaitEvent, WaitSpec


def default_deferrable() -> bool:
    """``[operators] default_deferrable`` from the Airflow configuration (False when unset)."""
    from airflow.providers.common.compat.sdk import conf

    return conf.getboolean("operators", "default_deferrable", fallback=False)


def is_template(value: Any) -> bool:
    """Whether a value still holds Jinja (validated only after rendering)."""
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def seconds(value: float | int | timedelta | None, what: str, *, allow_none: bool = True) -> float | None:
    """Read a positive duration (seconds or timedelta); ValueError names the argument."""
    if value is None:
        if allow_none:
            return None
        raise ValueError(f"{what} is required")
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{what} must be a number of seconds or a timedelta, got {value!r}")
    if not math.isfinite(value):  # a NaN deadline never passes, an infinite one is not a limit
        raise ValueError(f"{what} must be a finite number of seconds, got {value!r}")
    if value <= 0:
        raise ValueError(f"{what} must be positive, got {value!r}")
    return float(value)


_BAD = re.compile(r"[^A-Za-z0-9._-]+")


def run_name(base: str, context: Any) -> str:
    """A job name unique to this task instance and stable across its tries.

    ``<base>-<8 hex>``, where the hex is a digest of dag id, task id, run id and map index: a retry
    finds the job an earlier try submitted, and two DAG runs never share a name.
    """
    digest = task_key(context)[:8]
    clean = _BAD.sub("-", base).strip("-._") or "airflow"
    return f"{clean[: MAX_NAME_LENGTH - 13]}-{digest}"


def task_key(context: Any) -> str:
    """16 hex digits naming this task instance (dag id, task id, run id, map index), the same for every try."""
    ti = context["ti"]
    key = f"{ti.dag_id}\x00{ti.task_id}\x00{ti.run_id}\x00{getattr(ti, 'map_index', -1)}"
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def try_name(name: str, try_number: int) -> str:
    """Name of the submission made by try ``try_number`` (try 1 keeps the plain name)."""
    return name if try_number <= 1 else f"{name}-t{try_number}"


def first_try_since_clear(ti: Any, retries: int | None) -> int:
    """The first try of the task instance since a user last cleared it (1 if it never was).

    Clearing sets ``max_tries`` to the tries made so far plus ``retries``; automatic retries leave it alone.
    Airflow computes the same number for sensors in reschedule mode.
    """
    max_tries = getattr(ti, "max_tries", None)
    if not isinstance(max_tries, int) or max_tries < 0:
        return 1
    return max(1, max_tries - int(retries or 0) + 1)


def deadline_after(timeout: float | None) -> float | None:
    return None if timeout is None else time.time() + timeout


def make_hook(conn_id: str, teamspace: str | None, retry: Any = None) -> LightningHook:
    """A LightningHook for a connection id and optional teamspace override."""
    from airflow_provider_lightning.hooks.lightning import LightningHook

    return LightningHook(conn_id, teamspace=teamspace, retry=retry)


class LightningBaseOperator(BaseOperator):
    """What Lightning operators share: the connection, the teamspace, waiting in the triggerer or the worker,
    resuming from the wait's event, and stopping the remote work the task owns.

    An operator says what it owns of the resource it waits on in the
    :class:`~airflow_provider_lightning.triggers.contract.WaitSpec` it hands to :meth:`wait` (nothing, stop,
    delete). The same declaration drives the operator's ``on_kill`` (blocking mode), the trigger's ``on_kill``
    (deferred, Airflow 3.3+) and the teardown after a timeout or failure, all through ``api.stopping.release``.

    :param lightning_conn_id: Airflow connection id of type ``lightning`` (templated).
    :param teamspace: teamspace (``owner/name``) overriding the connection's (templated).
    :param deferrable: wait in the triggerer instead of a worker slot (default ``[operators] default_deferrable``).
    :param poll_interval: seconds (or a timedelta) between two status reads while waiting.
    :param timeout: limit (seconds or timedelta) on the wait; None waits forever.
    """

    template_fields: Sequence[str] = ("lightning_conn_id", "teamspace")
    ui_color = "#792ee5"
    ui_fgcolor = "#ffffff"
    tail_label: ClassVar[str] = "log lines"  # what the lines of a failure message are
    stop_budget: ClassVar[Any] = None  # an ``api.stopping.StopBudget`` for releasing owned work; None: default
    default_poll_interval: ClassVar[float] = 15.0
    default_timeout: ClassVar[float | timedelta | None] = None
    _UNSET: ClassVar[Any] = object()

    def __init__(
        self,
        *,
        lightning_conn_id: str = DEFAULT_CONN_ID,
        teamspace: str | None = None,
        deferrable: bool | None = None,
        poll_interval: float | timedelta | None = None,
        timeout: float | timedelta | None = _UNSET,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not isinstance(lightning_conn_id, str) or not lightning_conn_id:
            raise ValueError(f"lightning_conn_id must be a connection id, got {lightning_conn_id!r}")
        self.lightning_conn_id = lightning_conn_id
        self.teamspace = teamspace
        self.deferrable = default_deferrable() if deferrable is None else bool(deferrable)
        interval = self.default_poll_interval if poll_interval is None else poll_interval
        self.poll_interval: float = seconds(interval, "poll_interval", allow_none=False)  # type: ignore[assignment]
        self.timeout = seconds(self.default_timeout if timeout is self._UNSET else timeout, "timeout")
        if hasattr(type(self), "release_orphaned_work"):  # jobs and deployments: see operators.orphans
            from airflow_provider_lightning.operators.orphans import with_release

            self.on_failure_callback = with_release(self.on_failure_callback)
        self._hook: LightningHook | None = None
        self._owned: WaitSpec | None = None  # what on_kill stops in blocking mode
        self._page_url: str | None = None  # the extra link's URL once this process knows it

    @classmethod
    def partial(cls, **kwargs: Any) -> Any:  # type: ignore[override]
        """``BaseOperator.partial``; a mapped job or deployment task gets the worker-death failure callback too."""
        from airflow.sdk.bases.operator import partial as sdk_partial

        operator_partial = sdk_partial(cls, **kwargs)
        if hasattr(cls, "release_orphaned_work"):
            from airflow_provider_lightning.operators.orphans import with_release

            callbacks = operator_partial.kwargs.get("on_failure_callback")
            operator_partial.kwargs["on_failure_callback"] = with_release(callbacks)
        return operator_partial

    # -- hook ----------------------------------------------------------------------------------

    def _get_hook(self) -> LightningHook:
        """The operator's LightningHook (one per task run, so one HTTP client)."""
        if self._hook is None:
            self._hook = make_hook(self.lightning_conn_id, self.teamspace)
        return self._hook

    def publish_url(self, context: Context, key: str, url: str) -> None:
        """Push the resource's web page for the extra link (read by the link, never by the operator)."""
        self._page_url = url
        context["ti"].xcom_push(key=key, value=url)

    # -- waiting -------------------------------------------------------------------------------

    def wait_spec(self, kind: str, resource_id: str, targets: Sequence[str], **fields: Any) -> WaitSpec:
        """A WaitSpec for this operator's connection, teamspace, poll interval and timeout."""
        from airflow_provider_lightning.triggers.contract import WaitSpec

        cursor = {"made_at": time.time(), **fields.pop("log_cursor", {})}
        return WaitSpec(
            kind=kind,
            resource_id=resource_id,
            project_id=self._get_hook().project_id,
            lightning_conn_id=self.lightning_conn_id,
            target_phases=tuple(targets),
            poll_interval=self.poll_interval,
            deadline=deadline_after(self.timeout),
            log_cursor=cursor,
            **fields,
        )

    def wait(self, context: Context, spec: WaitSpec, method_name: str = "execute_complete") -> Any:
        """Wait on ``spec``: defer when deferrable, else run the same wait here; then call ``method_name``."""
        self._owned = spec if spec.owns.owned else None
        if self.deferrable:
            from airflow_provider_lightning.triggers.lightning import LightningPhaseTrigger

            self.defer(trigger=LightningPhaseTrigger.for_spec(spec), method_name=method_name)
        from airflow_provider_lightning.triggers.lightning import wait_in_worker

        event = wait_in_worker(spec, self._get_hook().settings, self.log)
        return getattr(self, method_name)(context, event.to_payload())

    # -- resuming ------------------------------------------------------------------------------

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        """Resume after the wait: :meth:`complete` on success; otherwise release what the task owns and fail."""
        from airflow_provider_lightning.triggers.contract import validate_execute_complete_event

        decoded = validate_execute_complete_event(event)
        self._page_url = decoded.url or self._page_url
        if not decoded.succeeded:
            self.fail(decoded)
        self._owned = None
        return self.complete(context, decoded)

    def complete(self, context: Context, event: WaitEvent) -> Any:
        """The task's result for a successful wait (subclasses say what they return)."""
        return event.resource.to_json() if event.resource is not None else None

    def describe_failure(self, event: WaitEvent) -> str:
        """What failed, for the error message (subclasses name their resource)."""
        return ""

    def fail(self, event: WaitEvent) -> NoReturn:
        """Release what the task owns (after a timeout or failure) and raise with the reason, page and log tail."""
        from airflow.providers.common.compat.sdk import AirflowException

        from airflow_provider_lightning.api.registry import kind_named
        from airflow_provider_lightning.triggers.contract import EventStatus

        released = self.release_owned(event) if event.status in (EventStatus.TIMEOUT, EventStatus.FAILED) else ""
        label = kind_named(event.kind).label.removeprefix("Lightning ").capitalize()
        text = event.describe(self.describe_failure(event), extra=released, page_label=f"{label} page",
                              tail_label=self.tail_label)
        if event.status is EventStatus.TIMEOUT and self.timeout:
            text = f"Timed out after {self.timeout:.0f} s: {text}"
        raise AirflowException(text)

    def release_owned(self, event: WaitEvent, *, delete: bool = False) -> str:
        """Stop (or delete) the resource when the event says the task owns it; the sentence to add to a message.

        Never raises: a failed stop is reported in the sentence, so it never masks the task's own error.
        """
        if not event.owns.owned:
            return ""
        from airflow_provider_lightning.api.registry import kind_named
        from airflow_provider_lightning.api.stopping import STOP_RETRY, release

        kind = kind_named(event.kind)
        noun = "Studio" if kind.name in ("studio_command", "schedule_run") else kind.label.removeprefix("Lightning ")
        what = f"the {noun} this task {self.ownership_phrase(event)}"
        hook = make_hook(self.lightning_conn_id, self.teamspace, retry=STOP_RETRY)
        try:
            # Resolving the teamspace is an API call too (a resumed task has not made it yet): inside the
            # try, so a rate limit there is reported in the sentence and never replaces the task's error.
            hook._settings, hook._teamspace = self._get_hook().settings, self._get_hook().teamspace
            done = hook.run(release(kind, hook.project_id, event.resource_id, delete=delete, budget=self.stop_budget))
        except Exception as error:
            self.log.error("Could not stop %s %s: %s", kind.label, event.resource_id, error)
            return f"; stopping {what} failed: {error}"
        finally:
            hook.close()
        self._owned = None
        if done.startswith("nothing to stop"):
            return ""
        self.log.warning("%s %s: %s", kind.label, event.resource_id, done)
        return f"; {what} was {self.stopped_phrase(kind.name, done)}"

    def ownership_phrase(self, event: WaitEvent) -> str:
        """How the task came to own the resource (``started``, ``created``)."""
        from airflow_provider_lightning.triggers.contract import Ownership

        return "created" if event.owns is Ownership.DELETE else "started"

    @staticmethod
    def stopped_phrase(kind: str, done: str) -> str:
        """What ``release`` did, in words for a message (a deployment is scaled to zero)."""
        return "scaled to zero" if kind == "deployment" and done == "stopped" else done

    def on_kill(self) -> None:
        """Stop (or delete) what the task owns (blocking mode; the trigger does it for a deferred task)."""
        spec = self._owned
        if spec is None:
            return
        from airflow_provider_lightning.triggers.contract import EventStatus, Ownership

        event = spec.event(EventStatus.FAILED, None, "task killed")
        note = self.release_owned(event, delete=spec.owns is Ownership.DELETE)
        self.log.warning("Task killed%s", note or f": {spec.resource_name or spec.resource_id} had already ended")

    def owns_for(self, *, created: bool = False, started: bool = False) -> Ownership:
        """The ownership for a resource this task created (delete on kill) or started (stop), else none."""
        from airflow_provider_lightning.triggers.contract import Ownership

        return Ownership.DELETE if created else Ownership.STOP if started else Ownership.NONE
