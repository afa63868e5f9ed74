"""Strict wire mode: a body field or query parameter the official client does not know is a 400.

What each endpoint accepts comes from ``wire_models.json``, generated from lightning-sdk's OpenAPI
client by ``scripts/wire_snapshot.py`` (``make wire-snapshot``); this module only reads that file and
never imports lightning-sdk. Names are accepted as lowerCamelCase wire names and as snake_case proto
names (grpc-gateway reads both). Map and ``object`` fields, enum values and models nested deeper than
the snapshot's ``maxDepth`` are open. Endpoints the snapshot does not list (the simulator's own
``/__admin/*``, ``/__sim/*`` and ``/serve/*``) are not checked. ``strict=False`` (``--lenient``) turns it off.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from .wire import GRPC_INVALID_ARGUMENT, ApiError, camel

SNAPSHOT = Path(__file__).with_name("wire_models.json")


@dataclass(frozen=True)
class Endpoint:
    """One endpoint of the snapshot: ``METHOD /template`` with its query names and body model."""

    method: str
    template: str
    pattern: re.Pattern[str]
    specificity: tuple[int, ...]  # per segment 0 for a literal, 1 for a parameter: literal routes win
    query: frozenset[str]
    body: str | None  # a model name, the snapshot's "open body" marker, or None (no body)
    path_fields: frozenset[str]  # path parameters a `body: "*"` remainder may repeat at its top level


def _compile(template: str) -> tuple[re.Pattern[str], tuple[int, ...]]:
    """Regex and specificity key of a path template such as ``/v1/projects/{projectId}/jobs``."""
    parts, key = [], []
    for segment in template.lstrip("/").split("/"):
        pieces = re.split(r"\{[^}]*\}", segment)
        parts.append("[^/]*".join(re.escape(p) for p in pieces))  # the SDK sends an empty id: GET /v1/orgs/?name=
        key.append(0 if len(pieces) == 1 else 1)
    return re.compile("/" + "/".join(parts)), tuple(key)


class WireModels:
    """The snapshot's endpoints and models, and the check of one request against them."""

    def __init__(self, data: dict[str, Any]) -> None:
        """Index the snapshot's endpoints by method and segment count, most specific template first."""
        self.sdk_version: str = data.get("lightningSdkVersion", "unknown")
        self.open_body: str = data.get("openBody", "*")
        self.models: dict[str, dict[str, Any]] = data["models"]
        self._routes: dict[tuple[str, int], list[Endpoint]] = {}
        for key, spec in data["endpoints"].items():
            method, template = key.split(" ", 1)
            pattern, specificity = _compile(template)
            endpoint = Endpoint(
                method,
                template,
                pattern,
                specificity,
                frozenset(spec["query"]),
                spec["body"],
                frozenset(spec.get("pathFields", ())),
            )
            self._routes.setdefault((method, len(specificity)), []).append(endpoint)
        for routes in self._routes.values():
            routes.sort(key=lambda e: e.specificity)

    def __len__(self) -> int:
        """Number of endpoints."""
        return sum(len(routes) for routes in self._routes.values())

    def endpoint(self, method: str, path: str) -> Endpoint | None:
        """The snapshot endpoint ``path`` matches (literal segments beat parameters), or ``None``."""
        path = "/" + path.lstrip("/")
        for endpoint in self._routes.get((method.upper(), path.count("/")), ()):
            if endpoint.pattern.fullmatch(path):
                return endpoint
        return None

    def unknown_field(self, method: str, path: str, query: str, body: Any) -> str | None:
        """The error message for the first unknown query parameter or body field, ``None`` if all are known."""
        endpoint = self.endpoint(method, path)
        if endpoint is None:
            return None
        where = f"{endpoint.method} {endpoint.template}"
        for name in parse_qs(query, keep_blank_values=True):
            bare = name[:-2] if name.endswith("[]") else name
            if bare not in endpoint.query and camel(bare) not in endpoint.query:
                return f'unknown query parameter "{name}" of {where}{self._hint("not a query parameter")}'
        if body is None or endpoint.body == self.open_body:
            return None
        if endpoint.body is None:
            if isinstance(body, dict) and body:
                key = next(iter(body))
                return f'unknown field "{key}" in body of {where}{self._hint("the endpoint takes no body")}'
            return None
        if isinstance(body, dict) and endpoint.path_fields:
            body = {k: v for k, v in body.items() if camel(k) not in endpoint.path_fields}
        found = self._unknown_in(endpoint.body, body, "")
        if found is None:
            return None
        path, model, key = found
        clause = f'{model} has no field "{key}"'
        return f'unknown field "{path}" in body of {where}{self._hint(clause)}'

    def check(self, method: str, path: str, query: str, body: Any) -> None:
        """Raise a 400 ``ApiError`` (gRPC INVALID_ARGUMENT) naming the first unknown field or parameter."""
        message = self.unknown_field(method, path, query, body)
        if message is not None:
            raise ApiError(GRPC_INVALID_ARGUMENT, message)

    def _hint(self, what: str) -> str:
        """The message's tail: what the official client says and how to accept the request anyway."""
        return (
            f" (strict wire mode: {what} in lightning-sdk {self.sdk_version}'s client; "
            "the simulator accepts it with --lenient / strict=False)"
        )

    def _resolve(self, model: dict[str, Any], key: str) -> str | None:
        """The wire name ``key`` stands for in ``model`` (camelCase, snake_case or an alias), or ``None``."""
        fields = model["fields"]
        if key in fields:
            return key
        alias = model.get("aliases", {}).get(key)
        if alias is not None:
            return str(alias)
        name = camel(key)
        return name if name in fields else None

    def _unknown_in(self, model_name: str, value: Any, prefix: str) -> tuple[str, str, str] | None:
        """Dotted path, model and key of the first unknown key in ``value`` (a ``model_name`` object or a list)."""
        if isinstance(value, list):
            for i, item in enumerate(value):
                found = self._unknown_in(model_name, item, f"{prefix}[{i}]")
                if found is not None:
                    return found
            return None
        model = self.models.get(model_name)
        if not isinstance(value, dict) or model is None:
            return None
        for key, item in value.items():
            wire = self._resolve(model, str(key))
            path = f"{prefix}.{key}" if prefix else str(key)
            if wire is None:
                return path, model_name, str(key)
            child = model["fields"][wire]
            if child is not None and item is not None:
                found = self._unknown_in(child, item, path)
                if found is not None:
                    return found
        return None


@functools.lru_cache(maxsize=1)
def load_wire_models() -> WireModels:
    """The committed snapshot (read once per process)."""
    try:
        text = SNAPSHOT.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{SNAPSHOT} is missing: run `make wire-snapshot`, or start the simulator with strict=False (--lenient)"
        ) from None
    return WireModels(json.loads(text))
