"""Teamspace secrets: the hook, LightningSetSecretOperator and ``fromSecret`` job env, against the simulator."""

from __future__ import annotations

import json
import logging
import uuid

import pytest
from airflow.sdk.exceptions import AirflowException
from task_context import context

from airflow_provider_lightning.hooks.lightning import LightningHook
from airflow_provider_lightning.operators.jobs import LightningJobOperator
from airflow_provider_lightning.operators.secrets import LightningSetSecretOperator

SECRET_PATH = "/secrets"


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8].upper()}"


def secret_requests(sim) -> list:
    return [r for r in sim.request_log.snapshot() if SECRET_PATH in r.path]


def job_op(**kw):
    defaults = {"task_id": "train", "image": "python:3.11", "poll_interval": 0.2, "deferrable": False}
    return LightningJobOperator(**{**defaults, **kw})


def test_set_secret_creates_then_updates_one_secret_whose_value_reaches_a_jobs_process(sim):
    name = unique("HF")
    with LightningHook() as hook:
        first = hook.set_secret(name, "first-value")
        second = hook.set_secret(name, "s3cret")
        assert (first.action, second.action) == ("created", "updated")
        assert first.secret.id == second.secret.id
        assert hook.list_secrets().count(name) == 1
    listed = [s for s in sim.store.secrets.list_secrets(sim.project_id)["secrets"] if s["name"] == name]
    assert len(listed) == 1 and "value" not in listed[0]

    result = job_op(
        command='test "$HF_TOKEN" = s3cret && test "$PLAIN" = literal',
        env={"HF_TOKEN": {"fromSecret": name}, "PLAIN": "literal"},
    ).execute(context(run_id=f"secret-env-{name}"))
    assert result["phase"] == "completed"
    spec_env = sim.get_job(result["job_id"])["spec"]["env"]
    assert {"name": "HF_TOKEN", "value": "", "fromSecret": name} in spec_env
    assert {"name": "PLAIN", "value": "literal", "fromSecret": ""} in spec_env


def test_operator_copies_a_connection_password_without_leaking_it(sim, monkeypatch, caplog, capsys):
    value = f"conn-pw-{uuid.uuid4().hex}"
    monkeypatch.setenv("AIRFLOW_CONN_HF_SOURCE", json.dumps({"conn_type": "generic", "password": value}))
    name = unique("FROM_CONN")
    ctx = context(run_id=f"secret-conn-{name}")
    caplog.set_level(logging.DEBUG)
    result = LightningSetSecretOperator(task_id="copy", secret_name=name, source_conn_id="hf_source").execute(ctx)
    assert result["secret_name"] == name and result["action"] == "created" and result["secret_id"]
    again = LightningSetSecretOperator(task_id="copy", secret_name=name, source_conn_id="hf_source").execute(ctx)
    assert again["action"] == "updated" and again["secret_id"] == result["secret_id"]

    out = capsys.readouterr()
    assert value not in caplog.text and value not in out.out + out.err
    assert value not in json.dumps([result, again, ctx["ti"].xcoms])
    assert sim.store.secrets.value(sim.project_id, name) == value  # it did reach the teamspace


def test_operator_copies_a_variable_and_the_job_reads_it(sim, monkeypatch, caplog, capsys):
    value = f"var-{uuid.uuid4().hex}"
    monkeypatch.setenv("AIRFLOW_VAR_HF_TOKEN_VALUE", value)
    name = unique("FROM_VAR")
    caplog.set_level(logging.DEBUG)
    result = LightningSetSecretOperator(
        task_id="copy", secret_name=name, variable_key="hf_token_value"
    ).execute(context(run_id=f"secret-var-{name}"))
    assert result == {"secret_name": name, "secret_id": result["secret_id"], "action": "created"}

    # the job checks the value without it appearing in the command: "var-" plus 32 hex digits
    job = job_op(command='case "$TOKEN" in var-*) test ${#TOKEN} = 36;; *) exit 1;; esac',
                 env={"TOKEN": {"fromSecret": name}})
    assert job.execute(context(run_id=f"secret-var-job-{name}"))["phase"] == "completed"
    out = capsys.readouterr()
    assert value not in caplog.text and value not in out.out + out.err
    assert sim.store.secrets.value(sim.project_id, name) == value


