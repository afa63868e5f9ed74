"""Shared helpers for the simulator tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

TERMINAL = ("completed", "failed", "stopped")


def image_job(name: str, command: str, **spec: Any) -> dict[str, Any]:
    """A create-job body like the SDK's ``Job.run(image=..., command=...)``."""
    return {
        "name": name,
        "spec": {
            "image": "python:3.11",
            "command": command,
            "entrypoint": "sh -c",
            "instanceName": "cpu-4",
            "clusterId": "",
            "cloudspaceId": "",
            "env": [],
            **spec,
        },
    }


def wait_state(
    client: httpx.Client, path: str, states: tuple[str, ...] = TERMINAL, timeout: float = 15.0
) -> dict[str, Any]:
    """Poll ``GET path`` until the job's state is in ``states``."""
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(path).json()
        if job["state"] in states:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job still {job['state']!r} after {timeout}s: {job}")
        time.sleep(0.02)


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll ``predicate`` until it holds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


MMT_TERMINAL = ("MultiMachineJob_STATE_COMPLETED", "MultiMachineJob_STATE_FAILED", "MultiMachineJob_STATE_STOPPED")


def mmt_body(name: str, command: str, machines: int = 2, **spec: Any) -> dict[str, Any]:
    """A create-MMT body like the SDK's ``Job.run(image=..., command=..., num_machines=N)``."""
    return {
        "name": name,
        "machines": machines,
        "clusterId": "",
        "spec": image_job(name, command, **spec)["spec"],
    }


def wait_mmt(
    client: httpx.Client, path: str, states: tuple[str, ...] = MMT_TERMINAL, timeout: float = 15.0
) -> dict[str, Any]:
    """Poll ``GET path`` until the multi-machine job's state is in ``states``."""
    return wait_state(client, path, states, timeout)
