"""LightningJobOperator and the phase trigger against the simulator over loopback HTTP."""

from __future__ import annotations

import asyncio

import pytest
from airflow.sdk.exceptions import AirflowException, TaskDeferred
from task_context import context, executing_in_background

from airflow_provider_lightning.operators.jobs import LightningJobOperator
from airflow_provider_lightning.triggers.lightning import LightningPhaseTrigger

PRINT_EPOCHS = "python3 -c \"import time\nfor i in range(3):\n    print(f'epoch {i}', flush=True)\n    time.sleep(0.2)\""


def job_op(**kw):
    defaults = {"task_id": "train", "image": "python:3.11", "command": "echo hi", "poll_interval": 0.3,
                "deferrable": False}
    return LightningJobOperator(**{**defaults, **kw})


def jobs_named(sim, prefix):
    return [j for j in sim.jobs() if j["name"].startswith(prefix)]


def wait_for_state(sim, job_id, states):
    return sim.wait_for_job(job_id, states, timeout=15)["state"]


def test_job_succeeds_streams_its_logs_and_returns_a_summary(sim, capsys):
    ctx = context(run_id="run-success")
    result = job_op(command=PRINT_EPOCHS, machine="A100").execute(ctx)
    assert result["phase"] == "completed" and result["job_id"] == ctx["ti"].xcoms["job_id"]
    assert result["url"].endswith(f"/sim-org/sim-teamspace/jobs/{result['job_name']}?app_id=jobs")
    assert ctx["ti"].xcoms["job_url"] == result["url"]
    assert sim.get_job(result["job_id"])["spec"]["instanceName"] == "lit-a100-1"
    assert "epoch 2" in capsys.readouterr().out  # streamed into the task log


def test_failed_job_raises_with_exit_code_and_log_tail(sim):
    with pytest.raises(AirflowException) as err:
        job_op(command="echo 'loading data'; echo 'CUDA out of memory' >&2; exit 3").execute(context(run_id="fail"))
    message = str(err.value)
    assert "failed" in message and "3" in message
    assert "CUDA out of memory" in message and "Job page:" in message


def test_timeout_stops_the_job_and_fails_the_task(sim):
    ctx = context(run_id="timeout")
    with pytest.raises(AirflowException, match=r"Timed out after 2 s.*the job this task started was stopped"):
        job_op(command="sleep 60", timeout=2).execute(ctx)
    assert wait_for_state(sim, ctx["ti"].xcoms["job_id"], {"stopped"}) == "stopped"


def test_on_kill_stops_the_job_this_task_started(sim):
    op = job_op(command="sleep 60")
    ctx = context(run_id="kill")
    with executing_in_background(op, ctx) as errors:
        wait_for_state(sim, ctx["ti"].xcoms["job_id"], {"running"})
        op.on_kill()
    assert wait_for_state(sim, ctx["ti"].xcoms["job_id"], {"stopped"}) == "stopped"
    assert errors and "stopped" in str(errors[0])


def test_retry_reattaches_to_the_running_job_instead_of_submitting_again(sim):
    first = context(run_id="reattach", try_number=1)
    job_op(command="sleep 2", wait_for_completion=False).execute(first)  # the worker "dies" here
    second = context(run_id="reattach", try_number=2)
    result = job_op(command="sleep 2").execute(second)
    assert result["job_id"] == first["ti"].xcoms["job_id"] and result["phase"] == "completed"
    assert len(jobs_named(sim, first["ti"].xcoms["job_name"])) == 1


def test_retry_returns_a_completed_job_without_running_it_again(sim):
    first = job_op(retries=1).execute(context(run_id="done-before", try_number=1, max_tries=1))
    count = len(sim.jobs())
    again = job_op(retries=1).execute(context(run_id="done-before", try_number=2, max_tries=1))
    assert again["job_id"] == first["job_id"] and len(sim.jobs()) == count


