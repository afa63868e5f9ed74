"""A minimal task context for calling operator methods directly (as the official providers' tests do).

Only the task-instance surface the operators use: ids, try number, XCom push/pull. Full runs of
real Airflow are covered by the dag.test() tests.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


@dataclass
class TaskInstanceStub:
    dag_id: str = "test_dag"
    task_id: str = "test_task"
    run_id: str = "manual__2026-01-01T00:00:00+00:00"
    map_index: int = -1
    try_number: int = 1
    max_tries: int | None = None  # Airflow sets it to retries, and on a clear to the tries so far + retries
    xcoms: dict[str, Any] = field(default_factory=dict)

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value

    def xcom_pull(self, key: str = "return_value", task_ids: Any = None) -> Any:
        return self.xcoms.get(key)


def context(**ti: Any) -> dict[str, Any]:
    return {"ti": TaskInstanceStub(**ti)}


@contextmanager
def executing_in_background(operator: Any, ctx: dict[str, Any], timeout: float = 20.0) -> Iterator[list[BaseException]]:
    """Run ``operator.execute(ctx)`` in a thread (like a worker), yield once it has submitted its job.

    The yielded list receives what ``execute`` raised; the thread is joined on exit.
    """
    errors: list[BaseException] = []

    def run() -> None:
        try:
            operator.execute(ctx)
        except BaseException as error:
            errors.append(error)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    deadline = time.time() + timeout
    while "job_id" not in ctx["ti"].xcoms and worker.is_alive() and time.time() < deadline:
        time.sleep(0.05)
    assert "job_id" in ctx["ti"].xcoms, f"no job was submitted: {errors}"
    try:
        yield errors
    finally:
        worker.join(timeout)
