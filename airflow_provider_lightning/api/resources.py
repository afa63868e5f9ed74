"""The data core of a Lightning resource kind, plus its typed capabilities.

Jobs, MMT runs, deployments, Studios, Studio commands and schedule runs all "change phase until
terminal"; one wait loop serves them all. A :class:`ResourceKind` says where a kind lives (its
collection and how to read it) and what it can do: how it stops (:data:`Stopper`), where its log lines
come from (:class:`LogSource`), how it is found by name (:class:`Finder`), whether the shared poller may
list it, and its web page. Each kind is described in its own module (``api.jobs``, ``api.deployments``,
``api.studios``, ``api.schedules``); ``api.registry`` maps names to them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from airflow_provider_lightning.api import wire
from airflow_provider_lightning.api.errors import LightningApiError
from airflow_provider_lightning.api.state import ResourceState
from airflow_provider_lightning.api.transport import AMBIGUOUS_ERRORS, ApiCall, Flow, Operation

#: How a kind stops: (kind, project id, resource id) -> a call or a read-then-write flow. Idempotent.
Stopper = Callable[["ResourceKind", str, str], Operation[Any]]


def put_body(body: dict[str, Any]) -> Stopper:
    """A stopper that ``PUT``s ``body`` to the resource (``{"state": "stop"}`` for a job)."""

    def stop(kind: ResourceKind, project_id: str, resource_id: str) -> ApiCall[ResourceState]:
        return ApiCall("PUT", kind.path(project_id, resource_id), json=body, parse=kind.read)

    return stop


@dataclass(frozen=True)
class LogSource:
    """Where a kind's log lines come from.

    :param selector: query parameter of ``/page-logs`` that selects the resource's lines (``jobIds``).
    :param output_field: the resource's read answer holds its whole output in this field instead.
    :param per_machine: lines come from sub-jobs that carry a machine ``rank`` (multi-machine runs).
    """

    selector: str = ""
    output_field: str = ""
    per_machine: bool = False

    @property
    def mergeable(self) -> bool:
        """Whether the shared poller may merge this kind's reads with other waits' (``jobIds`` repeats)."""
        return self.selector == "jobIds"


NO_LOGS = LogSource()


def ended(state: ResourceState) -> bool:
    """The default rest test: the resource reached a terminal phase, so it holds no machine."""
    return state.phase.is_terminal


def never(state: ResourceState) -> bool:
    """A rest test for kinds whose stop acts on something else (a command's Studio): always send the stop."""
    return False


@dataclass(frozen=True)
class Finder:
    """How a resource is found by exact name.

    :param path: path under the collection (``{name}`` is filled in).
    :param query: query parameter carrying the name, when the name is not in the path.
    """

    path: str
    query: str = ""


@dataclass(frozen=True)
class ResourceKind:
    """How one kind of Lightning resource is read, found, listed, stopped and shown.

    :param name: short kind name, used in wait specs and events (``"job"``).
    :param label: human name for messages (``"Lightning job"``).
    :param collection: path segment under ``/v1/projects/{projectId}/``.
    :param read: parses the resource JSON into a :class:`~airflow_provider_lightning.api.state.ResourceState`.
    :param stopper: how the resource stops (see :data:`Stopper`).
    :param logs: where its log lines come from.
    :param finder: how it is found by name; None when it cannot be.
    :param listable: the shared poller may answer its waits from list calls (``GET collection?state=``).
    :param web_app: ``app_id`` of its page in the Lightning web UI ("" for a page without one, None: no page).
    :param status_path: path under the resource read for its phase (``codestatus``); empty reads the resource.
    :param at_rest: whether a read state holds no machine any more, so there is nothing to stop.
    :param locate: builds the resource path from (project id, resource id) when the id is a structured
        reference rather than ``collection/id`` (a Studio command, a schedule run).
    """

    name: str
    label: str
    collection: str
    read: Callable[[Any], ResourceState]
    stopper: Stopper
    logs: LogSource = NO_LOGS
    finder: Finder | None = None
    listable: bool = False
    web_app: str | None = None
    status_path: str = ""
    at_rest: Callable[[ResourceState], bool] = ended
    locate: Callable[[str, str], str] | None = None

    @property
    def has_machines(self) -> bool:
        """The resource runs several machines whose sub-jobs carry a ``rank``."""
        return self.logs.per_machine

    def path(self, project_id: str, resource_id: str = "") -> str:
        if resource_id and self.locate is not None:
            return self.locate(project_id, resource_id)
        base = f"/v1/projects/{wire.seg(project_id)}/{self.collection}"
        return f"{base}/{wire.seg(resource_id)}" if resource_id else base

    def get(self, project_id: str, resource_id: str) -> ApiCall[ResourceState]:
        """Read one resource's phase by id."""
        suffix = f"/{self.status_path}" if self.status_path else ""
        return ApiCall("GET", self.path(project_id, resource_id) + suffix, parse=self.read)

    def find(self, project_id: str, name: str) -> ApiCall[ResourceState | None]:
        """Find one resource by exact name; None when there is none."""
        if self.finder is None:
            raise ValueError(f"a {self.label} cannot be found by name")
        path = self.path(project_id) + "/" + self.finder.path.format(name=wire.seg(name))
        params = {self.finder.query: name} if self.finder.query else None
        return ApiCall("GET", path, params=params, parse=self.read, none_if_missing=True)

    def stop(self, project_id: str, resource_id: str) -> Operation[Any]:
        """Ask the resource to stop (idempotent: stopping a stopped resource changes nothing)."""
        return self.stopper(self, project_id, resource_id)

    def delete(self, project_id: str, resource_id: str) -> ApiCall[Any]:
        """Delete the resource (a 404 answer means it is already gone: None)."""
        return ApiCall("DELETE", self.path(project_id, resource_id), json={}, none_if_missing=True)

    def create(self, project_id: str, body: dict[str, Any], *, max_attempts: int = 3) -> Flow[ResourceState]:
        """Flow: create a resource named ``body["name"]`` never twice.

        The POST itself is retried only when the server certainly did not see it. After an ambiguous
        failure (timeout, dropped connection, 5xx) the resource is looked up by name before posting
        again: the server never answers 409 on a name clash, it would create a second, suffixed one.
        """
        for attempt in range(1, max_attempts + 1):
            try:
                created = yield ApiCall("POST", self.path(project_id), json=body, parse=self.read, idempotent=False)
                return created  # type: ignore[no-any-return]
            except LightningApiError as error:
                if not error.retryable or attempt == max_attempts:
                    raise
            except AMBIGUOUS_ERRORS:
                if attempt == max_attempts:
                    raise
            existing = yield self.find(project_id, body["name"])
            if existing is not None:
                return existing  # type: ignore[no-any-return]
        raise AssertionError("unreachable")  # pragma: no cover
