"""The data core of a Lightning resource kind, plus its typed capabilities.

Jobs, MMT runs, deployments, Studios, Studio commands and schedule runs all "change phase until
terminal"; one wait loop serves them all. A :class:`ResourceKind` says where a kind lives (its
collection and how to read it) and what it can do: how it stops (:data:`Stopper`), where its log lines
come from (:class:`LogSource`), how it is found by name (:class:`Finder`), how the shared poller reads many
of it at once (:class:`Sweep`), and its web page. Each kind is described in its own module (``api.jobs``,
``api.deployments``, ``api.studios``, ``api.schedules``); ``api.registry`` maps names to them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
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
class ListPage:
    """One list answer, read for the shared poller.

    :param entries: the listed resources by id: what the kind's read takes for each (the entry itself, or the
        part of it that holds what the kind's ``GET`` answers). An entry the list cannot answer exactly (a Studio
        without ``codeStatus``) is left out: its own ``GET`` tells.
    :param read: the kind's read; entries are read only when asked for (:meth:`state`), so a page of other
        resources costs no parsing.
    :param next_token: the next page's ``pageToken``; empty on the last page (and for lists without paging).
    """

    entries: Mapping[str, Any] = field(default_factory=dict)
    read: Callable[[Any], ResourceState] | None = None
    next_token: str = ""

    def state(self, resource_id: str) -> ResourceState | None:
        """The listed resource read exactly as its own ``GET`` reads it; None when not listed or unreadable."""
        data = self.entries.get(resource_id)
        if data is None or self.read is None:
            return None
        try:
            return self.read(data)
        except Exception:  # an unreadable entry: its own GET will tell
            return None


def list_call(
    path: str,
    params: Mapping[str, Any],
    collection: str,
    read: Callable[[Any], ResourceState],
    entry: Callable[[dict[str, Any]], Any] | None = None,
) -> ApiCall[ListPage]:
    """One ``GET`` of a list endpoint whose answer holds ``collection`` (``jobs``, ``multi_machine_jobs`` ...).

    :param read: the kind's read, applied to a listed entry (or to ``entry(item)``: the part of the entry that
        holds what the kind's ``GET`` answers) when the poller asks for it. An entry without an id, or with
        ``entry(item)`` None, is left out.
    """

    def parse(body: Any) -> ListPage:
        items = wire.field(body, collection, []) if isinstance(body, dict) else []
        entries: dict[str, Any] = {}
        for item in items if isinstance(items, list) else []:
            resource_id = wire.text(item, "id") if isinstance(item, dict) else ""
            data = (item if entry is None else entry(item)) if resource_id else None
            if data is not None:
                entries[resource_id] = data
        token = wire.text(body, "next_page_token") if isinstance(body, dict) else ""
        return ListPage(entries, read, token)

    return ApiCall("GET", path, params=params, parse=parse)


#: One page of a kind's resources, newest first: (project id, page token, page size) -> the list call.
RecentPage = Callable[[str, str, int], Operation[ListPage]]
#: One page of a kind's resources in one raw state: (project id, state, page token, page size) -> the list call.
StatePage = Callable[[str, str, str, int], Operation[ListPage]]
#: The resources with these ids, in one request: (project id, ids) -> the list call.
IdsPage = Callable[[str, Sequence[str]], Operation[ListPage]]


@dataclass(frozen=True)
class Sweep:
    """How the shared poller (``triggers.poller``) answers many waits on one kind with a few list requests.

    A kind offers one or more listings; every wait a listing does not answer is read with its own ``GET``.
    Whatever a listing answers must be exactly what that ``GET`` reads.

    :param by_ids: one request for up to ``max_ids`` given ids (``?ids=a&ids=b``); the cheapest, tried first.
    :param recent: a page of the kind's newest resources in any state (a list without paging: all of them).
        The poller follows the pages only while the last one answered a wait, never for more pages than waits.
    :param by_state: a page of the resources in one raw state, for the waits last seen in one of
        ``active_states`` that ``recent`` did not show (long-running ones pushed off the newest pages);
        bounded by a request budget of one per wait.
    :param active_states: the raw states ``by_state`` lists, in this order.
    :param max_ids: most ids per ``by_ids`` request (they go in the URL).
    """

    by_ids: IdsPage | None = None
    recent: RecentPage | None = None
    by_state: StatePage | None = None
    active_states: tuple[str, ...] = ()
    max_ids: int = 50


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
    :param sweep: how the shared poller reads many of this kind with list calls; None: one ``GET`` per wait
        without a poller.
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
    sweep: Sweep | None = None
    web_app: str | None = None
    status_path: str = ""
    at_rest: Callable[[ResourceState], bool] = ended
    locate: Callable[[str, str], str] | None = None

    @property
    def listable(self) -> bool:
        """The shared poller may answer this kind's waits from list calls (it has a :class:`Sweep`)."""
        return self.sweep is not None

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
