"""``@task.lightning`` under real Airflow: ``dag.test()`` of DAGs whose functions run as jobs of the simulator.

The DAG file (``DAG_FILE``) is written to a folder of its own that is added as a DAG bundle for these tests
(``dag.test()`` runs only DAGs of a configured bundle). Job functions run in the simulator's job processes: their
prints stream into the task log, their return value comes back through the teamspace drive.
"""

from __future__ import annotations

import json
import os
import textwrap
import uuid
from pathlib import Path

import pytest

from airflow_provider_lightning.hooks.lightning import LightningHook

pytestmark = pytest.mark.airflow_db

DAG_FILE = '''
"""DAGs of tests/integration/test_task_decorator.py."""

import pendulum
from airflow.sdk import DAG, task

START = pendulum.datetime(2026, 1, 1, tz="UTC")
MODES = {"blocking": False, "deferrable": True}
FAST = {"poll_interval": 0.2, "timeout": 120}


def summarize(rows, label="none"):
    print(f"summarizing {len(rows)} rows for {label}", flush=True)
    return {"count": len(rows), "total": sum(rows), "label": label}


def fails(value):
    print("starting the failing function", flush=True)
    raise ValueError(f"bad input {value}")


for mode, deferrable in MODES.items():
    with DAG(f"lt_studio_{mode}", schedule=None, start_date=START, catchup=False):
        task.lightning(studio="sim-studio", deferrable=deferrable, **FAST)(summarize)(
            [1, 2, 3], label="{{ dag_run.conf['label'] }}"
        )

    with DAG(f"lt_raises_{mode}", schedule=None, start_date=START, catchup=False):
        task.lightning(studio="sim-studio", deferrable=deferrable, **FAST)(fails)(42)


with DAG("lt_image", schedule=None, start_date=START, catchup=False):

    @task.lightning(image="python:3.12", artifacts_destination="s3:results:decorator/{{ dag_run.conf['name'] }}",
                    deferrable=True, **FAST)
    def in_image(path):
        import os

        return {"path": path, "exists": os.path.isdir(path), "artifacts": os.environ["LIGHTNING_ARTIFACTS_DIR"]}

    in_image("/teamspace/decorator-inputs")


with DAG("lt_mapped", schedule=None, start_date=START, catchup=False):

    @task.lightning(studio="sim-studio", deferrable=True, **FAST)
    def square(x):
        print(f"squaring {x}", flush=True)
        return x * x

    square.expand(x=[1, 2, 3])


with DAG("lt_bad_return", schedule=None, start_date=START, catchup=False):

    @task.lightning(studio="sim-studio", **FAST)
    def returns_a_set():
        return {1, 2}

    returns_a_set()


with DAG("lt_bad_argument", schedule=None, start_date=START, catchup=False):

    @task
    def upstream_time():
        return pendulum.datetime(2026, 1, 2, tz="UTC")

    @task.lightning(studio="sim-studio", **FAST)
    def uses_time(when):
        return str(when)

    uses_time(upstream_time())


with DAG("lt_multi_machine", schedule=None, start_date=START, catchup=False):

    @task.lightning(image="python:3.12", num_machines=2, machine="H100_X_8",
                    artifacts_destination="s3:results:decorator-mmt/{{ dag_run.conf['name'] }}", **FAST)
    def every_rank():
        import os

        rank = os.environ.get("NODE_RANK", "0")
        print(f"hello from rank {rank} of {os.environ.get('WORLD_SIZE')}", flush=True)
        return {"rank": rank}

    every_rank()


with DAG("lt_secret_env", schedule=None, start_date=START, catchup=False):

    @task.lightning(studio="sim-studio", env={"TOKEN": {"fromSecret": "{{ dag_run.conf['secret'] }}"},
                                              "PLAIN": "literal"}, **FAST)
    def reads_the_secret(expected):
        import os

        return {"matches": os.environ["TOKEN"] == expected, "plain": os.environ["PLAIN"]}

    reads_the_secret("{{ dag_run.conf['value'] }}")


with DAG("lt_requirements", schedule=None, start_date=START, catchup=False):

    @task.lightning(studio="sim-studio", requirements=["pip"], **FAST)
    def pip_version():
        from importlib.metadata import version

        return version("pip")

    pip_version()


with DAG("lt_multiple_outputs", schedule=None, start_date=START, catchup=False):

    @task.lightning(studio="sim-studio", multiple_outputs=True, deferrable=True, **FAST)
    def metrics():
        return {"loss": 0.25, "epochs": [1, 2]}

    @task
    def check(loss, epochs):
        assert loss == 0.25 and epochs == [1, 2], (loss, epochs)
        return "checked"

    out = metrics()
    check(out["loss"], out["epochs"])
'''


