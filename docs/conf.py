"""Sphinx configuration of the airflow-provider-lightning documentation (``make docs``)."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(DOCS / "_ext"))
sys.path.insert(0, str(ROOT))

# The API reference imports the real modules, and so Airflow: give it a private home under _build/
# so that building the docs never writes into ~/airflow or needs a metadata database.
os.environ["AIRFLOW_HOME"] = str(DOCS / "_build" / "airflow_home")
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

from airflow_provider_lightning import __version__  # noqa: E402

project = "airflow-provider-lightning"
author = "airflow-provider-lightning developers"
copyright = "airflow-provider-lightning developers, Apache License 2.0"
version = release = __version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
    "cli_help",
    "machine_table",
]

exclude_patterns = ["_build", "examples/**/__pycache__"]
templates_path: list[str] = []
root_doc = "index"
language = "en"

# -- API reference (autodoc imports the installed package; no mocks are needed) -------------------
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_class_signature = "separated"
autodoc_default_options = {
    "members": True,
    "show-inheritance": True,
}
autodoc_inherit_docstrings = False
python_use_unqualified_type_names = True
add_module_names = False

# No intersphinx: the build must work offline (it would fetch inventories over the network).

# -- HTML ------------------------------------------------------------------------------------------
html_theme = "furo"
html_title = f"airflow-provider-lightning {release}"
html_static_path: list[str] = []
html_show_sourcelink = False


# -- docstring fix-ups -----------------------------------------------------------------------------
_RELATIVE_MOD = re.compile(r":mod:`\.([A-Za-z_][\w.]*)`")


def _absolute_module_refs(app, what, name, obj, options, lines):  # type: ignore[no-untyped-def]
    """Docstrings say ``:mod:`.cron``` for a sibling module; Sphinx would search every module named so.

    Spell such references out from the documented module's package, so they point at exactly one
    module (or render as plain text when that module is not part of the reference).
    """
    module = name if what == "module" else getattr(obj, "__module__", "") or ""
    package = module if what == "module" and hasattr(obj, "__path__") else module.rpartition(".")[0]
    if not package:
        return
    for index, line in enumerate(lines):
        lines[index] = _RELATIVE_MOD.sub(lambda m: f":mod:`{package}.{m.group(1)}`", line)


def setup(app):  # type: ignore[no-untyped-def]
    app.connect("autodoc-process-docstring", _absolute_module_refs)
