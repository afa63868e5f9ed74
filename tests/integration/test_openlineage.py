"""OpenLineage: the facets the job, multi-machine and deployment operators report, against the simulator.

With the real ``apache-airflow-providers-openlineage`` package: the operators' ``get_openlineage_facets_on_*``
methods after a run, and once through the real listener (``dag.test()`` in a fresh interpreter, events written by
the file transport). No network: the simulator listens on loopback.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import uuid

import pytest
from airflow.providers.common.compat.sdk import AirflowException, TaskDeferred
from airflow.providers.openlineage.extractors import OperatorLineage
from openlineage.client.event_v2 import Dataset
from openlineage.client.facet_v2 import RunFacet
from openlineage.client.serde import Serde
from task_context import context

from airflow_provider_lightning.api.errors import LightningConfigError
from airflow_provider_lightning.openlineage import RUN_FACET_KEY, LightningRunFacet
from airflow_provider_lightning.operators.deployments import LightningDeploymentOperator
from airflow_provider_lightning.operators.jobs import LightningJobOperator
from airflow_provider_lightning.operators.mmt import LightningMultiMachineJobOperator
from airflow_provider_lightning.triggers.lightning import LightningPhaseTrigger

MOUNTS = {"/data": "training-bucket:imagenet/train", "/models": "model-store"}


def run_id() -> str:
    return f"ol-{uuid.uuid4().hex[:8]}"


def job_op(**kw):
    defaults = {"task_id": "train", "image": "python:3.12", "command": "echo hi", "machine": "A100",
                "poll_interval": 0.2, "deferrable": False}
    return LightningJobOperator(**{**defaults, **kw})


def facet_of(lineage) -> LightningRunFacet:
    assert isinstance(lineage, OperatorLineage)
    facet = lineage.run_facets[RUN_FACET_KEY]
    assert isinstance(facet, RunFacet) and type(facet).__name__ == "LightningRunFacet"
    return facet


def namespace(sim) -> str:
    return f"lightning://{sim.teamspace}"


async def _first_event(trigger):
    agen = trigger.run()
    try:
        return await agen.__anext__()
    finally:
        await agen.aclose()


def test_a_finished_job_reports_a_run_facet_equal_to_the_job_the_simulator_ran(sim):
    ctx = context(run_id=run_id())
    op = job_op(path_mappings=MOUNTS)
    result = op.execute(ctx)
    lineage = op.get_openlineage_facets_on_complete(ctx["ti"])
    facet = facet_of(lineage)
    job = sim.get_job(result["job_id"])
    assert (facet.resourceKind, facet.resourceId, facet.resourceName) == ("job", job["id"], job["name"])
    assert facet.phase == "completed" and job["state"] == "completed"
    assert facet.machine == job["spec"]["instanceName"] == "lit-a100-1"
    assert facet.totalCost == job["totalCost"] and facet.totalCost is not None
    assert facet.webUrl == ctx["ti"].xcoms["job_url"] == result["url"]
    assert facet.teamspace == sim.teamspace and facet.numMachines == 1 and facet.endpointUrls is None
    # the mounted data connections are the inputs; a container job keeps no artifact folder, so no output
    mounted = {(m["connectionName"], m["connectionPath"]) for m in job["spec"]["pathMappings"]}
    assert mounted == {("training-bucket", "imagenet/train"), ("model-store", "")}
    assert lineage.inputs == [
        Dataset(namespace=namespace(sim), name="data-connections/training-bucket/imagenet/train"),
        Dataset(namespace=namespace(sim), name="data-connections/model-store"),
    ]
    assert lineage.outputs == []


def test_the_run_facet_serializes_as_an_openlineage_custom_facet(sim):
    op = job_op()
    op.execute(context(run_id=run_id()))
    data = json.loads(Serde.to_json(facet_of(op.get_openlineage_facets_on_complete(None))))
    assert data["_producer"] and data["_schemaURL"].endswith("#/$defs/RunFacet")
    assert {"resourceKind", "resourceId", "resourceName", "phase", "webUrl", "teamspace", "machine", "totalCost",
            "numMachines"} <= set(data)
    assert "endpointUrls" not in data  # unset fields are left out, never sent as null


def test_a_studio_job_reports_its_artifact_folder_in_the_teamspace_drive_as_output(sim):
    op = job_op(image=None, studio="sim-studio", command="echo studio-ok")
    result = op.execute(context(run_id=run_id()))
    lineage = op.get_openlineage_facets_on_complete(None)
    assert facet_of(lineage).resourceName == result["job_name"]
    assert lineage.outputs == [Dataset(namespace=namespace(sim), name=f"jobs/{result['job_name']}")]
    assert lineage.inputs == []


def test_a_deferred_job_resumed_from_its_event_alone_reports_the_same_facet(sim):
    ctx = context(run_id=run_id())
    with pytest.raises(TaskDeferred) as deferred:
        job_op(deferrable=True, path_mappings=MOUNTS).execute(ctx)
    event = asyncio.run(_first_event(LightningPhaseTrigger(**deferred.value.trigger.serialize()[1])))
    resumed = job_op(deferrable=True, path_mappings=MOUNTS)  # a new worker process: a fresh operator
    result = resumed.execute_complete(ctx, event.payload)
    lineage = resumed.get_openlineage_facets_on_complete(None)
    facet = facet_of(lineage)
    assert (facet.resourceId, facet.phase, facet.webUrl) == (result["job_id"], "completed", ctx["ti"].xcoms["job_url"])
    assert facet.totalCost == sim.get_job(result["job_id"])["totalCost"]
    assert facet.teamspace == sim.teamspace  # from the connection: no API call to resolve it
    assert [d.name for d in lineage.inputs] == ["data-connections/training-bucket/imagenet/train",
                                                "data-connections/model-store"]


def test_a_resumed_job_whose_connection_names_only_a_project_id_reports_no_datasets(sim, monkeypatch):
    conn = {"conn_type": "lightning", "host": sim.url, "login": sim.user_id, "password": sim.api_key,
            "extra": {"project_id": sim.project_id}}
    monkeypatch.setenv("AIRFLOW_CONN_LIGHTNING_BY_ID", json.dumps(conn))
    ctx = context(run_id=run_id())
    with pytest.raises(TaskDeferred) as deferred:
        job_op(deferrable=True, path_mappings=MOUNTS, lightning_conn_id="lightning_by_id").execute(ctx)
    event = asyncio.run(_first_event(LightningPhaseTrigger(**deferred.value.trigger.serialize()[1])))
    resumed = job_op(deferrable=True, path_mappings=MOUNTS, lightning_conn_id="lightning_by_id")
    resumed.execute_complete(ctx, event.payload)
    lineage = resumed.get_openlineage_facets_on_complete(None)
    assert facet_of(lineage).teamspace is None and facet_of(lineage).phase == "completed"
    assert lineage.inputs == [] and lineage.outputs == []  # no namespace is made up


def test_a_job_not_waited_for_reports_its_phase_at_submission(sim):
    op = job_op(command="sleep 1", wait_for_completion=False)
    ctx = context(run_id=run_id())
    op.execute(ctx)
    facet = facet_of(op.get_openlineage_facets_on_complete(None))
    assert facet.resourceId == ctx["ti"].xcoms["job_id"] and facet.phase in ("pending", "running")


def test_a_multi_machine_run_reports_its_machine_count(sim):
    op = LightningMultiMachineJobOperator(task_id="ddp", image="nvcr.io/nvidia/pytorch:24.01-py3",
                                          command='echo "rank $NODE_RANK"', num_machines=3, machine="H100_X_8",
                                          poll_interval=0.2, deferrable=False)
    ctx = context(run_id=run_id())
    result = op.execute(ctx)
    lineage = op.get_openlineage_facets_on_complete(None)
    facet = facet_of(lineage)
    mmt = sim.get_mmt(result["job_id"])
    assert facet.resourceKind == "mmt" and facet.resourceId == mmt["id"] and facet.resourceName == mmt["name"]
    assert facet.numMachines == mmt["machines"] == 3
    assert facet.machine == mmt["spec"]["instanceName"] == "lit-h100-8"
    assert facet.phase == "completed" and facet.webUrl == ctx["ti"].xcoms["job_url"]
    assert facet.webUrl.endswith("?app_id=mmt")
    assert lineage.outputs == []  # each machine keeps its own artifacts: no single output


def test_a_deployment_reports_its_kind_id_phase_and_endpoint_urls(sim):
    name = f"ol-{uuid.uuid4().hex[:6]}"
    op = LightningDeploymentOperator(task_id="deploy", deployment_name=name, image="ghcr.io/x/srv:1",
                                     command="python serve.py", machine="L4", ports=[8000], poll_interval=0.2,
                                     timeout=30, deferrable=False)
    ctx = context(run_id=run_id())
    result = op.execute(ctx)
    lineage = op.get_openlineage_facets_on_complete(None)
    facet = facet_of(lineage)
    deployment = sim.get_deployment(name)
    assert (facet.resourceKind, facet.resourceId, facet.resourceName) == ("deployment", deployment["id"], name)
    assert facet.phase == "running" and facet.endpointUrls == result["urls"] and result["urls"]
    assert facet.webUrl == ctx["ti"].xcoms["deployment_url"] == result["web_url"]
    assert facet.machine == deployment["spec"]["instanceName"] and facet.numMachines is None
    assert facet.teamspace == sim.teamspace
    assert lineage.inputs == [] and lineage.outputs == []  # nothing known is read or written


def test_a_failed_job_still_reports_its_facets_with_the_failed_phase(sim):
    op = job_op(command="echo 'CUDA out of memory' >&2; exit 3", path_mappings=MOUNTS)
    ctx = context(run_id=run_id())
    with pytest.raises(AirflowException, match="CUDA out of memory"):
        op.execute(ctx)
    lineage = op.get_openlineage_facets_on_failure(ctx["ti"])
    facet = facet_of(lineage)
    job = sim.get_job(ctx["ti"].xcoms["job_id"])
    assert (facet.resourceId, facet.phase, job["state"]) == (job["id"], "failed", "failed")
    assert facet.webUrl == ctx["ti"].xcoms["job_url"] and len(lineage.inputs) == 2


def test_a_failed_deployment_still_reports_its_facets(sim):
    name = f"ol-fail-{uuid.uuid4().hex[:6]}"
    op = LightningDeploymentOperator(task_id="deploy", deployment_name=name, image="ghcr.io/x/srv:1",
                                     command="python serve.py", env={"LIGHTNING_SIM_DEPLOYMENT": "fail"},
                                     poll_interval=0.2, timeout=60, deferrable=False)
    with pytest.raises(AirflowException):
        op.execute(context(run_id=run_id()))
    facet = facet_of(op.get_openlineage_facets_on_failure(None))
    assert facet.resourceKind == "deployment" and facet.resourceName == name and facet.phase == "failed"


def test_the_task_as_parsed_reports_the_facets_of_the_copy_that_ran(sim):
    # Before Airflow 3.3 the listener calls the method on the task as parsed, while execute() ran on its copy
    # ti.task (prepare_for_execution): the facets come from the copy the task instance holds.
    parsed = job_op(path_mappings={"/data": "{{ 'training-bucket' }}:imagenet"})
    ran = parsed.prepare_for_execution()
    ran.path_mappings = {"/data": "training-bucket:imagenet"}  # rendered on the copy only
    ran.execute(context(run_id=run_id()))
    task_instance = type("RuntimeTaskInstanceStub", (), {"task": ran})()
    lineage = parsed.get_openlineage_facets_on_complete(task_instance)
    assert facet_of(lineage) == facet_of(ran.get_openlineage_facets_on_complete(task_instance))
    assert [d.name for d in lineage.inputs] == ["data-connections/training-bucket/imagenet"]
    assert parsed.get_openlineage_facets_on_complete(None) is None  # the parsed task itself ran nothing


def test_nothing_is_reported_before_a_job_was_submitted(sim):
    assert job_op().get_openlineage_facets_on_complete(None) is None
    op = job_op(image=None, studio="no-such-studio")
    with pytest.raises(LightningConfigError, match="no-such-studio"):  # the submission fails: no job to describe
        op.execute(context(run_id=run_id()))
    assert op.get_openlineage_facets_on_failure(None) is None


@pytest.mark.parametrize("missing", [
    ("airflow.providers.openlineage", "airflow.providers.openlineage.extractors"),
    ("openlineage", "openlineage.client", "openlineage.client.event_v2", "openlineage.client.facet_v2"),
])
def test_returns_none_when_the_openlineage_modules_cannot_be_imported(sim, monkeypatch, missing):
    op = job_op()
    op.execute(context(run_id=run_id()))
    assert op.get_openlineage_facets_on_complete(None) is not None
    for module in missing:
        monkeypatch.setitem(sys.modules, module, None)  # what `import` sees for a package that is not installed
    assert op.get_openlineage_facets_on_complete(None) is None
    assert op.get_openlineage_facets_on_failure(None) is None


def test_importing_the_operators_imports_nothing_of_openlineage_beyond_what_airflow_sdk_does():
    code = ("import sys, airflow.sdk; before = set(sys.modules); "
            "import airflow_provider_lightning.operators.jobs, airflow_provider_lightning.operators.mmt, "
            "airflow_provider_lightning.operators.deployments, airflow_provider_lightning.openlineage; "
            "print(sorted(m for m in set(sys.modules) - before if 'openlineage' in m or m.startswith('attr')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "['airflow_provider_lightning.openlineage']"


DAG_FILE = """
import pendulum
from airflow.sdk import DAG

