"""Hostile API answers and garbage operator arguments, property-based (hypothesis).

Malformed JSON, HTML error pages, missing fields, unknown phases, absurd numbers, megabyte and
non-UTF-8 log lines, odd ``Retry-After`` values: each gives a clear error or a tolerant read, nothing
hangs, and the trigger turns them into an event instead of crashing the triggerer. Operator
constructors answer garbage arguments with ValueError, never TypeError or AttributeError. Credentials
never show up in ``repr()``, trigger kwargs or XCom.

Answers come from a real HTTP server on loopback (``scripted_server``), one per module, so every
example goes through httpx and the transport exactly as a real answer would.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import json
import math
import os
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scripted_server import Reply, ScriptedServer
from task_context import context

from airflow_provider_lightning.api import deployments, logs, schedules, studios, wire
from airflow_provider_lightning.api.errors import LightningApiError, LightningAuthError, LightningResponseError
from airflow_provider_lightning.api.jobs import _JOB_STATES, job_phase, read_job, read_mmt
from airflow_provider_lightning.api.phases import Phase
from airflow_provider_lightning.api.state import ResourceState
from airflow_provider_lightning.api.transport import ApiCall, RetryPolicy, Transport, parse_retry_after
from airflow_provider_lightning.hooks.lightning import LightningHook
from airflow_provider_lightning.hooks.settings import ConnectionSettings

FAST = settings(max_examples=25, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
FEW = settings(FAST, max_examples=10)
QUICK_RETRY = RetryPolicy(max_attempts=2, backoff_initial=0.001, backoff_max=0.002, retry_after_max=0.05)
SECRET = "hostile-test-key-5f0e2c9a"
AUTH = "Basic " + base64.b64encode(f"user-1:{SECRET}".encode()).decode()
JOB_PATH = "/v1/projects/p1/jobs/job-1"

# -- strategies ----------------------------------------------------------------------------------

FIELD_NAMES = [
    "id", "name", "state", "status", "phase", "message", "serverError", "server_error", "createdAt", "startedAt",
    "stoppedAt", "created_at", "totalCost", "spec", "cloudspaceId", "currentState", "replicas", "autoscaling",
    "urls", "readyReplicas", "failingReplicas", "inUse", "startupStatus", "topUpRestoreFinished", "exitCode",
    "output", "entries", "line", "timestamp", "resourceId", "nextPageToken", "seconds", "rank", "releaseId",
]
ABSURD_NUMBERS = st.sampled_from([
    0, -1, 2**63, -(2**63), 2**200, 1e15, 1e300, -1e300, 1e-300, float("inf"), float("-inf"), float("nan"),
    "1e999", "-0", "NaN", "0x10", "9" * 40, 253402300800, -62135596800,
])
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20), ABSURD_NUMBERS,
)
KEYS = st.one_of(st.sampled_from(FIELD_NAMES), st.text(max_size=8))
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=5),
    max_leaves=15,
)
JSON_OBJECTS = st.dictionaries(KEYS, JSON_VALUES, max_size=8)
HTML_PAGES = st.sampled_from([
    b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway"
    b"</h1></center><hr><center>nginx</center></body></html>",
    b"<html><body><h1>Access denied</h1><p>Your request was blocked by the proxy.</p></body></html>",
    b"<?xml version='1.0'?><Error><Code>AccessDenied</Code></Error>",
    b"<html>" + b"<div>spinner</div>" * 5000 + b"</html>",
])


def _encode(value: Any) -> bytes:
    return json.dumps(value).encode()


def truncated(doc: bytes, cut: int) -> bytes:
    return doc[: max(1, min(cut, len(doc) - 1))] if len(doc) > 1 else b"{"


NON_UTF8 = st.binary(min_size=1, max_size=40).map(lambda b: b"\xff\xfe\xc3" + b)
MALFORMED_JSON = st.builds(truncated, JSON_VALUES.map(_encode), st.integers(min_value=1, max_value=200))
HOSTILE_BODIES = st.one_of(
    HTML_PAGES, st.binary(max_size=200), NON_UTF8, MALFORMED_JSON, JSON_VALUES.map(_encode),
    st.just(b""), st.just(b"null"), st.just(b"x" * 1_000_000),
)
UNKNOWN_STATE = st.text(max_size=30)


def is_json(body: bytes) -> bool:
    text = body.decode("utf-8", errors="replace")
    if not text.strip():
        return True  # an empty 2xx answer reads as {}
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def json_safe(value: Any) -> None:
    """What a trigger event or XCom carries must be strict JSON (no NaN, no objects)."""
    json.dumps(value, allow_nan=False)


# -- a scripted server shared by the module ------------------------------------------------------


class Script:
    """What the server answers: a queue of replies (the last one repeats) or a route function."""

    def __init__(self) -> None:
        self.replies: list[Reply] = [Reply()]
        self.route: Any = None

    def set(self, *replies: Reply) -> None:
        self.route, self.replies = None, list(replies)

    def __call__(self, method: str, path: str) -> Reply:
        if self.route is not None:
            return self.route(method, path)
        return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]


@pytest.fixture(scope="module")
def server():
    script = Script()
    with ScriptedServer(script) as srv:
        srv.script = script
        with pytest.MonkeyPatch.context() as mp:
            conn = {"conn_type": "lightning", "host": srv.url, "login": "user-1", "password": SECRET,
                    "extra": {"project_id": "p1", "max_attempts": 1}}
            mp.setenv("AIRFLOW_CONN_HOSTILE", json.dumps(conn))
            yield srv


def transport(url: str) -> Transport:
    return Transport(url, {"Authorization": AUTH}, retry=QUICK_RETRY, auth_hint="Fix the connection 'hostile'.")


def get_job(url: str) -> ApiCall[ResourceState]:
    return ApiCall("GET", JOB_PATH, parse=read_job)


# -- transport: HTML, garbage, malformed JSON, odd statuses and headers --------------------------


@FAST
@given(body=HOSTILE_BODIES)
def test_a_2xx_answer_that_is_not_a_job_is_a_clear_response_error(server, body):
    server.script.set(Reply(200, body, {"Content-Type": "text/html; charset=utf-8"}))
    try:
        state = transport(server.url).run(get_job(server.url))
    except LightningResponseError as error:
        message = str(error)
        assert f"GET {JOB_PATH}" in message and len(message) < 700
        assert error.status == 200
        if not is_json(body):
            assert "expected a JSON answer" in message and "Lightning API" in message
        else:
            assert "unexpected answer shape" in message
    else:  # a JSON object with an id: read tolerantly
        assert isinstance(state, ResourceState) and state.id
        json_safe(state.to_json())


@FAST
@given(status=st.sampled_from([301, 302, 400, 401, 403, 404, 409, 418, 422, 451, 500, 502, 503, 504, 599]),
       body=HOSTILE_BODIES)
def test_error_statuses_with_any_body_raise_an_api_error_naming_the_status(server, status, body):
    server.script.set(Reply(status, body, {"Content-Type": "text/html"}))
    with pytest.raises(LightningApiError) as err:
        transport(server.url).run(get_job(server.url))
    error = err.value
    assert error.status == status and f"error {status}" in str(error)
    assert isinstance(error, LightningAuthError) == (status in (401, 403))
    assert len(str(error)) < 900 and SECRET not in str(error) and AUTH not in str(error)


RETRY_AFTER_VALUES = st.one_of(
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40),
    st.sampled_from(["1e308", "inf", "-inf", "nan", "NaN", "-5", "9" * 30, "0", "0.000001",
                     "Fri, 31 Dec 9999 23:59:59 GMT", "Thu, 01 Jan 1970 00:00:00 GMT", "Mon, 99 Foo 2020"]),
)


@settings(FAST, max_examples=20)
@given(value=RETRY_AFTER_VALUES)
def test_any_retry_after_is_read_safely_and_capped(server, value):
    seconds = parse_retry_after(value)
    assert seconds is None or (seconds >= 0 and not math.isnan(seconds))
    server.script.set(Reply(429, '{"code":8,"message":"slow down"}',
                            {"Content-Type": "application/json", "Retry-After": value}), Reply(200, "{}"))
    t = transport(server.url)
    assert t.run(ApiCall("GET", "/v1/memberships")) == {}  # waited at most retry_after_max, then retried


# -- readers: missing fields, unknown phases, absurd numbers --------------------------------------

READERS = {
    "job": read_job, "mmt": read_mmt, "deployment": deployments.read_deployment,
    "studio": studios.read_code_status, "studio_command": studios.read_command, "schedule_run": schedules.read_run,
}


@FAST
@given(kind=st.sampled_from(sorted(READERS)), data=JSON_VALUES)
def test_readers_return_a_state_or_a_value_error_for_any_json(kind, data):
    try:
        state = READERS[kind](data)
    except ValueError:  # the transport turns it into LightningResponseError "unexpected answer shape"
        return
    assert isinstance(state.phase, Phase)
    json_safe(state.to_json())
    assert state.duration_seconds is None or math.isfinite(state.duration_seconds)


@FAST
@given(kind=st.sampled_from(sorted(READERS)), data=JSON_OBJECTS)
def test_readers_tolerate_missing_and_odd_fields_when_the_id_is_there(kind, data):
    data = {**data, "id": "res-1"}
    state = READERS[kind](data)
    assert isinstance(state.phase, Phase)
    json_safe(state.to_json())
    assert ResourceState.from_json(json.loads(json.dumps(state.to_json()))) == state
    assert state.duration_seconds is None or math.isfinite(state.duration_seconds)
    assert state.total_cost is None or (math.isfinite(state.total_cost) and abs(state.total_cost) < 1e15)


def _known_job_state(raw: str) -> bool:
    key = raw.strip().lower()
    for prefix in ("multimachinejob_state_", "multi_machine_job_state_", "job_state_", "state_"):
        key = key.removeprefix(prefix) if key.startswith(prefix) else key
    return key in _JOB_STATES


@FAST
@given(state=UNKNOWN_STATE)
def test_unknown_phases_read_as_pending_and_never_terminal(state):
    if not _known_job_state(state):
        assert job_phase(state) is Phase.PENDING
        assert read_job({"id": "j", "state": state}).phase is Phase.PENDING
        assert read_mmt({"id": "m", "state": state}).phase is Phase.PENDING
    if state.strip().upper().removeprefix("CLOUD_SPACE_INSTANCE_STATE_") not in studios._INSTANCE_PHASES:
        assert studios.read_code_status({"inUse": {"phase": state}}).phase is Phase.PENDING
    if state.lower() not in schedules._RUN_PHASES:
        assert schedules.read_run({"id": "r", "state": state}).phase is Phase.PENDING
    normalized = state.upper().removeprefix(deployments.STATE_PREFIX)
    if normalized not in ("FAILED", "SCALED_TO_0", *deployments._STOPPED_STATES):
        assert deployments.read_deployment({"id": "d", "currentState": state}).phase is Phase.PENDING


@FAST
@given(value=JSON_VALUES)
def test_numbers_and_timestamps_are_read_or_dropped_never_raised(value):
    obj = {"n": value}
    number = wire.number(obj, "n")
    assert number is None or (math.isfinite(number) and abs(number) < 1e15)
    stamp = wire.timestamp(obj, "n")
    assert stamp is None or isinstance(stamp, str)
    legacy = wire.timestamp({"n": {"seconds": value}}, "n")  # the {seconds, nanos} form of old log frames
    assert legacy is None or isinstance(legacy, str)
    assert isinstance(wire.text(obj, "n"), str)


@FAST
@given(started=st.one_of(st.text(max_size=30), st.sampled_from(["P1D", "10:00", "2020-01-01", "2020-01-01T00:00:00Z"])),
       stopped=st.one_of(st.text(max_size=30), st.sampled_from(["P2D", "11:00", "2020-01-02", "9999-12-31T23:59:59Z"])))
def test_duration_of_any_timestamps_is_a_number_or_none(started, stopped):
    state = ResourceState(kind="job", id="j", name="j", phase=Phase.COMPLETED, raw_state="completed",
                          started_at=started, stopped_at=stopped)
    assert state.duration_seconds is None or math.isfinite(state.duration_seconds)


# -- logs: megabyte lines, non-UTF-8 bytes, odd entries --------------------------------------------

def log_entries(long_line: int) -> st.SearchStrategy[list[Any]]:
    return st.lists(
        st.fixed_dictionaries({}, optional={
            "message": st.one_of(JSON_VALUES, st.just("x" * long_line), st.text(max_size=50)),
            "line": st.one_of(JSON_VALUES, ABSURD_NUMBERS),
            "timestamp": st.one_of(JSON_VALUES, st.fixed_dictionaries({"seconds": ABSURD_NUMBERS})),
            "resourceId": JSON_VALUES,
        }) | JSON_VALUES,
        max_size=5,
    )


LOG_ENTRIES = log_entries(1_000_000)  # megabyte lines


@FAST
@given(entries=LOG_ENTRIES, wrap=st.booleans())
def test_log_entries_of_any_shape_are_read_and_rendered_bounded(entries, wrap):
    lines = logs.read_entries({"entries": entries} if wrap else entries)
    for line in lines:
        text = line.render()
        assert isinstance(text, str) and len(text) <= logs.MAX_LINE_CHARS + len(" [... line cut]")
    logs.LogCursor().advance(lines)


def _is_utf8(chunk: bytes) -> bool:
    try:
        chunk.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@FAST
@given(raw=st.lists(st.binary(min_size=1, max_size=30).map(
    lambda b: bytes(c if c >= 0x80 or chr(c).isalnum() else 0x78 for c in b)), min_size=1, max_size=4),
    megabyte=st.booleans())
def test_page_logs_with_invalid_utf8_and_huge_lines_do_not_crash_the_reader(server, raw, megabyte):
    messages = [b'"' + chunk + b'"' for chunk in raw] + ([b'"' + b"y" * 1_000_000 + b'"'] if megabyte else [])
    entries = b",".join(b'{"line":%d,"message":%s,"timestamp":"2026-01-01T00:00:0%dZ"}' % (i + 1, m, i % 10)
                        for i, m in enumerate(messages))
    server.script.set(Reply(200, b'{"entries":[' + entries + b"]}"))
    lines, cursor = transport(server.url).run(logs.new_lines("p1", "jobIds", "job-1", logs.LogCursor()))
    assert len(lines) == len(messages) and cursor.last("") == len(messages)
    assert all(len(line.render()) <= logs.MAX_LINE_CHARS + 20 for line in lines)
    if any(not _is_utf8(chunk) for chunk in raw):
        assert any("\ufffd" in line.message for line in lines)


# -- the trigger: hostile answers end in an event, never in a crash or a hang ----------------------


async def _first_event(trigger: Any, timeout: float = 20.0) -> dict[str, Any]:
    async def first() -> dict[str, Any]:
        agen = trigger.run()
        try:
            return (await agen.__anext__()).payload
        finally:
            await agen.aclose()

    return await asyncio.wait_for(first(), timeout)


def _trigger(**kw: Any) -> Any:
    from airflow_provider_lightning.triggers.lightning import LightningPhaseTrigger

    defaults = {"kind": "job", "resource_id": "job-1", "project_id": "p1", "lightning_conn_id": "hostile",
                "poll_interval": 0.01, "max_poll_errors": 3, "stream_logs": True}
    return LightningPhaseTrigger(**{**defaults, **kw})


def reads_as_a_job(body: bytes) -> bool:
    text = body.decode("utf-8", errors="replace")
    try:
        read_job(json.loads(text) if text.strip() else {})
    except ValueError:
        return False
    return True


HOSTILE_JOB_ANSWERS = st.one_of(
    st.tuples(st.just(200), HOSTILE_BODIES.filter(lambda b: not reads_as_a_job(b))),
    st.tuples(st.sampled_from([429, 500, 502, 503, 504]), HOSTILE_BODIES),
)


@FEW
@given(answer=HOSTILE_JOB_ANSWERS)
def test_trigger_sends_an_error_event_after_max_poll_errors_hostile_answers(server, answer):
    status, body = answer
    server.script.set(Reply(status, body, {"Content-Type": "text/html", "Retry-After": "0"}))
    event = asyncio.run(_first_event(_trigger()))
    assert event["status"] == "error" and "failed 3 times in a row" in event["message"]
    json_safe(event)


@FEW
@given(status=st.sampled_from([401, 403, 404]), body=HOSTILE_BODIES)
def test_trigger_gives_up_at_once_on_auth_and_not_found_answers(server, status, body):
    server.script.set(Reply(status, body, {"Content-Type": "text/html"}))
    event = asyncio.run(_first_event(_trigger(max_poll_errors=100)))
    assert event["status"] == "error" and f"error {status}" in event["message"]
    assert SECRET not in event["message"] and AUTH not in event["message"]


@FEW
@given(state=UNKNOWN_STATE.filter(lambda s: not _known_job_state(s)), extra=JSON_OBJECTS)
def test_trigger_never_ends_on_an_unknown_phase_it_times_out(server, state, extra):
    import time

    answer = {**{k: v for k, v in extra.items() if k not in ("id", "state", "status")}, "id": "job-1",
              "state": state}
    server.script.set(Reply(200, json.dumps(answer)))
    event = asyncio.run(_first_event(_trigger(deadline=time.time() + 0.15, max_poll_errors=1)))
    assert event["status"] == "timeout", event
    json_safe(event)


@FEW
@given(entries=log_entries(100_000), logs_body=st.one_of(HOSTILE_BODIES, st.none()))
def test_hostile_log_pages_do_not_crash_the_trigger(server, entries, logs_body):
    polls = {"n": 0}

    def route(method: str, path: str) -> Reply:
        if "page-logs" in path:
            return Reply(200, logs_body if logs_body is not None else json.dumps({"entries": entries}))
        polls["n"] += 1
        state = "running" if polls["n"] < 3 else "failed"
        return Reply(200, json.dumps({"id": "job-1", "name": "j", "state": state, "message": "exit code 3"}))

    server.script.route = route
    event = asyncio.run(_first_event(_trigger()))
    assert event["status"] == "failed" and "exit code 3" in event["message"]
    assert all(isinstance(line, str) and len(line) <= logs.MAX_LINE_CHARS + 20 for line in event["log_tail"])
    json_safe(event)


@pytest.mark.parametrize(("put_failures", "put_status", "outcome", "min_puts"),
                         [(2, 503, "; the job this task started was stopped", 3),
                          (50, 503, "; stopping the job this task started failed", 3),
                          (9, 404, "; the job this task started was already gone", 1)])
def test_a_timed_out_job_is_stopped_even_when_the_api_fails_for_a_while(
    server, monkeypatch, put_failures, put_status, outcome, min_puts
):
    from airflow.providers.common.compat.sdk import AirflowException

    from airflow_provider_lightning.operators.jobs import LightningJobOperator

    seen = {"PUT": 0}

    def route(method: str, path: str) -> Reply:
        if path.startswith("/v1/projects/p1/jobs/job-1") and method == "PUT":
            seen["PUT"] += 1
            if seen["PUT"] <= put_failures:
                return Reply(put_status, "<html><body>upstream unavailable</body></html>", {"Content-Type": "text/html"})
            return Reply(200, json.dumps({"id": "job-1", "state": "stop"}))
        if path.startswith("/v1/projects/p1/jobs/job-1"):
            return Reply(200, json.dumps({"id": "job-1", "name": "j", "state": "running"}))
        return Reply(200, json.dumps({"id": "p1", "name": "teamspace"}))  # GET /v1/projects/p1

    server.script.route = route
    from airflow_provider_lightning.api.stopping import StopBudget

    monkeypatch.setattr(LightningJobOperator, "stop_budget", StopBudget(total=1.5, pauses=(0.01,)))
    op = LightningJobOperator(task_id="t", image="python:3.11", command="sleep 1", lightning_conn_id="hostile",
                              timeout=5)
    event = {"status": "timeout", "kind": "job", "resource_id": "job-1", "resource": None, "message": "late",
             "owns": "stop"}
    with pytest.raises(AirflowException) as err:
        op.execute_complete(context(), event)
    assert outcome in str(err.value)
    assert seen["PUT"] >= min_puts and (put_status == 503 or seen["PUT"] == min_puts)


def test_a_rate_limited_teamspace_lookup_on_resume_keeps_the_jobs_own_failure(server, monkeypatch):
    """A resumed task resolves its teamspace before releasing; a 429 there must not replace the job's error."""
    from airflow.providers.common.compat.sdk import AirflowException

    from airflow_provider_lightning.api.stopping import StopBudget
    from airflow_provider_lightning.operators.jobs import LightningJobOperator

    def route(method: str, path: str) -> Reply:
        if path.startswith("/v1/projects/p1"):
            return Reply(429, json.dumps({"code": 8, "message": "resource exhausted"}), {"Retry-After": "0"})
        return Reply(200, json.dumps({"id": "job-1", "name": "j", "state": "failed"}))

    server.script.route = route
    monkeypatch.setattr(LightningJobOperator, "stop_budget", StopBudget(total=1.0, pauses=(0.01,)))
    op = LightningJobOperator(task_id="t", image="python:3.11", command="exit 3", lightning_conn_id="hostile")
    event = {"status": "failed", "kind": "job", "resource_id": "job-1", "resource": None,
             "message": "exit code 3", "owns": "stop"}
    with pytest.raises(AirflowException) as err:
        op.execute_complete(context(), event)
    assert "exit code 3" in str(err.value)
    assert "stopping the job this task started failed" in str(err.value) and "429" in str(err.value)


