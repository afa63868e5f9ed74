"""Deployment specs: validation, the wire body, change detection for the upsert, and the readiness rule."""

from __future__ import annotations

import copy

import pytest

from airflow_provider_lightning.api.deployments import DeploymentSpec, deployment_phase, merge, read_deployment
from airflow_provider_lightning.api.phases import Phase
from airflow_provider_lightning.operators.deployments import LightningDeploymentOperator


def spec(**kw):
    return DeploymentSpec(**{"name": "my-api", "image": "ghcr.io/x/srv:1", "command": "python serve.py", **kw})


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"autoscale": {"min_replicas": 3, "max_replicas": 2}}, r"min_replicas \(3\) must not be above max_replicas"),
        ({"autoscale": {"threshold": 120}}, "threshold must be a number between 0 and 100"),
        ({"autoscale": {"threshold": -1}}, "threshold must be a number between 0 and 100"),
        ({"autoscale": {"metric": "MEMORY"}}, "metric must be one of CPU, GPU, RPM"),
        ({"autoscale": {"min": 1}}, r"autoscale has unknown keys \['min'\]"),
        ({"ports": []}, "ports must name at least one port"),
        ({"ports": "8000"}, "ports must be a list of port numbers"),
        ({"ports": [70000]}, "port must be an integer between 1 and 65535"),
        ({"studio": "s"}, "exactly one of image= .* got both"),
        ({"image": ""}, "exactly one of image= .* got neither"),
        ({"image": "", "studio": "s", "command": ""}, "command is required to deploy from a Studio"),
        ({"image": "", "studio": "s", "entrypoint": "sh"}, "entrypoint can only be set for image deployments"),
        ({"health_check": {"initial_delay_seconds": 5}}, "health_check needs exactly one of 'http'.*got neither"),
        ({"health_check": {"http": {}, "exec": "true"}}, "health_check needs exactly one of 'http'.*got both"),
        ({"health_check": {"http": {"port": 9000}}}, "port 9000 is not one of the deployment's ports"),
        ({"health_check": {"exec": ""}}, "health_check exec must be a non-empty command"),
        ({"auth": {"token": "t", "username": "u"}}, "auth must be exactly one of"),
        ({"auth": {"username": "u"}}, "needs a non-empty password"),
        ({"replicas": 0}, "replicas must be an integer >= 1"),
        ({"replicas": 5, "autoscale": {"max_replicas": 3}}, r"replicas \(5\) must be between"),
        ({"rolling_update": {"max_surge": 0, "max_unavailable": 0}}, "cannot both be 0"),
        ({"env": {"A": "1"}, "secrets": {"A": "sec"}}, "'A' is both in env and in secrets"),
        ({"secrets": {"TOKEN": ""}}, r"secrets\['TOKEN'\] must be the name of a teamspace secret"),
        ({"name": "my api"}, "invalid characters"),
        ({"machine": "L44"}, "unknown machine 'L44'"),
    ],
)
def test_bad_deployment_specs_are_rejected_with_the_reason(kw, message):
    with pytest.raises(ValueError, match=message):
        spec(**kw).validated()


def test_bad_spec_fails_when_the_dag_is_parsed():
    with pytest.raises(ValueError, match="min_replicas"):
        LightningDeploymentOperator(task_id="d", deployment_name="x", image="i",
                                    autoscale={"min_replicas": 2, "max_replicas": 1})


def test_body_matches_the_sdk_wire_capture():
    body = spec(
        machine="L4", ports=[8000], env={"A": "1"},
        autoscale={"min_replicas": 1, "max_replicas": 3, "metric": "GPU", "threshold": 80},
        health_check={"http": {"path": "/health", "port": 8000}}, auth={"token": "tok"}, cluster_id="c1",
    ).validated().body()
    assert body["autoscaling"] == {"enabled": True, "maxReplicas": "3", "minReplicas": "1",
                                   "targetMetric": [{"name": "GPU", "target": "80"}]}
    assert body["endpoint"] == {"auth": {"enabled": True, "token": "tok"}, "ports": ["8000"]}
    assert body["spec"]["readinessProbe"] == {"failureThreshold": 3600, "httpGet": {"path": "/health", "port": 8000},
                                              "initialDelaySeconds": 0, "intervalSeconds": 1, "timeoutSeconds": 30}
    assert body["spec"]["instanceName"] == "lit-l4-1"
    assert body["strategy"] == {"rollingUpdate": {"maxSurge": "1", "maxUnavailable": "0"}, "type": "rolling_update"}
    assert body["clusterId"] == body["spec"]["clusterId"] == "c1"
    assert "replicas" not in body  # autoscaling decides, as the SDK sends it


