"""The official ``lightning-sdk``, unchanged, uploads (single-part and multipart), lists and downloads teamspace drive
files and job artifacts against the simulator (in a subprocess, like the other SDK compatibility tests)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from lightning_simulator import LightningSimulator

from .test_lightning_sdk_compat import run_sdk

pytestmark = [
    pytest.mark.sdk,
    pytest.mark.skipif(
        importlib.util.find_spec("lightning_sdk") is None,
        reason="lightning-sdk is not installed (pip install lightning-sdk) — SDK compatibility not checked",
    ),
]

DRIVE_FLOW = r'''
import json, warnings
from pathlib import Path
from lightning_sdk import Job, Machine, Teamspace

warnings.simplefilter("ignore")  # "No cloud account specified. Using teamspace default cloud account"
out = {}
ts = Teamspace("sim-teamspace", org="sim-org")
Path("small.txt").write_text("hello drive\n")
big = bytes(range(256)) * 10 + b"tail"  # 2564 bytes: 3 parts of at most 1000 bytes
Path("big.bin").write_bytes(big)
ts.upload_file("small.txt", "data/small.txt", progress_bar=False)
ts.upload_file("big.bin", "/teamspace/data/nested/big.bin", progress_bar=False)

out["root"] = [[e.path, e.is_dir, e.size, e.cloud_account] for e in ts.list_files()]
out["data"] = [[e.path, e.is_dir, e.size] for e in ts.list_files("data")]
out["recursive"] = [[e.path, e.is_dir, e.size] for e in ts.list_files("data", recursive=True)]
out["modified"] = all(e.last_modified is not None for e in ts.list_files("data", recursive=True))
ts.download_file("data/nested/big.bin", "dl/big.bin")
out["download_file"] = Path("dl/big.bin").read_bytes() == big
ts.download_folder("data", "dl-folder")
out["download_folder"] = sorted(
    [str(p.relative_to("dl-folder")), p.stat().st_size] for p in Path("dl-folder").rglob("*") if p.is_file()
)
out["folder_big"] = Path("dl-folder/nested/big.bin").read_bytes() == big

job = Job.run(
    name="sdk-artifacts", machine=Machine.CPU, studio="sim-studio", teamspace="sim-teamspace", org="sim-org",
    command='mkdir -p "$LIGHTNING_ARTIFACTS_DIR/ckpt" && echo weights > "$LIGHTNING_ARTIFACTS_DIR/ckpt/model.pt"'
            ' && echo done > "$LIGHTNING_ARTIFACTS_DIR/log.txt"',
)
job.wait(timeout=60, interval=0.2)
out["job_status"] = str(job.status)
out["artifacts_uri"] = job.artifacts_uri
out["artifacts"] = [[e.path, e.is_dir, e.size] for e in job.list_artifacts()]
out["artifacts_recursive"] = [[e.path, e.is_dir, e.size] for e in job.list_artifacts(recursive=True)]
job.download_artifacts("artifacts")
out["downloaded_artifacts"] = sorted(
    [str(p.relative_to("artifacts")), p.read_text()] for p in Path("artifacts").rglob("*") if p.is_file()
)

ddp = Job.run(
    name="sdk-ddp-artifacts", machine=Machine.CPU, studio="sim-studio", teamspace="sim-teamspace", org="sim-org",
    num_machines=2, command='echo "rank $NODE_RANK" > "$LIGHTNING_ARTIFACTS_DIR/rank.txt"',
)
ddp.wait(timeout=60, interval=0.2)
out["ddp_artifacts"] = sorted([e.path, e.is_dir, e.size] for e in ddp.list_artifacts())
ddp.download_artifacts("ddp")
out["ddp_downloaded"] = sorted(
    [str(p.relative_to("ddp")), p.read_text()] for p in Path("ddp").rglob("*") if p.is_file()
)
print("RESULT " + json.dumps(out))
'''


def test_unchanged_lightning_sdk_uploads_lists_and_downloads_drive_files_and_job_artifacts(tmp_path: Path) -> None:
    with LightningSimulator(pending_seconds=0.1, stop_seconds=0.1) as sim:
        # one injected 503 on the first PUT of part 2: the SDK re-signs that part and PUTs it again
        sim.set_faults(error_rate=1.0, only_paths=[r"^/__storage/[^/]+/2$"], max_faults=1)
        out = run_sdk(
            sim,
            DRIVE_FLOW,
            tmp_path,
            LIGHTNING_MULTIPART_THRESHOLD="1000",  # read by the SDK's uploader when it is created
            LIGHTNING_MULTI_PART_PART_SIZE="1000",
        )

        assert out["root"] == [["data", True, None, "lightning-public-prod"]]
        assert out["data"] == [["nested", True, None], ["small.txt", False, 12]]
        assert out["recursive"] == [["nested/big.bin", False, 2564], ["small.txt", False, 12]]
        assert out["modified"] is True
        assert out["download_file"] is True
        assert out["download_folder"] == [["nested/big.bin", 2564], ["small.txt", 12]]
        assert out["folder_big"] is True
        assert sim.drive_path("data/nested/big.bin").stat().st_size == 2564

        uploads = {u["path"]: u for u in sim.store.drive.completed_uploads}
        assert (uploads["data/small.txt"]["parts"], uploads["data/small.txt"]["multipart"]) == (1, False)
        assert (uploads["data/nested/big.bin"]["parts"], uploads["data/nested/big.bin"]["multipart"]) == (3, True)
        big_id = uploads["data/nested/big.bin"]["uploadId"]
        part_puts = [r.status for r in sim.request_log if r.path.startswith(f"/__storage/{big_id}/")]
        assert sorted(part_puts) == [200, 200, 200, 503]
        assert sim.faults.injected == 1
        posts = [r for r in sim.request_log if r.method == "POST" and r.path.endswith("/artifacts/blobs")]
        assert len(posts) == 3  # single part, multipart, then the re-sign of part 2

        assert out["job_status"] == "Completed"
        assert out["artifacts_uri"] == "lit://sim-org/sim-teamspace/jobs/sdk-artifacts"
        assert out["artifacts"] == [["ckpt", True, None], ["log.txt", False, 5]]
        assert out["artifacts_recursive"] == [["ckpt/model.pt", False, 8], ["log.txt", False, 5]]
        assert out["downloaded_artifacts"] == [["ckpt/model.pt", "weights\n"], ["log.txt", "done\n"]]

        assert out["ddp_artifacts"] == [
            ["sdk-ddp-artifacts-0/rank.txt", False, 7],
            ["sdk-ddp-artifacts-1/rank.txt", False, 7],
        ]
        assert out["ddp_downloaded"] == [
            ["sdk-ddp-artifacts-0/rank.txt", "rank 0\n"],
            ["sdk-ddp-artifacts-1/rank.txt", "rank 1\n"],
        ]
        failures = [r for r in sim.request_log if r.status >= 400 and r.status != 503]
        assert failures == []
        assert all(r.has_auth for r in sim.request_log.matching(path_prefix="/v1/"))
        assert not any(r.has_auth for r in sim.request_log.matching(path_prefix="/__storage/"))
