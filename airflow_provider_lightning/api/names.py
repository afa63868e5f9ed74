"""Names of Lightning resources: what characters and length the provider accepts (import-light)."""

from __future__ import annotations

import re

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
MAX_NAME_LENGTH = 64


def validate_name(name: str, what: str = "name") -> str:
    """Check a resource name: letters, digits, ``.``, ``_``, ``-``; starts alphanumeric; <= 64 chars."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"{what} must be a non-empty string")
    if len(name) > MAX_NAME_LENGTH:
        raise ValueError(f"{what} {name!r} is longer than {MAX_NAME_LENGTH} characters")
    if not NAME_RE.match(name):
        bad = sorted({c for c in name if not re.match(r"[A-Za-z0-9._-]", c)})
        raise ValueError(
            f"{what} {name!r} has invalid characters {bad}: use letters, digits, '.', '_' and '-', "
            "starting with a letter or digit"
        )
    return name
