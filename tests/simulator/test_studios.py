"""Studio (cloudspace) lifecycle and command execution over real HTTP."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from lightning_simulator import LightningSimulator

from .helpers import wait_until

RUNNING = "CLOUD_SPACE_INSTANCE_STATE_RUNNING"
PENDING = "CLOUD_SPACE_INSTANCE_STATE_PENDING"
STOPPED = "CLOUD_SPACE_INSTANCE_STATE_STOPPED"


def studio_path(sim: LightningSimulator, name: str = "sim-studio") -> str:
    """``/v1/projects/{projectId}/cloudspaces/{id}`` of the Studio called ``name``."""
    studio_id = sim.store.studios.find(name).id
    return f"/v1/projects/{sim.project_id}/cloudspaces/{studio_id}"


def in_use(client: httpx.Client, path: str) -> dict[str, Any] | None:
    """``codestatus.inUse`` (``None`` while the Studio is stopped)."""
    resp = client.get(f"{path}/codestatus")
    assert resp.status_code == 200, resp.text
    return resp.json()["inUse"]


def start(client: httpx.Client, path: str, machine: str = "cpu-4", **config: Any) -> httpx.Response:
    """``POST start`` like ``Studio.start`` sends it."""
    return client.post(f"{path}/start", json={"computeConfig": {"name": machine, "spot": False, **config}})


def start_and_wait(client: httpx.Client, sim: LightningSimulator, path: str, **config: Any) -> dict[str, Any]:
    """Start the Studio and wait until it runs; returns ``inUse``."""
    assert start(client, path, **config).status_code == 200
    sim.wait_for_studio(path.rsplit("/", 1)[1], RUNNING, timeout=10)
    instance = in_use(client, path)
    assert instance is not None
    return instance


def execute(client: httpx.Client, path: str, command: str, detached: bool = True) -> dict[str, Any]:
    """``POST execute`` and return its answer."""
    resp = client.post(f"{path}/execute", json={"command": command, "detached": detached})
    assert resp.status_code == 200, resp.text
    return resp.json()


def stream(client: httpx.Client, path: str, session: str) -> list[dict[str, Any]]:
    """The NDJSON lines of ``GET execute/{session}/stream``, parsed."""
    resp = client.get(f"{path}/execute/{session}/stream")
    assert resp.status_code == 200, resp.text
    return [httpx.Response(200, content=line).json()["result"] for line in resp.content.splitlines()]


def test_start_goes_pending_then_running_with_a_new_instance_id_each_time(
    client: httpx.Client, sim: LightningSimulator
) -> None:
    path = studio_path(sim)
    assert in_use(client, path) is None
    assert start(client, path).json() == {}
    first = in_use(client, path)
    assert first is not None and first["phase"] == PENDING
    assert first["startupStatus"]["topUpRestoreFinished"] is False

    running = start_and_wait(client, sim, path)
    assert running["cloudSpaceInstanceId"] == first["cloudSpaceInstanceId"]
    assert running["startupStatus"]["topUpRestoreFinished"] is True
    assert running["computeConfig"]["name"] == "cpu-4"
    studio = client.get(path).json()
    assert studio["codeStatus"]["inUse"]["phase"] == RUNNING  # the Studio object embeds the same status
    assert client.get(f"{path}/codeconfig").json()["computeConfig"]["name"] == "cpu-4"

    client.post(f"{path}/stop", json={})
    sim.wait_for_studio("sim-studio", STOPPED)
    again = start_and_wait(client, sim, path)
    assert again["cloudSpaceInstanceId"] != first["cloudSpaceInstanceId"]


def test_stop_goes_stopping_then_the_instance_disappears(client: httpx.Client, sim: LightningSimulator) -> None:
    path = studio_path(sim)
    start_and_wait(client, sim, path)
    assert client.post(f"{path}/stop", json={}).json() == {}
    stopping = in_use(client, path)
    assert stopping is None or stopping["phase"] == "CLOUD_SPACE_INSTANCE_STATE_STOPPING"
    wait_until(lambda: in_use(client, path) is None)
    assert client.post(f"{path}/stop", json={}).status_code == 200  # stopping a stopped Studio changes nothing


def test_starting_a_running_studio_on_the_same_machine_is_a_no_op_and_on_another_is_refused(
    client: httpx.Client, sim: LightningSimulator
) -> None:
    path = studio_path(sim)
    instance = start_and_wait(client, sim, path)
    assert start(client, path).status_code == 200
    current = in_use(client, path)
    assert current is not None and current["cloudSpaceInstanceId"] == instance["cloudSpaceInstanceId"]
    other = start(client, path, machine="lit-t4-1")
    assert other.status_code == 400
    assert "already running on cpu-4" in other.json()["message"]


def test_unknown_machines_are_rejected(client: httpx.Client, sim: LightningSimulator) -> None:
    path = studio_path(sim)
    resp = start(client, path, machine="gpu-fastest")
    assert resp.status_code == 400
    assert "unknown machine 'gpu-fastest'" in resp.json()["message"]
    assert in_use(client, path) is None


def test_execute_really_runs_in_the_studio_folder_and_files_persist_between_commands(
    client: httpx.Client, sim: LightningSimulator
) -> None:
    path = studio_path(sim)
    start_and_wait(client, sim, path)
    first = execute(client, path, "echo hello > note.txt; echo written", detached=False)
    assert first == {"sessionName": first["sessionName"], "exitCode": 0, "output": "written\n"}
    assert first["sessionName"]
    second = execute(client, path, 'cat note.txt; echo "$LIGHTNING_STUDIO_NAME"', detached=False)
    assert second["output"] == "hello\nsim-studio\n"
    assert (sim.studio_dir("sim-studio") / "note.txt").read_text() == "hello\n"
    assert [c["exitCode"] for c in sim.studio_commands("sim-studio")] == [0, 0]


def test_stream_reports_minus_one_while_running_and_the_final_exit_code_on_every_line_after(
    client: httpx.Client, sim: LightningSimulator
) -> None:
    path = studio_path(sim)
    start_and_wait(client, sim, path)
    submitted = execute(client, path, "echo started; while [ ! -f go ]; do sleep 0.02; done; echo done")
    session = submitted["sessionName"]
    assert submitted["exitCode"] == -1
    wait_until(lambda: "started\n" in "".join(r["output"] for r in stream(client, path, session)))
    running = stream(client, path, session)
    assert {r["exitCode"] for r in running} == {-1}
    assert client.get(f"{path}/execute/{session}").json() == {"exitCode": -1, "output": "started\n"}

    (sim.studio_dir("sim-studio") / "go").touch()
    wait_until(lambda: stream(client, path, session)[0]["exitCode"] != -1)
    done = stream(client, path, session)
    assert {r["exitCode"] for r in done} == {0}
    assert "".join(r["output"] for r in done) == "started\ndone\n"
    assert client.get(f"{path}/execute/{session}").json() == {"exitCode": 0, "output": "started\ndone\n"}


def test_non_zero_exit_codes_are_reported(client: httpx.Client, sim: LightningSimulator) -> None:
    path = studio_path(sim)
    start_and_wait(client, sim, path)
    result = execute(client, path, "echo oops; exit 3", detached=False)
    assert (result["exitCode"], result["output"]) == (3, "oops\n")
    assert {r["exitCode"] for r in stream(client, path, result["sessionName"])} == {3}
    assert sim.studio_commands("sim-studio")[-1]["exitCode"] == 3


def test_execute_on_a_stopped_studio_is_refused(client: httpx.Client, sim: LightningSimulator) -> None:
    path = studio_path(sim)
    resp = client.post(f"{path}/execute", json={"command": "true", "detached": True})
    assert resp.status_code == 400
    assert resp.json()["code"] == 9
    assert "is not running" in resp.json()["message"]
    assert client.get(f"{path}/execute/no-such-session").status_code == 404


def test_stopping_the_studio_kills_its_running_commands(client: httpx.Client, sim: LightningSimulator) -> None:
    path = studio_path(sim)
    start_and_wait(client, sim, path)
    session = execute(client, path, "echo begin; sleep 300")["sessionName"]
    wait_until(lambda: stream(client, path, session)[0]["output"] == "begin\n")
    client.post(f"{path}/stop", json={})
    wait_until(lambda: stream(client, path, session)[0]["exitCode"] != -1)
    result = client.get(f"{path}/execute/{session}").json()
    assert result["exitCode"] in (137, 143)  # 128 + SIGKILL / SIGTERM
    assert "command killed: the Studio is stopping" in result["output"]


def test_max_runtime_stops_the_studio(client: httpx.Client, sim: LightningSimulator) -> None:
    path = studio_path(sim)
    instance = start_and_wait(client, sim, path, requestedRunDurationSeconds="1")
    assert instance["computeConfig"]["requestedRunDurationSeconds"] == "1"
    began = time.monotonic()
    sim.wait_for_studio("sim-studio", STOPPED, timeout=10)
    assert time.monotonic() - began > 0.5


def test_switching_machine_goes_through_a_requested_instance_and_switch_confirm(
    client: httpx.Client, sim: LightningSimulator
) -> None:
    path = studio_path(sim)
    old = start_and_wait(client, sim, path)
    assert client.post(f"{path}/switch-confirm", json={}).status_code == 400  # nothing requested yet
    config = client.put(f"{path}/codeconfig", json={"computeConfig": {"name": "lit-t4-1", "spot": True}})
    assert config.json()["computeConfig"] == {
        "name": "lit-t4-1",
        "spot": True,
        "clusterOverride": "",
        "requestedRunDurationSeconds": "0",
    }

    def requested_ready() -> bool:
        requested = client.get(f"{path}/codestatus").json()["requested"]
        return bool(requested and requested["startupStatus"]["initialRestoreFinished"])

    wait_until(requested_ready)
    requested = client.get(f"{path}/codestatus").json()["requested"]
    assert client.post(f"{path}/switch-confirm", json={}).json() == {}
    status = client.get(f"{path}/codestatus").json()
    assert status["requested"] is None
    assert status["inUse"]["cloudSpaceInstanceId"] == requested["cloudSpaceInstanceId"] != old["cloudSpaceInstanceId"]
    assert status["inUse"]["computeConfig"]["name"] == "lit-t4-1"
    assert status["inUse"]["startupStatus"]["topUpRestoreFinished"] is True
    assert execute(client, path, "echo on t4", detached=False)["output"] == "on t4\n"


def test_keep_alive_and_unknown_studios(client: httpx.Client, sim: LightningSimulator) -> None:
    path = studio_path(sim)
    assert client.post(f"{path}/keep-alive", json={}).json() == {}
    missing = client.post(f"/v1/projects/{sim.project_id}/cloudspaces/studio-nope/start", json={})
    assert missing.status_code == 404 and "not found" in missing.json()["message"]


def test_create_with_seed_files_refuses_a_taken_name_and_delete_removes_the_folder(
    client: httpx.Client, sim: LightningSimulator
) -> None:
    base = f"/v1/projects/{sim.project_id}/cloudspaces"
    body = {"name": "fresh", "seedFiles": [{"path": "main.py", "contents": "print('hi')\n"}]}
    created = client.post(base, json=body).json()
    assert created["name"] == "fresh" and created["codeStatus"]["inUse"] is None
    folder = sim.studio_dir("fresh")
    assert (folder / "main.py").read_text() == "print('hi')\n"
    clash = client.post(base, json={"name": "fresh"})
    assert clash.status_code == 409
    escape = client.post(base, json={"name": "bad", "seedFiles": [{"path": "../x", "contents": ""}]})
    assert escape.status_code == 400
    assert [s["id"] for s in client.get(base, params={"name": "fresh"}).json()["cloudspaces"]] == [created["id"]]

    assert client.request("DELETE", f"{base}/{created['id']}", json={}).json() == {}
    assert client.get(f"{base}/{created['id']}").status_code == 404
    assert not folder.exists()
    with pytest.raises(KeyError):
        sim.studio_dir("fresh")
