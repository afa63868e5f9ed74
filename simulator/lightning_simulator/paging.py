"""Query-string and page-token helpers shared by the list endpoints."""

from __future__ import annotations

import base64

from .wire import invalid


def first_value(query: dict[str, list[str]], key: str) -> str:
    """The first value of a repeated query parameter, ``""`` when absent."""
    values = query.get(key)
    return values[0] if values else ""


def page_token(value: int) -> str:
    """The opaque ``pageToken`` carrying an offset or a sequence number."""
    return base64.urlsafe_b64encode(f"o:{value}".encode()).decode().rstrip("=")


def parse_page_token(token: str) -> int:
    """The number inside a :func:`page_token` (0 when empty); 400 when malformed."""
    if not token:
        return 0
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        kind, _, number = text.partition(":")
        if kind != "o":
            raise ValueError(text)
        return int(number)
    except (ValueError, UnicodeDecodeError):
        raise invalid(f"malformed pageToken {token!r}") from None
