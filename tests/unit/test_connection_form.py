"""The connection form on every supported Airflow: 3.2 and newer build it from the provider info's declarative
``conn-fields`` / ``ui-field-behaviour``; 3.1 from the hook's ``get_connection_form_widgets`` /
``get_ui_field_behaviour`` (wtforms). Both must describe the same fields.

wtforms, flask_babel and Flask-AppBuilder are not installed with Airflow 3 (the FAB provider brings them), so the
tests put stand-ins into ``sys.modules``: exactly what Airflow 3.1's API server does, which replaces them with its
own mocks (``HookMetaService._get_hooks_with_mocked_fab``) before calling the hook.
"""

from __future__ import annotations

import importlib.machinery
import importlib.resources
import json
import sys
import types
from typing import Any

import jsonschema
import pytest

from airflow_provider_lightning import CONN_TYPE, get_provider_info
from airflow_provider_lightning.hooks.lightning import LightningHook


class Field:
    """A wtforms field class stand-in: records what the hook passes (wtforms' unbound fields keep the same)."""

    def __init__(self, label: str | None = None, validators: Any = (), description: str = "", widget: Any = None,
                 **kwargs: Any) -> None:
        self.label, self.validators, self.description, self.widget = label, list(validators), description, widget
        self.kwargs = kwargs
        self.field_class = type(self)


class StringField(Field):
    pass


class IntegerField(Field):
    pass


class PasswordField(Field):
    pass


class BooleanField(Field):
    pass


class Optional:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass


class TextWidget:
    pass


class PasswordWidget:
    pass


@pytest.fixture
def fab_modules(monkeypatch):
    """wtforms, flask_babel and flask_appbuilder as the hook (and Airflow 3.1's API server) import them."""
    fields = {"StringField": StringField, "IntegerField": IntegerField, "PasswordField": PasswordField,
              "BooleanField": BooleanField}
    modules: dict[str, dict[str, Any]] = {
        "wtforms": dict(fields),
        "wtforms.fields": dict(fields),
        "wtforms.fields.simple": dict(fields),
        "wtforms.validators": {"Optional": Optional, "any_of": lambda values: Optional()},
        "flask_babel": {"lazy_gettext": lambda text: text},
        "flask_appbuilder": {},
        "flask_appbuilder.fieldwidgets": {"BS3TextFieldWidget": TextWidget, "BS3PasswordFieldWidget": PasswordWidget,
                                          "BS3TextAreaFieldWidget": TextWidget},
    }
    for name, attributes in modules.items():
        module = types.ModuleType(name)
        module.__spec__ = importlib.machinery.ModuleSpec(name, None)  # Airflow 3.2 asks importlib.util.find_spec
        module.__dict__.update(attributes)
        monkeypatch.setitem(sys.modules, name, module)
    for name in ("wtforms.fields", "wtforms.validators", "flask_appbuilder.fieldwidgets"):  # submodule attributes
        parent, _, child = name.rpartition(".")
        monkeypatch.setattr(sys.modules[parent], child, sys.modules[name], raising=False)
    monkeypatch.setattr(sys.modules["wtforms.fields"], "simple", sys.modules["wtforms.fields.simple"], raising=False)


def declared() -> dict[str, Any]:
    (conn,) = [c for c in get_provider_info()["connection-types"] if c["connection-type"] == CONN_TYPE]
    return conn


def test_hook_form_widgets_describe_the_declarative_conn_fields(fab_modules):
    conn_fields = declared()["conn-fields"]
    widgets = LightningHook.get_connection_form_widgets()
    assert list(widgets) == list(conn_fields)  # the same fields, in the same order
    for name, spec in conn_fields.items():
        widget, schema = widgets[name], spec["schema"]
        types_ = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        assert widget.label == spec["label"], name
        assert widget.description == spec.get("description", ""), name
        assert "null" in types_ and any(isinstance(v, Optional) for v in widget.validators), name  # all optional
        if schema.get("format") == "password":  # sensitive: masked in the form and in the API
            assert type(widget) is PasswordField and isinstance(widget.widget, PasswordWidget), name
        elif "integer" in types_:
            assert type(widget) is IntegerField, name
        else:  # strings, and numbers (Airflow 3.1 accepts no float field; the hook reads "10" as 10.0)
            assert set(types_) <= {"string", "number", "null"} and type(widget) is StringField, name
    assert {n for n, w in widgets.items() if type(w) is PasswordField} == {"auth_token"}


def test_hook_field_behaviour_is_the_declarative_one_in_airflow_31s_format():
    behaviour = declared()["ui-field-behaviour"]
    legacy = LightningHook.get_ui_field_behaviour()
    assert legacy == {"hidden_fields": behaviour["hidden-fields"], "relabeling": behaviour["relabeling"],
                      "placeholders": behaviour["placeholders"]}
    schema = json.loads((importlib.resources.files("airflow") / "customized_form_field_behaviours.schema.json")
                        .read_text())
    jsonschema.validate(legacy, schema)  # what ProvidersManager checks before using it


def test_the_api_servers_connection_form_has_every_field(fab_modules):
    """``GET /ui/connections/hook_meta`` as the API server builds it: the declarative way on 3.2+, the hook's on 3.1."""
    from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService
    from airflow.providers_manager import ProvidersManager

    build = getattr(HookMetaService.hook_meta_data, "__wrapped__", HookMetaService.hook_meta_data)  # not @cache'd
    try:
        (meta,) = [m for m in build() if m.connection_type == CONN_TYPE]
    finally:
        ProvidersManager()._cleanup()  # drop hooks initialised with the stand-ins
    conn = declared()
    assert meta.hook_name == conn["hook-name"]
    assert meta.hook_class_name == conn["hook-class-name"]
    standard = meta.standard_fields
    assert standard is not None
    assert standard.port.hidden and standard.url_schema.hidden
    for field, label in conn["ui-field-behaviour"]["relabeling"].items():
        assert getattr(standard, field).title == label, field
    extra = meta.extra_fields or {}
    assert set(extra) == set(conn["conn-fields"])
    for name, spec in conn["conn-fields"].items():
        assert extra[name]["schema"]["title"] == spec["label"], name
    assert extra["auth_token"]["schema"].get("format") == "password"
