"""LightningHook: connection forms, auth headers, teamspace resolution, env-var fallback."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from scripted_server import Reply, ScriptedServer

from airflow_provider_lightning.api.errors import LightningConfigError
from airflow_provider_lightning.hooks.lightning import LightningHook


def test_uri_form_connection_works(sim, monkeypatch):
    host = quote(sim.url, safe="")
    monkeypatch.setenv("AIRFLOW_CONN_LIGHTNING_DEFAULT",
                       f"lightning://{sim.user_id}:{sim.api_key}@{host}/?teamspace=sim-org%2Fsim-teamspace")
    hook = LightningHook()
    assert hook.settings.base_url == sim.url
    assert hook.project_id == sim.project_id


def test_json_form_connection_resolves_the_teamspace_once(sim):
    hook = LightningHook()
    assert hook.project_id == sim.project_id
    requests = hook.transport.stats.requests
    assert hook.teamspace.slug == "sim-org/sim-teamspace" and hook.transport.stats.requests == requests


def test_project_id_extra_skips_name_resolution_but_still_knows_names_for_links(sim, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_LIGHTNING_DEFAULT", json.dumps(
        {"conn_type": "lightning", "host": sim.url, "login": sim.user_id, "password": sim.api_key,
         "extra": {"project_id": sim.project_id}}))
    assert LightningHook().teamspace.slug == "sim-org/sim-teamspace"


def test_env_var_fallback_when_default_connection_is_missing(sim, monkeypatch, capsys):
    monkeypatch.delenv("AIRFLOW_CONN_LIGHTNING_DEFAULT")
    monkeypatch.setenv("LIGHTNING_USER_ID", sim.user_id)
    monkeypatch.setenv("LIGHTNING_API_KEY", sim.api_key)
    monkeypatch.setenv("LIGHTNING_CLOUD_URL", sim.url)
    monkeypatch.setenv("LIGHTNING_CLOUD_PROJECT_ID", sim.project_id)
    ok, message = LightningHook().test_connection()
    assert ok, message
    logged = capsys.readouterr().out
    assert "using the LIGHTNING_USER_ID / LIGHTNING_API_KEY" in logged
    assert sim.api_key not in logged


def test_missing_connection_without_env_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_LIGHTNING_DEFAULT", raising=False)
    with pytest.raises(LightningConfigError, match="does not exist and the LIGHTNING_USER_ID"):
        _ = LightningHook().settings


def test_test_connection_reports_success_and_failure(sim, monkeypatch):
    ok, message = LightningHook().test_connection()
    assert ok and "sim-user" in message
    monkeypatch.setenv("AIRFLOW_CONN_LIGHTNING_DEFAULT", json.dumps(
        {"conn_type": "lightning", "host": sim.url, "login": sim.user_id, "password": "wrong-key"}))
    ok, message = LightningHook().test_connection()
    assert not ok and "401" in message and "'lightning_default'" in message and "wrong-key" not in message


def _headers_seen(monkeypatch, **conn):
    with ScriptedServer(lambda m, p: Reply(200, '{"userId":"u"}')) as srv:
        monkeypatch.setenv("AIRFLOW_CONN_LIGHTNING_DEFAULT", json.dumps(
            {"conn_type": "lightning", "host": srv.url, **conn}))
        LightningHook().test_connection()
        return srv.seen[0].headers


def test_basic_auth_from_user_id_and_api_key(monkeypatch):
    headers = _headers_seen(monkeypatch, login="user-1", password="key-abc")
    assert headers["Authorization"] == "Basic dXNlci0xOmtleS1hYmM="  # as captured from the SDK
    assert "airflow-provider-lightning/" in headers["User-Agent"] and "apache-airflow/3" in headers["User-Agent"]


def test_auth_token_wins_over_the_api_key(monkeypatch):
    headers = _headers_seen(monkeypatch, login="user-1", password="key-abc", extra={"auth_token": "jwt-1"})
    assert headers["Authorization"] == "Bearer jwt-1"


def test_api_key_alone_is_sent_as_bearer(monkeypatch):
    assert _headers_seen(monkeypatch, password="scoped-key")["Authorization"] == "Bearer scoped-key"


@pytest.mark.parametrize(
    ("conn", "message"),
    [
        ({"host": "http://lightning.example.com", "login": "u", "password": "k"}, "only accepted for loopback"),
        ({"host": "ftp://x", "login": "u", "password": "k"}, "must be an http"),
        ({"host": "https://lightning.ai", "login": "u", "password": "k", "extra": {"teamspace": "nosl"}},
         "owner/teamspace"),
        ({"host": "https://lightning.ai", "login": "u", "password": "k", "extra": {"read_timeout": "x"}},
         "'read_timeout' must be a number"),
    ],
)
def test_invalid_connections_are_rejected_before_any_request(monkeypatch, conn, message):
    monkeypatch.setenv("AIRFLOW_CONN_LIGHTNING_DEFAULT", json.dumps({"conn_type": "lightning", **conn}))
    with pytest.raises(LightningConfigError, match=message):
        _ = LightningHook().settings
