"""Teamspace drive throughput on loopback: a 200 MB file uploaded and downloaded through the simulator, side by side
with ``cp`` of the same file, a naive one-PUT upload, and (when installed) the official ``lightning-sdk``.

Prints MB/s and the HTTP requests each upload and download made (read from the simulator's request log).
``--size-mb N`` changes the file size; ``--repeat N`` keeps the best of N runs of each.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common
from lightning_simulator import LightningSimulator

from airflow_provider_lightning.hooks.lightning import LightningHook

MB = 1_000_000
MiB = 1024 * 1024


def make_file(path: Path, size: int) -> None:
    block = os.urandom(4 * MiB)
    with path.open("wb") as out:
        left = size
        while left:
            n = min(left, len(block))
            out.write(block[:n])
            left -= n


def requests_since(sim, mark: int) -> int:
    return len(sim.request_log.snapshot()) - mark


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def sdk_upload_download(sim, local: Path, remote: str, back: Path) -> tuple[float, float] | None:
    """The official client's Teamspace.upload_file / download_file in a subprocess (its own process, its own env)."""
    code = f"""
import json, time
from lightning_sdk import Teamspace
ts = Teamspace(name={sim.teamspace_name!r}, org={sim.owner_name!r})
t = time.perf_counter(); ts.upload_file({str(local)!r}, {remote!r}, progress_bar=False)
up = time.perf_counter() - t
t = time.perf_counter(); ts.download_file({remote!r}, {str(back)!r})
print(json.dumps([up, time.perf_counter() - t]))
"""
    try:
        import lightning_sdk  # noqa: F401
    except ImportError:
        return None
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, **sim.client_env()}, capture_output=True,
                         text=True, timeout=600)
    if out.returncode != 0:
        print(f"   (official SDK run failed: {out.stderr.strip().splitlines()[-1:]})")
        return None
    up, down = json.loads(out.stdout.strip().splitlines()[-1])
    return up, down


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    size = args.size_mb * MB
    work = Path(tempfile.mkdtemp(prefix="lightning-drive-bench-"))
    rows: list[tuple[str, str, float, str]] = []
    try:
        local = work / "blob.bin"
        make_file(local, size)
        with LightningSimulator(pending_seconds=0.2) as sim:
            _common.point_default_connection_at(sim)
            hook = LightningHook()
            hook.default_cloud_account()  # resolved once per hook; not part of any upload below

            def best(label: str, kind: str, fn, count_requests: bool = True) -> None:
                times, reqs = [], 0
                for _ in range(args.repeat):
                    mark = len(sim.request_log.snapshot())
                    times.append(timed(fn))
                    reqs = requests_since(sim, mark)
                rows.append((label, kind, min(times), str(reqs) if count_requests else "-"))

            best("cp (same disk)", "copy", lambda: shutil.copyfile(local, work / "cp.bin"), count_requests=False)
            best("provider: multipart, 4 parallel parts", "upload",
                 lambda: hook.upload_to_drive(local, "bench/blob.bin"))
            best("provider: 16 MiB parts, 8 in parallel", "upload",
                 lambda: hook.upload_to_drive(local, "bench/blob16.bin", part_size=16 * MiB, threshold=16 * MiB,
                                              workers=8))
            best("naive: one PUT of the whole file", "upload",
                 lambda: hook.upload_to_drive(local, "bench/naive.bin", threshold=size + 1))
            best("provider: streamed download", "download",
                 lambda: hook.download_from_drive("bench/blob.bin", work / "down.bin"))
            assert (work / "down.bin").stat().st_size == size
            sdk = sdk_upload_download(sim, local, "bench/sdk.bin", work / "sdk.bin")
            if sdk is not None:
                rows.append(("official lightning-sdk upload_file", "upload", sdk[0], "-"))
                rows.append(("official lightning-sdk download_file", "download", sdk[1], "-"))
            hook.close()
        print(f"== teamspace drive throughput, {size / MB:.0f} MB file, loopback simulator, best of {args.repeat}")
        print(f"   {'what':42} {'kind':9} {'seconds':>8} {'MB/s':>8} {'requests':>9}")
        for label, kind, seconds, reqs in rows:
            print(f"   {label:42} {kind:9} {seconds:8.2f} {size / MB / seconds:8.0f} {reqs:>9}")
        print("   requests = HTTP requests the simulator saw (API calls plus storage PUTs/GETs) for one transfer")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
