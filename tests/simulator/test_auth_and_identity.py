"""Authentication and the teamspace resolution chain the SDK walks."""

from __future__ import annotations

import base64
import socket

import httpx
import pytest
from lightning_simulator import LightningSimulator


def test_request_without_credentials_is_rejected_with_grpc_unauthenticated_body(sim: LightningSimulator) -> None:
    resp = httpx.get(f"{sim.url}/v1/auth/whoami")
    assert resp.status_code == 401
    assert resp.reason_phrase == "Unauthorized"
    body = resp.json()
    assert body["code"] == 16
    assert body["message"].startswith("unauthenticated: ")
    assert body["details"] == []


@pytest.mark.parametrize(
    "header",
    [
        "Basic " + base64.b64encode(b"sim-user:wrong").decode(),
        "Basic " + base64.b64encode(b"other-user:sim-key").decode(),
        "Bearer not-the-key",
        "Basic %%%",
        "Token sim-key",
    ],
)
def test_wrong_credentials_are_rejected(sim: LightningSimulator, header: str) -> None:
    resp = httpx.get(f"{sim.url}/v1/projects/{sim.project_id}/jobs", headers={"Authorization": header})
    assert resp.status_code == 401
    assert resp.json()["code"] == 16


def test_basic_and_bearer_api_key_are_accepted(sim: LightningSimulator) -> None:
    basic = "Basic " + base64.b64encode(f"{sim.user_id}:{sim.api_key}".encode()).decode()
    for header in (basic, f"Bearer {sim.api_key}"):
        resp = httpx.get(f"{sim.url}/v1/auth/whoami", headers={"Authorization": header})
        assert resp.status_code == 200, header


def test_login_issues_a_jwt_usable_as_bearer(sim: LightningSimulator) -> None:
    resp = httpx.post(f"{sim.url}/v1/auth/login", json={"apiKey": sim.api_key, "username": sim.username})
    assert resp.status_code == 200
    token = resp.json()["token"]
    assert token.count(".") == 2
    who = httpx.get(f"{sim.url}/v1/auth/user", headers={"Authorization": f"Bearer {token}"})
    assert who.status_code == 200
    assert who.json()["id"] == sim.user_id
    bad = httpx.post(f"{sim.url}/v1/auth/login", json={"api_key": "nope"})
    assert bad.status_code == 401
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert httpx.get(f"{sim.url}/v1/auth/user", headers={"Authorization": f"Bearer {forged}"}).status_code == 401


def test_whoami_reports_the_simulated_user(client: httpx.Client, sim: LightningSimulator) -> None:
    body = client.get("/v1/auth/whoami").json()
    assert body["userId"] == "sim-user"
    assert body["username"] == sim.username
    assert body["authType"] == "AUTH_TYPE_USER"


def test_teamspace_resolves_through_org_memberships_and_project(client: httpx.Client, sim: LightningSimulator) -> None:
    org = client.get("/v1/orgs/", params={"name": "sim-org"})
    assert org.status_code == 200
    org_id = org.json()["id"]
    assert org_id == sim.org_id
    assert client.get(f"/v1/orgs/{org_id}").json()["name"] == "sim-org"

    memberships = client.get("/v1/memberships", params={"filterByUserId": "True"}).json()["memberships"]
    match = [m for m in memberships if m["name"] == "sim-teamspace" and m["ownerId"] == org_id]
    assert len(match) == 1
    assert match[0]["ownerType"] == "organization"

    project = client.get(f"/v1/projects/{match[0]['projectId']}").json()
    assert project["id"] == sim.project_id
    assert project["name"] == "sim-teamspace"
    assert project["projectSettings"]["preferredCluster"]
    bindings = client.get(f"/v1/projects/{sim.project_id}/projectclustersbindings").json()["clusters"]
    assert bindings[0]["clusterId"] == project["projectSettings"]["preferredCluster"]
    assert client.get("/v1/orgs").json()["organizations"][0]["id"] == org_id


def test_unknown_org_and_project_are_not_found(client: httpx.Client) -> None:
    resp = client.get("/v1/orgs/", params={"name": "nobody"})
    assert resp.status_code == 404
    assert resp.reason_phrase == "Not Found"
    assert "not found" in resp.json()["message"]
    assert client.get("/v1/projects/project-nope").status_code == 404
    assert client.get("/v1/projects/project-nope/jobs").status_code == 404


def test_user_search_finds_the_user_by_username(client: httpx.Client, sim: LightningSimulator) -> None:
    users = client.get("/v1/users/search", params={"query": sim.username}).json()["users"]
    assert [u["id"] for u in users] == [sim.user_id]
    assert client.get("/v1/users/search", params={"query": "zzz"}).json()["users"] == []


def test_user_owned_teamspace_has_no_org() -> None:
    with LightningSimulator(teamspace="sim-user/personal", pending_seconds=0) as s:
        c = httpx.Client(base_url=s.url, headers={"Authorization": s.auth_header})
        assert c.get("/v1/orgs/", params={"name": "sim-user"}).status_code == 404
        membership = c.get("/v1/memberships").json()["memberships"][0]
        assert membership["ownerType"] == "user"
        assert membership["ownerId"] == s.user_id


def test_connection_is_kept_alive_across_requests(sim: LightningSimulator) -> None:
    auth = sim.auth_header
    request = f"GET /v1/auth/whoami HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\r\n".encode()
    with socket.create_connection((sim.host, sim.port), timeout=5) as sock:
        reader = sock.makefile("rb")
        for _ in range(3):
            sock.sendall(request)
            status = reader.readline()
            assert status.startswith(b"HTTP/1.1 200")
            length = 0
            while (line := reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            assert b"sim-user" in reader.read(length)


def test_unknown_route_is_not_found_after_auth(client: httpx.Client, sim: LightningSimulator) -> None:
    assert httpx.get(f"{sim.url}/v1/nothing-here").status_code == 401
    resp = client.get("/v1/nothing-here")
    assert resp.status_code == 404
    assert "not found" in resp.json()["message"]
