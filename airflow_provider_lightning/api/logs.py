"""Reading Lightning logs incrementally (``/page-logs``) and as a whole (``download-logs``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from airflow_provider_lightning.api import wire
from airflow_provider_lightning.api.transport import ApiCall, Flow

MAX_LINE_CHARS = 4000  # longer lines are cut so one absurd line cannot flood the task log


@dataclass(frozen=True)
class LogLine:
    """One log line of a resource."""

    line: int
    timestamp: str
    message: str
    resource_id: str = ""

    def render(self) -> str:
        text = self.message.rstrip("\n")
        return text if len(text) <= MAX_LINE_CHARS else text[:MAX_LINE_CHARS] + " [... line cut]"


def read_entries(payload: Any) -> list[LogLine]:
    """Read ``entries`` of a page-logs answer (or a bare list of legacy snake_case entries)."""
    entries = payload if isinstance(payload, list) else wire.field(payload, "entries", [])
    lines = []
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict):
            continue
        number = wire.number(entry, "line")
        lines.append(
            LogLine(
                line=int(number) if number is not None else 0,
                timestamp=wire.timestamp(entry, "timestamp") or "",
                message=wire.text(entry, "message"),
                resource_id=wire.text(entry, "resource_id"),
            )
        )
    return lines


@dataclass(frozen=True)
class LogCursor:
    """Where log reading stopped: the last timestamp, and the last line number per resource.

    Line numbers count per resource (each rank of a multi-machine job has its own), so lines are
    de-duplicated per resource id. JSON-safe, so a trigger carries it across triggerer restarts.
    """

    since: str = ""
    lines: tuple[tuple[str, int], ...] = ()

    def last(self, resource_id: str) -> int:
        return dict(self.lines).get(resource_id, 0)

    def to_json(self) -> dict[str, Any]:
        return {"since": self.since, "lines": dict(self.lines)}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> LogCursor:
        data = data or {}
        raw = data.get("lines")
        lines: dict[str, Any] = dict(raw) if isinstance(raw, dict) else {}
        if data.get("line"):
            lines = {"": int(data["line"]), **lines}
        return cls(since=str(data.get("since") or ""), lines=tuple(sorted((str(k), int(v)) for k, v in lines.items())))

    def advance(self, lines: Iterable[LogLine]) -> tuple[list[LogLine], LogCursor]:
        """Keep only lines after this cursor (per resource) and return them with the new cursor."""
        last = dict(self.lines)
        fresh = []
        for line in lines:
            if line.line > last.get(line.resource_id, 0):
                fresh.append(line)
                last[line.resource_id] = line.line
        if not fresh:
            return [], self
        since = max((ln.timestamp for ln in fresh if ln.timestamp), default=self.since)
        return fresh, LogCursor(since=max(since, self.since), lines=tuple(sorted(last.items())))


def page_logs(
    project_id: str, selector: str, resource_id: str | Sequence[str], *, since: str = "", page_token: str = "",
    page_size: int = 500,
) -> ApiCall[dict[str, Any]]:
    """One ``GET /page-logs`` page for a resource (``selector`` is ``jobIds``, ``mmtId`` ...); a list of job
    ids is sent as repeated ``jobIds`` keys and reads their lines merged into one timeline."""
    ids: str | list[str] = resource_id if isinstance(resource_id, str) else list(resource_id)
    params: dict[str, Any] = {selector: ids, "pageSize": str(page_size)}
    if since:
        params["since"] = since
    if page_token:
        params["pageToken"] = page_token
    return ApiCall("GET", f"/v1/projects/{wire.seg(project_id)}/page-logs", params=params)


def new_lines(
    project_id: str, selector: str, resource_id: str, cursor: LogCursor, *, max_pages: int = 5
) -> Flow[tuple[list[LogLine], LogCursor]]:
    """Flow: read the lines after ``cursor`` (at most ``max_pages`` pages per call) and the new cursor."""
    collected = yield from _read_pages(project_id, selector, resource_id, cursor.since, max_pages)
    return cursor.advance(collected)


def _read_pages(
    project_id: str, selector: str, resource_id: str | Sequence[str], since: str, max_pages: int
) -> Flow[list[LogLine]]:
    """Flow: the lines of up to ``max_pages`` pages from ``since`` on, following ``nextPageToken``."""
    collected: list[LogLine] = []
    token = ""
    for _ in range(max_pages):
        page = yield page_logs(project_id, selector, resource_id, since=since, page_token=token)
        collected.extend(read_entries(page))
        token = wire.text(page, "next_page_token")
        if not token:
            break
    return collected


class UnsplittableLogs(ValueError):
    """A merged log read of several jobs held lines that name none of them (no ``resourceId``)."""


def new_lines_many(
    project_id: str, cursors: Mapping[str, LogCursor], *, max_pages: int = 5
) -> Flow[dict[str, tuple[list[LogLine], LogCursor]]]:
    """Flow: the new lines of several jobs with one merged read (``jobIds`` repeated), split by ``resourceId``.

    Reads from the oldest cursor's ``since`` (callers batch jobs with similar cursors), then each job keeps
    the lines after its own cursor. Raises :class:`UnsplittableLogs` when a line cannot be attributed.
    """
    ids = list(cursors)
    since = min((cursor.since for cursor in cursors.values()), default="")
    collected = yield from _read_pages(project_id, "jobIds", ids, since, max_pages)
    if len(ids) == 1:  # one job: every line is its own, as in :func:`new_lines`
        return {ids[0]: cursors[ids[0]].advance(collected)}
    strays = {line.resource_id for line in collected} - set(ids)
    if strays:
        raise UnsplittableLogs(f"log lines of {sorted(strays)[:3]} in a merged read of {len(ids)} jobs")
    by_job: dict[str, list[LogLine]] = {job_id: [] for job_id in ids}
    for line in collected:
        by_job[line.resource_id].append(line)
    return {job_id: cursors[job_id].advance(by_job[job_id]) for job_id in ids}
