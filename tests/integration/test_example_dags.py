"""The example DAGs under real Airflow: DagBag import and dag.test() end to end against the simulator."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "example_dags"
pytestmark = pytest.mark.airflow_db


def load_dagbag():
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 3.1 (make test-floor)
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]

    return DagBag(dag_folder=str(EXAMPLES))


def test_example_dags_import_without_errors_or_deprecation_warnings(airflow_db):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dagbag = load_dagbag()
    assert dagbag.import_errors == {}
    assert {"example_lightning_job", "example_lightning_mmt", "example_lightning_deployment", "example_lightning_studio",
            "example_lightning_schedule_manage", "lightning_schedule_nightly-refresh",
            "lightning_schedule_stop-studio-evenings"} <= set(dagbag.dag_ids)
    mapped = dagbag.get_dag("lightning_schedule_nightly-refresh")
    expression = getattr(mapped.timetable, "expression", None) or mapped.timetable._expression  # 3.1: core class
    assert expression == "0 3 * * *" and mapped.max_active_runs == 1
    ours = [w for w in caught if "airflow_provider_lightning" in str(w.filename) or "example_dags" in str(w.filename)]
    assert not ours, [str(w.message) for w in ours]


@pytest.mark.parametrize("deferrable", [True, False], ids=["deferrable", "blocking"])
def test_example_job_dag_runs_end_to_end(airflow_db, sim, monkeypatch, deferrable):
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", str(deferrable))
    dag = load_dagbag().get_dag("example_lightning_job")
    assert dag.get_task("train").deferrable is deferrable
    before = {job["id"] for job in sim.jobs()}
    triggers_before = count_our_triggers()
    dagrun = dag.test()
    assert dagrun.state == "success"
    new_jobs = [job for job in sim.jobs() if job["id"] not in before]
    assert sorted(job["state"] for job in new_jobs) == ["completed", "completed"]
    states = {ti.task_id: ti.state for ti in dagrun.get_task_instances()}
    assert set(states.values()) == {"success"}, states
    # deferrable: both job tasks deferred (the sensor found its job already done); blocking: none did
    assert count_our_triggers() - triggers_before == (2 if deferrable else 0)
    link = xcom_value(dagrun, "train", "_link_LightningJobLink")
    assert link == xcom_value(dagrun, "train", "job_url") and "/jobs/example_lightning_job-train-" in link


def count_our_triggers() -> int:
    from airflow.models.trigger import Trigger
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    with create_session() as session:
        query = select(func.count()).select_from(Trigger).where(Trigger.classpath.like("%LightningPhaseTrigger"))
        return int(session.scalar(query) or 0)


def xcom_value(dagrun, task_id: str, key: str):
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        row = session.scalars(select(XComModel).where(
            XComModel.run_id == dagrun.run_id, XComModel.task_id == task_id, XComModel.key == key)).first()
        return XComModel.deserialize_value(row) if row is not None else None


def test_example_mmt_dag_runs_end_to_end_deferred(airflow_db, sim, monkeypatch):
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "True")
    dag = load_dagbag().get_dag("example_lightning_mmt")
    before = {mmt["id"] for mmt in sim.mmts()}
    dagrun = dag.test()
    assert dagrun.state == "success"
    (mmt,) = [m for m in sim.mmts() if m["id"] not in before]
    assert mmt["state"] == "MultiMachineJob_STATE_COMPLETED" and mmt["machines"] == 2
    assert xcom_value(dagrun, "train_ddp", "_link_LightningMultiMachineJobLink").endswith("?app_id=mmt")


def test_example_deployment_dag_trains_deploys_calls_the_service_and_stops_it(airflow_db, sim, monkeypatch):
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "True")
    dag = load_dagbag().get_dag("example_lightning_deployment")
    dagrun = dag.test()
    states = {ti.task_id: ti.state for ti in dagrun.get_task_instances()}
    assert dagrun.state == "success", states
    deployment = sim.get_deployment("example-model-api")
    assert int(deployment["replicas"]) == 0  # stopped at the end
    assert any(e["name"] == "MODEL_RUN" and e["value"].startswith("example_lightning_deployment-train-")
               for e in deployment["spec"]["env"])
    answer = xcom_value(dagrun, "call_model", "return_value")
    assert answer["path"].endswith("/predict") and answer["body"] == {"inputs": [1.0, 2.0, 3.0]}
    link = xcom_value(dagrun, "deploy", "_link_LightningDeploymentLink")
    assert link.endswith("/jobs/example-model-api")


def test_example_studio_dag_starts_prepares_trains_and_stops(airflow_db, sim, monkeypatch):
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "True")
    dagrun = load_dagbag().get_dag("example_lightning_studio").test()
    states = {ti.task_id: ti.state for ti in dagrun.get_task_instances()}
    assert dagrun.state == "success", states
    assert (sim.studio_dir("sim-studio") / "data" / "rows.txt").read_text().count("\n") == 1000
    assert sim.studio_phase("sim-studio") == "CLOUD_SPACE_INSTANCE_STATE_STOPPED"
    assert any(c["command"].startswith("mkdir -p data") and c["exitCode"] == 0 for c in sim.studio_commands("sim-studio"))


@pytest.fixture
def serving_sim(monkeypatch):
    """A simulator whose deployments run their command as a real server (the session one echoes)."""
    from conftest import conn_json
    from lightning_simulator import LightningSimulator

    with LightningSimulator(pending_seconds=0.2) as sim:
        monkeypatch.setenv("AIRFLOW_CONN_LIGHTNING_DEFAULT", conn_json(sim))
        yield sim


def test_example_train_deploy_dag_trains_evaluates_deploys_the_checkpoint_and_calls_it(
    airflow_db, serving_sim, monkeypatch, capsys
):
    sim = serving_sim
    token = "example-token-1234567890"
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "True")
    monkeypatch.setenv("AIRFLOW_VAR_MODEL_API_TOKEN", token)
    dagrun = load_dagbag().get_dag("example_lightning_train_deploy").test()
    states = {ti.task_id: ti.state for ti in dagrun.get_task_instances()}
    assert dagrun.state == "success", states
    trained = xcom_value(dagrun, "train", "return_value")
    assert trained["checkpoint"] == "models/example/checkpoint.json" and trained["loss"] < 1e-3
    assert xcom_value(dagrun, "evaluate", "return_value")["passed"] is True
    # the served process loaded the trained checkpoint: y = 2x + 1 on the inputs 0, 1, 2
    outputs = xcom_value(dagrun, "call_model", "return_value")["outputs"]
    assert [round(y, 2) for y in outputs] == [1.0, 3.0, 5.0]
    assert sim.drive_path("models/example/checkpoint.json").is_file()
    assert int(sim.get_deployment("example-trained-model")["replicas"]) == 0
    assert sim.store.secrets.value(sim.project_id, "MODEL_API_TOKEN") == token
    out = capsys.readouterr()
    assert token not in out.out + out.err  # the model token is masked in every log line


def test_the_checkpoint_dag_is_scheduled_on_the_asset_the_training_task_writes(airflow_db):
    dagbag = load_dagbag()
    train = dagbag.get_dag("example_lightning_train_deploy").get_task("train")
    consumer = dagbag.get_dag("example_lightning_on_checkpoint")
    (outlet,) = train.outlets
    assert outlet.uri == "lightning://sim-org/sim-teamspace/models/example/checkpoint.json"
    condition = consumer.timetable.asset_condition
    assert [asset.uri for asset in condition.objects] == [outlet.uri]
