"""Write simulator/lightning_simulator/wire_models.json from lightning-sdk's generated OpenAPI client.

For every endpoint (``METHOD /path/{template}``) the snapshot lists the query parameter names and the
body model; for every model reachable from a request body, its field names (wire names from
``attribute_map``) and the model each field holds. The simulator's strict wire mode reads it at run time
(it never imports lightning-sdk). Run ``make wire-snapshot`` after upgrading lightning-sdk;
``--check`` exits 1 when the committed file differs from what the installed lightning-sdk gives.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.metadata
import importlib.util
import inspect
import json
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "simulator" / "lightning_simulator" / "wire_models.json"
OPENAPI = "lightning_sdk.lightning_cloud.openapi"
# Models nested deeper than this below a request body are left open (their fields are not checked).
MAX_DEPTH = 8
SCALARS = frozenset({"str", "int", "float", "bool", "date", "datetime", "object", "file", "bytearray"})
OPEN_BODY = "*"  # the body is not a model (a list, a map, a string, ``object``): not checked
_LIST = re.compile(r"^list\[(.+)\]$")


def sdk_version() -> str:
    """The installed lightning-sdk version."""
    return importlib.metadata.version("lightning_sdk")


def api_dir() -> Path:
    """Folder of the generated ``*_api.py`` modules."""
    spec = importlib.util.find_spec(f"{OPENAPI}.api")
    if spec is None or spec.origin is None:
        raise SystemExit(f"{OPENAPI} is not importable: install lightning-sdk (scripts/install_sdk.py)")
    return Path(spec.origin).parent


def _call_name(node: ast.Call) -> str:
    """Dotted name of the called function (``self.api_client.call_api``), or ``""``."""
    parts: list[str] = []
    func: ast.expr = node.func
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if isinstance(func, ast.Name):
        parts.append(func.id)
    return ".".join(reversed(parts))


def _body_type(func: ast.FunctionDef) -> str | None:
    """The annotated type of the method's ``body`` argument (``None`` when it takes no body)."""
    for arg in func.args.args:
        if arg.arg == "body":
            if isinstance(arg.annotation, ast.Constant) and isinstance(arg.annotation.value, str):
                return arg.annotation.value
            return "object"
    return None


def parse_api_module(path: Path) -> list[dict[str, Any]]:
    """Every endpoint of one generated ``*_api.py``: method, path, query wire names, body type."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    endpoints = []
    for func in ast.walk(tree):
        if not isinstance(func, ast.FunctionDef) or not func.name.endswith("_with_http_info"):
            continue
        method = template = None
        query: list[str] = []
        for node in ast.walk(func):
            if not isinstance(node, ast.Call):
                continue
            name = _call_name(node)
            if name == "self.api_client.call_api":
                template, method = (ast.literal_eval(arg) for arg in node.args[:2])
            elif name == "query_params.append" and isinstance(node.args[0], ast.Tuple):
                query.append(ast.literal_eval(node.args[0].elts[0]))
        if method is None or template is None:
            raise SystemExit(f"{path.name}:{func.name}: no call_api(path, method) found")
        endpoints.append(
            {"method": method, "path": template, "query": query, "body": _body_type(func), "op": func.name}
        )
    return endpoints


def _is_enum(cls: type) -> bool:
    """True for a generated enum class (string constants, no fields)."""
    return not _types(cls) and any(
        key.isupper() and isinstance(value, str) for key, value in vars(cls).items()
    )


def _types(cls: type) -> dict[str, str]:
    """The model's ``openapi_types`` (``swagger_types`` in older generators)."""
    return dict(getattr(cls, "openapi_types", None) or getattr(cls, "swagger_types", None) or {})