@pytest.fixture(scope="module")
def dag_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("task-decorator-dags")
    (folder / "lightning_task_decorator.py").write_text(textwrap.dedent(DAG_FILE))
    return folder


@pytest.fixture
def dags(dag_folder, monkeypatch, airflow_db, sim):
    """The DagBag of DAG_FILE, its folder a configured bundle while the test runs."""
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow < 3.2
        from airflow.models.dagbag import DagBag

    bundles = json.loads(os.environ["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"])
    bundles.append({"name": "task-decorator", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                    "kwargs": {"path": str(dag_folder)}})
    monkeypatch.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", json.dumps(bundles))
    bag = DagBag(dag_folder=str(dag_folder))
    assert bag.import_errors == {}
    return bag


def run(dags, dag_id: str, **conf):
    dagrun = dags.get_dag(dag_id).test(run_conf=conf or None)
    return dagrun, {ti.task_id: ti.state for ti in dagrun.get_task_instances()}


def xcoms(dagrun, task_id: str, key: str = "return_value") -> dict[int, object]:
    """Every map index's value of one XCom key."""
    from test_dag_test_regressions import xcoms as read

    return read(dagrun, task_id, key)


def printed(capsys) -> str:
    """What dag.test() logged (the task logs go to stdout)."""
    from test_dag_test_regressions import printed as read

    return read(capsys)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def job_posts(sim) -> int:
    """How many jobs and multi-machine jobs were submitted to the simulator so far."""
    return len([r for r in sim.request_log.snapshot()
                if r.method == "POST" and r.path.rstrip("/").endswith(("/jobs", "/multi-machine-jobs"))])


@pytest.mark.parametrize("mode", ["blocking", "deferrable"])
def test_a_studio_job_function_returns_its_dict_as_the_xcom_and_its_prints_reach_the_task_log(dags, sim, capsys,
                                                                                              mode):
    label, before = unique("label"), job_posts(sim)
    dagrun, states = run(dags, f"lt_studio_{mode}", label=label)
    assert dagrun.state == "success", states
    assert job_posts(sim) == before + 1
    assert xcoms(dagrun, "summarize") == {-1: {"count": 3, "total": 6, "label": label}}
    job_name = xcoms(dagrun, "summarize", "job_name")[-1]
    assert job_name.startswith(f"lt_studio_{mode}-summarize-")
    assert f"summarizing 3 rows for {label}" in printed(capsys)  # streamed from the job into the task log
    assert json.loads((sim.drive_path(f"jobs/{job_name}") / "airflow_result.json").read_text())["label"] == label


def test_an_image_job_with_artifacts_destination_returns_its_value_and_gets_drive_paths(dags, sim):
    name = unique("image")
    (sim.drive_path("decorator-inputs")).mkdir(parents=True, exist_ok=True)
    dagrun, states = run(dags, "lt_image", name=name)
    assert dagrun.state == "success", states
    value = xcoms(dagrun, "in_image")[-1]
    assert value["path"] == str(sim.drive_path("decorator-inputs"))  # the /teamspace argument is on the drive
    assert value["exists"] is True
    assert Path(value["artifacts"]) == sim.drive_path(f"s3_connections/results/decorator/{name}")
    assert (sim.drive_path(f"s3_connections/results/decorator/{name}") / "airflow_result.json").exists()
    assert xcoms(dagrun, "in_image", "artifacts_path")[-1] == f"s3_connections/results/decorator/{name}"


def test_an_expanded_function_returns_its_own_value_for_each_map_index(dags, sim, capsys):
    dagrun, states = run(dags, "lt_mapped")
    assert dagrun.state == "success", states
    assert xcoms(dagrun, "square") == {0: 1, 1: 4, 2: 9}
    names = xcoms(dagrun, "square", "job_name")
    assert len(set(names.values())) == 3  # one job per map index
    logged = printed(capsys)
    assert all(f"squaring {x}" in logged for x in (1, 2, 3))


