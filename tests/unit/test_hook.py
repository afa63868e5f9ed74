"""LightningHook: connection forms, auth headers, teamspace resolution, env-var fallback."""

from __future__ import annotations

import json
import time
from urllib.parse import quote

import pytest
from raw_servers import hung_host
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


def _sim_connection(monkeypatch, sim, **extra):
    """Point ``lightning_default`` at the simulator with these extras only."""
    monkeypatch.setenv("AIRFLOW_CONN_LIGHTNING_DEFAULT", json.dumps(
        {"conn_type": "lightning", "host": sim.url, "login": sim.user_id, "password": sim.api_key, "extra": extra}))


def test_test_connection_names_the_user_and_the_resolved_teamspace(sim):
    ok, message = LightningHook().test_connection()
    assert ok, message
    assert message == (f"Connected to {sim.url} as sim-user, teamspace sim-org/sim-teamspace "
                       f"(project {sim.project_id})")


def test_test_connection_fails_for_a_teamspace_that_does_not_exist(sim, monkeypatch):
    _sim_connection(monkeypatch, sim, teamspace="sim-org/nope")
    ok, message = LightningHook().test_connection()
    assert not ok
    assert "'lightning_default'" in message and "'sim-org/nope' does not exist" in message
    assert "sim-teamspace" in message  # the teamspaces the user does belong to


def test_test_connection_without_a_teamspace_says_operators_need_one(sim, monkeypatch):
    _sim_connection(monkeypatch, sim)
    ok, message = LightningHook().test_connection()
    assert ok and "as sim-user" in message and "no teamspace set: operators will need teamspace=" in message


def test_test_connection_with_a_teamspace_override_resolves_it(sim, monkeypatch):
    _sim_connection(monkeypatch, sim)
    ok, message = LightningHook(teamspace="sim-org/sim-teamspace").test_connection()
    assert ok and message.endswith(f"teamspace sim-org/sim-teamspace (project {sim.project_id})")


def test_test_connection_to_a_hung_host_fails_within_call_timeout_naming_connection_and_address(monkeypatch):
    with hung_host() as host:
        monkeypatch.setenv("AIRFLOW_CONN_LIGHTNING_DEFAULT", json.dumps(
            {"conn_type": "lightning", "host": f"http://{host.address}", "login": "u", "password": "k",
             "extra": {"call_timeout": 2}}))
        start = time.monotonic()
        ok, message = LightningHook().test_connection()
        took = time.monotonic() - start
    assert not ok and took < 2 + 2.5
    assert f"Lightning connection 'lightning_default': GET http://{host.address}/v1/auth/whoami failed" in message


def test_the_connection_call_timeout_reaches_the_transport(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_LIGHTNING_DEFAULT", json.dumps(
        {"conn_type": "lightning", "host": "https://lightning.ai", "login": "u", "password": "k",
         "extra": {"call_timeout": "45"}}))
    transport = LightningHook().transport
    assert transport.retry.call_timeout == 45.0 and transport.conn_id == "lightning_default"


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


def test_triggers_mask_the_api_key_without_a_blocking_supervisor_call_on_the_event_loop(sim, monkeypatch):
    """On the triggerer's loop the blocking mask_secret can deadlock on the supervisor: the async masker is used."""
    import asyncio
    import threading

    import airflow.sdk.log as sdk_log

    blocking = sdk_log.mask_secret
    on_loop: list[str] = []

    def guarded(secret, name=None):
        try:
            asyncio.get_running_loop()
            on_loop.append(threading.current_thread().name)
        except RuntimeError:
            pass
        return blocking(secret, name)

    monkeypatch.setattr(sdk_log, "mask_secret", guarded)
    monkeypatch.setenv("AIRFLOW_CONN_LIGHTNING_MASKED", json.dumps({
        "conn_type": "lightning", "host": sim.url, "login": sim.user_id, "password": "masked-key-7f3a9c",
        "extra": {"teamspace": sim.teamspace}}))
    settings = asyncio.run(LightningHook("lightning_masked").aget_settings())
    assert settings.api_key == "masked-key-7f3a9c"
    assert on_loop == []
    from airflow.sdk._shared.secrets_masker import redact  # the same masker on Airflow 3.1 to 3.3

    assert "masked-key-7f3a9c" not in str(redact("key=masked-key-7f3a9c"))