from airflow_provider_lightning.operators.jobs import LightningJobOperator

with DAG("lightning_openlineage", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False):
    LightningJobOperator(task_id="train", image="python:3.12", command="echo trained", machine="A100",
                         path_mappings={"/data": "training-bucket:imagenet"}, deferrable=True, poll_interval=0.2)
    LightningJobOperator(task_id="broken", image="python:3.12", command="exit 3", deferrable=False,
                         poll_interval=0.2)
"""

RUN_DAG = """
import sys

try:
    from airflow.dag_processing.dagbag import DagBag
except ImportError:  # Airflow < 3.2
    from airflow.models.dagbag import DagBag

dag = DagBag(dag_folder=sys.argv[1]).get_dag("lightning_openlineage")
print("DAG RUN STATE", dag.test().state)
"""


@pytest.mark.airflow_db
def test_the_openlineage_listener_emits_the_lightning_run_facet_in_complete_and_fail_events(
    airflow_db, sim, tmp_path
):
    # A fresh interpreter, as a worker has: the provider's plugin registers the listener because a transport is
    # configured; dag.test() runs the tasks (the deferred one through its trigger) and the file transport writes
    # every event it emits.
    dags, events = tmp_path / "dags", tmp_path / "events.jsonl"
    dags.mkdir()
    (dags / "lightning_openlineage.py").write_text(textwrap.dedent(DAG_FILE))
    bundles = json.loads(os.environ["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"])
    bundles.append({"name": "openlineage-test", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                    "kwargs": {"path": str(dags)}})
    env = {
        **os.environ,
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(bundles),
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps({"type": "file", "log_file_path": str(events),
                                                       "append": True}),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "lightning-tests",
        "PYTHONWARNINGS": "ignore",
    }
    for var in ("OPENLINEAGE_URL", "OPENLINEAGE_CONFIG", "OPENLINEAGE_DISABLED", "AIRFLOW__OPENLINEAGE__DISABLED"):
        env.pop(var, None)
    done = subprocess.run([sys.executable, "-c", RUN_DAG, str(dags)], env=env, capture_output=True, text=True,
                          timeout=300)
    assert "DAG RUN STATE failed" in done.stdout, done.stdout[-3000:] + done.stderr[-3000:]
    emitted = [json.loads(line) for line in events.read_text().splitlines() if line.strip()]
    by_task = {(e["job"]["name"], e["eventType"]): e for e in emitted}

    complete = by_task[("lightning_openlineage.train", "COMPLETE")]
    facet = complete["run"]["facets"][RUN_FACET_KEY]
    job = sim.get_job(facet["resourceId"])
    assert (facet["resourceKind"], facet["resourceName"], facet["phase"]) == ("job", job["name"], "completed")
    assert facet["machine"] == job["spec"]["instanceName"] and facet["totalCost"] == job["totalCost"]
    assert facet["webUrl"].endswith(f"/{sim.teamspace}/jobs/{job['name']}?app_id=jobs")
    assert complete["inputs"] == [{"namespace": namespace(sim), "name": "data-connections/training-bucket/imagenet",
                                   "facets": {}}]

    failed = by_task[("lightning_openlineage.broken", "FAIL")]
    facet = failed["run"]["facets"][RUN_FACET_KEY]
    assert facet["phase"] == "failed" and sim.get_job(facet["resourceId"])["state"] == "failed"
