"""The wait contract: the trigger's exact ``serialize()`` output, ``WaitSpec`` kwargs and ``WaitEvent`` payloads.

The trigger's kwargs are stored in Airflow's database while a task is deferred and rebuilt by a triggerer,
possibly one running a newer version of this provider; the event payload is stored too, and decoded by the
worker in ``execute_complete``. Both are wire formats: these tests pin them.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import MISSING, fields

import pytest
from airflow.providers.common.compat.sdk import AirflowException

from airflow_provider_lightning.api.phases import Phase
from airflow_provider_lightning.api.state import ResourceState
from airflow_provider_lightning.triggers.contract import (
    EventStatus,
    InvalidEventError,
    Ownership,
    WaitEvent,
    WaitSpec,
    validate_execute_complete_event,
)
from airflow_provider_lightning.triggers.lightning import LightningPhaseTrigger, PhaseWait

TRIGGER_PATH = "airflow_provider_lightning.triggers.lightning.LightningPhaseTrigger"

# Every field set to a value that is not its default.
SPEC = WaitSpec(
    kind="deployment",
    resource_id="dep_01abc",
    project_id="proj-7",
    lightning_conn_id="lightning_prod",
    target_phases=("RUNNING", "stopped"),
    poll_interval=2.5,
    deadline=1_900_000_000.25,
    stream_logs=False,
    log_cursor={"since": "2025-06-01T12:00:00Z", "lines": 3, "offset": 17, "made_at": 1_800_000_000.5},
    log_tail_lines=7,
    owns=Ownership.DELETE,
    max_poll_errors=9,
    resource_name="my-api",
    url="https://lightning.ai/acme/research/jobs/my-api?app_id=",
    failing_grace=120,
    fail_on_terminal=False,
    results={"action": "updated", "changes": ["spec.image"], "started": True},
)

# What serialize() must return for SPEC: a literal, so adding, renaming or retyping a kwarg fails here.
EXPECTED_KWARGS = {
    "kind": "deployment",
    "resource_id": "dep_01abc",
    "project_id": "proj-7",
    "lightning_conn_id": "lightning_prod",
    "target_phases": ["running", "stopped"],
    "poll_interval": 2.5,
    "deadline": 1_900_000_000.25,
    "stream_logs": False,
    "log_cursor": {"since": "2025-06-01T12:00:00Z", "lines": 3, "offset": 17, "made_at": 1_800_000_000.5},
    "log_tail_lines": 7,
    "owns": "delete",
    "max_poll_errors": 9,
    "resource_name": "my-api",
    "url": "https://lightning.ai/acme/research/jobs/my-api?app_id=",
    "failing_grace": 120.0,
    "fail_on_terminal": False,
    "results": {"action": "updated", "changes": ["spec.image"], "started": True},
}

# The kwargs a version 0.1 trigger serialized (kill behaviour in stop_on_kill and kill_action, no owns/url/results).
V01_KWARGS = {
    "kind": "job",
    "resource_id": "job-1",
    "project_id": "proj-7",
    "lightning_conn_id": "lightning_default",
    "target_phases": ["completed"],
    "poll_interval": 15.0,
    "deadline": 1_900_000_000.0,
    "stream_logs": True,
    "log_cursor": {"since": "2025-06-01T12:00:00Z", "lines": 2},
    "log_tail_lines": 20,
    "stop_on_kill": True,
    "max_poll_errors": 5,
    "resource_name": "train-1",
    "failing_grace": None,
    "kill_action": "stop",
    "fail_on_terminal": True,
}

STATE = ResourceState(
    kind="deployment",
    id="dep_01abc",
    name="my-api",
    phase=Phase.FAILED,
    raw_state="DEPLOYMENT_STATE_FAILED",
    message="replica crashed",
    created_at="2025-06-01T10:00:00Z",
    started_at="2025-06-01T10:01:00Z",
    stopped_at="2025-06-01T10:05:00Z",
    total_cost=1.25,
    cloudspace_id="cs-1",
    failing=True,
    detail={"urls": ["https://8000-dep.litng.ai"], "release_id": "rel-2"},
    raw={"id": "dep_01abc", "currentState": "DEPLOYMENT_STATE_FAILED"},
)


def plain_json(value: object) -> bool:
    """Whether ``value`` is made only of JSON's own types (no enums, tuples or other subclasses)."""
    if type(value) in (str, int, float, bool, type(None)):
        return True
    if type(value) is list:
        return all(plain_json(item) for item in value)
    if type(value) is dict:
        return all(type(key) is str and plain_json(item) for key, item in value.items())
    return False