@pytest.mark.parametrize("mode", ["blocking", "deferrable"])
def test_a_function_that_raises_fails_the_task_with_the_remote_traceback(dags, dag_folder, sim, capsys, mode):
    dagrun, states = run(dags, f"lt_raises_{mode}")
    assert dagrun.state == "failed" and states["fails"] == "failed"
    logged = printed(capsys)
    assert "starting the failing function" in logged  # streamed before it failed
    # the task's error (not only the streamed log): the job's exception and where in the DAG file it was raised
    error = logged[logged.index("AirflowException: Lightning job"):]
    head, remote = error.split("Remote traceback:\n", 1)
    assert head.rstrip().endswith("ValueError: bad input 42")
    source = (dag_folder / "lightning_task_decorator.py").read_text().splitlines()
    line = next(i for i, text in enumerate(source, 1) if 'raise ValueError(f"bad input {value}")' in text)
    assert remote.startswith("Traceback (most recent call last):\n"
                             f'  File "{dag_folder / "lightning_task_decorator.py"}", line {line}, in fails\n'
                             '    raise ValueError(f"bad input {value}")\n'
                             "ValueError: bad input 42\n")


def test_a_return_value_that_is_not_json_fails_with_a_clear_error(dags, sim, capsys):
    dagrun, states = run(dags, "lt_bad_return")
    assert dagrun.state == "failed", states
    logged = printed(capsys)
    assert "the return value of returns_a_set is not JSON-serialisable" in logged
    assert "set is not JSON serializable" in logged


def test_an_argument_that_is_not_json_fails_before_any_job_is_submitted(dags, sim, capsys):
    before = job_posts(sim)
    dagrun, states = run(dags, "lt_bad_argument")
    assert dagrun.state == "failed" and states == {"upstream_time": "success", "uses_time": "failed"}
    assert "argument 'when' of uses_time() is not JSON-serialisable (DateTime" in printed(capsys)
    assert job_posts(sim) == before
    assert not [job for job in sim.jobs() if job["name"].startswith("lt_bad_argument")]


def test_on_two_machines_every_rank_runs_and_the_result_is_rank_zeros(dags, sim, capsys):
    dagrun, states = run(dags, "lt_multi_machine", name=unique("mmt"))
    assert dagrun.state == "success", states
    assert xcoms(dagrun, "every_rank")[-1] == {"rank": "0"}
    logged = printed(capsys)
    assert "hello from rank 0 of 2" in logged and "hello from rank 1 of 2" in logged
    (mmt,) = [m for m in sim.mmts() if m["name"] == xcoms(dagrun, "every_rank", "job_name")[-1]]
    assert {job["state"] for job in sim.mmt_jobs(mmt["id"])} == {"completed"}


def test_an_env_value_from_a_secret_reaches_the_function(dags, sim, capsys):
    secret, value = f"DECO_{uuid.uuid4().hex[:8].upper()}", f"s3cret-{uuid.uuid4().hex[:6]}"
    with LightningHook() as hook:
        hook.set_secret(secret, value)
    dagrun, states = run(dags, "lt_secret_env", secret=secret, value=value)
    assert dagrun.state == "success", states
    assert xcoms(dagrun, "reads_the_secret")[-1] == {"matches": True, "plain": "literal"}
    job = sim.get_job(xcoms(dagrun, "reads_the_secret", "job_id")[-1])
    assert {"name": "TOKEN", "value": "", "fromSecret": secret} in job["spec"]["env"]


def test_requirements_are_installed_before_the_function_runs(dags, sim):
    dagrun, states = run(dags, "lt_requirements")
    assert dagrun.state == "success", states
    version = xcoms(dagrun, "pip_version")[-1]
    assert isinstance(version, str) and version[0].isdigit()
    job = sim.get_job(xcoms(dagrun, "pip_version", "job_id")[-1])
    assert job["spec"]["command"].startswith("python3 -m pip install --quiet pip && python3 - <<'")


def test_multiple_outputs_pushes_each_key_of_the_returned_dict(dags, sim):
    dagrun, states = run(dags, "lt_multiple_outputs")
    assert dagrun.state == "success", states
    assert xcoms(dagrun, "metrics", "loss") == {-1: 0.25}
    assert xcoms(dagrun, "metrics", "epochs") == {-1: [1, 2]}
    assert xcoms(dagrun, "check") == {-1: "checked"}


def test_the_decorator_is_found_as_task_lightning():
    from airflow.sdk import task

    from airflow_provider_lightning.decorators.lightning import lightning_task

    assert task.lightning is lightning_task
