"""Wire-format helpers: timestamps, ids, field-name normalisation and gRPC-style errors.

Everything the HTTP layer and the stores need to speak the Lightning REST dialect
(grpc-gateway JSON: lowerCamelCase names, int64 as strings, RFC3339 timestamps).
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone
from typing import Any

# gRPC status codes used in error bodies.
GRPC_CANCELLED = 1
GRPC_UNKNOWN = 2
GRPC_INVALID_ARGUMENT = 3
GRPC_NOT_FOUND = 5
GRPC_ALREADY_EXISTS = 6
GRPC_PERMISSION_DENIED = 7
GRPC_RESOURCE_EXHAUSTED = 8
GRPC_FAILED_PRECONDITION = 9
GRPC_UNIMPLEMENTED = 12
GRPC_INTERNAL = 13
GRPC_UNAVAILABLE = 14
GRPC_UNAUTHENTICATED = 16

_HTTP_FOR_GRPC = {
    GRPC_CANCELLED: 499,
    GRPC_UNKNOWN: 500,
    GRPC_INVALID_ARGUMENT: 400,
    GRPC_NOT_FOUND: 404,
    GRPC_ALREADY_EXISTS: 409,
    GRPC_PERMISSION_DENIED: 403,
    GRPC_RESOURCE_EXHAUSTED: 429,
    GRPC_FAILED_PRECONDITION: 400,
    GRPC_UNIMPLEMENTED: 501,
    GRPC_INTERNAL: 500,
    GRPC_UNAVAILABLE: 503,
    GRPC_UNAUTHENTICATED: 401,
}


class ApiError(Exception):
    """An error answered as a grpc-gateway ``RpcStatus`` body."""

    def __init__(self, code: int, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status if status is not None else _HTTP_FOR_GRPC.get(code, 500)

    def body(self) -> dict[str, Any]:
        """The JSON error body: ``{"code", "message", "details": []}``."""
        return error_body(self.code, self.message)


def error_body(code: int, message: str) -> dict[str, Any]:
    """Build an ``RpcStatus`` error body."""
    return {"code": code, "message": message, "details": []}


def not_found(what: str) -> ApiError:
    """A 404 whose message contains the lowercase words "not found"."""
    return ApiError(GRPC_NOT_FOUND, f"{what} not found")


def invalid(message: str) -> ApiError:
    """A 400 INVALID_ARGUMENT error."""
    return ApiError(GRPC_INVALID_ARGUMENT, f"invalid argument: {message}")


# --------------------------------------------------------------------------- time


def now_ns() -> int:
    """Current wall-clock time in nanoseconds since the epoch."""
    return time.time_ns()


def rfc3339(ns: int | None) -> str | None:
    """Format epoch nanoseconds as RFC3339 with nanoseconds (``...T14:15:03.797142418Z``).

    ``None`` stays ``None`` so unset timestamps are sent as JSON ``null`` (an empty
    string would make the SDK's date parser fail).
    """
    if ns is None:
        return None
    secs, nanos = divmod(int(ns), 1_000_000_000)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    return f"{base}.{nanos:09d}Z"


def rfc3339_nano_trimmed(ns: int) -> str:
    """Go ``time.RFC3339Nano`` formatting (trailing zeros of the fraction trimmed)."""
    secs, nanos = divmod(int(ns), 1_000_000_000)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    if nanos == 0:
        return f"{base}Z"
    return f"{base}.{f'{nanos:09d}'.rstrip('0')}Z"


_TS_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9})\d*)?"
    r"(?:([Zz])|([+-])(\d{2}):?(\d{2}))?$"
)


def parse_rfc3339(value: str) -> int:
    """Parse an RFC3339 timestamp (any fraction length, ``Z`` or offset) into epoch nanoseconds.

    A bare number is taken as epoch seconds. Raises ``ApiError`` (400) when unparseable.
    """
    text = value.strip()
    try:
        return int(float(text) * 1_000_000_000)
    except ValueError:
        pass
    match = _TS_RE.match(text)
    if not match:
        raise invalid(f"cannot parse timestamp {value!r} (want RFC3339)")
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    frac = match.group(7) or ""
    nanos = int(frac.ljust(9, "0")) if frac else 0
    offset = 0
    if match.group(9):
        sign = 1 if match.group(9) == "+" else -1
        offset = sign * (int(match.group(10)) * 3600 + int(match.group(11)) * 60)
    try:
        dt = datetime(year, month, day, hour, minute, second, tzinfo=timezone.utc)
    except ValueError as exc:
        raise invalid(f"cannot parse timestamp {value!r}: {exc}") from exc
    return (int(dt.timestamp()) - offset) * 1_000_000_000 + nanos


# ------------------------------------------------------------------ field names

_CAMEL_BOUNDARY = re.compile(r"_([a-z0-9])")

# Map-typed fields whose keys are user data and must not be renamed.
_OPAQUE_MAPS = frozenset({"extra", "timings", "labels", "annotations", "userMetadata", "metadata"})


def camel(name: str) -> str:
    """``snake_case`` -> ``lowerCamelCase`` (names already in camelCase are unchanged)."""
    if "_" not in name:
        return name
    head = name.lstrip("_")
    return _CAMEL_BOUNDARY.sub(lambda m: m.group(1).upper(), head)


def camelize(value: Any) -> Any:
    """Recursively rename dict keys to lowerCamelCase, leaving user-data maps untouched."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            new_key = camel(key) if isinstance(key, str) else key
            out[new_key] = item if new_key in _OPAQUE_MAPS else camelize(item)
        return out
    if isinstance(value, list):
        return [camelize(item) for item in value]
    return value


# ----------------------------------------------------------------- coercions


def as_bool(value: Any, default: bool = False) -> bool:
    """Parse a protojson / grpc-gateway boolean (``true``, ``True``, ``1``, JSON bool)."""
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value != 0
    text = str(value).strip().lower()
    if text in ("true", "t", "1", "yes", "y", "on"):
        return True
    if text in ("false", "f", "0", "no", "n", "off", ""):
        return False
    raise invalid(f"cannot parse {value!r} as a boolean")


def as_int(value: Any, default: int = 0) -> int:
    """Parse an int32 / int64 that may arrive as a JSON number or string."""
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return int(value)
    try:
        return int(value)
    except (TypeError, ValueError):
        try:
            return int(float(value))
        except (TypeError, ValueError) as exc:
            raise invalid(f"cannot parse {value!r} as an integer") from exc


def as_str(value: Any, default: str = "") -> str:
    """A string field; ``None`` becomes ``default``."""
    if value is None:
        return default
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def int64(value: Any) -> str:
    """An int64 field as it travels on the wire: a decimal string."""
    return str(as_int(value))
