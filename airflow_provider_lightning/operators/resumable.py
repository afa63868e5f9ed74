"""Durable re-attach: the submitted job's id kept in Airflow's task state store (Airflow 3.3+, AIP-103).

The shape is upstream's ``ResumableJobMixin``: after submitting, the remote id is persisted under an
``external_id_key``; a retry reads it back, asks for the job's status and re-attaches while the job is active
(or returns its result when it succeeded) instead of submitting again. The job operator does not inherit the
upstream mixin: its ``execute_resumable`` waits in the worker (``poll_until_complete``), so it only serves the
blocking path, while this provider defers; and it is missing from the common-compat releases this package
supports. The operator keeps the decision rule and the per-try job names; this module is only the store.

A retry first asks the store, then falls back to finding the job of an earlier try by name, which covers
the gap between submit and persist, task state stores cleared on success, and Airflow before 3.3 (where
``context`` has no ``task_state_store``). Nothing here ever fails a task: a store that cannot be read or
written is logged and the name lookup decides.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Submission:
    """What a try submitted: the remote id, its name and the try number that submitted it."""

    id: str
    name: str
    try_number: int

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "try_number": self.try_number}

    @classmethod
    def from_json(cls, value: Any) -> Submission | None:
        """The stored submission, or None for anything that is not one (a value written by someone else)."""
        if not isinstance(value, dict):
            return None
        ident, name, try_number = value.get("id"), value.get("name"), value.get("try_number")
        if not (isinstance(ident, str) and ident and isinstance(name, str) and isinstance(try_number, int)):
            return None
        return cls(ident, name, try_number)


def stored_submission(context: Any, key: str) -> Submission | None:
    """The submission an earlier try persisted under ``key``; None without a store (Airflow < 3.3) or value."""
    store = context.get("task_state_store") if hasattr(context, "get") else None
    if store is None:
        return None
    try:
        return Submission.from_json(store.get(key))
    except Exception as error:  # a store outage must not fail the task: the name lookup decides
        log.warning("Could not read %r from the task state store (%s); looking the job up by name", key, error)
        return None


def remember_submission(context: Any, key: str, submission: Submission) -> bool:
    """Persist ``submission`` under ``key``; False without a store or when writing failed (logged)."""
    store = context.get("task_state_store") if hasattr(context, "get") else None
    if store is None:
        return False
    try:
        store.set(key, submission.to_json())
    except Exception as error:
        log.warning("Could not keep job %s in the task state store (%s); a retry finds it by name", submission.id,
                    error)
        return False
    return True
