"""LightningHook's public per-kind methods (plain keyword arguments, waits that return the WaitEvent) against the
simulator over loopback HTTP, and the ``@task`` example of docs/hook.rst run with ``dag.test()``."""

from __future__ import annotations

import dataclasses
import inspect
import uuid
from pathlib import Path

import pytest

from airflow_provider_lightning.api.deployments import DeploymentSpec
from airflow_provider_lightning.api.errors import LightningConfigError
from airflow_provider_lightning.api.jobs import JobRequest
from airflow_provider_lightning.api.phases import Phase
from airflow_provider_lightning.hooks.lightning import LightningHook
from airflow_provider_lightning.triggers.contract import EventStatus

FAST = {"poll_interval": 0.1, "timeout": 30}
HOOK_EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "hook"
RUNNING, STOPPED = "CLOUD_SPACE_INSTANCE_STATE_RUNNING", "CLOUD_SPACE_INSTANCE_STATE_STOPPED"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def keyword_names(method) -> set[str]:
    return {p.name for p in inspect.signature(method).parameters.values() if p.kind is p.KEYWORD_ONLY}


@pytest.fixture
def studio(sim) -> str:
    name = unique("hook-studio")
    sim.add_studio(name)
    return name


# -- jobs --------------------------------------------------------------------------------------


def test_job_submitted_with_keyword_arguments_is_waited_on_until_completed(sim, capsys):
    hook = LightningHook()
    job = hook.submit_job(name=unique("kw-job"), image="python:3.12", command="echo hello; echo world",
                          env={"GREETING": "hi"}, machine="A100")
    event = hook.wait_for_job(job, stream_logs=True, **FAST)
    assert f"[{job.name}] hello" in capsys.readouterr().out  # streamed into the hook's (the task's) log
    assert event.succeeded and event.status is EventStatus.SUCCESS
    assert event.resource.phase is Phase.COMPLETED and event.resource_id == job.id and event.kind == "job"
    sent = sim.get_job(job.id)["spec"]
    assert sent["image"] == "python:3.12" and sent["instanceName"] == "lit-a100-1"
    assert [(e["name"], e["value"]) for e in sent["env"]] == [("GREETING", "hi")]
    assert [ln.message for ln in hook.job_logs(job.id)[0]] == ["hello", "world"]


def test_failing_job_ends_the_wait_with_its_exit_code_and_log_tail(sim):
    hook = LightningHook()
    job = hook.submit_job(name=unique("kw-fail"), image="python:3.12",
                          command="echo loading data; echo 'bad row 7' >&2; exit 3")
    event = hook.wait_for_job(job.id, **FAST)
    assert event.succeeded is False and event.status is EventStatus.FAILED
    assert event.resource.phase is Phase.FAILED
    assert "code 3" in event.message
    assert "loading data" in event.log_tail and "bad row 7" in event.log_tail


def test_wait_for_job_timeout_returns_a_timeout_event_and_leaves_the_job_running(sim):
    hook = LightningHook()
    job = hook.submit_job(name=unique("kw-slow"), image="python:3.12", command="sleep 30")
    event = hook.wait_for_job(job, poll_interval=0.1, timeout=0.5)
    assert event.status is EventStatus.TIMEOUT and not event.succeeded and "deadline" in event.message
    assert hook.get_job(job).phase in (Phase.PENDING, Phase.RUNNING)
    hook.stop_job(job)
    assert hook.wait_for_job(job, target_phases="stopped", **FAST).succeeded


def test_job_request_is_still_accepted_positionally(sim):
    hook = LightningHook()
    job = hook.submit_job(JobRequest(name=unique("req-job"), image="python:3.12", command="echo positional"))
    assert hook.wait_for_job(job, **FAST).succeeded


def test_multi_machine_job_from_keywords_is_read_found_and_waited_on_as_mmt(sim):
    hook = LightningHook()
    name = unique("kw-mmt")
    mmt = hook.submit_job(name=name, image="python:3.12", command="echo rank $NODE_RANK", num_machines=2)
    assert mmt.kind == "mmt" and sim.get_mmt(mmt.id)["machines"] == 2
    assert hook.find_job(name, kind="mmt").id == mmt.id and hook.find_job(name) is None
    event = hook.wait_for_job(mmt, **FAST)  # the state's kind is used
    assert event.succeeded and event.kind == "mmt"
    assert hook.get_job(mmt.id, kind="mmt").phase is Phase.COMPLETED


def test_submit_job_keywords_are_exactly_the_job_request_fields():
    assert keyword_names(LightningHook.submit_job) == {f.name for f in dataclasses.fields(JobRequest)}


