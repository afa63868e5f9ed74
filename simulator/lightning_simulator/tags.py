"""Workload tags: their names and usage counts, ``GET /workload-tags`` and ``PUT /workloads/{type}/{id}/tags``.

Each kind of workload (jobs, multi-machine jobs) registers how to look one up and mark it changed
(:meth:`TagService.register_workload`), so this module knows none of them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any, Protocol, TypeVar

from .context import ServiceContext
from .wire import as_str, invalid, not_found, now_ns, rfc3339


class Tagged(Protocol):
    """A workload record carrying tag ids."""

    tag_ids: list[str]


T = TypeVar("T", bound=Tagged)


def normalize_tag_name(name: str) -> str:
    """Tag names are lowercased with whitespace collapsed, like the platform does."""
    return " ".join(str(name).split()).lower()


class TagService:
    """The teamspace's workload tags: created on first use, counted per workload, set per workload."""

    def __init__(self, context: ServiceContext) -> None:
        self.context = context
        self.lock = context.lock
        self.tags: dict[str, dict[str, Any]] = {}  # normalised name -> V1WorkloadTag (without usageCount)
        self._usage: Counter[str] = Counter()
        self._retaggers: dict[str, Callable[[str, str, Any], list[str]]] = {}

    def register_workload(
        self, kinds: Iterable[str], lookup: Callable[[str, str], T], touch: Callable[[T], None]
    ) -> None:
        """Let ``PUT /workloads/{kind}/{id}/tags`` retag one kind of workload.

        :param kinds: the lowercase workload types, without ``workload_type_``.
        :param lookup: ``(project id, workload id)`` -> the record, or a 404.
        :param touch: marks the record changed.
        """

        def retag(project_id: str, workload_id: str, raw: Any) -> list[str]:
            record = lookup(project_id, workload_id)
            self.assign(record, self.resolve(project_id, raw))
            touch(record)
            return record.tag_ids

        for kind in kinds:
            self._retaggers[kind] = retag

    def _tag(self, project_id: str, name: str) -> dict[str, Any]:
        norm = normalize_tag_name(name)
        if not norm:
            raise invalid("tag names must not be empty")
        tag = self.tags.get(norm)
        if tag is None:
            tag = {
                "id": self.context.new_id("tag", {t["id"] for t in self.tags.values()}),
                "name": norm,
                "projectId": project_id,
                "createdAt": rfc3339(now_ns()),
                "createdBy": self.context.identity.user_id,
            }
            self.tags[norm] = tag
        return tag

    def resolve(self, project_id: str, raw: Any) -> list[str]:
        """The ids of the tags a request names (``["a", {"name": "b"}]``), creating new ones (under the lock)."""
        ids: list[str] = []
        for item in raw or []:
            name = item.get("name") if isinstance(item, dict) else item
            tag_id = self._tag(project_id, as_str(name))["id"]
            if tag_id not in ids:
                ids.append(tag_id)
        return ids

    def render(self, tag_ids: list[str]) -> list[dict[str, Any]]:
        """The tags with these ids as ``V1WorkloadTag`` JSON."""
        if not tag_ids:  # most jobs: skip indexing every tag (list pages render hundreds of jobs)
            return []
        by_id = {t["id"]: t for t in self.tags.values()}
        return [self._render_tag(by_id[t]) for t in tag_ids if t in by_id]

    def _render_tag(self, tag: dict[str, Any]) -> dict[str, Any]:
        return {**tag, "usageCount": str(self._usage[tag["id"]])}

    def add_usage(self, tag_ids: Iterable[str]) -> None:
        """Count one more workload carrying each of these tags."""
        self._usage.update(tag_ids)

    def drop_usage(self, tag_ids: Iterable[str]) -> None:
        """Count one workload less carrying each of these tags."""
        self._usage.subtract(tag_ids)

    def assign(self, record: Tagged, tag_ids: list[str]) -> None:
        """Replace a workload's tags, keeping the usage counts right."""
        self.drop_usage(record.tag_ids)
        record.tag_ids = tag_ids
        self.add_usage(tag_ids)

    def list_tags(self, project_id: str) -> dict[str, Any]:
        """``GET /workload-tags``."""
        with self.lock:
            self.context.require_project(project_id)
            return {"tags": [self._render_tag(t) for t in self.tags.values()]}

    def set_workload_tags(self, project_id: str, workload_type: str, workload_id: str, body: dict[str, Any]) -> dict:
        """``PUT /workloads/{type}/{id}/tags``: replace a job's (or a multi-machine job's) tags."""
        with self.lock:
            kind = workload_type.lower().removeprefix("workload_type_")
            retag = self._retaggers.get(kind)
            if retag is None:
                self.context.require_project(project_id)
                raise not_found(f"{workload_type} {workload_id!r}")
            return {"tags": self.render(retag(project_id, workload_id, body.get("tags")))}

    def to_state(self) -> list[dict[str, Any]]:
        """Every tag, for the state file (usage counts are rebuilt from the workloads)."""
        return list(self.tags.values())

    def load_state(self, saved: list[dict[str, Any]]) -> None:
        """Restore :meth:`to_state`."""
        for tag in saved:
            self.tags[tag["name"]] = tag
