"""Bad input fails with a clear error naming the problem, and nothing is submitted."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from scripted_server import Reply, ScriptedServer
from task_context import context

from airflow_provider_lightning.api.errors import LightningConfigError, LightningResponseError
from airflow_provider_lightning.operators.jobs import LightningJobOperator


def op(**kw):
    return LightningJobOperator(**{"task_id": "t", "image": "python:3.11", "command": "echo", "deferrable": False,
                                   **kw})


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"machine": "A1OO"}, "unknown machine 'A1OO'.*Did you mean"),
        ({"image": None, "studio": "s", "command": ""}, "command is required for a Studio job"),
        ({"studio": "s"}, "got both"),
        ({"image": None}, "got neither"),
        ({"name": "my job/1"}, "invalid characters"),
        ({"env": {"EPOCHS": 10}}, "env value of 'EPOCHS' must be a string, got int"),
        ({"timeout": -5}, "timeout must be positive"),
        ({"poll_interval": 0}, "poll_interval must be positive"),
        ({"poll_interval": timedelta(seconds=-1)}, "poll_interval must be positive"),
    ],
)
def test_bad_operator_arguments_fail_when_the_dag_is_parsed(kw, message):
    with pytest.raises(ValueError, match=message):
        op(**kw)


def test_templated_values_are_checked_after_rendering_before_submission(sim):
    task = op(machine="{{ params.machine }}")
    task.machine = "A1OO"  # what rendering produced
    before = len(sim.jobs())
    with pytest.raises(ValueError, match="unknown machine"):
        task.execute(context(run_id="templated"))
    assert len(sim.jobs()) == before


def test_connection_without_credentials_is_a_clear_error(sim, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_LIGHTNING_DEFAULT", json.dumps({"conn_type": "lightning", "host": sim.url}))
    before = len(sim.jobs())
    with pytest.raises(LightningConfigError, match="'lightning_default' has no credentials.*API key"):
        op().execute(context(run_id="nocreds"))
    assert len(sim.jobs()) == before


def test_unknown_teamspace_is_a_clear_error_listing_known_ones(sim):
    before = len(sim.jobs())
    with pytest.raises(LightningConfigError, match="'sim-org/nope' does not exist.*sim-teamspace"):
        op(teamspace="sim-org/nope").execute(context(run_id="badts"))
    assert len(sim.jobs()) == before


def test_missing_studio_is_named_in_the_error(sim):
    before = len(sim.jobs())
    with pytest.raises(LightningConfigError, match="Studio 'no-such-studio' does not exist"):
        op(image=None, studio="no-such-studio").execute(context(run_id="nostudio"))
    assert len(sim.jobs()) == before


@pytest.mark.parametrize(
    "reply",
    [Reply(200, "<html><body>Welcome to nginx</body></html>", {"Content-Type": "text/html"}),
     Reply(200, '{"memberships": [{"projectId": "p", "na')],
)
def test_a_server_answering_html_or_truncated_json_is_a_clear_error(reply, monkeypatch):
    with ScriptedServer(lambda method, path: reply) as srv:
        monkeypatch.setenv("AIRFLOW_CONN_LIGHTNING_DEFAULT", json.dumps(
            {"conn_type": "lightning", "host": srv.url, "login": "u", "password": "k",
             "extra": {"teamspace": "o/t"}}))
        with pytest.raises(LightningResponseError, match="JSON"):
            op().execute(context(run_id="html"))
        assert not [s for s in srv.seen if s.method == "POST"]
