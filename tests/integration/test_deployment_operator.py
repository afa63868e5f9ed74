"""Deployment operators and sensor against the simulator over loopback HTTP."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from airflow.sdk.exceptions import AirflowException, AirflowFailException, TaskDeferred
from task_context import context

from airflow_provider_lightning.hooks.lightning import LightningHook
from airflow_provider_lightning.operators.deployments import (
    LightningDeleteDeploymentOperator,
    LightningDeploymentOperator,
    LightningStopDeploymentOperator,
)
from airflow_provider_lightning.sensors.lightning import LightningDeploymentSensor


def unique(prefix: str = "api") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def deploy_op(name: str, **kw):
    defaults = {"task_id": "deploy", "deployment_name": name, "image": "ghcr.io/x/srv:1", "command": "python serve.py",
                "ports": [8000], "poll_interval": 0.2, "timeout": 30, "deferrable": False}
    return LightningDeploymentOperator(**{**defaults, **kw})


def releases(sim, deployment_id: str) -> list[dict]:
    with httpx.Client(base_url=sim.url, headers={"Authorization": sim.auth_header}) as client:
        response = client.get(f"/v1/projects/{sim.project_id}/deployments/{deployment_id}/releases")
    response.raise_for_status()
    return response.json()["releases"]


def test_deployment_is_created_waits_until_ready_and_serves_its_url(sim):
    name = unique()
    ctx = context(run_id="dep-create")
    result = deploy_op(name, auth={"token": "s3cret"}, health_check={"http": {"path": "/health"}}).execute(ctx)
    assert result["action"] == "created" and result["phase"] == "running"
    assert result["url"] and ctx["ti"].xcoms["urls"] == result["urls"]
    assert ctx["ti"].xcoms["deployment_url"].endswith(f"/jobs/{name}")
    deployment = sim.get_deployment(name)
    assert deployment["status"]["readyReplicas"] >= 1
    assert httpx.get(f"{result['url']}/health", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert httpx.get(f"{result['url']}/health").status_code == 401


def test_running_the_same_spec_again_changes_nothing_and_creates_no_release(sim):
    name = unique()
    first = deploy_op(name, env={"A": "1"}, autoscale={"min_replicas": 1, "max_replicas": 2, "threshold": 70})
    first_result = first.execute(context(run_id="dep-same-1"))
    again = deploy_op(name, env={"A": "1"}, autoscale={"min_replicas": 1, "max_replicas": 2, "threshold": 70})
    second = again.execute(context(run_id="dep-same-2"))
    assert second["action"] == "unchanged" and second["changes"] == []
    assert second["release_id"] == first_result["release_id"]
    assert len(releases(sim, second["deployment_id"])) == 1
    puts = [r for r in sim.request_log if r[0] == "PUT" and second["deployment_id"] in r[1]]
    assert puts == []


def test_new_image_creates_a_new_release_and_waits_for_it(sim):
    name = unique()
    first = deploy_op(name).execute(context(run_id="dep-rel-1"))
    second = deploy_op(name, image="ghcr.io/x/srv:2").execute(context(run_id="dep-rel-2"))
    assert second["action"] == "updated" and "spec.image" in second["changes"]
    assert second["release_id"] != first["release_id"]
    assert len(releases(sim, first["deployment_id"])) == 2
    assert sim.get_deployment(name)["spec"]["image"] == "ghcr.io/x/srv:2"


def test_scaling_is_an_update_without_a_new_release(sim):
    name = unique()
    first = deploy_op(name).execute(context(run_id="dep-scale-1"))
    second = deploy_op(name, replicas=2).execute(context(run_id="dep-scale-2"))
    assert second["action"] == "updated" and second["release_id"] == first["release_id"]
    assert sim.get_deployment(name)["status"]["readyReplicas"] == 2


def test_failed_deployment_fails_with_the_servers_message_and_is_scaled_to_zero(sim):
    name = unique()
    with pytest.raises(AirflowException) as err:
        deploy_op(name, env={"LIGHTNING_SIM_DEPLOYMENT": "fail"}).execute(context(run_id="dep-fail"))
    message = str(err.value)
    assert "failed" in message and "scaled to zero" in message
    assert str(sim.get_deployment(name)["autoscaling"]["maxReplicas"]) == "0"


def test_replicas_failing_past_the_grace_period_fail_the_task(sim):
    name = unique()
    op = deploy_op(name, env={"LIGHTNING_SIM_DEPLOYMENT": "crashloop"}, failing_grace_period=1)
    with pytest.raises(AirflowException, match="kept failing for 1 s without becoming ready"):
        op.execute(context(run_id="dep-crash"))


def test_timeout_scales_a_created_deployment_to_zero(sim):
    name = unique()
    op = deploy_op(name, env={"LIGHTNING_SIM_DEPLOYMENT": "crashloop"}, timeout=1)
    with pytest.raises(AirflowException, match="deadline"):
        op.execute(context(run_id="dep-timeout"))
    assert str(sim.get_deployment(name)["autoscaling"]["maxReplicas"]) == "0"


def test_failure_of_an_update_leaves_the_existing_deployment_running(sim):
    name = unique()
    deploy_op(name).execute(context(run_id="dep-upd-1"))
    op = deploy_op(name, env={"LIGHTNING_SIM_DEPLOYMENT": "crashloop"}, failing_grace_period=1, timeout=5)
    with pytest.raises(AirflowException, match="existed before this task"):
        op.execute(context(run_id="dep-upd-2"))
    assert str(sim.get_deployment(name)["autoscaling"]["maxReplicas"]) != "0"


def test_a_retry_of_a_failed_deployment_task_leaves_nothing_running_either(sim):
    name = unique()
    crashing = {"env": {"LIGHTNING_SIM_DEPLOYMENT": "crashloop"}, "failing_grace_period": 1, "timeout": 5}
    with pytest.raises(AirflowException, match="this task created was scaled to zero"):
        deploy_op(name, **crashing).execute(context(run_id="dep-retry", try_number=1))
    assert str(sim.get_deployment(name)["autoscaling"]["maxReplicas"]) == "0"
    # try 2 finds the deployment try 1 created (its release notes carry this task's marker), stopped: it starts it
    # again and, as its creator, owns tearing it down
    with pytest.raises(AirflowException, match="this task created was scaled to zero"):
        deploy_op(name, **crashing).execute(context(run_id="dep-retry", try_number=2))
    assert str(sim.get_deployment(name)["autoscaling"]["maxReplicas"]) == "0"


def test_kill_of_a_task_that_started_a_stopped_deployment_scales_it_back_to_zero(sim):
    name = unique()
    deploy_op(name).execute(context(run_id="dep-kill-started-1"))
    LightningStopDeploymentOperator(task_id="stop", deployment_name=name, poll_interval=0.2,
                                    deferrable=False).execute(context())
    op = deploy_op(name, deferrable=True, env={"LIGHTNING_SIM_DEPLOYMENT": "crashloop"})
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context(run_id="dep-kill-started-2"))
    trigger = deferred.value.trigger
    assert trigger.spec.owns.value == "stop"
    asyncio.run(trigger.on_kill())
    deployment = sim.get_deployment(name)
    assert deployment is not None and str(deployment["autoscaling"]["maxReplicas"]) == "0"


def test_stop_scales_to_zero_and_waits_until_no_replica_is_left_then_delete_removes_it(sim):
    name = unique()
    deploy_op(name).execute(context(run_id="dep-stop"))
    stopped = LightningStopDeploymentOperator(task_id="stop", deployment_name=name, poll_interval=0.2,
                                              deferrable=False).execute(context())
    assert stopped["phase"] == "stopped"
    deployment = sim.get_deployment(name)
    assert int(deployment["replicas"]) == 0 and deployment["status"].get("readyReplicas", 0) == 0
    sensor = LightningDeploymentSensor(task_id="s", deployment_name=name, target_state="stopped", deferrable=False)
    assert sensor.poke(context()) is True
    deleted = LightningDeleteDeploymentOperator(task_id="del", deployment_name=name).execute(context())
    assert deleted["deleted"] is True and sim.get_deployment(name) is None
    assert LightningDeleteDeploymentOperator(task_id="del", deployment_name=name).execute(context()) is None
    with pytest.raises(AirflowException, match="no Lightning deployment"):
        LightningStopDeploymentOperator(task_id="stop", deployment_name=name, deferrable=False).execute(context())


def test_upsert_starts_a_stopped_deployment_again(sim):
    name = unique()
    deploy_op(name).execute(context(run_id="dep-restart-1"))
    LightningStopDeploymentOperator(task_id="stop", deployment_name=name, poll_interval=0.2,
                                    deferrable=False).execute(context())
    again = deploy_op(name).execute(context(run_id="dep-restart-2"))
    assert again["action"] == "updated" and again["phase"] == "running"


def test_deferred_wait_runs_in_the_trigger_and_sensor_sees_ready(sim):
    name = unique()
    op = deploy_op(name, deferrable=True)
    ctx = context(run_id="dep-defer")
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(ctx)
    trigger = deferred.value.trigger
    assert trigger.spec.kind == "deployment" and trigger.spec.owns.value == "delete"
    event = asyncio.run(anext(trigger.run()))
    result = op.execute_complete(ctx, event.payload)
    assert result["phase"] == "running" and result["action"] == "created"
    sensor = LightningDeploymentSensor(task_id="s", deployment_id=result["deployment_id"], deferrable=False)
    assert sensor.poke(context()) is True


def test_kill_while_deferred_deletes_only_a_deployment_this_task_created(sim):
    name = unique()
    op = deploy_op(name, deferrable=True, env={"LIGHTNING_SIM_DEPLOYMENT": "crashloop"})
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context(run_id="dep-kill"))
    asyncio.run(deferred.value.trigger.on_kill())
    assert sim.get_deployment(name) is None

    existing = unique()
    deploy_op(existing).execute(context(run_id="dep-kill-existing-1"))
    update = deploy_op(existing, image="ghcr.io/x/srv:2", deferrable=True)
    with pytest.raises(TaskDeferred) as deferred:
        update.execute(context(run_id="dep-kill-existing-2"))
    assert deferred.value.trigger.spec.owns.value == "none"
    asyncio.run(deferred.value.trigger.on_kill())
    update.on_kill()
    assert sim.get_deployment(existing) is not None


def test_sensor_fails_at_once_when_waiting_for_ready_on_a_failed_deployment(sim):
    name = unique()
    with pytest.raises(AirflowException):
        deploy_op(name, env={"LIGHTNING_SIM_DEPLOYMENT": "fail"}).execute(context(run_id="dep-sensor-fail"))
    sensor = LightningDeploymentSensor(task_id="s", deployment_name=name, deferrable=False)
    with pytest.raises(AirflowFailException, match="can never become running"):
        sensor.poke(context())


def test_bad_deployment_input_fails_before_any_api_call(sim):
    before = len(sim.request_log)
    for bad in ({"autoscale": {"min_replicas": 2, "max_replicas": 1}}, {"autoscale": {"threshold": 101}},
                {"ports": []}, {"studio": "sim-studio"}, {"health_check": {"interval_seconds": 1}}):
        with pytest.raises(ValueError):
            deploy_op(unique(), **bad)
    assert len(sim.request_log) == before


def test_deployment_hook_find_by_name_or_id(sim):
    name = unique()
    result = deploy_op(name, wait_for_ready=False).execute(context(run_id="dep-find"))
    hook = LightningHook()
    assert hook.find_deployment(name).id == result["deployment_id"]
    assert hook.find_deployment(result["deployment_id"]).name == name
    assert hook.find_deployment("dep_missing") is None and hook.find_deployment(unique()) is None
