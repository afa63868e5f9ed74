"""A job's small JSON result, passed to Airflow without a sidecar.

The convention (the data guide (``docs/operators/data.rst``)): the job writes JSON to
``$LIGHTNING_ARTIFACTS_DIR/$AIRFLOW_LIGHTNING_RESULT_FILE``; the platform persists the artifacts folder to the
teamspace drive, and the operator reads the file from the drive after the job ended, also when it failed. A result
larger than the limit is an error that says where to put large outputs instead (artifacts, whose path the result
can hold).
"""

from __future__ import annotations

import json
from typing import Any

from airflow_provider_lightning.api import drive
from airflow_provider_lightning.api.errors import LightningError, LightningResponseError
from airflow_provider_lightning.api.transport import ApiCall, Flow

#: The environment variable that tells a job the result file's name, relative to ``$LIGHTNING_ARTIFACTS_DIR``.
RESULT_ENV = "AIRFLOW_LIGHTNING_RESULT_FILE"
#: The result file's name inside the job's artifacts folder.
RESULT_FILE = "airflow_result.json"
#: Default limit on a result's size (XCom values live in the metadata database).
DEFAULT_MAX_BYTES = 64 * 1024
#: The key under which ``@task.lightning`` records a function's exception in the result file.
ERROR_KEY = "__airflow_lightning_error__"


class LightningResultError(LightningError, ValueError):
    """A job's result is missing, too large or not JSON."""


def check_max_bytes(value: Any) -> int:
    """Validate ``max_result_bytes`` (1 byte to 16 MiB); ValueError otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 16 * 1024 * 1024:
        raise ValueError(f"max_result_bytes must be an integer from 1 to 16 MiB, got {value!r}")
    return value


def result_path(folder: str) -> str:
    """The drive path of the result file in an artifacts folder."""
    return drive.join(folder, RESULT_FILE)


def read_result(project_id: str, folder: str, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Flow[tuple[bool, Any]]:
    """Flow: ``(found, value)`` for the result in ``folder``; LightningResultError when too large or not JSON."""
    path = result_path(folder)
    info = yield from drive.path_info(project_id, path)
    if info is None or info.is_dir:
        return False, None
    if info.size is not None and info.size > max_bytes:
        raise LightningResultError(
            f"the job's result {path} is {info.size} bytes, more than max_result_bytes={max_bytes}: write large "
            "outputs as artifacts and return their path in the result instead"
        )
    try:
        raw = yield ApiCall("GET", drive.blob_path(project_id, path), none_if_missing=True)
    except LightningResponseError as error:  # a 2xx answer that does not parse as JSON
        raise LightningResultError(
            f"the job's result {path} is not valid JSON: write it with json.dump (the result must be a JSON value)"
        ) from error
    if raw is None:
        return False, None
    text = json.dumps(raw)
    if len(text.encode()) > max_bytes:
        raise LightningResultError(
            f"the job's result {path} is more than max_result_bytes={max_bytes} bytes: write large outputs as "
            "artifacts and return their path in the result instead"
        )
    return True, raw


def describe_error(value: Any) -> str:
    """The remote exception a ``@task.lightning`` function recorded in its result ("" when there is none)."""
    error = value.get(ERROR_KEY) if isinstance(value, dict) else None
    if not isinstance(error, dict):
        return ""
    trace = str(error.get("traceback") or "").rstrip()
    head = f"{error.get('type', 'Exception')}: {error.get('message', '')}"
    return f"{head}\nRemote traceback:\n{trace}" if trace else head
