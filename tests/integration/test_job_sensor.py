"""LightningJobSensor against the simulator: poke and deferrable, by name and by id."""

from __future__ import annotations

import asyncio

import pytest
from airflow.sdk.exceptions import AirflowFailException, TaskDeferred
from task_context import context

from airflow_provider_lightning.hooks.lightning import LightningHook
from airflow_provider_lightning.operators.jobs import LightningJobOperator
from airflow_provider_lightning.sensors.lightning import LightningJobSensor


def submit(command: str, run_id: str) -> dict:
    ctx = context(run_id=run_id)
    LightningJobOperator(task_id="t", image="python:3.11", command=command, wait_for_completion=False).execute(ctx)
    return ctx["ti"].xcoms


def test_poke_by_name_waits_then_succeeds(sim):
    job = submit("sleep 0.5", "sensor-name")
    sensor = LightningJobSensor(task_id="s", job_name=job["job_name"], poke_interval=0.2, deferrable=False)
    ctx = context(run_id="sensor-name")
    assert sensor.poke(ctx) is False  # still pending
    sensor.execute(ctx)
    assert sensor.poke(ctx) is True and ctx["ti"].xcoms["job_url"] == job["job_url"]


def test_fails_at_once_when_the_job_ends_in_a_phase_that_can_never_match(sim):
    job = submit("exit 4", "sensor-fail")
    sensor = LightningJobSensor(task_id="s", job_id=job["job_id"], poke_interval=0.2, deferrable=False, timeout=60)
    with pytest.raises(AirflowFailException, match="ended in phase failed, which can never become completed"):
        sensor.execute(context())


def test_deferrable_sensor_waits_in_the_trigger_and_never_stops_the_job(sim):
    job = submit("sleep 1", "sensor-defer")
    sensor = LightningJobSensor(task_id="s", job_id=job["job_id"], poke_interval=0.2, deferrable=True, timeout=60)
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(context())
    trigger = deferred.value.trigger
    assert trigger.spec.owns.value == "none"
    event = asyncio.run(anext(trigger.run()))
    assert sensor.execute_complete(context(), event.payload)["phase"] == "completed"


def test_target_running_is_reached_while_the_job_runs(sim):
    job = submit("sleep 3", "sensor-running")
    sensor = LightningJobSensor(task_id="s", job_id=job["job_id"], target_phase="running", poke_interval=0.1,
                                deferrable=False, timeout=30)
    sensor.execute(context())
    assert LightningHook().get_job(job["job_id"]).phase.value == "running"


def test_bad_sensor_arguments_fail_at_parse_time():
    with pytest.raises(ValueError, match="exactly one of job_name= or job_id="):
        LightningJobSensor(task_id="s")
    with pytest.raises(ValueError, match="unknown phase 'done'"):
        LightningJobSensor(task_id="s", job_id="j", target_phase="done")