# -- WaitSpec: the trigger's kwargs -------------------------------------------------------------------------------


def test_the_contract_spec_sets_every_field_to_a_non_default_value():
    for f in fields(WaitSpec):
        default = f.default_factory() if f.default_factory is not MISSING else f.default
        if default is MISSING:
            continue
        assert getattr(SPEC, f.name) != default, f"SPEC leaves {f.name} at its default"


def test_serialize_returns_exactly_the_class_path_and_every_kwarg():
    trigger = LightningPhaseTrigger(**SPEC.to_kwargs())
    assert trigger.serialize() == (TRIGGER_PATH, EXPECTED_KWARGS)


def test_serialize_of_a_trigger_built_for_a_spec_is_the_same():
    assert LightningPhaseTrigger.for_spec(SPEC).serialize() == (TRIGGER_PATH, EXPECTED_KWARGS)


def test_kwargs_are_plain_json_and_survive_a_json_round_trip():
    _, kwargs = LightningPhaseTrigger(**SPEC.to_kwargs()).serialize()
    assert plain_json(kwargs)
    assert json.loads(json.dumps(kwargs)) == kwargs


def test_rebuilding_from_serialized_kwargs_gives_an_equal_spec():
    _, kwargs = LightningPhaseTrigger(**SPEC.to_kwargs()).serialize()
    kwargs = json.loads(json.dumps(kwargs))
    assert WaitSpec.from_kwargs(kwargs) == SPEC
    rebuilt = LightningPhaseTrigger(**kwargs)
    assert rebuilt.spec == SPEC
    assert rebuilt.serialize() == (TRIGGER_PATH, EXPECTED_KWARGS)


def test_to_kwargs_does_not_share_its_dicts_with_the_spec():
    kwargs = SPEC.to_kwargs()
    kwargs["log_cursor"]["offset"] = 0
    kwargs["results"]["action"] = "created"
    assert SPEC.log_cursor["offset"] == 17
    assert SPEC.results["action"] == "updated"


@pytest.mark.parametrize(
    ("stop_on_kill", "kill_action", "owns"),
    [
        (True, "stop", Ownership.STOP),
        (True, "delete", Ownership.DELETE),
        (False, "stop", Ownership.NONE),
        (False, "delete", Ownership.NONE),
    ],
)
def test_version_0_1_kwargs_still_rebuild_with_their_kill_behaviour_as_owns(stop_on_kill, kill_action, owns):
    kwargs = {**V01_KWARGS, "stop_on_kill": stop_on_kill, "kill_action": kill_action}
    trigger = LightningPhaseTrigger(**kwargs)
    assert trigger.spec.owns is owns
    _, serialized = trigger.serialize()
    assert serialized["owns"] == owns.value
    assert "stop_on_kill" not in serialized and "kill_action" not in serialized
    expected = {k: v for k, v in V01_KWARGS.items() if k not in ("stop_on_kill", "kill_action")}
    assert {k: serialized[k] for k in expected} == expected
    assert (serialized["url"], serialized["results"]) == ("", {})


def test_owns_wins_over_version_0_1_kill_kwargs_when_both_are_given():
    spec = WaitSpec.from_kwargs({**V01_KWARGS, "owns": "none", "stop_on_kill": True, "kill_action": "delete"})
    assert spec.owns is Ownership.NONE


