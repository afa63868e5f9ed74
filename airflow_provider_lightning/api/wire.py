"""Tolerant readers for Lightning JSON: camelCase or snake_case keys, int64 as strings or numbers."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

_CAMEL = re.compile(r"_([a-z0-9])")


def camel(name: str) -> str:
    """``project_id`` -> ``projectId``."""
    return _CAMEL.sub(lambda m: m.group(1).upper(), name)


def snake(name: str) -> str:
    """``projectId`` -> ``project_id``."""
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def field(obj: Any, name: str, default: Any = None) -> Any:
    """Read ``name`` (given in snake_case) from a dict in either its camelCase or snake_case form."""
    if not isinstance(obj, dict):
        return default
    for key in (camel(name), name):
        if key in obj and obj[key] is not None:
            return obj[key]
    return default


def text(obj: Any, name: str) -> str:
    """Read a string field; anything else (missing, null, number) becomes a string or ``""``."""
    value = field(obj, name, "")
    return value if isinstance(value, str) else str(value)


def number(obj: Any, name: str) -> float | None:
    """Read a numeric field sent as a number or as an int64 string; None when absent or absurd."""
    value = field(obj, name)
    if isinstance(value, bool) or value is None:
        return None
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    return result if result == result and abs(result) < 1e15 else None  # drop NaN / absurd values


def timestamp(obj: Any, name: str) -> str | None:
    """Read an RFC3339 timestamp; the zero time and empty strings become None."""
    value = field(obj, name)
    if isinstance(value, dict):  # {"seconds": .., "nanos": ..} in legacy log frames
        seconds = number(value, "seconds")
        if seconds is None:
            return None
        import pendulum

        try:
            return pendulum.from_timestamp(seconds, tz="UTC").isoformat()
        except (ValueError, OverflowError, OSError):  # outside the years datetime can hold
            return None
    if not isinstance(value, str) or not value or value.startswith("0001-01-01"):
        return None
    return value


def seg(value: str) -> str:
    """Quote a path segment the way the SDK does (no safe characters)."""
    return quote(str(value), safe="")
