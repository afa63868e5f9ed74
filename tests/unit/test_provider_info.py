"""Provider registration: the entry point, Airflow's own schemas, and the CLI seeing the package."""

from __future__ import annotations

import importlib.metadata
import importlib.resources
import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema

from airflow_provider_lightning import get_provider_info


def test_entry_point_returns_the_provider_info():
    (entry,) = [ep for ep in importlib.metadata.entry_points(group="apache_airflow_provider")
                if ep.value.startswith("airflow_provider_lightning")]
    assert entry.load()() == get_provider_info()


def test_provider_info_validates_against_airflow_runtime_schema():
    schema = json.loads((importlib.resources.files("airflow") / "provider_info.schema.json").read_text())
    jsonschema.validate(get_provider_info(), schema)


def test_connection_form_fields_follow_the_declarative_schema():
    (conn,) = get_provider_info()["connection-types"]
    behaviour = conn["ui-field-behaviour"]
    assert set(behaviour["hidden-fields"]) == {"schema", "port"}
    assert behaviour["relabeling"]["login"] == "User ID" and behaviour["relabeling"]["password"] == "API key"
    for name, spec in conn["conn-fields"].items():
        assert spec["label"] and spec["schema"]["type"], name
    assert conn["conn-fields"]["auth_token"]["schema"]["format"] == "password"


def test_package_name_is_the_canonical_distribution_name():
    assert get_provider_info()["package-name"] == importlib.metadata.metadata("airflow-provider-lightning")["Name"]


def test_airflow_cli_lists_the_provider_and_its_connection_type():
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    airflow = str(Path(sys.executable).with_name("airflow"))
    listed = subprocess.run([airflow, "providers", "list", "-o", "json"], env=env, capture_output=True, text=True)
    assert listed.returncode == 0, listed.stderr
    assert "airflow-provider-lightning" in listed.stdout
    hooks = subprocess.run([airflow, "providers", "hooks", "-o", "json"], env=env, capture_output=True, text=True)
    assert "lightning" in hooks.stdout and "LightningHook" in hooks.stdout


def test_importing_the_package_root_pulls_in_nothing_heavy():
    code = ("import sys, airflow_provider_lightning; "
            "print(sorted(m for m in ('airflow', 'httpx', 'tenacity') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_dependency_floors_are_the_ones_docs_compatibility_explains():
    from packaging.requirements import Requirement

    required = [Requirement(r) for r in importlib.metadata.requires("airflow-provider-lightning") or []]
    floors = {r.name: s.version for r in required if r.marker is None for s in r.specifier if s.operator == ">="}
    assert {"apache-airflow", "apache-airflow-providers-common-compat", "httpx", "tenacity", "pendulum"} <= set(floors)
    text = (Path(__file__).resolve().parents[2] / "docs" / "compatibility.rst").read_text()
    for name, floor in floors.items():
        assert f"   * - ``{name}``\n     - {floor}\n" in text, (name, floor)
