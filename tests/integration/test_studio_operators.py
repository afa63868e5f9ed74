"""Studio operators and sensor against the simulator over loopback HTTP (commands really run)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from airflow.sdk.exceptions import AirflowException, TaskDeferred
from task_context import context

from airflow_provider_lightning.api.errors import LightningConfigError
from airflow_provider_lightning.operators.studios import (
    LightningStudioCommandOperator,
    LightningStudioStartOperator,
    LightningStudioStopOperator,
)
from airflow_provider_lightning.sensors.lightning import LightningStudioSensor

FAST = {"poll_interval": 0.2, "timeout": 30, "deferrable": False}
RUNNING, STOPPED = "CLOUD_SPACE_INSTANCE_STATE_RUNNING", "CLOUD_SPACE_INSTANCE_STATE_STOPPED"


@pytest.fixture
def studio(sim) -> str:
    name = f"studio-{uuid.uuid4().hex[:6]}"
    sim.add_studio(name)
    return name


def start(studio: str, **kw):
    return LightningStudioStartOperator(task_id="start", studio_name=studio, **{**FAST, **kw}).execute(context())


def command(studio: str, cmd: str, **kw):
    op = LightningStudioCommandOperator(task_id="cmd", studio_name=studio, command=cmd, **{**FAST, **kw})
    return op.execute(context())


def test_start_waits_until_running_and_stop_until_stopped(sim, studio):
    assert start(studio, machine="CPU")["phase"] == "running"
    assert sim.studio_phase(studio) == RUNNING
    assert start(studio, machine="CPU")["phase"] == "running"  # already running there: nothing to do
    stopped = LightningStudioStopOperator(task_id="stop", studio_name=studio, **FAST).execute(context())
    assert stopped["phase"] == "stopped" and sim.studio_phase(studio) == STOPPED


def test_start_on_another_machine_while_running_is_a_clear_error(sim, studio):
    start(studio, machine="CPU")
    with pytest.raises(AirflowException, match="stop it first"):
        start(studio, machine="L4")


def test_commands_really_run_share_files_and_stream_output(sim, studio, capsys):
    start(studio)
    assert command(studio, "echo prepared > data.txt && echo wrote data")["exit_code"] == 0
    assert command(studio, "cat data.txt; echo rows=1000")["exit_code"] == 0
    logged = capsys.readouterr().out
    assert "wrote data" in logged and "prepared" in logged and "rows=1000" in logged


def test_failing_command_reports_exit_code_and_output_tail(sim, studio):
    start(studio)
    with pytest.raises(AirflowException) as err:
        command(studio, "echo loading; echo 'CUDA out of memory' >&2; exit 3")
    assert "exit code 3" in str(err.value) and "loading" in str(err.value)


def test_command_on_a_stopped_studio_fails_before_running_anything(sim, studio):
    with pytest.raises(AirflowException, match="start_studio=True"):
        command(studio, "echo hi")
    assert sim.studio_commands(studio) == []


def test_command_can_start_the_studio_and_stop_it_afterwards(sim, studio):
    result = command(studio, "echo in-studio", start_studio=True, stop_studio=True)
    assert result["exit_code"] == 0
    sensor = LightningStudioSensor(task_id="s", studio_name=studio, target_state="stopped", deferrable=False,
                                   poke_interval=0.1, timeout=10)
    sensor.execute(context())
    assert sim.studio_phase(studio) == STOPPED


def test_deferred_command_waits_in_the_trigger(sim, studio):
    start(studio)
    op = LightningStudioCommandOperator(task_id="cmd", studio_name=studio, command="sleep 0.5; echo done",
                                        poll_interval=0.2, deferrable=True)
    ctx = context()
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(ctx)
    assert deferred.value.trigger.spec.kind == "studio_command"
    event = asyncio.run(anext(deferred.value.trigger.run()))
    assert op.execute_complete(ctx, event.payload)["exit_code"] == 0


def test_sensor_waits_for_running_through_a_stopped_studio(sim, studio):
    sensor = LightningStudioSensor(task_id="s", studio_name=studio, deferrable=False)
    assert sensor.poke(context()) is False  # stopped is not a failure: the Studio can be started
    start(studio)
    assert sensor.poke(context()) is True


def test_unknown_studio_is_named_in_the_error(sim):
    with pytest.raises(LightningConfigError, match="Studio 'no-such-studio' does not exist"):
        command("no-such-studio", "echo hi")


def test_kill_of_a_blocking_start_stops_the_studio_this_task_started(sim, studio):
    op = LightningStudioStartOperator(task_id="start", studio_name=studio, wait_for_running=False, **FAST)
    op.execute(context())  # a kill right after the start request (before or during the wait)
    op.on_kill()
    sim.wait_for_studio(studio, STOPPED, timeout=15)
    already = LightningStudioStartOperator(task_id="start", studio_name=studio, **FAST)
    start(studio)
    already.execute(context())  # already running: this task started nothing
    already.on_kill()
    assert sim.studio_phase(studio) == RUNNING