# -- operator constructors: garbage in, ValueError out ---------------------------------------------

GARBAGE = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20), st.binary(max_size=8),
    st.lists(st.one_of(st.integers(), st.text(max_size=5), st.none()), max_size=3),
    st.dictionaries(st.text(max_size=6), st.one_of(st.integers(), st.text(max_size=6), st.none()), max_size=3),
    st.timedeltas(), st.just(object()), st.tuples(st.integers(), st.text(max_size=3)), st.just({1, 2}),
    st.sampled_from(["{{ params.x }}", "A100", "CPU", "lit-a100-1", "", " ", "-1", "nan", "completed"]),
)


def _operator_classes() -> dict[str, tuple[type, dict[str, Any]]]:
    from airflow_provider_lightning.operators.deployments import (
        LightningDeleteDeploymentOperator,
        LightningDeploymentOperator,
        LightningStopDeploymentOperator,
    )
    from airflow_provider_lightning.operators.jobs import LightningJobOperator
    from airflow_provider_lightning.operators.mmt import LightningMultiMachineJobOperator
    from airflow_provider_lightning.operators.schedules import (
        LightningDeleteScheduleOperator,
        LightningScheduleOperator,
        LightningSyncSchedulesOperator,
        LightningTriggerScheduleRunOperator,
    )
    from airflow_provider_lightning.operators.studios import (
        LightningStudioCommandOperator,
        LightningStudioStartOperator,
        LightningStudioStopOperator,
    )
    from airflow_provider_lightning.sensors.lightning import (
        LightningDeploymentSensor,
        LightningJobSensor,
        LightningMultiMachineJobSensor,
        LightningStudioSensor,
    )

    return {
        "job": (LightningJobOperator, {"image": "python:3.11", "command": "echo"}),
        "mmt": (LightningMultiMachineJobOperator, {"image": "python:3.11", "command": "echo", "num_machines": 2}),
        "deployment": (LightningDeploymentOperator, {"deployment_name": "web", "image": "nginx"}),
        "stop_deployment": (LightningStopDeploymentOperator, {"deployment_name": "web"}),
        "delete_deployment": (LightningDeleteDeploymentOperator, {"deployment_name": "web"}),
        "studio_start": (LightningStudioStartOperator, {"studio_name": "s"}),
        "studio_stop": (LightningStudioStopOperator, {"studio_name": "s"}),
        "studio_command": (LightningStudioCommandOperator, {"studio_name": "s", "command": "ls"}),
        "schedule": (LightningScheduleOperator, {"schedule_name": "n", "schedule": "0 * * * *",
                                                 "studio_name": "s", "command": "ls"}),
        "delete_schedule": (LightningDeleteScheduleOperator, {"schedule_name": "n"}),
        "trigger_schedule": (LightningTriggerScheduleRunOperator, {"schedule_name": "n"}),
        "sync_schedules": (LightningSyncSchedulesOperator, {"output_path": "/tmp/x.json"}),
        "job_sensor": (LightningJobSensor, {"job_name": "j"}),
        "mmt_sensor": (LightningMultiMachineJobSensor, {"job_name": "j"}),
        "deployment_sensor": (LightningDeploymentSensor, {"deployment_name": "web"}),
        "studio_sensor": (LightningStudioSensor, {"studio_name": "s"}),
    }


