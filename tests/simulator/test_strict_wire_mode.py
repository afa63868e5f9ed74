"""Strict wire mode: body fields and query parameters the official client lacks are a 400 naming them."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest
from lightning_simulator import LightningSimulator
from lightning_simulator.strict import SNAPSHOT

from .helpers import image_job, wait_state

REPO_ROOT = Path(__file__).resolve().parents[2]
CREATE_JOB = "POST /v1/projects/{projectId}/jobs"


@pytest.fixture
def lenient() -> Iterator[LightningSimulator]:
    """A simulator started with ``strict=False``."""
    with LightningSimulator(strict=False, pending_seconds=0.05, stop_seconds=0.05, seed=1) as simulator:
        yield simulator


def rejected(resp: httpx.Response) -> str:
    """The message of a strict-mode 400 (asserting its grpc-gateway shape)."""
    assert resp.status_code == 400, resp.text
    body = resp.json()
    assert body["code"] == 3 and body["details"] == []
    return str(body["message"])


def test_unknown_top_level_body_field_is_a_400_naming_the_field_and_the_endpoint(
    client: httpx.Client, sim: LightningSimulator, jobs_path: str
) -> None:
    body = {**image_job("strict-top", "true"), "priority": "high"}
    message = rejected(client.post(jobs_path, json=body))
    assert message.startswith(f'unknown field "priority" in body of {CREATE_JOB}')
    assert "JobsServiceCreateJobBody" in message and "--lenient" in message
    assert sim.jobs() == []  # nothing was created


def test_unknown_field_inside_a_job_spec_is_a_400_naming_its_dotted_path(
    client: httpx.Client, jobs_path: str
) -> None:
    message = rejected(client.post(jobs_path, json=image_job("strict-spec", "true", gpus=1)))
    assert message.startswith(f'unknown field "spec.gpus" in body of {CREATE_JOB}')
    assert "V1JobSpec" in message

    env = [{"name": "A", "value": "1"}, {"name": "B", "val": "2"}]
    message = rejected(client.post(jobs_path, json=image_job("strict-env", "true", env=env)))
    assert message.startswith(f'unknown field "spec.env[1].val" in body of {CREATE_JOB}')


def test_unknown_query_parameter_is_a_400_naming_it(client: httpx.Client, jobs_path: str) -> None:
    message = rejected(client.get(jobs_path, params={"limit": 10, "nameContains": "x"}))
    assert message.startswith('unknown query parameter "nameContains" of GET /v1/projects/{projectId}/jobs')


def test_a_body_sent_to_an_endpoint_without_one_is_a_400(client: httpx.Client, jobs_path: str) -> None:
    job = client.post(jobs_path, json=image_job("strict-nobody", "true")).json()
    message = rejected(client.request("DELETE", f"{jobs_path}/{job['id']}", json={"force": True}))
    assert 'unknown field "force"' in message and "takes no body" in message
    assert client.request("DELETE", f"{jobs_path}/{job['id']}", json={}).status_code == 200  # what the SDK sends


def test_snake_case_wire_names_are_accepted_in_bodies_and_queries(client: httpx.Client, jobs_path: str) -> None:
    body = {
        "name": "strict-snake",
        "spec": {
            "image": "python:3.11",
            "command": "true",
            "instance_name": "cpu-4",
            "max_run_attempts": 1,
            "env": [{"name": "A", "value": "1"}],
            "path_mappings": [{"container_path": "/data", "connection_name": "s3", "connection_path": "x"}],
        },
    }
    resp = client.post(jobs_path, json=body)
    assert resp.status_code == 200, resp.text
    job_path = f"{jobs_path}/{resp.json()['id']}"
    assert client.get(job_path, params={"cloudspace_id": ""}).status_code == 200
    assert client.get(jobs_path, params={"page_token": "", "multi_machine_job_id": ""}).status_code == 200


def test_path_fields_repeated_in_an_update_body_are_accepted(client: httpx.Client, jobs_path: str) -> None:
    # grpc-gateway decodes a `body: "*"` PUT into the whole request message, which has the path fields too.
    job = client.post(jobs_path, json=image_job("strict-put", "sleep 5")).json()
    resp = client.put(f"{jobs_path}/{job['id']}", json={"id": job["id"], "projectId": job["projectId"], "state": "stop"})
    assert resp.status_code == 200, resp.text


def test_simulator_admin_endpoints_are_not_checked(sim: LightningSimulator) -> None:
    resp = httpx.post(f"{sim.url}/__admin/studios", json={"name": "strict-studio", "anything": 1})
    assert resp.status_code == 200, resp.text


def test_lenient_simulator_accepts_and_drops_unknown_fields(lenient: LightningSimulator) -> None:
    assert lenient.config.strict is False
    headers = {"Authorization": lenient.auth_header}
    with httpx.Client(base_url=lenient.url, headers=headers, timeout=10) as client:
        jobs_path = f"/v1/projects/{lenient.project_id}/jobs"
        body = {**image_job("lenient", "true", unknown_field={"ignored": True}), "unknown_top_level": 1}
        resp = client.post(jobs_path, json=body, params={"notAParameter": "1"})
        assert resp.status_code == 200, resp.text
        spec = resp.json()["spec"]
        assert "unknownField" not in spec and "unknown_field" not in spec
        assert wait_state(client, f"{jobs_path}/{resp.json()['id']}")["state"] == "completed"


def _cli_create_status(tmp_path: Path, *flags: str) -> int:
    """Start ``lightning-simulator`` with ``flags`` and answer the status of a create with an unknown field."""
    env = {**os.environ, "PYTHONPATH": f"{REPO_ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "lightning_simulator.cli", "--port", "0", *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip().removeprefix("Lightning simulator listening on ")
        auth = {"Authorization": "Bearer sim-key"}
        project_id = httpx.get(f"{url}/__admin/info").json()["projectId"]
        body = image_job("cli", "true", unknownField=1)
        status = httpx.post(f"{url}/v1/projects/{project_id}/jobs", json=body, headers=auth).status_code
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        return status
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cli_is_strict_by_default_and_lenient_with_the_flag(tmp_path: Path) -> None:
    assert _cli_create_status(tmp_path) == 400
    assert _cli_create_status(tmp_path, "--lenient") == 200


def _snapshot_script() -> ModuleType:
    """``scripts/wire_snapshot.py`` imported as a module."""
    spec = importlib.util.spec_from_file_location("wire_snapshot", REPO_ROOT / "scripts" / "wire_snapshot.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.sdk
@pytest.mark.skipif(
    importlib.util.find_spec("lightning_sdk") is None,
    reason="lightning-sdk is not installed (scripts/install_sdk.py): the snapshot cannot be regenerated to compare",
)
def test_committed_snapshot_matches_what_the_installed_lightning_sdk_generates() -> None:
    script = _snapshot_script()
    expected = script.render(script.build_snapshot())
    assert SNAPSHOT.read_text(encoding="utf-8") == expected, (
        f"{SNAPSHOT.name} is stale for lightning-sdk {script.sdk_version()}: run `make wire-snapshot`"
    )