def test_upsert_deployment_keywords_are_exactly_the_deployment_spec_fields_plus_the_owner():
    expected = {f.name for f in dataclasses.fields(DeploymentSpec)} | {"owner", "owner_note"}
    assert keyword_names(LightningHook.upsert_deployment) == expected


BAD_CALLS = [
    pytest.param(lambda h: h.submit_job(name="x", imgae="python:3.12"), TypeError, "imgae", id="unknown-keyword"),
    pytest.param(lambda h: h.submit_job(image="python:3.12", command="true"), TypeError, "name=", id="no-name"),
    pytest.param(lambda h: h.submit_job(name="x", image="python:3.12", machine="A1000"), ValueError, "A1000",
                 id="unknown-machine"),
    pytest.param(lambda h: h.submit_job(name="x", image="python:3.12", studio="s", command="true"), ValueError,
                 "exactly one of image", id="image-and-studio"),
    pytest.param(lambda h: h.submit_job(name="x", image="python:3.12", env={"N": 3}), ValueError, "'N'",
                 id="env-not-a-string"),
    pytest.param(lambda h: h.submit_job(JobRequest(name="x", image="python:3.12"), command="true"), TypeError,
                 "not both", id="request-and-keywords"),
    pytest.param(lambda h: h.submit_job({"name": "x"}), TypeError, "JobRequest", id="dict-for-request"),
    pytest.param(lambda h: h.wait_for_job("job-1", poll_interval=0), ValueError, "poll_interval",
                 id="zero-poll-interval"),
    pytest.param(lambda h: h.wait_for_job("job-1", kind="deployment"), ValueError, "'job' or 'mmt'",
                 id="job-wait-of-another-kind"),
    pytest.param(lambda h: h.wait_for_job("job-1", target_phases="done"), ValueError, "unknown phase",
                 id="unknown-target-phase"),
    pytest.param(lambda h: h.wait("nope", "x-1"), ValueError, "unknown Lightning resource kind", id="unknown-kind"),
    pytest.param(lambda h: h.upsert_deployment(name="api", image="srv:1", ports="8000"), ValueError, "ports",
                 id="ports-as-a-string"),
    pytest.param(lambda h: h.upsert_deployment(name="api", image="srv:1", replica=2), TypeError, "replica",
                 id="deployment-unknown-keyword"),
    pytest.param(lambda h: h.upsert_deployment(name="api", image="srv:1", owner="Run 7!"), ValueError, "owner",
                 id="deployment-owner-not-hex"),
    pytest.param(lambda h: h.wait_for_deployment("api", state="up"), ValueError, "'ready' or 'stopped'",
                 id="deployment-state"),
    pytest.param(lambda h: h.wait_for_deployment("api", timeout=-1), ValueError, "timeout", id="negative-timeout"),
    pytest.param(lambda h: h.start_studio("s", machine="A1000"), ValueError, "A1000", id="studio-machine"),
    pytest.param(lambda h: h.wait_for_studio("s", "started"), ValueError, "'running' or 'stopped'",
                 id="studio-state"),
    pytest.param(lambda h: h.run_in_studio("s", "  "), ValueError, "command", id="empty-command"),
]


@pytest.mark.parametrize(("call", "error", "named"), BAD_CALLS)
def test_bad_arguments_fail_before_any_request(sim, call, error, named):
    hook = LightningHook()
    sim.request_log.clear()
    with pytest.raises(error) as raised:
        call(hook)
    assert named in str(raised.value)
    assert list(sim.request_log) == []


# -- deployments -------------------------------------------------------------------------------


def test_deployment_from_keywords_is_waited_on_until_ready_then_stopped(sim):
    hook = LightningHook()
    name = unique("kw-api")
    upserted = hook.upsert_deployment(name=name, image="ghcr.io/x/srv:1", command="python serve.py", ports=[8000],
                                      env={"MODEL": "v1"})
    assert upserted.action == "created" and upserted.state.name == name
    ready = hook.wait_for_deployment(upserted.state.id, state="ready", **FAST)
    assert ready.succeeded and ready.resource.phase is Phase.RUNNING and ready.resource.detail["urls"]
    assert hook.get_deployment(upserted.state.id).phase is Phase.RUNNING
    again = hook.upsert_deployment(name=name, image="ghcr.io/x/srv:1", command="python serve.py", ports=[8000],
                                   env={"MODEL": "v1"})
    assert again.action == "unchanged"

    hook.stop_deployment(name)
    assert str(sim.get_deployment(name)["autoscaling"]["maxReplicas"]) == "0"
    stopped = hook.wait_for_deployment(name, state="stopped", **FAST)  # by name too
    assert stopped.succeeded and stopped.resource.phase is Phase.STOPPED
    assert hook.stop_deployment(name).phase is Phase.STOPPED  # already stopped: left alone