def _own_parameters(cls: type) -> list[str]:
    """Keyword parameters this provider's classes add (not Airflow's BaseOperator ones).

    A subclass that sets a parent's parameter itself (the deployment sensor passes ``job_name``) does not
    take it: passing it anyway is a plain Python "multiple values" TypeError, not a validation matter.
    """
    names: list[str] = []
    own = inspect.signature(cls.__init__).parameters
    fixed_by_subclass = {"job_name", "job_id", "target_phase"} if "target_state" in own else set()
    for klass in cls.__mro__:
        if not klass.__module__.startswith("airflow_provider_lightning") or "__init__" not in vars(klass):
            continue
        for name, param in inspect.signature(klass.__init__).parameters.items():
            if param.kind is param.KEYWORD_ONLY and name not in names and name not in fixed_by_subclass:
                names.append(name)
    return names


OPERATORS = _operator_classes()


@settings(FAST, max_examples=100)
@given(data=st.data(), which=st.sampled_from(sorted(OPERATORS)))
def test_operator_constructors_answer_garbage_with_value_error(data, which):
    cls, required = OPERATORS[which]
    names = _own_parameters(cls)
    chosen = data.draw(st.lists(st.sampled_from(names), min_size=1, max_size=4, unique=True), label="params")
    garbage = {name: data.draw(GARBAGE, label=name) for name in chosen}
    try:
        cls(task_id="t", **{**required, **garbage})
    except ValueError:
        pass  # LightningConfigError is a ValueError too


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), timedelta(days=-1), True])
@pytest.mark.parametrize("argument", ["timeout", "poll_interval"])
def test_non_finite_or_negative_durations_are_rejected(argument, value):
    cls, required = OPERATORS["job"]
    with pytest.raises(ValueError, match=argument):
        cls(task_id="t", **required, **{argument: value})