class ModelTable:
    """The models reachable from request bodies, each as ``{"fields": {wire: model|None}, "aliases": ...}``."""

    def __init__(self) -> None:
        self.module = importlib.import_module(f"{OPENAPI}.models")
        self.models: dict[str, dict[str, Any]] = {}
        self.depth: dict[str, int] = {}

    def model_class(self, type_name: str) -> type | None:
        """The generated class for ``type_name`` when it is a checked (closed) model, else ``None``."""
        cls = getattr(self.module, type_name, None)
        if not inspect.isclass(cls) or issubclass(cls, dict) or _is_enum(cls):
            return None  # unknown name, a map-like model (``ProtobufAny``) or an enum: open
        return cls

    def ref(self, type_name: str, depth: int) -> str | None:
        """Model name a field of ``type_name`` refers to (lists see through); ``None`` when open."""
        match = _LIST.match(type_name)
        if match:
            return self.ref(match.group(1).strip(), depth)
        if type_name in SCALARS or type_name.startswith("dict(") or depth > MAX_DEPTH:
            return None
        cls = self.model_class(type_name)
        if cls is None:
            return None
        self.add(type_name, cls, depth)
        return type_name

    def add(self, name: str, cls: type, depth: int) -> None:
        """Record model ``name`` (and, recursively, the models its fields hold) at nesting ``depth``."""
        if name in self.depth and self.depth[name] <= depth:
            return
        self.depth[name] = depth
        attribute_map: dict[str, str] = dict(getattr(cls, "attribute_map", {}))
        fields: dict[str, str | None] = {}
        aliases: dict[str, str] = {}
        entry = {"fields": fields, "aliases": aliases}
        self.models[name] = entry
        for attr, type_name in sorted(_types(cls).items()):
            wire = attribute_map.get(attr, attr)
            snake = attr.lstrip("_")
            if snake != wire and _camel(snake) != wire:
                aliases[snake] = wire
            fields[wire] = self.ref(type_name, depth + 1)
        if not aliases:
            del entry["aliases"]


def _camel(name: str) -> str:
    """``snake_case`` -> ``lowerCamelCase``, as the simulator's ``wire.camel`` does."""
    head = name.lstrip("_")
    return re.sub(r"_([a-z0-9])", lambda m: m.group(1).upper(), head) if "_" in name else name


def build_snapshot() -> dict[str, Any]:
    """The snapshot as a JSON-ready dict."""
    table = ModelTable()
    endpoints: dict[str, dict[str, Any]] = {}
    for module in sorted(api_dir().glob("*_api.py")):
        for ep in parse_api_module(module):
            key = f"{ep['method']} {ep['path']}"
            body = ep["body"]
            if body is not None:
                body = table.ref(body, 1) or OPEN_BODY
            known = endpoints.get(key)
            if known is None:
                endpoints[key] = {"query": sorted(set(ep["query"])), "body": body}
                if body is not None and body.endswith("Body"):
                    # grpc-gateway's `body: "*"` remainder: the request message still has the path fields,
                    # so a body may repeat them (the SDK PUTs a fetched Deployment with its id and projectId).
                    endpoints[key]["pathFields"] = re.findall(r"\{([^}=]+)", ep["path"])
                continue
            # The same route in two services: allow the union.
            known["query"] = sorted(set(known["query"]) | set(ep["query"]))
            if known["body"] != body:
                known["body"] = body if known["body"] is None else (known["body"] if body is None else OPEN_BODY)
    return {
        "about": "Generated by scripts/wire_snapshot.py (make wire-snapshot) from lightning-sdk's OpenAPI "
        "client; do not edit. Read by lightning_simulator.strict.",
        "lightningSdkVersion": sdk_version(),
        "maxDepth": MAX_DEPTH,
        "openBody": OPEN_BODY,
        "endpoints": dict(sorted(endpoints.items())),
        "models": dict(sorted(table.models.items())),
    }


def render(snapshot: dict[str, Any]) -> str:
    """The snapshot as the committed file's text (stable: one endpoint or model per line)."""
    lines = ["{"]
    head = {k: v for k, v in snapshot.items() if k not in ("endpoints", "models")}
    for key, value in head.items():
        lines.append(f"{json.dumps(key)}: {json.dumps(value)},")
    for section in ("endpoints", "models"):
        items = list(snapshot[section].items())
        lines.append(f"{json.dumps(section)}: {{")
        for i, (key, value) in enumerate(items):
            comma = "," if i < len(items) - 1 else ""
            lines.append(f"{json.dumps(key)}: {json.dumps(value, separators=(',', ':'))}{comma}")
        lines.append("}," if section == "endpoints" else "}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write (or with ``--check`` compare) the snapshot."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=OUTPUT, help=f"file to write (default {OUTPUT})")
    parser.add_argument("--check", action="store_true", help="exit 1 if the file differs instead of writing it")
    args = parser.parse_args(argv)
    text = render(build_snapshot())
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is stale: run `make wire-snapshot`", file=sys.stderr)
            return 1
        return 0
    args.output.write_text(text, encoding="utf-8")
    snapshot = json.loads(text)
    print(
        f"wrote {args.output.relative_to(ROOT) if args.output.is_relative_to(ROOT) else args.output}: "
        f"{len(snapshot['endpoints'])} endpoints, {len(snapshot['models'])} models, "
        f"lightning-sdk {snapshot['lightningSdkVersion']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
