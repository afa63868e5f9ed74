"""Validation of job arguments: each bad input gets a clear error naming the problem."""

from __future__ import annotations

import pytest

from airflow_provider_lightning.api.jobs import JobRequest
from airflow_provider_lightning.api.machines import resolve_machine


@pytest.mark.parametrize(("name", "slug"), [("A100", "lit-a100-1"), ("a100_x_2", "lit-a100-2"),
                                            ("lit-h100-8", "lit-h100-8"), ("CPU", "cpu-4"),
                                            ("lit-h200x-4", "lit-h200-4"), ("h100-x-8", "lit-h100-8")])
def test_machine_names_and_slugs_resolve(name, slug):
    assert resolve_machine(name) == slug


def test_machine_typo_lists_close_matches():
    with pytest.raises(ValueError, match=r"unknown machine 'A10O'.*Did you mean: .*A100"):
        resolve_machine("A10O")


def test_raw_instance_type_needs_explicit_opt_in():
    with pytest.raises(ValueError, match="allow_custom_machine"):
        resolve_machine("p4d.24xlarge")
    assert resolve_machine("p4d.24xlarge", allow_custom=True) == "p4d.24xlarge"


def request(**kw):
    return JobRequest(**{"name": "train", "image": "python:3.11", "command": "echo hi", **kw}).validated()


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"studio": "s"}, "exactly one of image= .* got both"),
        ({"image": ""}, "exactly one of image= .* got neither"),
        ({"image": "", "studio": "s", "command": "  "}, "command is required for a Studio job"),
        ({"name": "bad name!"}, r"invalid characters \[' ', '!'\]"),
        ({"name": "-dash"}, "invalid characters|starting with"),
        ({"env": {"N": 3}}, "env value of 'N' must be a string, got int"),
        ({"env": {"1BAD": "x"}}, "env name '1BAD' is invalid"),
        ({"machine": "GPU9000"}, "unknown machine 'GPU9000'"),
        ({"max_run_attempts": 0}, "max_run_attempts must be an integer >= 1"),
        ({"path_mappings": {"data": "conn"}}, "absolute container path"),
        ({"image": "", "studio": "s", "entrypoint": "bash"}, "entrypoint can only be set for image jobs"),
    ],
)
def test_bad_job_arguments_fail_with_a_clear_message(kw, message):
    with pytest.raises(ValueError, match=message):
        request(**kw)


def test_container_job_body_matches_the_sdk_wire_capture():
    body = request(name="train-1", machine="A100", env={"FOO": "bar"}, interruptible=True,
                   path_mappings={"/data": "my-s3:sub/dir"}, tags=["nightly"]).body(
        default_cluster_id="lightning-public-prod")
    assert body == {
        "name": "train-1",
        "spec": {"cloudspaceId": "", "clusterId": "lightning-public-prod", "command": "echo hi",
                 "entrypoint": "sh -c", "env": [{"name": "FOO", "value": "bar"}], "image": "python:3.11",
                 "imageClusterCredentials": False, "imageSecretRef": "", "instanceName": "lit-a100-1",
                 "pathMappings": [{"connectionName": "my-s3", "connectionPath": "sub/dir", "containerPath": "/data"}],
                 "runId": "", "spot": True, "volumes": []},
        "tags": ["nightly"],
    }


def test_studio_job_body_has_no_entrypoint_and_the_studio_id():
    body = JobRequest(name="prep", studio="my-studio", command="python prep.py").validated().body(
        cloudspace_id="cs-1")
    assert body["spec"]["cloudspaceId"] == "cs-1" and "entrypoint" not in body["spec"]


def test_job_env_also_takes_the_wire_list_of_env_vars_with_secret_references():
    from airflow_provider_lightning.api.jobs import JobRequest

    request = JobRequest(name="j", image="python:3.12", command="true", env=[
        {"name": "HF_TOKEN", "fromSecret": "HF"}, {"name": "MODE", "value": "fast"},
    ]).validated()
    assert request.body()["spec"]["env"] == [{"name": "HF_TOKEN", "fromSecret": "HF"}, {"name": "MODE", "value": "fast"}]


@pytest.mark.parametrize("bad", [
    [{"name": "A"}],
    [{"name": "A", "value": "1", "fromSecret": "S"}],
    [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}],
    [{"name": "A", "fromSecret": "1bad"}],
    ["A=1"],
])
def test_a_malformed_env_entry_list_is_refused_before_any_request(bad):
    from airflow_provider_lightning.api.jobs import JobRequest

    with pytest.raises(ValueError, match="env"):
        JobRequest(name="j", image="python:3.12", command="true", env=bad).validated()