# -- credentials never leak --------------------------------------------------------------------------

SECRETS = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-", min_size=16,
                  max_size=48)


@FAST
@given(api_key=SECRETS, token=st.one_of(st.just(""), SECRETS), user=st.sampled_from(["", "user-1"]))
def test_repr_of_settings_transport_and_hook_never_shows_credentials(api_key, token, user):
    settings_ = ConnectionSettings.build(conn_id="c", base_url="https://lightning.ai", user_id=user, api_key=api_key,
                                         extra={"auth_token": token, "teamspace": "o/t"}, source="connection")
    header = settings_.auth_header()
    hook = LightningHook("c")
    hook._settings = settings_
    hook._transport = hook._make_transport(settings_)
    hidden = [s for s in (api_key, token, header, header.split(" ", 1)[1]) if s]
    for text in (repr(settings_), str(settings_), repr(hook._transport), repr(hook), str(hook)):
        assert not any(secret in text for secret in hidden), text


def test_a_refused_key_is_named_by_connection_never_shown(server):
    server.script.set(Reply(401, '{"code":16,"message":"unauthenticated: invalid user id or API key"}'))
    hook = LightningHook("hostile")
    ok, message = hook.test_connection()
    assert not ok and "'hostile'" in message and SECRET not in message
    with pytest.raises(LightningAuthError) as err:
        hook.run(ApiCall("GET", "/v1/auth/whoami"))
    assert SECRET not in str(err.value) and SECRET not in repr(err.value)


