"""Job log storage and the three wire renderings of a log line.

Lines are appended live (one entry per output line) and rendered as:
``V1JobLogEntry`` (``/page-logs``), snake_case legacy page entries, and the
plain-text download with ``[<RFC3339Nano>] `` prefixes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .wire import rfc3339, rfc3339_nano_trimmed

SEVERITY_RANK = {"error": 3, "warning": 2, "info": 1, "debug": 0, "": 0}

_ERROR_RE = re.compile(r"\b(error|exception|traceback|fatal|critical|panic)\b", re.IGNORECASE)
_WARNING_RE = re.compile(r"\bwarn(ing)?\b", re.IGNORECASE)
_INFO_RE = re.compile(r"\binfo\b", re.IGNORECASE)
_DEBUG_RE = re.compile(r"\bdebug\b", re.IGNORECASE)


def infer_severity(message: str) -> str:
    """Guess a line's severity the way the log pipeline does ("" when undetermined)."""
    if _ERROR_RE.search(message):
        return "error"
    if _WARNING_RE.search(message):
        return "warning"
    if _INFO_RE.search(message):
        return "info"
    if _DEBUG_RE.search(message):
        return "debug"
    return ""


@dataclass(frozen=True)
class LogLine:
    """One stored log line of one job."""

    job_id: str
    line: int
    ts_ns: int
    message: str
    severity: str

    def to_api(self) -> dict[str, Any]:
        """``V1JobLogEntry`` (camelCase, ``line`` as an int64 string)."""
        return {
            "message": self.message,
            "line": str(self.line),
            "timestamp": rfc3339(self.ts_ns),
            "severity": self.severity,
            "resourceId": self.job_id,
        }

    def to_legacy(self) -> dict[str, Any]:
        """Entry of a legacy log page: snake_case keys, protobuf-struct timestamp."""
        secs, nanos = divmod(self.ts_ns, 1_000_000_000)
        return {
            "message": self.message,
            "line": self.line,
            "timestamp": {"seconds": secs, "nanos": nanos},
            "severity": self.severity,
            "resource_id": self.job_id,
        }

    def to_text(self) -> str:
        """One line of the downloadable log file."""
        return f"[{rfc3339_nano_trimmed(self.ts_ns)}] {self.message}"


class LogBuffer:
    """The log lines of one job (not thread-safe: the owning store holds the lock)."""

    def __init__(self, job_id: str, max_lines: int = 200_000) -> None:
        self.job_id = job_id
        self.max_lines = max_lines
        self.lines: list[LogLine] = []
        self.next_line = 1
        self.dropped = 0

    def append(self, message: str, ts_ns: int) -> None:
        """Record one output line (numbered from 1); past ``max_lines`` lines are counted, not kept."""
        number = self.next_line
        self.next_line += 1
        if len(self.lines) >= self.max_lines:
            self.dropped += 1
            return
        self.lines.append(LogLine(self.job_id, number, ts_ns, message, infer_severity(message)))

    def text(self) -> str:
        """The whole log as the download URL serves it."""
        if not self.lines:
            return ""
        return "\n".join(line.to_text() for line in self.lines) + "\n"

    def to_state(self) -> dict[str, Any]:
        """Compact JSON form for the state file."""
        return {
            "next": self.next_line,
            "dropped": self.dropped,
            "lines": [[ln.line, ln.ts_ns, ln.message, ln.severity] for ln in self.lines],
        }

    @classmethod
    def from_state(cls, job_id: str, data: dict[str, Any], max_lines: int = 200_000) -> LogBuffer:
        """Rebuild a buffer saved by :meth:`to_state`."""
        buf = cls(job_id, max_lines)
        buf.next_line = int(data.get("next", 1))
        buf.dropped = int(data.get("dropped", 0))
        buf.lines = [LogLine(job_id, int(n), int(ts), str(msg), str(sev)) for n, ts, msg, sev in data["lines"]]
        return buf


def filter_lines(
    buffers: Sequence[LogBuffer],
    *,
    since_ns: int | None = None,
    until_ns: int | None = None,
    query: str = "",
    min_severity: str = "",
) -> list[LogLine]:
    """Merge several jobs' lines into one timeline and apply the page-logs filters."""
    terms = [t.lower() for t in query.split()] if query else []
    floor = SEVERITY_RANK.get(min_severity.lower(), 0) if min_severity else 0
    if len(buffers) == 1 and since_ns is None and until_ns is None and not terms and not floor:
        return buffers[0].lines  # unfiltered single job: no copy (callers only slice it)
    merged: Iterable[LogLine]
    if len(buffers) == 1:
        merged = buffers[0].lines
    else:
        merged = sorted(
            (line for buf in buffers for line in buf.lines), key=lambda ln: (ln.ts_ns, ln.job_id, ln.line)
        )
    out: list[LogLine] = []
    for line in merged:
        if since_ns is not None and line.ts_ns < since_ns:
            continue
        if until_ns is not None and line.ts_ns > until_ns:
            continue
        if floor and SEVERITY_RANK.get(line.severity, 0) < floor:
            continue
        if terms:
            lowered = line.message.lower()
            if not all(term in lowered for term in terms):
                continue
        out.append(line)
    return out