def test_a_bad_secret_name_fails_before_any_request(sim, monkeypatch):
    monkeypatch.setenv("AIRFLOW_VAR_SOME_VALUE", "irrelevant")
    with pytest.raises(ValueError, match="1bad"):
        LightningSetSecretOperator(task_id="copy", secret_name="1bad", variable_key="some_value")
    with pytest.raises(ValueError, match="exactly one"):
        LightningSetSecretOperator(task_id="copy", secret_name="OK", variable_key="a", source_conn_id="b")
    with pytest.raises(ValueError, match="exactly one"):
        LightningSetSecretOperator(task_id="copy", secret_name="OK")

    templated = LightningSetSecretOperator(task_id="copy", secret_name="{{ params.n }}", variable_key="some_value")
    templated.secret_name = "has-dash"  # what rendering put in place
    before = len(sim.request_log.snapshot())
    with pytest.raises(ValueError, match="has-dash"):
        templated.execute(context(run_id="bad-name"))
    with pytest.raises(ValueError, match="1bad"):
        LightningHook().set_secret("1bad", "irrelevant")
    with pytest.raises(ValueError, match="fromSecret"):
        job_op(command="true", env={"X": {"fromSecret": "no-dashes"}})
    with pytest.raises(ValueError, match="fromSecret"):
        job_op(command="true", env={"X": {"fromSecret": "OK", "value": "both"}})
    assert len(sim.request_log.snapshot()) == before


def test_the_secret_value_is_in_no_exception_or_log_when_the_api_fails(sim, monkeypatch, caplog, capsys):
    from airflow_provider_lightning.api.errors import LightningApiError
    from airflow_provider_lightning.api.transport import RetryPolicy

    value = f"failing-{uuid.uuid4().hex}"
    monkeypatch.setenv("AIRFLOW_VAR_FAILING_VALUE", value)
    caplog.set_level(logging.DEBUG)
    name = unique("FAILS")
    op = LightningSetSecretOperator(task_id="copy", secret_name=name, variable_key="failing_value")
    op._hook = LightningHook(retry=RetryPolicy(max_attempts=2, backoff_initial=0.01, call_timeout=5))
    sim.set_faults(error_rate=1.0, only_paths=[r".*/secrets$"])
    with pytest.raises(LightningApiError) as err:
        op.execute(context(run_id=f"secret-fails-{name}"))
    sim.clear_faults()
    out = capsys.readouterr()
    assert value not in str(err.value) and value not in repr(err.value.__dict__)
    assert value not in caplog.text and value not in out.out + out.err


def test_typed_secrets_are_not_listed_and_a_generic_one_of_the_same_name_is_created_next_to_them(sim):
    name = unique("TYPED")
    sim.store.secrets.create(sim.project_id, {"name": name, "type": "SECRET_TYPE_HF_TOKEN", "value": "typed"})
    with LightningHook() as hook:
        assert name not in hook.list_secrets()
        assert hook.set_secret(name, "generic").action == "created"
        assert name in hook.list_secrets()
    with pytest.raises(Exception, match="already exists") as err:
        sim.store.secrets.create(sim.project_id, {"name": name, "type": "SECRET_TYPE_UNSPECIFIED", "value": "v2"})
    assert "v2" not in str(err.value)


def test_a_job_referencing_a_missing_secret_fails_with_a_clear_message(sim):
    with pytest.raises(AirflowException) as err:
        job_op(command="true", env={"HF_TOKEN": {"fromSecret": "NO_SUCH_SECRET_X"}}).execute(
            context(run_id=f"missing-secret-{uuid.uuid4().hex[:6]}")
        )
    message = str(err.value)
    assert "NO_SUCH_SECRET_X" in message and "does not exist" in message and "HF_TOKEN" in message


def test_a_job_takes_secret_references_in_the_wire_list_form_too(sim):
    name = unique("LIST")
    with LightningHook() as hook:
        hook.set_secret(name, "from-the-list")
    result = job_op(
        command='test "$TOKEN" = from-the-list && test "$MODE" = fast',
        env=[{"name": "TOKEN", "fromSecret": name}, {"name": "MODE", "value": "fast"}],
    ).execute(context(run_id=f"secret-list-{name}"))
    assert result["phase"] == "completed"