def test_upsert_deployment_masks_the_endpoint_token_for_task_code_too(sim):
    """@task users call the hook directly: the endpoint credential must be masked there, not only in the operator."""
    from airflow.sdk._shared.secrets_masker import redact

    token = f"endpoint-token-{uuid.uuid4().hex}"
    LightningHook().upsert_deployment(name=unique("masked"), image="ghcr.io/x/srv:1", command="python serve.py",
                                      ports=[8000], auth={"token": token})
    assert token not in str(redact(f"serving with {token}"))


def test_failing_deployment_ends_the_ready_wait_with_the_servers_reason(sim):
    hook = LightningHook()
    upserted = hook.upsert_deployment(name=unique("kw-bad-api"), image="ghcr.io/x/srv:1", command="python serve.py",
                                      env={"LIGHTNING_SIM_DEPLOYMENT": "fail"})
    event = hook.wait_for_deployment(upserted.state.id, **FAST)
    assert event.succeeded is False and event.status is EventStatus.FAILED
    assert upserted.state.name in event.message and event.resource.phase is Phase.FAILED


def test_stopping_a_deployment_that_does_not_exist_is_a_clear_error(sim):
    with pytest.raises(LightningConfigError, match="no Lightning deployment 'kw-missing'"):
        LightningHook().stop_deployment("kw-missing")


# -- Studios -----------------------------------------------------------------------------------


def test_studio_start_wait_run_commands_stop_and_wait_stopped(sim, studio):
    hook = LightningHook()
    assert hook.get_studio(studio).phase is Phase.STOPPED
    accepted = hook.start_studio(studio, machine="CPU")
    assert accepted.phase in (Phase.PENDING, Phase.RUNNING) and accepted.name == studio
    running = hook.wait_for_studio(studio, "running", **FAST)
    assert running.succeeded and sim.studio_phase(studio) == RUNNING

    ok = hook.run_in_studio(studio, "echo prepared > data.txt && cat data.txt && echo done", **FAST)
    assert ok["exit_code"] == 0 and ok["succeeded"] is True
    assert ok["output"].splitlines() == ["prepared", "done"] and ok["tail"] == ["prepared", "done"]
    assert (sim.studio_dir(studio) / "data.txt").read_text() == "prepared\n"

    failed = hook.run_in_studio(studio, "echo step 1; echo step 2; exit 3", output_tail_lines=1, **FAST)
    assert failed["exit_code"] == 3 and failed["succeeded"] is False
    assert "exit code 3" in failed["message"] and failed["tail"] == ["step 2"]

    hook.stop_studio(studio)
    stopped = hook.wait_for_studio(studio, "stopped", **FAST)
    assert stopped.succeeded and sim.studio_phase(studio) == STOPPED


def test_run_in_a_stopped_studio_fails_before_running_anything(sim, studio):
    with pytest.raises(LightningConfigError, match="not running; start it first"):
        LightningHook().run_in_studio(studio, "echo hi")
    assert sim.studio_commands(studio) == []


def test_start_on_another_machine_while_running_is_a_clear_error(sim, studio):
    hook = LightningHook()
    hook.start_studio(studio, machine="CPU")
    with pytest.raises(LightningConfigError, match="stop it first"):
        hook.start_studio(studio, machine="L4")
    assert hook.wait_for_studio(studio, "running", **FAST).succeeded
    hook.stop_studio(studio)


# -- the docs page's @task example -------------------------------------------------------------


@pytest.mark.airflow_db
def test_hook_docs_example_dag_runs_end_to_end(airflow_db, sim, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    # dag.test() serializes the DAG from a configured bundle: tests/conftest.py makes the example's folder one
    try:
        sim.studio_dir("my-studio")
    except KeyError:  # not made by an earlier run of this test in the session yet
        sim.add_studio("my-studio")
    bag = DagBag(dag_folder=str(HOOK_EXAMPLE))
    assert bag.import_errors == {}
    before = {job["id"] for job in sim.jobs()}

    dagrun = bag.get_dag("lightning_hook_tasks").test(run_conf={"poll_interval": 0.1})

    states = {ti.task_id: ti.state for ti in dagrun.get_task_instances()}
    assert dagrun.state == "success", states
    (job,) = [j for j in sim.jobs() if j["id"] not in before]
    assert job["state"] == "completed" and job["name"].startswith("nightly-train")
    assert any(c["command"].startswith("echo 'rows=1000'") and c["exitCode"] == 0
               for c in sim.studio_commands("my-studio"))
    assert sim.studio_phase("my-studio") == STOPPED
    deployment = sim.get_deployment("nightly-model-api")
    assert str(deployment["autoscaling"]["maxReplicas"]) == "0"
    assert [(e["name"], e["value"]) for e in deployment["spec"]["env"]] == [("MODEL_RUN", job["name"])]