def test_fixed_replicas_pin_min_and_max_and_secrets_go_as_from_secret():
    body = spec(replicas=2, secrets={"HF_TOKEN": "hf"}, env={"A": "1"}).validated().body()
    assert body["replicas"] == 2
    assert (body["autoscaling"]["minReplicas"], body["autoscaling"]["maxReplicas"]) == ("2", "2")
    assert body["spec"]["env"] == [{"name": "A", "value": "1"}, {"name": "HF_TOKEN", "fromSecret": "hf"}]


def server_copy(body: dict) -> dict:
    """What a server returns for ``body``: ids, status, extra fields, ports echoed as ints."""
    data = copy.deepcopy(body)
    data.update(id="dep_1", projectId="p", currentState="DEPLOYMENT_STATE_RUNNING", releaseId="r1",
                status={"readyReplicas": 1, "urls": ["http://x"]})
    data["endpoint"]["ports"] = [int(p) for p in data["endpoint"]["ports"]]
    data["spec"]["pathMappings"] = []
    data["autoscaling"]["idleThresholdSeconds"] = "0"
    data["spec"]["env"] = list(reversed(data["spec"]["env"]))
    return data


def test_same_spec_is_no_change_even_in_the_servers_spelling():
    body = spec(env={"A": "1", "B": "2"}, health_check={"exec": "true"}).validated().body()
    _, changes = merge(server_copy(body), body)
    assert changes == []


def test_new_image_and_scale_are_changes_and_server_fields_are_kept():
    old = spec().validated().body()
    new = spec(image="ghcr.io/x/srv:2", replicas=2).validated().body()
    merged, changes = merge(server_copy(old), new)
    assert set(changes) == {"spec.image", "autoscaling", "replicas"}
    assert merged["spec"]["image"] == "ghcr.io/x/srv:2"
    assert merged["id"] == "dep_1" and merged["autoscaling"]["idleThresholdSeconds"] == "0"


def test_a_stopped_deployment_is_started_again_by_the_upsert():
    body = spec().validated().body()
    stopped = server_copy(body)
    stopped["autoscaling"].update(minReplicas="0", maxReplicas="0")
    merged, changes = merge(stopped, body)
    assert merged["desiredState"] == "DEPLOYMENT_STATE_RUNNING"
    assert merged["autoscaling"]["maxReplicas"] == "1"
    assert "autoscaling" in changes


def dep(state="DEPLOYMENT_STATE_RUNNING", **status):
    return {"id": "dep_1", "name": "api", "currentState": state, "replicas": 2,
            "autoscaling": {"minReplicas": "2", "maxReplicas": "2"}, "status": status}


@pytest.mark.parametrize(
    ("data", "phase", "failing"),
    [
        (dep(readyReplicas=2, urls=["u"]), Phase.RUNNING, False),
        (dep(readyReplicas=1, urls=["u"]), Phase.PENDING, False),
        (dep(readyReplicas=2, urls=[]), Phase.PENDING, False),
        (dep(readyReplicas=2, urls=["u"], firstJobStateCurrentRelease="pending"), Phase.PENDING, False),
        (dep("DEPLOYMENT_STATE_PENDING", failingReplicas=1), Phase.PENDING, True),
        (dep("DEPLOYMENT_STATE_FAILED", failingReplicas=2, message="boom"), Phase.FAILED, True),
        ({**dep(readyReplicas=1), "autoscaling": {"maxReplicas": "0"}}, Phase.STOPPING, False),
        ({**dep("DEPLOYMENT_STATE_STOPPED"), "replicas": 0, "autoscaling": {"maxReplicas": 0}}, Phase.STOPPED, False),
    ],
)
def test_readiness_rule(data, phase, failing):
    assert deployment_phase(data) == (phase, failing)


def test_snake_case_deployment_reads_the_same():
    state = read_deployment({"id": "dep_1", "name": "api", "current_state": "DEPLOYMENT_STATE_RUNNING",
                             "replicas": "1", "status": {"ready_replicas": "1", "urls": ["u"]}})
    assert state.phase is Phase.RUNNING and state.kind == "deployment"