def test_unknown_kwargs_raise_type_error_naming_them():
    with pytest.raises(TypeError, match="unknown wait arguments: bogus_arg, zz_extra"):
        LightningPhaseTrigger(**SPEC.to_kwargs(), zz_extra=2, bogus_arg=1)
    with pytest.raises(TypeError, match="bogus_arg"):
        WaitSpec.from_kwargs({**SPEC.to_kwargs(), "bogus_arg": 1})


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ({"poll_interval": 0}, "poll_interval must be a positive number"),
        ({"poll_interval": -5}, "poll_interval must be a positive number"),
        ({"poll_interval": math.inf}, "poll_interval must be a positive number"),
        ({"deadline": math.nan}, "deadline must be a finite number"),
        ({"deadline": math.inf}, "deadline must be a finite number"),
        ({"failing_grace": math.nan}, "failing_grace must be a finite number"),
        ({"target_phases": ["finished"]}, "unknown phase 'finished'"),
        ({"target_phases": []}, "target_phases must name at least one phase"),
        ({"resource_id": ""}, "resource kind and a resource id"),
        ({"kind": ""}, "resource kind and a resource id"),
        ({"owns": "everything"}, "everything"),
    ],
    ids=lambda value: value if isinstance(value, str) else next(iter(value)) + "=" + repr(next(iter(value.values()))),
)
def test_bad_values_raise_value_error(override, match):
    kwargs = {**SPEC.to_kwargs(), **override}
    with pytest.raises(ValueError, match=match):
        WaitSpec.from_kwargs(kwargs)
    with pytest.raises(ValueError, match=match):
        LightningPhaseTrigger(**kwargs)


def test_an_unknown_kind_fails_when_the_trigger_is_built():
    with pytest.raises(ValueError, match="unknown Lightning resource kind 'widget'"):
        LightningPhaseTrigger(**{**SPEC.to_kwargs(), "kind": "widget"})


def test_a_single_phase_string_is_one_target():
    assert WaitSpec(kind="job", resource_id="j", project_id="p", target_phases="Failed").target_phases == ("failed",)


# -- WaitEvent: the trigger's one event ---------------------------------------------------------------------------


@pytest.mark.parametrize("status", list(EventStatus), ids=str)
def test_event_payload_round_trips_for_each_status(status):
    event = SPEC.event(status, STATE, f"the wait ended: {status}", log_tail=["line one", "line two"],
                       log_cursor={"since": "2025-06-01T12:05:00Z", "lines": 1, "offset": 40})
    payload = event.to_payload()
    assert plain_json(payload)
    assert payload["status"] == status.value
    assert payload["phase"] == "failed"
    assert payload["owns"] == "delete"
    assert payload["url"] == SPEC.url
    assert payload["results"] == SPEC.results
    decoded = WaitEvent.from_payload(json.loads(json.dumps(payload)))
    assert decoded == event
    assert decoded.resource == STATE
    assert validate_execute_complete_event(payload) == event
    assert decoded.succeeded is (status is EventStatus.SUCCESS)


def test_event_without_a_resource_round_trips():
    event = SPEC.event(EventStatus.ERROR, None, "cannot read Lightning deployment my-api: 401")
    payload = event.to_payload()
    assert payload["resource"] is None and payload["phase"] == ""
    decoded = WaitEvent.from_payload(json.loads(json.dumps(payload)))
    assert decoded == event
    assert decoded.phase is None


GOOD = {"status": "success", "kind": "job", "resource_id": "job-1"}


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        (None, "must be a mapping"),
        ("success", "must be a mapping"),
        ([("status", "success")], "must be a mapping"),
        ({"kind": "job", "resource_id": "job-1"}, "has status None"),
        ({**GOOD, "status": "done"}, "has status 'done'; expected one of success, failed, timeout, error"),
        ({"status": "success", "resource_id": "job-1"}, "names no resource kind and id"),
        ({"status": "success", "kind": "job"}, "names no resource kind and id"),
        ({**GOOD, "resource_id": ""}, "names no resource kind and id"),
        ({**GOOD, "kind": 7}, "names no resource kind and id"),
        ({**GOOD, "resource": {**STATE.to_json(), "phase": "exploded"}}, "malformed"),
        ({**GOOD, "resource": {**STATE.to_json(), "colour": "red"}}, "malformed"),
        ({**GOOD, "owns": "everything"}, "malformed"),
    ],
    ids=[
        "none", "string", "list", "missing-status", "unknown-status", "missing-kind", "missing-resource-id",
        "empty-resource-id", "non-string-kind", "unknown-phase", "unknown-resource-field", "unknown-owns",
    ],
)
def test_invalid_payloads_are_rejected_naming_the_problem(payload, problem):
    with pytest.raises(InvalidEventError, match=problem):
        WaitEvent.from_payload(payload)
    with pytest.raises(AirflowException) as raised:
        validate_execute_complete_event(payload)
    assert str(raised.value).startswith("Unexpected event from the Lightning trigger: ")
    assert problem.split(";")[0] in str(raised.value)


