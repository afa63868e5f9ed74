"""The real stack for the ``e2e`` tests: started once per session, always stopped at the end.

E2E tests run only when selected (``pytest -m e2e tests/e2e``, as ``make e2e`` does, or ``LIGHTNING_E2E=1``);
in the default ``pytest`` run they are skipped and nothing is started.
The stack lives in ``.airflow_home/e2e`` (``E2E_STACK_DIR`` to change it), wiped at the start, so a
``make airflow`` stack in ``.airflow_home/stack`` keeps running meanwhile.
``E2E_PROFILE=prod`` (``make e2e-prod``) runs the same tests against the production-shaped stack
(PostgreSQL, Redis, CeleryExecutor with two workers, two triggerers; see scripts/airflow_stack.py),
in ``.airflow_home/e2e-prod`` unless ``E2E_STACK_DIR`` says otherwise.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
E2E_DAGS = Path(__file__).resolve().parent / "dags"
ARTIFACTS = ROOT / "test-artifacts" / "e2e"
PROFILE = os.environ.get("E2E_PROFILE") or "local"  # "local" (SQLite, LocalExecutor) or "prod"
STACK_DIR = Path(os.environ.get("E2E_STACK_DIR", ROOT / ".airflow_home" / ("e2e" if PROFILE == "local" else "e2e-prod")))
FIGURES: dict[str, Any] = {}  # printed in the terminal summary


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "e2e: starts the real local Airflow stack and the simulator (`make e2e`); skipped unless selected"
    )


def e2e_selected(config: pytest.Config) -> bool:
    expr = (config.getoption("markexpr", "") or "").replace(" ", "")
    return ("e2e" in expr and "note2e" not in expr) or os.environ.get("LIGHTNING_E2E") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if e2e_selected(config):
        return
    skip = pytest.mark.skip(reason="starts a real Airflow stack: run `make e2e` (pytest -m e2e tests/e2e)")
    for item in items:
        if item.get_closest_marker("e2e"):
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if FIGURES:
        terminalreporter.section("e2e figures")
        for key, value in FIGURES.items():
            terminalreporter.write_line(f"{key}: {value}")


@pytest.fixture(scope="session")
def stack() -> Any:
    """The running stack's state (URLs, ports, PIDs); stopped after the session, also on failure."""
    import airflow_stack

    began = time.monotonic()
    try:
        state = airflow_stack.start(
            STACK_DIR, fresh=True, extra_dags=[str(E2E_DAGS)],
            wait_dags=["example_lightning_job", "e2e_lightning_kill", "e2e_lightning_secrets"], timeout=180,
            profile=PROFILE,
        )
        if PROFILE != "local":
            FIGURES["stack profile"] = f"{PROFILE} ({', '.join(state['processes'])})"
        FIGURES["stack healthy after (s)"] = state["healthy_after_s"]
        FIGURES["stack ready (DAGs parsed, unpaused) after (s)"] = state["ready_after_s"]
        yield state
        FIGURES["stack memory"] = stack_memory(state)
    finally:
        stopped = time.monotonic()
        airflow_stack.stop(STACK_DIR)
        FIGURES["stack stop took (s)"] = round(time.monotonic() - stopped, 1)
        FIGURES["left running after stop"] = airflow_stack.stack_processes(STACK_DIR, {}) or "nothing"
        FIGURES["stack lifetime (s)"] = round(time.monotonic() - began, 1)


def stack_memory(state: dict[str, Any]) -> str:
    """RSS and PSS (shared pages split) of all the stack's processes, at the end of the session."""
    import airflow_stack

    pids = airflow_stack.stack_processes(Path(state["dir"]), state)
    rss = pss = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1])
        except OSError:
            pass
    return f"{len(pids)} processes, RSS {rss / 1024:.0f} MiB, PSS {pss / 1024:.0f} MiB"


@pytest.fixture(scope="session")
def api(stack: dict[str, Any]) -> Any:
    """httpx client for the REST API with a JWT from ``POST /auth/token`` (admin login)."""
    import airflow_stack

    with airflow_stack.client(stack) as client:
        yield client


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
