"""A snapshot of one remote resource (import-light: no HTTP, no Airflow)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from airflow_provider_lightning.api.phases import Phase


@dataclass(frozen=True)
class ResourceState:
    """A snapshot of one remote resource, read tolerantly from the API's JSON."""

    kind: str
    id: str
    name: str
    phase: Phase
    raw_state: str
    message: str = ""
    created_at: str | None = None
    started_at: str | None = None
    stopped_at: str | None = None
    total_cost: float | None = None
    cloudspace_id: str = ""
    failing: bool = False
    detail: dict[str, Any] = field(default_factory=dict)  # small JSON values a kind carries in events (urls)
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        """A small JSON-safe summary (what trigger events and XCom carry)."""
        data = asdict(self)
        data.pop("raw")
        data["phase"] = self.phase.value
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ResourceState:
        """Rebuild from :meth:`to_json` output."""
        data = dict(data)
        data["phase"] = Phase(data["phase"])
        return cls(**data)

    @property
    def duration_seconds(self) -> float | None:
        """Seconds between start and stop, when both are known."""
        if not (self.started_at and self.stopped_at):
            return None
        from datetime import datetime

        import pendulum

        try:  # the API's values: a hostile answer may hold any string (a bare time, a duration, garbage)
            start, stop = pendulum.parse(self.started_at), pendulum.parse(self.stopped_at)
        except (ValueError, TypeError, OverflowError, pendulum.parsing.exceptions.ParserError):
            return None
        if not (isinstance(start, datetime) and isinstance(stop, datetime)):
            return None
        return round((stop - start).total_seconds(), 3)
