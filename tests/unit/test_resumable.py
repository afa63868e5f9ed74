"""The task state store part of durable re-attach (``operators.resumable``): it never fails a task."""

from __future__ import annotations

import pytest

from airflow_provider_lightning.operators.resumable import Submission, remember_submission, stored_submission


class Store:
    """The two methods of Airflow's TaskStateStoreAccessor the operator uses, over a dict."""

    def __init__(self, broken: bool = False) -> None:
        self.values: dict[str, object] = {}
        self.broken = broken

    def get(self, key, default=None):
        if self.broken:
            raise ConnectionError("execution API unavailable")
        return self.values.get(key, default)

    def set(self, key, value, *, retention=None):
        if self.broken:
            raise ConnectionError("execution API unavailable")
        self.values[key] = value


def test_a_submission_round_trips_through_the_store_as_plain_json():
    store = Store()
    assert remember_submission({"task_state_store": store}, "lightning_job", Submission("job-1", "train-ab", 2))
    assert store.values == {"lightning_job": {"id": "job-1", "name": "train-ab", "try_number": 2}}
    assert stored_submission({"task_state_store": store}, "lightning_job") == Submission("job-1", "train-ab", 2)


def test_without_a_store_nothing_is_kept_and_nothing_is_found():  # Airflow before 3.3
    assert remember_submission({}, "lightning_job", Submission("job-1", "train-ab", 1)) is False
    assert stored_submission({}, "lightning_job") is None


@pytest.mark.parametrize("value", [None, "job-1", {"id": "job-1"}, {"id": "", "name": "n", "try_number": 1},
                                   {"id": "job-1", "name": "n", "try_number": "1"}])
def test_a_value_that_is_not_a_submission_is_ignored(value):
    store = Store()
    store.values["lightning_job"] = value
    assert stored_submission({"task_state_store": store}, "lightning_job") is None


def test_a_store_that_fails_is_logged_and_the_name_lookup_decides(caplog):
    context = {"task_state_store": Store(broken=True)}
    assert stored_submission(context, "lightning_job") is None
    assert remember_submission(context, "lightning_job", Submission("job-1", "train-ab", 1)) is False
    assert "looking the job up by name" in caplog.text and "a retry finds it by name" in caplog.text
