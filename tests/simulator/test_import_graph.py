"""The simulator's modules form an acyclic import graph and keep their private names to themselves.

Every ``import`` counts, wherever it is written: at module level, inside a function, or under
``if TYPE_CHECKING:``. Run this file directly (``python tests/simulator/test_import_graph.py``) to print
the graph's problems.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = "lightning_simulator"


@dataclass
class Module:
    """One module of the package: where it is and what it imports from the package."""

    name: str
    path: Path
    imports: set[str] = field(default_factory=set)
    private_imports: list[str] = field(default_factory=list)


def package_dir() -> Path:
    """The folder of the installed ``lightning_simulator`` package."""
    spec = importlib.util.find_spec(PACKAGE)
    assert spec is not None and spec.origin is not None, f"{PACKAGE} is not installed"
    return Path(spec.origin).parent


def module_name(path: Path, root: Path) -> str:
    """``lightning_simulator.x.y`` for ``root/x/y.py`` (the package itself for ``__init__.py``)."""
    parts = [PACKAGE, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(importer: Module, node: ast.ImportFrom) -> str:
    """The absolute module a ``from ... import`` reads from."""
    if not node.level:
        return node.module or ""
    package = importer.name if importer.path.name == "__init__.py" else importer.name.rpartition(".")[0]
    base = package.split(".")
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def scan(root: Path) -> dict[str, Module]:
    """Every module under ``root`` with its in-package imports and the private names it imports."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        mod = Module(module_name(path, root), path)
        modules[mod.name] = mod
    for mod in modules.values():
        tree = ast.parse(mod.path.read_text(encoding="utf-8"), filename=str(mod.path))
        aliases: dict[str, str] = {}  # local name -> package module bound to it
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name in modules:
                        mod.imports.add(alias.name)
                        aliases[alias.asname or alias.name] = alias.name
            elif isinstance(node, ast.ImportFrom):
                source = _resolve(mod, node)
                for alias in node.names:
                    submodule = f"{source}.{alias.name}"
                    if submodule in modules:  # ``from . import catalog``
                        mod.imports.add(submodule)
                        aliases[alias.asname or alias.name] = submodule
                        name_owner = source
                    elif source in modules:
                        mod.imports.add(source)
                        name_owner = source
                    else:
                        continue
                    if _is_private(alias.name) and name_owner != mod.name:
                        mod.private_imports.append(f"{mod.name} imports {alias.name} from {name_owner}")
        for node in ast.walk(tree):  # ``catalog._helper`` through an imported module
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and _is_private(node.attr)
            ):
                mod.private_imports.append(f"{mod.name} uses {aliases[node.value.id]}.{node.attr}")
        mod.imports.discard(mod.name)
    return modules


def cycles(modules: dict[str, Module]) -> list[list[str]]:
    """Each import cycle once, as the list of modules around it (Tarjan's strongly connected components)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(name: str) -> None:
        index[name] = low[name] = len(index)
        stack.append(name)
        on_stack.add(name)
        for target in sorted(modules[name].imports):
            if target not in index:
                visit(target)
                low[name] = min(low[name], low[target])
            elif target in on_stack:
                low[name] = min(low[name], index[target])
        if low[name] == index[name]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == name:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for name in sorted(modules):
        if name not in index:
            visit(name)
    return found


def report(modules: dict[str, Module]) -> list[str]:
    """One line per problem: each cycle and each private name imported across modules."""
    problems = [f"import cycle: {' <-> '.join(component)}" for component in cycles(modules)]
    problems += [line for mod in modules.values() for line in mod.private_imports]
    return problems


def test_simulator_modules_have_no_import_cycle_and_no_private_cross_imports() -> None:
    modules = scan(package_dir())
    assert len(modules) > 10  # the scan found the package
    assert report(modules) == []


if __name__ == "__main__":
    found = scan(package_dir())
    edges = sum(len(m.imports) for m in found.values())
    problems = report(found)
    print(f"{len(found)} modules, {edges} in-package imports, {len(problems)} problem(s)")
    for line in problems:
        print(line)
    sys.exit(1 if problems else 0)
