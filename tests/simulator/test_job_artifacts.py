"""What job, multi-machine job and deployment processes see of the drive: ``LIGHTNING_ARTIFACTS_DIR`` (reference
1.1), the ``/teamspace`` mount and ``LIGHTNING_TEAMSPACE_DIR``; ``artifactsDestination`` validation; and secret
values in a deployment's environment (reference 3.4) that the API never returns."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from lightning_simulator import LightningSimulator
from lightning_simulator.drive import mount_teamspace

from .helpers import image_job, mmt_body, wait_mmt, wait_state


def listed(client: httpx.Client, sim: LightningSimulator, folder: str) -> list[tuple[str, int]]:
    resp = client.get(f"/v1/projects/{sim.project_id}/artifacts/trees/{folder}", params={"recursive": "true"})
    assert resp.status_code == 200, resp.text
    return [(e["path"], e.get("size", 0)) for e in resp.json()["tree"]]


def test_a_studio_job_writes_its_artifacts_and_other_drive_paths_through_teamspace(
    client: httpx.Client, sim: LightningSimulator, jobs_path: str
) -> None:
    studio = sim.add_studio("art-studio")
    command = "\n".join(
        [
            'mkdir -p "$LIGHTNING_ARTIFACTS_DIR/ckpt"',
            'echo weights > "$LIGHTNING_ARTIFACTS_DIR/ckpt/model.txt"',
            "mkdir -p /teamspace/jobs/other",
            "echo x > /teamspace/jobs/other/f.txt",
            'echo y > "$OUT/g.txt"',
            'test "$LIGHTNING_ARTIFACTS_DIR" = "$LIGHTNING_TEAMSPACE_DIR/jobs/trainer"',
            'test "$KEEP" = "/teamspaces/x:s3://b/teamspace"',
            'test "$SECRET_PATH" = "/team""space/not-rewritten"',  # a secret value is passed as it is
        ]
    )
    client.post(f"/v1/projects/{sim.project_id}/secrets", json={"name": "SP", "value": "/teamspace/not-rewritten"})
    env = [
        {"name": "OUT", "value": "/teamspace/jobs/other"},
        {"name": "KEEP", "value": "/teamspaces/x:s3://b/teamspace"},
        {"name": "SECRET_PATH", "fromSecret": "SP"},
    ]
    job = client.post(jobs_path, json={"name": "trainer", "spec": {"cloudspaceId": studio["id"], "command": command,
                                                                    "env": env}}).json()
    done = wait_state(client, f"{jobs_path}/{job['id']}")
    assert done["state"] == "completed", done["message"]
    assert listed(client, sim, "jobs/trainer") == [("ckpt/model.txt", 8)]
    assert listed(client, sim, "jobs/other") == [("f.txt", 2), ("g.txt", 2)]
    assert done["spec"]["command"] == command  # the API shows the command as sent
    assert sim.drive_path("jobs/trainer/ckpt/model.txt").read_text() == "weights\n"


def test_image_jobs_write_to_their_artifacts_destination_or_to_a_scratch_folder(
    client: httpx.Client, sim: LightningSimulator, jobs_path: str
) -> None:
    write = 'echo out > "$LIGHTNING_ARTIFACTS_DIR/result.txt" && echo "$LIGHTNING_ARTIFACTS_DIR"'
    kept = client.post(jobs_path, json=image_job("kept", write, artifactsDestination="s3:bucket:out/run1")).json()
    assert wait_state(client, f"{jobs_path}/{kept['id']}")["state"] == "completed"
    assert listed(client, sim, "s3_connections/bucket/out/run1") == [("result.txt", 4)]

    outside = 'case "$LIGHTNING_ARTIFACTS_DIR" in "$LIGHTNING_TEAMSPACE_DIR"*) exit 3;; esac; ' + write
    scratch = client.post(jobs_path, json=image_job("scratch", outside)).json()
    assert wait_state(client, f"{jobs_path}/{scratch['id']}")["state"] == "completed"
    folder = Path(sim.store.logs.log_text(scratch["id"]).strip().splitlines()[-1].split(" ", 1)[-1])
    assert (folder / "result.txt").read_text() == "out\n"  # written, but not persisted in the drive
    assert not folder.is_relative_to(sim.drive_root)
    assert listed(client, sim, "") == [("s3_connections/bucket/out/run1/result.txt", 4)]
    client.delete(f"{jobs_path}/{scratch['id']}")
    assert not folder.exists()


@pytest.mark.parametrize("bad", ["s3:bucket", "s3::out", "s3:bucket:", "s3:bucket:../up", "s3:a/b:out", "a:b:c:d"])
def test_a_malformed_artifacts_destination_is_a_400(
    client: httpx.Client, sim: LightningSimulator, jobs_path: str, bad: str
) -> None:
    resp = client.post(jobs_path, json=image_job("bad", "true", artifactsDestination=bad))
    assert resp.status_code == 400 and "artifactsDestination" in resp.json()["message"]
    mmts = f"/v1/projects/{sim.project_id}/multi-machine-jobs"
    resp = client.post(mmts, json=mmt_body("bad", "true", artifactsDestination=bad))
    assert resp.status_code == 400 and "artifactsDestination" in resp.json()["message"]
    assert sim.jobs() == [] and sim.mmts() == []


def test_each_machine_of_a_studio_mmt_writes_to_its_own_jobs_folder(client: httpx.Client, sim: LightningSimulator) -> None:
    studio = sim.add_studio("ddp-art")
    spec = {"cloudspaceId": studio["id"], "command": 'echo "rank $NODE_RANK" > "$LIGHTNING_ARTIFACTS_DIR/rank.txt"'}
    mmts = f"/v1/projects/{sim.project_id}/multi-machine-jobs"
    created = client.post(mmts, json={"name": "ddp", "machines": 2, "spec": spec}).json()
    assert wait_mmt(client, f"{mmts}/{created['id']}")["state"] == "MultiMachineJob_STATE_COMPLETED"
    machines = client.get(f"/v1/projects/{sim.project_id}/jobs", params={"multiMachineJobId": created["id"]}).json()
    assert sorted((j["name"], j["spec"]["rank"]) for j in machines["jobs"]) == [("ddp-0", 0), ("ddp-1", 1)]
    for rank in (0, 1):
        assert sim.drive_path(f"jobs/ddp-{rank}/rank.txt").read_text() == f"rank {rank}\n"
    assert [e["path"] for e in client.get(f"/v1/projects/{sim.project_id}/artifacts/trees/jobs").json()["tree"]] == [
        "ddp-0",
        "ddp-1",
    ]


def deployment(name: str, env: list[dict[str, str]], command: str = "python serve.py") -> dict[str, Any]:
    return {
        "name": name,
        "replicas": 1,
        "autoscaling": {"enabled": False, "minReplicas": 1, "maxReplicas": 1},
        "endpoint": {"ports": ["8000"]},
        "spec": {"image": "python:3.11", "command": command, "instanceName": "cpu-4", "env": env},
    }


# A model server on $PORT that says whether it got its secret (never its value) and which folder --out names.
SERVER = """
import http.server, json, os, sys
class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.dumps({"token": bool(os.environ["HF_TOKEN"]), "out": sys.argv[2]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""


def test_a_deployment_gets_secret_values_and_the_teamspace_mount_but_the_api_never_returns_them(
    client: httpx.Client, sim: LightningSimulator
) -> None:
    project = f"/v1/projects/{sim.project_id}"
    client.post(f"{project}/secrets", json={"name": "HF", "value": "hf-s3cret-value"})
    sim.drive_path("serve.py").write_text(SERVER)
    env = [{"name": "HF_TOKEN", "fromSecret": "HF"}, {"name": "MODELS", "value": "/teamspace/models"}]
    command = "python /teamspace/serve.py --out /teamspace/o"
    created = client.post(f"{project}/deployments", json=deployment("srv", env, command))
    assert created.status_code == 200, created.text
    dep = sim.wait_for_deployment("srv", "RUNNING")
    replica = sim.deployment_replica("srv")
    assert replica is not None
    assert replica["env"]["HF_TOKEN"] == "hf-s3cret-value"
    teamspace = str(sim.drive_path())
    assert replica["env"]["MODELS"] == f"{teamspace}/models"
    assert replica["env"]["LIGHTNING_TEAMSPACE_DIR"] == teamspace
    assert replica["command"] == f"python {teamspace}/serve.py --out {teamspace}/o"

    got = client.get(f"{project}/deployments/{dep['id']}")
    assert got.json()["spec"]["env"][0] == {"name": "HF_TOKEN", "value": "", "fromSecret": "HF"}
    for path in (
        f"{project}/deployments/{dep['id']}",
        f"{project}/deployments/{dep['id']}/releases",
        f"{project}/deployments/{dep['id']}/events",
        f"{project}/deployments",
    ):
        assert "hf-s3cret-value" not in client.get(path).text
    served = httpx.post(f"{sim.url}/serve/{dep['id']}/predict", json={"x": 1})
    assert served.status_code == 200 and "hf-s3cret-value" not in served.text
    assert served.json() == {"token": True, "out": f"{teamspace}/o"}  # the process got both


def test_a_deployment_whose_secret_is_missing_fails_clearly(client: httpx.Client, sim: LightningSimulator) -> None:
    env = [{"name": "HF_TOKEN", "fromSecret": "MISSING"}]
    client.post(f"/v1/projects/{sim.project_id}/deployments", json=deployment("nosecret", env))
    dep = sim.wait_for_deployment("nosecret", "FAILED")
    message = dep["status"]["message"]
    assert "'HF_TOKEN'" in message and "'MISSING'" in message and "does not exist" in message
    assert sim.deployment_replica("nosecret") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/teamspace/jobs/x", "/D/jobs/x"),
        ("/teamspace", "/D"),
        ("cd /teamspace && ls /teamspace/a", "cd /D && ls /D/a"),
        ("python t.py --out=/teamspace/o 'x' \"/teamspace\"", "python t.py --out=/D/o 'x' \"/D\""),
        ("/teamspaces/x /teamspace_x /a/teamspace $HOME/teamspace s3://b/teamspace", None),
        ("a:/teamspace/b", "a:/D/b"),
    ],
)
def test_the_teamspace_mount_rewrites_only_paths_that_start_with_teamspace(text: str, expected: str | None) -> None:
    assert mount_teamspace(text, "/D/") == (text if expected is None else expected)