def test_invalid_event_error_is_a_value_error():
    assert issubclass(InvalidEventError, ValueError)


# What version 0.1 triggers sent: no resource_name, url, owns, phase or results.
V01_RESOURCE = {
    "kind": "job",
    "id": "job-1",
    "name": "train-1",
    "phase": "failed",
    "raw_state": "failed",
    "message": "exit code 1",
    "created_at": "2025-06-01T10:00:00Z",
    "started_at": "2025-06-01T10:01:00Z",
    "stopped_at": "2025-06-01T10:03:30Z",
    "total_cost": 0.02,
    "cloudspace_id": "",
    "failing": False,
    "detail": {},
}


def test_version_0_1_failure_event_still_decodes():
    payload = {
        "status": "failed",
        "kind": "job",
        "resource_id": "job-1",
        "resource": V01_RESOURCE,
        "message": "Lightning job train-1 ended in phase failed: exit code 1",
        "log_tail": ["Traceback (most recent call last):", "ValueError: boom"],
        "log_cursor": {"since": "2025-06-01T10:03:29Z", "lines": 1, "offset": 0},
    }
    event = validate_execute_complete_event(payload)
    assert event.status is EventStatus.FAILED
    assert (event.kind, event.resource_id, event.resource_name) == ("job", "job-1", "train-1")
    assert (event.url, event.owns, event.results) == ("", Ownership.NONE, {})
    assert event.phase is Phase.FAILED
    assert event.resource == ResourceState.from_json(V01_RESOURCE)
    assert event.resource.duration_seconds == 150.0
    assert event.log_tail == ("Traceback (most recent call last):", "ValueError: boom")
    assert event.log_cursor == {"since": "2025-06-01T10:03:29Z", "lines": 1, "offset": 0}
    assert event.message == "Lightning job train-1 ended in phase failed: exit code 1"


def test_version_0_1_success_event_without_resource_still_decodes():
    payload = {"status": "success", "kind": "job", "resource_id": "job-1", "resource": None,
               "message": "Lightning job job-1 is completed", "log_tail": [], "log_cursor": {}}
    event = WaitEvent.from_payload(payload)
    assert event.succeeded
    assert event.resource is None and event.resource_name == ""
    assert event.message == "Lightning job job-1 is completed"


def test_describe_shows_reason_extra_page_and_tail():
    event = SPEC.event(EventStatus.FAILED, STATE, "ended in phase failed: OOM", log_tail=["loading", "Killed"])
    text = event.describe("Lightning deployment my-api failed", extra="; it was scaled to zero",
                          page_label="Deployment page", tail_label="output lines")
    assert text == (
        "Lightning deployment my-api failed: ended in phase failed: OOM; it was scaled to zero. "
        "Deployment page: https://lightning.ai/acme/research/jobs/my-api?app_id=\n"
        "Last 2 output lines:\n"
        "    loading\n"
        "    Killed"
    )


def test_describe_without_page_or_tail_is_the_message_alone():
    event = WaitEvent(status=EventStatus.TIMEOUT, kind="job", resource_id="job-1", message="deadline passed")
    assert event.describe() == "deadline passed"
    assert event.describe("Job job-1") == "Job job-1: deadline passed"


def test_a_spec_asking_for_no_log_tail_gets_an_event_without_one():
    spec = WaitSpec(kind="job", resource_id="job-1", project_id="proj-7", log_tail_lines=0)
    wait = PhaseWait(spec, hook=None, log=logging.getLogger(__name__))  # type: ignore[arg-type]
    for number in range(5):
        wait.tail.append(("job-1", f"line {number}"))
    assert wait._event(EventStatus.FAILED, None, "ended in phase failed").log_tail == ()