def _secrets_of(sim: Any, token: str = "") -> list[str]:
    basic = base64.b64encode(f"{sim.user_id}:{sim.api_key}".encode()).decode()
    return [s for s in (sim.api_key, basic, token) if s]


@pytest.mark.parametrize("auth", ["api_key", "jwt"])
def test_trigger_kwargs_events_and_xcom_never_carry_credentials(sim, monkeypatch, auth):
    import httpx
    from airflow.providers.common.compat.sdk import TaskDeferred

    from airflow_provider_lightning.operators.jobs import LightningJobOperator
    from airflow_provider_lightning.operators.mmt import LightningMultiMachineJobOperator
    from airflow_provider_lightning.triggers.lightning import LightningPhaseTrigger

    token = ""
    if auth == "jwt":
        token = httpx.post(f"{sim.url}/v1/auth/login", json={"apiKey": sim.api_key}, timeout=10).json()["token"]
        conn = {"conn_type": "lightning", "host": sim.url, "login": sim.user_id,
                "extra": {"teamspace": sim.teamspace, "auth_token": token}}
        monkeypatch.setenv("AIRFLOW_CONN_LIGHTNING_DEFAULT", json.dumps(conn))
    hidden = _secrets_of(sim, token)
    for cls, extra in ((LightningJobOperator, {}), (LightningMultiMachineJobOperator, {"num_machines": 2})):
        op = cls(task_id=f"secret-{auth}", image="python:3.11", command="echo ok", deferrable=True,
                 poll_interval=0.2, **extra)
        ctx = context(run_id=f"secrets-{auth}-{cls.__name__}")
        with pytest.raises(TaskDeferred) as deferred:
            op.execute(ctx)
        _, kwargs = deferred.value.trigger.serialize()
        event = asyncio.run(_first_event(LightningPhaseTrigger(**kwargs), timeout=30))
        result = op.execute_complete(ctx, event)
        carried = json.dumps([kwargs, event, ctx["ti"].xcoms, result, repr(op), repr(deferred.value.trigger)],
                             default=str)
        assert result["phase"] == "completed"
        assert not [s for s in hidden if s in carried]
    assert os.environ.get("AIRFLOW_CONN_LIGHTNING_DEFAULT")  # the secrets were real and in use
