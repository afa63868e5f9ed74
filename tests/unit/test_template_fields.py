"""Template fields are stored in ``__init__`` exactly as passed (Airflow renders them in place later).

Airflow's own checks expect this: a value reshaped in ``__init__`` (``dict(env)``, ``image or ""``) is not what
the user templated, and a mapped or rendered value would skip the reshaping. Validation happens on the
literal value without changing it, and again after rendering.
"""

from __future__ import annotations

import ast
import importlib
import inspect

import pytest

from airflow_provider_lightning import get_provider_info


def _classes_with_template_fields() -> list[type]:
    info = get_provider_info()
    modules = [m for group in ("operators", "sensors") for entry in info[group] for m in entry["python-modules"]]
    found: dict[str, type] = {}
    for name in modules:
        module = importlib.import_module(name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__.startswith("airflow_provider_lightning") and getattr(cls, "template_fields", ()):
                found[f"{cls.__module__}.{cls.__qualname__}"] = cls
    base = importlib.import_module("airflow_provider_lightning.operators.base").LightningBaseOperator
    found["base"] = base
    return sorted(found.values(), key=lambda c: f"{c.__module__}.{c.__qualname__}")


def _init_assignments(cls: type) -> dict[str, ast.expr]:
    """``self.<attr> = <value>`` statements of the class's own ``__init__``."""
    if "__init__" not in cls.__dict__:
        return {}
    tree = ast.parse(inspect.getsource(cls))
    init = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "__init__")
    assigned: dict[str, ast.expr] = {}
    for node in ast.walk(init):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        for target in targets:
            if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id == "self":
                assert node.value is not None
                assigned[target.attr] = node.value
    return assigned


CLASSES = _classes_with_template_fields()


def test_every_operator_and_sensor_templates_its_connection_id() -> None:
    for cls in CLASSES:
        assert "lightning_conn_id" in cls.template_fields, cls.__qualname__


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__qualname__)
def test_template_fields_are_stored_unchanged_in_init(cls: type) -> None:
    assigned = _init_assignments(cls)
    params = set(inspect.signature(cls.__init__).parameters)
    reshaped = {
        field: ast.unparse(assigned[field])
        for field in cls.template_fields
        if field in assigned and not (isinstance(assigned[field], ast.Name) and assigned[field].id in params)
    }
    assert not reshaped, f"{cls.__qualname__} changes template fields in __init__: {reshaped}"
