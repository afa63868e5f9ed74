"""Fault injection (503, 429 + Retry-After, dropped connections, latency) and the admin endpoints."""

from __future__ import annotations

import time

import httpx
import pytest
from lightning_simulator import LightningSimulator
from lightning_simulator.cli import build_parser

from .helpers import image_job, mmt_body


def test_admin_endpoint_turns_on_503_faults(client: httpx.Client, sim: LightningSimulator) -> None:
    set_resp = httpx.post(f"{sim.url}/__admin/faults", json={"errorRate": 1.0})
    assert set_resp.status_code == 200
    assert httpx.get(f"{sim.url}/__admin/faults").json()["errorRate"] == 1.0
    resp = client.get("/v1/auth/whoami")
    assert resp.status_code == 503
    assert resp.reason_phrase == "Service Unavailable"
    assert resp.json() == {"code": 14, "message": "unavailable: injected fault", "details": []}
    httpx.post(f"{sim.url}/__admin/faults", json={})
    assert client.get("/v1/auth/whoami").status_code == 200


def test_rate_limit_fault_sends_retry_after(client: httpx.Client, sim: LightningSimulator) -> None:
    httpx.post(f"{sim.url}/__admin/faults", json={"rate_limit_rate": 1, "retry_after": 7})
    resp = client.get(f"/v1/projects/{sim.project_id}/jobs")
    assert resp.status_code == 429
    assert resp.reason_phrase == "Too Many Requests"
    assert resp.headers["Retry-After"] == "7"
    assert resp.json()["code"] == 8
    sim.set_faults(rate_limit_rate=1, retry_after=0.25)
    assert client.get("/v1/auth/whoami").headers["Retry-After"] == "0.25"


def test_drop_fault_closes_the_connection_without_a_response(sim: LightningSimulator) -> None:
    httpx.post(f"{sim.url}/__admin/faults", json={"dropRate": 1.0})
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{sim.url}/v1/auth/whoami", headers={"Authorization": sim.auth_header})
    assert sim.request_log[-1] == ("GET", "/v1/auth/whoami", 0)


def test_drop_response_creates_the_job_but_the_client_gets_no_answer(
    client: httpx.Client, sim: LightningSimulator, jobs_path: str
) -> None:
    set_resp = httpx.post(f"{sim.url}/__admin/faults", json={"dropResponseRate": 1.0, "onlyPaths": ["/jobs$"]})
    assert set_resp.json()["dropResponseRate"] == 1.0
    with pytest.raises(httpx.TransportError):
        client.post(jobs_path, json=image_job("lost-answer", "true"))
    assert client.get("/v1/auth/whoami").status_code == 200  # other paths are answered
    assert sim.request_log.matching("POST", jobs_path) == [("POST", jobs_path, 0)]
    sim.clear_faults()
    names = [j["name"] for j in client.get(jobs_path).json()["jobs"]]
    assert names == ["lost-answer"]  # the work was done: a blind retry would create "lost-answer-1"
    assert [j["name"] for j in sim.jobs()] == ["lost-answer"]

    sim.set_faults(drop_response_rate=1.0, only_paths=["/multi-machine-jobs$"])
    with pytest.raises(httpx.TransportError):
        client.post(f"/v1/projects/{sim.project_id}/multi-machine-jobs", json=mmt_body("lost-mmt", "true"))
    sim.clear_faults()
    assert [m["name"] for m in sim.mmts()] == ["lost-mmt"]


def test_drop_response_rate_is_a_cli_flag() -> None:
    args = build_parser().parse_args(["--drop-response-rate", "0.25"])
    assert args.drop_response_rate == 0.25
    with LightningSimulator(drop_response_rate=0.5) as s:
        assert s.faults.config.drop_response_rate == 0.5


def test_faults_never_hit_admin_endpoints(sim: LightningSimulator) -> None:
    sim.set_faults(error_rate=1.0, drop_rate=0.0)
    assert httpx.get(f"{sim.url}/__admin/faults").status_code == 200
    assert httpx.get(f"{sim.url}/__admin/health").json() == {"status": "ok"}
    sim.clear_faults()


def test_partial_error_rate_is_seeded_and_only_paths_limits_faults(client: httpx.Client) -> None:
    with LightningSimulator(seed=42, error_rate=0.5) as s:
        c = httpx.Client(base_url=s.url, headers={"Authorization": s.auth_header})
        statuses = [c.get("/v1/auth/whoami").status_code for _ in range(40)]
        assert set(statuses) == {200, 503}
        s.set_faults(error_rate=1.0, only_paths=["^/v1/projects/"])
        assert c.get("/v1/auth/whoami").status_code == 200
        assert c.get(f"/v1/projects/{s.project_id}").status_code == 503


def test_latency_fault_delays_answers(client: httpx.Client, sim: LightningSimulator) -> None:
    sim.set_faults(latency=0.2)
    start = time.monotonic()
    assert client.get("/v1/auth/whoami").status_code == 200
    assert time.monotonic() - start >= 0.2


def test_request_log_records_every_request_without_secrets(client: httpx.Client, sim: LightningSimulator) -> None:
    sim.request_log.clear()
    client.get("/v1/auth/whoami")
    httpx.get(f"{sim.url}/v1/auth/whoami")
    records = sim.request_log.matching(path_prefix="/v1/")
    assert records == [("GET", "/v1/auth/whoami", 200), ("GET", "/v1/auth/whoami", 401)]
    assert [r.has_auth for r in records] == [True, False]
    assert sim.api_key not in repr(sim.request_log)
    listed = httpx.get(f"{sim.url}/__admin/requests").json()["requests"]
    assert listed[0] == {"method": "GET", "path": "/v1/auth/whoami", "status": 200, "hasAuth": True}
    httpx.post(f"{sim.url}/__admin/reset-requests")
    assert len(sim.request_log) == 1  # only the reset request itself


def test_admin_can_create_a_studio(client: httpx.Client, sim: LightningSimulator) -> None:
    created = httpx.post(f"{sim.url}/__admin/studios", json={"name": "extra"}).json()
    listed = client.get(f"/v1/projects/{sim.project_id}/cloudspaces", params={"name": "extra"}).json()
    assert [s["id"] for s in listed["cloudspaces"]] == [created["id"]]
    assert httpx.post(f"{sim.url}/__admin/studios", json={"name": "extra"}).status_code == 409
    assert {s["name"] for s in httpx.get(f"{sim.url}/__admin/studios").json()["cloudspaces"]} == {
        "sim-studio",
        "extra",
    }
