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
# No default "members": a default of True would override the member lists the API pages give
# (``:members: A, B``), so every page documents exactly the names it lists.
autodoc_default_options = {
    "show-inheritance": True,
}
autodoc_inherit_docstrings = False
python_use_unqualified_type_names = True
# Names a module imports for type checking only stay strings in signatures: say which documented
# object each such name is, so that it links.
autodoc_type_aliases = {
    "Cron": "airflow_provider_lightning.schedules.cron.Cron",
}
add_module_names = False

# No intersphinx: the build must work offline (it would fetch inventories over the network).

# Every cross-reference must resolve (``make docs`` builds with -W): the package's own names and the
# simulator's are all documented in api/*.rst. Only names from other projects, which have no inventory
# offline, are exempt (and type variables, which are not objects to document); each pattern must match
# a whole target.
nitpicky = True
nitpick_ignore_regex = [
    # The standard library (signatures and bases: Mapping, datetime, timedelta, Path, Enum, Logger; zoneinfo).
    (r"py:(class|mod)", r"(collections\.abc|datetime|pathlib|enum|logging|os|urllib\.parse)\.\w+|zoneinfo"),
    # Airflow names imported under TYPE_CHECKING in signatures (``-> Asset``, ``-> TaskDecorator``).
    (r"py:class", r"Asset|TaskDecorator"),
    # The transfer progress callback alias as hook signatures spell it (``transfer.Progress``).
    (r"py:class", r"([\w.]+\.)?Progress"),
    # httpx (LightningNetworkError is an httpx.TransportError), Airflow's base classes, and pytest
    # (``MonkeyPatch`` in the signature of the ``lightning`` fixture).
    (r"py:class", r"(httpx|airflow|pytest)\.[\w.]+"),
    # Airflow's task ``Context``: imported under TYPE_CHECKING only, so signatures keep the bare name.
    (r"py:class", r"Context"),
    # Type variables of generic signatures (``run(operation: Operation[T]) -> T``): nothing to link to.
    # Autodoc qualifies them with their module when it evaluates a signature (``...transport.T``).
    (r"py:(class|obj)", r"([\w.]+\.)?T"),
]

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


def _public_bases(app, name, obj, options, bases):  # type: ignore[no-untyped-def]
    """``Bases:`` never names a private class (``_ScheduleOperator``): show its nearest public ancestors.

    A private base only shares code between public classes; it is not part of the reference.
    """

    def public(base):  # type: ignore[no-untyped-def]
        if not getattr(base, "__name__", "").startswith("_"):
            return [base]
        return [ancestor for parent in base.__bases__ for ancestor in public(parent)]

    shown = []
    for base in bases:
        for ancestor in public(base):
            if ancestor not in shown:
                shown.append(ancestor)
    bases[:] = shown


def setup(app):  # type: ignore[no-untyped-def]
    app.connect("autodoc-process-docstring", _absolute_module_refs)
    app.connect("autodoc-process-bases", _public_bases)
