"""A minimal task context for calling operator methods directly (as the official providers' tests do).

Only the task-instance surface the operators use: ids, try number, XCom push/pull. Full runs of
real Airflow are covered by the dag.test() tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class TaskInstanceStub:
    dag_id: str = "test_dag"
    task_id: str = "test_task"
    run_id: str = "manual__2026-01-01T00:00:00+00:00"
    map_index: int = -1
    try_number: int = 1
    xcoms: dict[str, Any] = field(default_factory=dict)

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value

    def xcom_pull(self, key: str = "return_value", task_ids: Any = None) -> Any:
        return self.xcoms.get(key)


def context(**ti: Any) -> dict[str, Any]:
    return {"ti": TaskInstanceStub(**ti)}
