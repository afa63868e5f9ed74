"""LightningMultiMachineJobOperator and sensor against the simulator over loopback HTTP."""

from __future__ import annotations

import asyncio

import pytest
from airflow.sdk.exceptions import AirflowException, AirflowFailException, TaskDeferred
from task_context import context, executing_in_background

from airflow_provider_lightning.operators.mmt import LightningMMTOperator, LightningMultiMachineJobOperator
from airflow_provider_lightning.sensors.lightning import LightningMultiMachineJobSensor

RANK_ECHO = 'echo "rank $NODE_RANK of $WORLD_SIZE"'


def mmt_op(**kw):
    defaults = {"task_id": "ddp", "image": "nvcr.io/nvidia/pytorch:24.01-py3", "command": RANK_ECHO,
                "num_machines": 2, "machine": "H100_X_8", "poll_interval": 0.3, "deferrable": False}
    return LightningMultiMachineJobOperator(**{**defaults, **kw})


def test_mmt_succeeds_and_streams_logs_prefixed_with_the_rank(sim, capsys):
    ctx = context(run_id="mmt-ok")
    result = mmt_op().execute(ctx)
    assert result["phase"] == "completed" and result["url"].endswith("?app_id=mmt")
    mmt = sim.get_mmt(result["job_id"])
    assert mmt["machines"] == 2 and mmt["spec"]["instanceName"] == "lit-h100-8"
    logged = capsys.readouterr().out
    assert "rank 0] rank 0 of 2" in logged and "rank 1] rank 1 of 2" in logged


def test_one_rank_failing_names_the_rank_and_shows_its_log_tail(sim):
    command = 'echo "starting rank $NODE_RANK"; if [ "$NODE_RANK" = 1 ]; then echo "NCCL error on rank 1"; exit 3; fi; sleep 5'
    with pytest.raises(AirflowException) as err:
        mmt_op(command=command).execute(context(run_id="mmt-fail"))
    message = str(err.value)
    assert "rank 1" in message and "3" in message
    assert "[rank 1] NCCL error on rank 1" in message and "[rank 0]" not in message


def test_kill_stops_the_multi_machine_job(sim):
    op = mmt_op(command="sleep 60")
    ctx = context(run_id="mmt-kill")
    with executing_in_background(op, ctx) as errors:
        sim.wait_for_mmt(ctx["ti"].xcoms["job_id"], {"MultiMachineJob_STATE_RUNNING"}, timeout=15)
        op.on_kill()
    sim.wait_for_mmt(ctx["ti"].xcoms["job_id"], {"MultiMachineJob_STATE_STOPPED"}, timeout=15)
    assert errors and "stopped" in str(errors[0])


def test_retry_reattaches_to_the_running_multi_machine_job(sim):
    first = context(run_id="mmt-reattach", try_number=1)
    mmt_op(command="sleep 1.5", wait_for_completion=False).execute(first)
    second = context(run_id="mmt-reattach", try_number=2)
    result = mmt_op(command="sleep 1.5").execute(second)
    assert result["job_id"] == first["ti"].xcoms["job_id"]
    assert len([m for m in sim.mmts() if m["name"].startswith(first["ti"].xcoms["job_name"])]) == 1


def test_deferred_mmt_trigger_completes_and_sensor_sees_it(sim):
    op = mmt_op(deferrable=True)
    ctx = context(run_id="mmt-defer")
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(ctx)
    assert deferred.value.trigger.spec.kind == "mmt"
    event = asyncio.run(anext(deferred.value.trigger.run()))
    assert op.execute_complete(ctx, event.payload)["phase"] == "completed"
    sensor = LightningMultiMachineJobSensor(task_id="s", job_name=ctx["ti"].xcoms["job_name"], deferrable=False,
                                            poke_interval=0.1, timeout=10)
    assert sensor.poke(context()) is True


def test_sensor_fails_at_once_on_a_failed_mmt(sim):
    ctx = context(run_id="mmt-sensor-fail")
    with pytest.raises(AirflowException):
        mmt_op(command="exit 2").execute(ctx)
    sensor = LightningMultiMachineJobSensor(task_id="s", job_id=ctx["ti"].xcoms["job_id"], deferrable=False)
    with pytest.raises(AirflowFailException, match="can never become completed"):
        sensor.poke(context())


@pytest.mark.parametrize("bad", [1, 0, -2, True, "2"])
def test_num_machines_below_two_fails_before_any_call(bad):
    with pytest.raises(ValueError, match="num_machines must be an integer >= 2"):
        mmt_op(num_machines=bad)


def test_short_alias_is_the_same_operator():
    assert LightningMMTOperator is LightningMultiMachineJobOperator
