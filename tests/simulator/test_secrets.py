"""Teamspace secrets in the simulator: CRUD with the reference's models, the name rule, conflicts, strict mode,
and ``fromSecret`` env entries of jobs and multi-machine jobs."""

from __future__ import annotations

import httpx
from lightning_simulator import LightningSimulator

from .helpers import image_job, mmt_body, wait_mmt, wait_state

V1_SECRET_FIELDS = {"id", "name", "type", "projectId", "orgId", "userId", "clusterId", "createdAt", "updatedAt"}


def test_secrets_are_created_listed_read_updated_and_deleted_without_ever_returning_a_value(
    sim: LightningSimulator, client: httpx.Client
) -> None:
    path = f"/v1/projects/{sim.project_id}/secrets"
    created = client.post(path, json={"name": "HF", "type": "SECRET_TYPE_UNSPECIFIED", "value": "v1"})
    assert created.status_code == 200, created.text
    secret = created.json()
    assert set(secret) == V1_SECRET_FIELDS and secret["projectId"] == sim.project_id
    assert client.get(path).json() == {"secrets": [secret]}
    assert client.get(f"{path}/{secret['id']}").json() == secret
    put = client.put(f"{path}/{secret['id']}", json={"value": "v2"})
    updated = put.json()
    assert updated["id"] == secret["id"] and "value" not in updated
    assert sim.store.secrets.value(sim.project_id, "HF") == "v2"
    for response in (created, client.get(path), put):
        assert "v1" not in response.text and "v2" not in response.text
    assert client.request("DELETE", f"{path}/{secret['id']}", json={}).json() == {}
    assert client.get(f"{path}/{secret['id']}").status_code == 404
    assert client.get(path).json() == {"secrets": []}


def test_secret_names_follow_the_env_var_rule_and_same_name_and_type_is_a_conflict(
    sim: LightningSimulator, client: httpx.Client
) -> None:
    path = f"/v1/projects/{sim.project_id}/secrets"
    for bad in ("1bad", "has-dash", ""):
        response = client.post(path, json={"name": bad, "type": "SECRET_TYPE_UNSPECIFIED", "value": "x"})
        assert response.status_code == 400, response.text
    assert client.post(path, json={"name": "TOK", "value": "a"}).status_code == 200  # no type: generic
    clash = client.post(path, json={"name": "TOK", "type": "SECRET_TYPE_UNSPECIFIED", "value": "SECRETVALUE"})
    assert clash.status_code == 409 and "SECRETVALUE" not in clash.text
    assert client.post(path, json={"name": "TOK", "type": "SECRET_TYPE_HF_TOKEN", "value": "b"}).status_code == 200
    typed = client.get(path, params={"type": "SECRET_TYPE_HF_TOKEN"}).json()["secrets"]
    assert [s["type"] for s in typed] == ["SECRET_TYPE_HF_TOKEN"]


def test_strict_mode_rejects_unknown_secret_fields_and_accepts_the_sdk_command_history(
    sim: LightningSimulator, client: httpx.Client
) -> None:
    path = f"/v1/projects/{sim.project_id}/secrets"
    response = client.post(path, json={"name": "A", "value": "x", "description": "nope"})
    assert response.status_code == 400 and "description" in response.text
    created = client.post(path, json={"name": "A", "value": "x"}).json()
    assert client.put(f"{path}/{created['id']}", json={"value": "y", "name": "B"}).status_code == 400
    history = client.post("/v1/sdk-command-history", json={"command": "set_secret", "message": "ValueError", "severity": "error"})
    assert history.status_code == 200, history.text


def test_jobs_and_multi_machine_jobs_get_secret_values_as_env_and_fail_clearly_on_a_missing_secret(
    sim: LightningSimulator, client: httpx.Client, jobs_path: str
) -> None:
    client.post(f"/v1/projects/{sim.project_id}/secrets", json={"name": "HF", "value": "s3cret"})
    env = [{"name": "HF_TOKEN", "fromSecret": "HF"}, {"name": "A", "value": "literal"}]
    job = client.post(jobs_path, json=image_job("reads", 'test "$HF_TOKEN" = s3cret && test "$A" = literal',
                                                env=env)).json()
    assert wait_state(client, f"{jobs_path}/{job['id']}")["state"] == "completed"

    mmt_path = f"/v1/projects/{sim.project_id}/multi-machine-jobs"
    mmt = client.post(mmt_path, json=mmt_body("ddp", 'test "$HF_TOKEN" = s3cret', env=env)).json()
    assert wait_mmt(client, f"{mmt_path}/{mmt['id']}")["state"] == "MultiMachineJob_STATE_COMPLETED"

    missing = [{"name": "HF_TOKEN", "fromSecret": "MISSING"}]
    failed = client.post(jobs_path, json=image_job("missing", "true", env=missing)).json()
    final = wait_state(client, f"{jobs_path}/{failed['id']}")
    assert final["state"] == "failed"
    assert "'MISSING'" in final["message"] and "does not exist" in final["message"] and "HF_TOKEN" in final["message"]
