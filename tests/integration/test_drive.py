"""The teamspace drive, job artifacts and job results through the hook and the operators, against the simulator
over loopback (real HTTP, real presigned PUTs, real job processes writing artifacts)."""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path

import pytest
from airflow.sdk.exceptions import AirflowException
from task_context import context

from airflow_provider_lightning.api.drive import LightningDriveNotFound
from airflow_provider_lightning.api.results import LightningResultError
from airflow_provider_lightning.hooks.lightning import LightningHook
from airflow_provider_lightning.operators.drive import (
    LightningDriveDownloadOperator,
    LightningDriveUploadOperator,
    LightningJobArtifactsOperator,
)
from airflow_provider_lightning.operators.jobs import LightningJobOperator
from airflow_provider_lightning.operators.mmt import LightningMultiMachineJobOperator
from airflow_provider_lightning.sensors.drive import LightningDrivePathSensor

MiB = 1024 * 1024


@pytest.fixture(autouse=True)
def _upload_state(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW_LIGHTNING_UPLOAD_STATE_DIR", str(tmp_path / "upload-state"))


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def blob(path: Path, size: int, seed: int = 7) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    chunk = hashlib.sha256(str(seed).encode()).digest() * 4096  # 128 KiB of non-repeating-ish bytes
    with path.open("wb") as out:
        left = size
        while left:
            out.write(chunk[: min(left, len(chunk))])
            left -= min(left, len(chunk))
    return path


def storage_puts(sim) -> list[str]:
    return [r.path for r in sim.request_log.snapshot() if r.method == "PUT" and r.path.startswith("/__storage/")]


def studio_job(**kw):
    defaults = {"task_id": "train", "studio": "sim-studio", "poll_interval": 0.2, "deferrable": False}
    return LightningJobOperator(**{**defaults, **kw})


# -- the drive -----------------------------------------------------------------------------------------------


def test_a_file_uploaded_in_parts_is_listed_and_downloads_byte_for_byte(sim, tmp_path):
    folder = unique("data")
    local = blob(tmp_path / "big.bin", 12 * MiB + 123)
    result = LightningDriveUploadOperator(
        task_id="up", local_path=str(local), remote_path=f"/teamspace/{folder}/big.bin", part_size=5 * MiB,
        multipart_threshold=5 * MiB,
    ).execute(context())
    assert result["path"] == f"{folder}/big.bin" and result["size"] == local.stat().st_size
    assert result["uri"] == f"lit://{sim.owner_name}/{sim.teamspace_name}/{folder}/big.bin"
    assert sim.drive_path(f"{folder}/big.bin").read_bytes() == local.read_bytes()

    with LightningHook() as hook:
        entries = hook.list_drive(folder)
    assert [(e.path, e.size, e.is_dir) for e in entries] == [("big.bin", local.stat().st_size, False)]

    out = LightningDriveDownloadOperator(
        task_id="down", remote_path=f"{folder}/big.bin", local_path=str(tmp_path / "back.bin")
    ).execute(context())
    assert (tmp_path / "back.bin").read_bytes() == local.read_bytes()
    assert out["files"][0]["sha256"] == hashlib.sha256(local.read_bytes()).hexdigest()


def test_an_upload_takes_one_request_for_urls_one_put_per_part_and_one_complete(sim, tmp_path):
    local = blob(tmp_path / "f.bin", 11 * MiB)
    sim.request_log.clear()
    with LightningHook() as hook:
        [result] = hook.upload_to_drive(local, f"{unique('count')}/f.bin", threshold=5 * MiB, part_size=5 * MiB)
    paths = [(r.method, r.path.split("?")[0]) for r in sim.request_log.snapshot()
             if "/artifacts/" in r.path or r.path.startswith("/__storage/")]
    assert [m for m, _ in paths].count("PUT") == 3 == result.parts
    assert sum(1 for m, p in paths if m == "POST" and p.endswith("/artifacts/blobs")) == 1
    assert sum(1 for m, p in paths if p.endswith("/artifacts/blobs/complete")) == 1


def test_a_failed_part_is_sent_again_and_the_others_are_not(sim, tmp_path):
    local = blob(tmp_path / "f.bin", 11 * MiB)
    sim.request_log.clear()
    sim.set_faults(error_rate=1, only_paths=[r"^/__storage/[^/]+/2$"], max_faults=1)
    remote = f"{unique('retry')}/f.bin"
    with LightningHook() as hook:
        hook.upload_to_drive(local, remote, threshold=5 * MiB, part_size=5 * MiB, workers=1)
    parts = [p.split("?")[0].rsplit("/", 1)[1] for p in storage_puts(sim)]
    assert sorted(parts) == ["1", "2", "2", "3"]
    assert sim.drive_path(remote).read_bytes() == local.read_bytes()


def test_a_retried_upload_resumes_from_the_parts_the_first_try_stored(sim, tmp_path):
    local = blob(tmp_path / "f.bin", 16 * MiB)
    remote = f"{unique('resume')}/f.bin"
    # try 1: part 3 keeps failing until the retries run out, so the task fails with parts 1, 2 and 4 stored
    sim.set_faults(error_rate=1, only_paths=[r"^/__storage/[^/]+/3$"])
    op = LightningDriveUploadOperator(task_id="up", local_path=str(local), remote_path=remote,
                                      part_size=5 * MiB, multipart_threshold=5 * MiB, max_workers=1)
    with pytest.raises(Exception, match="part 3|storage answered 503"):
        op.execute(context(try_number=1))
    assert not sim.drive_path(remote).exists()
    sim.clear_faults()
    sim.request_log.clear()
    result = LightningDriveUploadOperator(task_id="up", local_path=str(local), remote_path=remote,
                                          part_size=5 * MiB, multipart_threshold=5 * MiB).execute(
        context(try_number=2))
    assert [p.split("?")[0].rsplit("/", 1)[1] for p in storage_puts(sim)] == ["3"]
    assert result["size"] == local.stat().st_size
    assert sim.drive_path(remote).read_bytes() == local.read_bytes()


def test_a_folder_uploads_and_downloads_with_its_tree(sim, tmp_path):
    src = tmp_path / "src"
    for rel, size in {"a.txt": 10, "sub/b.bin": 70_000, "sub/deep/c.txt": 0}.items():
        blob(src / rel, size, seed=size)
    remote = unique("tree")
    up = LightningDriveUploadOperator(task_id="up", local_path=str(src), remote_path=remote).execute(context())
    assert sorted(f["path"] for f in up["files"]) == [f"{remote}/a.txt", f"{remote}/sub/b.bin",
                                                     f"{remote}/sub/deep/c.txt"]
    LightningDriveDownloadOperator(task_id="down", remote_path=remote, local_path=str(tmp_path / "dst")).execute(
        context())
    for rel in ("a.txt", "sub/b.bin", "sub/deep/c.txt"):
        assert (tmp_path / "dst" / rel).read_bytes() == (src / rel).read_bytes()


def test_downloading_a_missing_path_fails_with_its_name_never_an_empty_download(sim, tmp_path):
    missing = f"{unique('nothing')}/here"
    with pytest.raises(LightningDriveNotFound, match=missing):
        LightningDriveDownloadOperator(task_id="down", remote_path=missing, local_path=str(tmp_path / "x")).execute(
            context())
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("bad", ["../etc/passwd", "a/../../b", "", "/"])
def test_a_bad_drive_path_is_refused_when_the_dag_is_parsed(sim, bad):
    sim.request_log.clear()
    with pytest.raises(ValueError, match="remote_path"):
        LightningDriveUploadOperator(task_id="up", local_path="/tmp/x", remote_path=bad)
    assert sim.request_log.snapshot() == []


def test_the_sensor_waits_until_the_path_exists_and_returns_its_size(sim, tmp_path):
    path = f"{unique('sensor')}/ready.flag"
    sensor = LightningDrivePathSensor(task_id="wait", path=path)
    assert sensor.poke(context()) is False
    sim.drive_path(path).parent.mkdir(parents=True, exist_ok=True)
    sim.drive_path(path).write_text("done")
    answer = sensor.poke(context())
    assert answer.is_done and answer.xcom_value["size"] == 4 and answer.xcom_value["is_dir"] is False


def test_a_credential_never_reaches_the_storage_urls(sim, tmp_path):
    local = blob(tmp_path / "f.bin", 6 * MiB)
    seen: list[dict] = []
    import httpx

    original = httpx.Client.send

    def spy(self, request, **kw):
        if "/__storage/" in request.url.path:
            seen.append(dict(request.headers))
        return original(self, request, **kw)

    httpx.Client.send = spy  # type: ignore[method-assign]
    try:
        with LightningHook() as hook:
            hook.upload_to_drive(local, f"{unique('nocred')}/f.bin", threshold=5 * MiB, part_size=5 * MiB)
    finally:
        httpx.Client.send = original  # type: ignore[method-assign]
    assert len(seen) == 2
    assert all("authorization" not in h and h["x-amz-server-side-encryption"] == "AES256" for h in seen)


# -- job artifacts and results -------------------------------------------------------------------------------


def test_a_studio_jobs_artifacts_are_listed_and_downloaded_and_its_path_is_in_xcom(sim, tmp_path):
    ctx = context(run_id=unique("artifacts"))
    result = studio_job(
        command='mkdir -p "$LIGHTNING_ARTIFACTS_DIR/ckpt" && echo weights > "$LIGHTNING_ARTIFACTS_DIR/ckpt/model.pt"'
                ' && echo \'{"loss": 0.1}\' > "$LIGHTNING_ARTIFACTS_DIR/metrics.json"',
    ).execute(ctx)
    assert result["artifacts_path"] == f"jobs/{result['job_name']}" == ctx["ti"].xcoms["artifacts_path"]
    listed = LightningJobArtifactsOperator(task_id="ls", job_name=result["job_name"]).execute(context())
    assert sorted(f["path"] for f in listed["files"]) == ["ckpt/model.pt", "metrics.json"]
    LightningJobArtifactsOperator(task_id="get", job_id=result["job_id"], local_dir=str(tmp_path / "a")).execute(
        context())
    assert (tmp_path / "a" / "ckpt" / "model.pt").read_text() == "weights\n"


def test_an_image_jobs_artifacts_go_to_its_destination(sim):
    result = studio_job(studio=None, image="python:3.12", artifacts_destination="s3:bucket:runs/x",
                        command='echo hi > "$LIGHTNING_ARTIFACTS_DIR/out.txt"').execute(context(run_id=unique("img")))
    assert result["artifacts_path"] == "s3_connections/bucket/runs/x"
    with LightningHook() as hook:
        assert [e.path for e in hook.list_job_artifacts(result["job_id"])] == ["out.txt"]


def test_an_image_job_without_destination_has_no_artifacts_and_says_why(sim):
    result = studio_job(studio=None, image="python:3.12", command="true").execute(context(run_id=unique("none")))
    assert result["artifacts_path"] is None
    with LightningHook() as hook, pytest.raises(LightningDriveNotFound, match="artifacts_destination"):
        hook.list_job_artifacts(result["job_id"])


def test_a_multi_machine_jobs_artifacts_are_per_machine(sim, tmp_path):
    result = LightningMultiMachineJobOperator(
        task_id="mmt", studio="sim-studio", num_machines=2, poll_interval=0.2, deferrable=False,
        command='echo "rank $NODE_RANK" > "$LIGHTNING_ARTIFACTS_DIR/rank.txt"',
    ).execute(context(run_id=unique("mmt")))
    names = sorted(result["artifacts_path"])
    assert len(names) == 2 and all(result["artifacts_path"][n] == f"jobs/{n}" for n in names)
    out = LightningJobArtifactsOperator(task_id="get", job_id=result["job_id"], kind="mmt",
                                        local_dir=str(tmp_path / "m")).execute(context())
    assert sorted(f["path"] for f in out["files"]) == ["rank.txt", "rank.txt"]
    assert {(tmp_path / "m" / n / "rank.txt").read_text().strip() for n in names} == {"rank 0", "rank 1"}


def test_a_jobs_json_result_is_the_tasks_return_value(sim):
    value = studio_job(
        read_result=True,
        command='echo \'{"accuracy": 0.93, "labels": ["a", "b"]}\' > "$LIGHTNING_ARTIFACTS_DIR/$AIRFLOW_LIGHTNING_RESULT_FILE"',
    ).execute(context(run_id=unique("result")))
    assert value == {"accuracy": 0.93, "labels": ["a", "b"]}


def test_a_failed_jobs_result_is_shown_in_the_error(sim):
    op = studio_job(read_result=True, command='echo \'{"reason": "diverged at step 42"}\' > '
                                               '"$LIGHTNING_ARTIFACTS_DIR/$AIRFLOW_LIGHTNING_RESULT_FILE"; exit 3')
    with pytest.raises(AirflowException, match="diverged at step 42"):
        op.execute(context(run_id=unique("failres")))


def test_a_job_that_writes_no_result_fails_with_where_it_was_expected(sim):
    with pytest.raises(AirflowException, match="without writing a result.*LIGHTNING_ARTIFACTS_DIR"):
        studio_job(read_result=True, command="true").execute(context(run_id=unique("nores")))


def test_an_oversize_result_fails_with_the_limit_and_what_to_do(sim):
    op = studio_job(read_result=True, max_result_bytes=100, command=(
        'python3 -c "import json,os; json.dump(list(range(500)), open(os.path.join('
        "os.environ['LIGHTNING_ARTIFACTS_DIR'], os.environ['AIRFLOW_LIGHTNING_RESULT_FILE']), 'w'))\""))
    with pytest.raises(LightningResultError, match="max_result_bytes=100.*artifacts"):
        op.execute(context(run_id=unique("big")))


def test_a_result_that_is_not_json_fails_clearly(sim):
    op = studio_job(read_result=True, command='echo "not json {" > "$LIGHTNING_ARTIFACTS_DIR/$AIRFLOW_LIGHTNING_RESULT_FILE"')
    with pytest.raises(LightningResultError, match="not valid JSON"):
        op.execute(context(run_id=unique("nojson")))


def test_read_result_on_an_image_job_without_destination_is_refused_at_parse_time(sim):
    with pytest.raises(ValueError, match="read_result needs"):
        LightningJobOperator(task_id="t", image="python:3.12", command="true", read_result=True)


def test_a_multi_machine_jobs_result_is_rank_zeros(sim):
    value = LightningMultiMachineJobOperator(
        task_id="mmt", studio="sim-studio", num_machines=2, poll_interval=0.2, deferrable=False, read_result=True,
        command='echo "{\\"rank\\": $NODE_RANK}" > "$LIGHTNING_ARTIFACTS_DIR/$AIRFLOW_LIGHTNING_RESULT_FILE"',
    ).execute(context(run_id=unique("mmtres")))
    assert value == {"rank": 0}


@pytest.mark.airflow_db
def test_the_result_is_read_after_a_deferred_wait_and_each_map_index_gets_its_own(sim, airflow_db):
    """dag.test() resumes with the event only (no defer kwargs): the result still comes back per map index."""
    from test_dag_test_regressions import get_dag, xcoms

    run = get_dag("data_result_deferred").test()
    assert run.state == "success"
    assert xcoms(run, "train", "return_value") == {-1: {"ok": True, "index": -1}}
    mapped = get_dag("data_result_mapped").test()
    assert mapped.state == "success"
    assert xcoms(mapped, "train", "return_value") == {0: {"ok": True, "index": 0}, 1: {"ok": True, "index": 1}}


def test_the_drive_asset_uri_is_normalised_and_checked(sim):
    from airflow.sdk import Asset

    from airflow_provider_lightning.assets import drive_asset, parse_uri

    asset = drive_asset("sim-org/sim-teamspace", "/teamspace/models//v1/ckpt.pt")
    assert asset.uri == "lightning://sim-org/sim-teamspace/models/v1/ckpt.pt"
    assert parse_uri(asset.uri) == ("sim-org/sim-teamspace", "models/v1/ckpt.pt")
    assert Asset("lightning://o/t/a//b").uri == "lightning://o/t/a/b"  # Airflow calls the registered handler
    with pytest.raises(ValueError):
        Asset("lightning://o/t/../x")


@pytest.mark.airflow_db
def test_an_upload_with_a_drive_asset_outlet_records_an_event_that_queues_the_dag_scheduled_on_it(sim, airflow_db,
                                                                                              tmp_path):
    from airflow.models.asset import AssetDagRunQueue, AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select
    from test_dag_test_regressions import get_dag

    local = blob(tmp_path / "model.bin", 4096)
    run = get_dag("data_upload_asset").test(run_conf={"local_path": str(local)})
    assert run.state == "success"
    uri = "lightning://sim-org/sim-teamspace/assets/uploaded/model.bin"
    with create_session() as session:
        asset = session.scalar(select(AssetModel).where(AssetModel.uri == uri))
        assert asset is not None
        events = session.scalars(select(AssetEvent).where(AssetEvent.asset_id == asset.id)).all()
        assert events and events[-1].extra["size"] == 4096 and events[-1].extra["files"] == 1
        queued = session.scalars(select(AssetDagRunQueue).where(AssetDagRunQueue.asset_id == asset.id)).all()
        assert "data_on_uploaded_asset" in {q.target_dag_id for q in queued}
    assert sim.drive_path("assets/uploaded/model.bin").read_bytes() == local.read_bytes()


@pytest.mark.airflow_db
def test_a_mapped_deferrable_retry_reattaches_and_returns_its_own_result(sim, airflow_db, monkeypatch):
    from conftest import conn_json
    from test_dag_test_regressions import get_dag, xcoms

    conn = json.loads(conn_json(sim))
    conn["extra"]["max_attempts"] = 1
    monkeypatch.setenv("AIRFLOW_CONN_LIGHTNING_ONCE", json.dumps(conn))
    sim.set_faults(error_rate=1.0, only_paths=[r"/jobs/job-[0-9a-f]+$"])
    run = get_dag("data_result_mapped_retry").test()
    tis = {ti.map_index: ti for ti in run.get_task_instances()}
    assert run.state == "success", {i: ti.state for i, ti in tis.items()}
    assert 2 in [tis[i].try_number for i in (0, 1)]  # a map index retried
    assert xcoms(run, "train", "return_value") == {0: {"ok": True, "index": 0}, 1: {"ok": True, "index": 1}}
    names = xcoms(run, "train", "job_name")
    assert not any(name.endswith("-t2") for name in names.values())  # re-attached, not submitted again
