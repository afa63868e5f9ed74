"""A thread-safe, bounded log of every HTTP request the simulator received."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from typing import Any, overload


class RequestRecord(tuple):  # type: ignore[type-arg]
    """``(method, path_with_query, status)``, plus ``has_auth`` (whether an Authorization header came).

    It compares equal to the plain 3-tuple, so ``("GET", "/v1/auth/whoami", 200) in sim.request_log``
    works. ``status`` is 0 for a connection the simulator dropped on purpose. The header's
    value is never stored.
    """

    has_auth: bool

    def __new__(cls, method: str, path: str, status: int, has_auth: bool = False) -> RequestRecord:
        record = super().__new__(cls, (method, path, status))
        record.has_auth = has_auth
        return record

    @property
    def method(self) -> str:
        """HTTP method."""
        return str(self[0])

    @property
    def path(self) -> str:
        """Path including the query string."""
        return str(self[1])

    @property
    def status(self) -> int:
        """Status code answered (0: connection dropped)."""
        return int(self[2])

    def to_api(self) -> dict[str, Any]:
        """JSON form used by ``GET /__admin/requests``."""
        return {"method": self.method, "path": self.path, "status": self.status, "hasAuth": self.has_auth}


class RequestLog:
    """Bounded list of :class:`RequestRecord` (oldest dropped first), safe to share across threads."""

    def __init__(self, maxlen: int = 200_000) -> None:
        self._items: deque[RequestRecord] = deque(maxlen=maxlen)
        self._lock = threading.Lock()

    def append(self, record: RequestRecord) -> None:
        """Add one record."""
        with self._lock:
            self._items.append(record)

    def record(self, method: str, path: str, status: int, has_auth: bool) -> None:
        """Add one request."""
        self.append(RequestRecord(method, path, status, has_auth))

    def clear(self) -> None:
        """Forget every record."""
        with self._lock:
            self._items.clear()

    def snapshot(self) -> list[RequestRecord]:
        """A copy of the records, oldest first."""
        with self._lock:
            return list(self._items)

    def __iter__(self) -> Iterator[RequestRecord]:
        return iter(self.snapshot())

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    @overload
    def __getitem__(self, index: int) -> RequestRecord: ...

    @overload
    def __getitem__(self, index: slice) -> list[RequestRecord]: ...

    def __getitem__(self, index: int | slice) -> RequestRecord | list[RequestRecord]:
        return self.snapshot()[index]

    def __contains__(self, item: object) -> bool:
        return item in self.snapshot()

    def __repr__(self) -> str:
        return f"RequestLog({self.snapshot()!r})"

    def matching(self, method: str | None = None, path_prefix: str = "") -> list[RequestRecord]:
        """Records with this method (any if ``None``) whose path starts with ``path_prefix``."""
        return [
            r for r in self.snapshot() if (method is None or r.method == method) and r.path.startswith(path_prefix)
        ]
