"""Reading API answers tolerantly: camelCase and the seed documents' snake_case/JOB_STATE_* forms."""

from __future__ import annotations

import pytest

from airflow_provider_lightning.api.jobs import job_phase, read_job
from airflow_provider_lightning.api.logs import LogCursor, read_entries
from airflow_provider_lightning.api.phases import Phase


@pytest.mark.parametrize(
    ("raw", "phase"),
    [
        ("pending", Phase.PENDING), ("creating", Phase.PENDING), ("", Phase.PENDING),
        ("running", Phase.RUNNING), ("restarting", Phase.RUNNING),
        ("stop", Phase.STOPPING), ("stopping", Phase.STOPPING), ("complete", Phase.STOPPING),
        ("fail", Phase.STOPPING), ("stopped", Phase.STOPPED), ("deleted", Phase.STOPPED),
        ("completed", Phase.COMPLETED), ("failed", Phase.FAILED),
        ("JOB_STATE_RUNNING", Phase.RUNNING), ("JOB_STATE_SUCCEEDED", Phase.COMPLETED),
        ("JOB_STATE_FAILED", Phase.FAILED), ("JOB_STATE_STOPPED", Phase.STOPPED),
        ("some_future_state", Phase.PENDING),
    ],
)
def test_job_states_map_to_typed_phases(raw, phase):
    assert job_phase(raw) is phase


def test_transitional_exit_states_are_not_terminal():
    assert not job_phase("complete").is_terminal and not job_phase("fail").is_terminal
    assert Phase.COMPLETED.is_terminal and Phase.COMPLETED.is_success and not Phase.FAILED.is_success


def test_camel_case_job_is_read():
    job = read_job({"id": "job-1", "name": "n", "state": "failed", "serverError": "exit 3", "totalCost": "0.25",
                    "startedAt": "2026-01-01T00:00:00Z", "stoppedAt": "2026-01-01T00:01:30.5Z",
                    "spec": {"cloudspaceId": "cs-1"}})
    assert (job.phase, job.message, job.total_cost, job.cloudspace_id) == (Phase.FAILED, "exit 3", 0.25, "cs-1")
    assert job.duration_seconds == 90.5


def test_seed_snake_case_job_is_read():
    job = read_job({"id": "job-id-001", "name": "my-training-job", "status": {"phase": "JOB_STATE_RUNNING"},
                    "created_at": "2024-01-15T10:00:00Z"})
    assert job.phase is Phase.RUNNING and job.created_at == "2024-01-15T10:00:00Z"


@pytest.mark.parametrize("bad", [None, [], "x", {}, {"name": "no id"}])
def test_a_job_without_id_is_rejected(bad):
    with pytest.raises(ValueError):
        read_job(bad)


def test_absurd_numbers_and_zero_times_are_dropped():
    job = read_job({"id": "j", "totalCost": "1e400", "startedAt": "0001-01-01T00:00:00Z", "state": 7})
    assert job.total_cost is None and job.started_at is None and job.phase is Phase.PENDING


def test_state_round_trips_through_json():
    job = read_job({"id": "j", "name": "n", "state": "completed"})
    assert type(job).from_json(job.to_json()) == job


def test_log_entries_in_both_forms_and_cursor_skips_seen_lines():
    camel = {"entries": [{"line": "1", "message": "a", "timestamp": "2026-01-01T00:00:01Z", "resourceId": "j"},
                         {"line": "2", "message": "b", "timestamp": "2026-01-01T00:00:02Z", "resourceId": "j"}]}
    legacy = [{"line": 3, "message": "c", "timestamp": {"seconds": 1767225603, "nanos": 0}, "resource_id": "j"}]
    lines = read_entries(camel) + read_entries(legacy)
    fresh, cursor = LogCursor(lines=(("j", 1),)).advance(lines)
    assert [ln.message for ln in fresh] == ["b", "c"] and cursor.last("j") == 3
    assert cursor.advance(lines)[0] == []


def test_very_long_and_non_utf8_lines_render_safely():
    line = read_entries({"entries": [{"line": "1", "message": "x" * 100_000 + "\ufffd"}]})[0]
    assert len(line.render()) < 5000 and line.render().endswith("[... line cut]")


def test_cursor_counts_lines_per_resource_so_ranks_do_not_hide_each_other():
    merged = read_entries({"entries": [
        {"line": "1", "message": "rank0 a", "resourceId": "r0", "timestamp": "2026-01-01T00:00:01Z"},
        {"line": "1", "message": "rank1 a", "resourceId": "r1", "timestamp": "2026-01-01T00:00:01Z"},
        {"line": "2", "message": "rank0 b", "resourceId": "r0", "timestamp": "2026-01-01T00:00:02Z"}]})
    fresh, cursor = LogCursor().advance(merged)
    assert len(fresh) == 3 and (cursor.last("r0"), cursor.last("r1")) == (2, 1)
    assert LogCursor.from_json(cursor.to_json()) == cursor