def test_a_cleared_task_runs_its_job_again_instead_of_reusing_the_completed_one(sim, capsys):
    first = job_op(command="echo run").execute(context(run_id="cleared", try_number=1, max_tries=0))
    # the user clears the successful task: Airflow sets max_tries = tries so far + retries = 1 + 0
    again = job_op(command="echo run").execute(context(run_id="cleared", try_number=2, max_tries=1))
    assert again["job_id"] != first["job_id"] and again["phase"] == "completed"
    assert again["job_name"] == first["job_name"] + "-t2"
    assert "the task was cleared since" in capsys.readouterr().out


def test_a_cleared_task_reattaches_to_its_job_that_is_still_running(sim):
    first = context(run_id="cleared-running", try_number=1, max_tries=0)
    job_op(command="sleep 2", wait_for_completion=False).execute(first)
    again = job_op(command="sleep 2").execute(context(run_id="cleared-running", try_number=2, max_tries=1))
    assert again["job_id"] == first["ti"].xcoms["job_id"] and again["phase"] == "completed"
    assert len(jobs_named(sim, first["ti"].xcoms["job_name"])) == 1


def test_retry_after_a_failed_job_submits_a_new_one(sim):
    with pytest.raises(AirflowException):
        job_op(command="exit 1").execute(context(run_id="fail-then-retry", try_number=1))
    second = context(run_id="fail-then-retry", try_number=2)
    with pytest.raises(AirflowException):
        job_op(command="exit 1").execute(second)
    assert second["ti"].xcoms["job_name"].endswith("-t2")


def test_deferrable_mode_defers_with_plain_json_kwargs_and_completes(sim):
    op = job_op(command=PRINT_EPOCHS, deferrable=True)
    ctx = context(run_id="deferred")
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(ctx)
    classpath, kwargs = deferred.value.trigger.serialize()
    assert classpath == "airflow_provider_lightning.triggers.lightning.LightningPhaseTrigger"
    assert sim.api_key not in repr(kwargs) and kwargs["owns"] == "stop"
    event = asyncio.run(_first_event(LightningPhaseTrigger(**kwargs)))
    result = op.execute_complete(ctx, event.payload)
    assert result["phase"] == "completed" and result["url"] == ctx["ti"].xcoms["job_url"]


async def _first_event(trigger):
    agen = trigger.run()
    try:
        return await agen.__anext__()
    finally:
        await agen.aclose()


def test_trigger_rebuilt_from_serialize_after_a_restart_still_finishes(sim):
    op = job_op(command="sleep 1.5", deferrable=True)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context(run_id="restart"))
    _, kwargs = deferred.value.trigger.serialize()

    async def restart_once():
        first = asyncio.ensure_future(_first_event(LightningPhaseTrigger(**kwargs)))
        await asyncio.sleep(0.5)
        first.cancel()  # the triggerer went away
        return await _first_event(LightningPhaseTrigger(**kwargs))

    assert asyncio.run(restart_once()).payload["status"] == "success"


def test_trigger_tolerates_transient_poll_errors(sim):
    op = job_op(command="sleep 1", deferrable=True)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context(run_id="flaky"))
    sim.set_faults(error_rate=0.4, rate_limit_rate=0.2, retry_after=0.1)
    event = asyncio.run(_first_event(deferred.value.trigger))
    sim.clear_faults()
    assert event.payload["status"] == "success"


def test_trigger_on_kill_stops_the_job(sim):
    op = job_op(command="sleep 60", deferrable=True)
    ctx = context(run_id="trigger-kill")
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(ctx)
    asyncio.run(deferred.value.trigger.on_kill())
    assert wait_for_state(sim, ctx["ti"].xcoms["job_id"], {"stopped"}) == "stopped"


def test_studio_job_runs_in_the_studio_and_links_to_it(sim):
    result = job_op(image=None, studio="sim-studio", command="echo studio-ok").execute(context(run_id="studio"))
    assert result["phase"] == "completed"
    assert "/studios/sim-studio/app?app_id=jobs&job_name=" in result["url"]
