"""The drive transfer protocol through ``httpx.MockTransport`` (no server): what the simulator cannot misbehave at
on purpose — storage PUTs without credentials, a lost ``complete`` answer, truncated downloads, hostile listings,
and an interrupted multipart upload resumed by the next try."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from airflow_provider_lightning.api import drive, transfer
from airflow_provider_lightning.api.transport import RetryPolicy, Transport

BASE = "https://api.example.test"
STORAGE = "https://storage.example.test"
FAST = RetryPolicy(max_attempts=4, backoff_initial=0.001, backoff_max=0.002, call_timeout=10)
KIB = 1024


@dataclass
class FakeDrive:
    """A tiny drive: files by path, multipart uploads by id; faults are queued per (method, url-prefix)."""

    files: dict[str, bytes] = field(default_factory=dict)
    uploads: dict[str, dict[str, Any]] = field(default_factory=dict)
    seen: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    faults: list[tuple[str, str, int]] = field(default_factory=list)  # (method, path substring, status) once each
    lose_complete_answer: bool = False
    truncate_next_get: bool = False
    hostile_listing: bool = False

    def handle(self, request: httpx.Request) -> httpx.Response:
        url = urlsplit(str(request.url))
        self.seen.append((request.method, str(request.url), dict(request.headers)))
        for fault in list(self.faults):
            if fault[0] == request.method and fault[1] in url.path:
                self.faults.remove(fault)
                return httpx.Response(fault[2], json={"code": 14, "message": "injected"})
        if url.netloc == urlsplit(STORAGE).netloc:
            return self.storage(request, url.path)
        prefix = "/v1/projects/p1/artifacts/"
        rest = url.path[len(prefix):]
        if request.method == "GET" and rest.startswith("trees"):
            return self.listing(rest[len("trees"):].strip("/"), parse_qs(url.query))
        if request.method == "GET" and rest.startswith("blobs/"):
            data = self.files.get(rest[len("blobs/"):])
            if data is None:
                return httpx.Response(404, json={"code": 5, "message": "not found"})
            if self.truncate_next_get:
                self.truncate_next_get = False
                return httpx.Response(200, content=data[: len(data) // 2])
            return httpx.Response(200, content=data)
        if request.method == "POST" and rest == "blobs":
            return self.request_urls(json.loads(request.content))
        if request.method == "POST" and rest == "blobs/complete":
            return self.complete(json.loads(request.content))
        return httpx.Response(404, json={"code": 5, "message": f"no route {request.method} {url.path}"})

    def listing(self, folder: str, query: dict[str, list[str]]) -> httpx.Response:
        recursive = query.get("recursive") == ["true"]
        prefix = f"{folder}/" if folder else ""
        names = [p for p in self.files if p.startswith(prefix)]
        if folder and not names:
            return httpx.Response(404, json={"code": 5, "message": "not found"})
        tree: list[dict[str, Any]] = []
        dirs = set()
        for name in sorted(names):
            rel = name[len(prefix):]
            if recursive or "/" not in rel:
                tree.append({"path": rel, "type": "blob", "size": len(self.files[name])})
            else:
                dirs.add(rel.split("/")[0])
        tree += [{"path": d, "type": "tree"} for d in sorted(dirs)]
        if self.hostile_listing:
            tree += [{"path": "../../etc/passwd", "type": "blob", "size": 3}, {"path": "/abs", "type": "blob"}]
        # two pages, to follow nextCursor
        cursor = query.get("cursor", [""])[0]
        half = len(tree) // 2
        if not cursor and half:
            return httpx.Response(200, json={"tree": tree[:half], "nextCursor": "c2"})
        return httpx.Response(200, json={"tree": tree[half:] if cursor else tree, "nextCursor": ""})

    def request_urls(self, body: dict[str, Any]) -> httpx.Response:
        blob = body["blobs"][0]
        if "part_numbers" in blob:
            if blob["upload_id"] not in self.uploads:
                return httpx.Response(404, json={"code": 5, "message": "no such upload"})
            n = blob["part_numbers"][0]
            return httpx.Response(200, json={"results": [{"path": blob["path"], "upload_id": blob["upload_id"],
                                                          "urls": [self.url(blob["upload_id"], n)]}]})
        upload_id = f"u{len(self.uploads) + 1}"
        parts = blob.get("parts", 1)
        self.uploads[upload_id] = {"path": blob["path"], "parts": {}}
        urls = [self.url(upload_id, n) for n in range(1, parts + 1)]
        return httpx.Response(200, json={"results": [{"path": blob["path"], "upload_id": upload_id, "urls": urls,
                                                      "complete_required": True}]})

    @staticmethod
    def url(upload_id: str, n: int) -> dict[str, Any]:
        return {"url": f"{STORAGE}/put/{upload_id}/{n}?X-Amz-Signature=abc", "part_number": n,
                "headers": {"x-amz-server-side-encryption": "AES256"}}

    def storage(self, request: httpx.Request, path: str) -> httpx.Response:
        _, _, upload_id, n = path.split("/")
        if request.headers.get("x-amz-server-side-encryption") != "AES256":
            return httpx.Response(403, text="<Error>missing SSE header</Error>")
        data = request.read()
        etag = f'"{hashlib.md5(data).hexdigest()}"'
        self.uploads[upload_id]["parts"][int(n)] = (data, etag)
        return httpx.Response(200, headers={"ETag": etag})

    def complete(self, body: dict[str, Any]) -> httpx.Response:
        blob = body["blobs"][0]
        upload = next((u for i, u in self.uploads.items()
                       if i == blob.get("upload_id") or (not blob.get("upload_id") and u["path"] == blob["path"])),
                      None)
        if upload is None:
            return httpx.Response(404, json={"code": 5, "message": "no such upload"})
        parts = upload["parts"]
        for part in blob.get("parts", []):
            assert parts[part["part_number"]][1] == part["etag"], "etag mismatch"
        self.files[blob["path"]] = b"".join(parts[n][0] for n in sorted(parts))
        self.uploads = {i: u for i, u in self.uploads.items() if u is not upload}
        if self.lose_complete_answer:
            self.lose_complete_answer = False
            return httpx.Response(503, json={"code": 14, "message": "answer lost"})
        return httpx.Response(200, json={})

    def transport(self) -> Transport:
        return Transport(BASE, {"Authorization": "Bearer SECRET-TOKEN"}, retry=FAST,
                         http_transport=httpx.MockTransport(self.handle))

    def storage_requests(self) -> list[tuple[str, str, dict[str, str]]]:
        return [s for s in self.seen if s[1].startswith(STORAGE)]


@pytest.fixture
def fake(tmp_path, monkeypatch) -> FakeDrive:
    monkeypatch.setenv("AIRFLOW_LIGHTNING_UPLOAD_STATE_DIR", str(tmp_path / "state"))
    return FakeDrive()


def _file(tmp_path: Path, size: int, name: str = "data.bin") -> Path:
    path = tmp_path / name
    path.write_bytes(bytes(i % 251 for i in range(size)))
    return path


def test_a_multipart_upload_puts_each_part_once_without_credentials_and_completes_with_their_etags(fake, tmp_path):
    local = _file(tmp_path, 10 * KIB + 5)
    result = transfer.upload_file(fake.transport(), "p1", local, "/teamspace/data/x.bin", threshold=KIB,
                                  part_size=4 * KIB)
    assert fake.files["data/x.bin"] == local.read_bytes()
    puts = fake.storage_requests()
    assert len(puts) == 3  # 4 KiB + 4 KiB + 2 KiB + 5 bytes
    assert all("authorization" not in headers for _, _, headers in puts)
    assert all(headers["x-amz-server-side-encryption"] == "AES256" for _, _, headers in puts)
    assert result.size == 10 * KIB + 5 and result.parts == 3
    assert result.requests == 5  # request URLs, 3 PUTs, complete


def test_a_small_file_goes_in_one_put_and_its_digest_is_returned(fake, tmp_path):
    local = _file(tmp_path, 300)
    result = transfer.upload_file(fake.transport(), "p1", local, "small.bin")
    assert fake.files["small.bin"] == local.read_bytes()
    assert result.sha256 == hashlib.sha256(local.read_bytes()).hexdigest()
    assert result.requests == 3


def test_a_failed_part_is_put_again_on_a_fresh_url_and_the_other_parts_are_not_resent(fake, tmp_path):
    local = _file(tmp_path, 12 * KIB)
    fake.faults.append(("PUT", "/put/u1/2", 503))
    transfer.upload_file(fake.transport(), "p1", local, "r.bin", threshold=KIB, part_size=4 * KIB, workers=1)
    assert fake.files["r.bin"] == local.read_bytes()
    puts = [url for method, url, _ in fake.storage_requests()]
    assert [u.split("?")[0].rsplit("/", 1)[1] for u in puts] == ["1", "2", "2", "3"]
    resign = [s for s in fake.seen if s[0] == "POST" and s[1].endswith("/artifacts/blobs")]
    assert len(resign) == 2  # the upload, then one fresh URL for part 2


def test_an_interrupted_upload_is_resumed_by_the_next_try_from_the_parts_already_stored(fake, tmp_path):
    local = _file(tmp_path, 12 * KIB)
    fake.faults += [("PUT", "/put/u1/3", 403)] * FAST.max_attempts  # part 3 never goes through in try 1
    with pytest.raises(transfer.LightningTransferError):
        transfer.upload_file(fake.transport(), "p1", local, "big.bin", threshold=KIB, part_size=4 * KIB,
                             workers=1)
    assert "big.bin" not in fake.files
    fake.seen.clear()
    result = transfer.upload_file(fake.transport(), "p1", local, "big.bin", threshold=KIB, part_size=4 * KIB,
                                  workers=1)
    assert fake.files["big.bin"] == local.read_bytes()
    assert result.resumed_parts == 2 and result.parts == 1
    assert [u.split("?")[0].rsplit("/", 2)[1:] for _, u, _ in fake.storage_requests()] == [["u1", "3"]]


def test_an_upload_whose_complete_answer_was_lost_is_done_once_the_file_is_there(fake, tmp_path):
    local = _file(tmp_path, 9 * KIB)
    fake.lose_complete_answer = True  # the server completed it, then answered 503; the retry gets 404
    result = transfer.upload_file(fake.transport(), "p1", local, "c/x.bin", threshold=KIB, part_size=4 * KIB)
    assert fake.files["c/x.bin"] == local.read_bytes()
    assert result.size == 9 * KIB


def test_a_download_follows_the_listing_pages_skips_folders_and_writes_the_same_bytes(fake, tmp_path):
    fake.files.update({"run/a.txt": b"a" * 10, "run/sub/b.txt": b"b" * 2000, "run/sub/deep/c.txt": b"", "x": b"1"})
    results = transfer.download_folder(fake.transport(), "p1", "run", tmp_path / "out")
    got = {r.path: (tmp_path / "out" / r.path).read_bytes() for r in results}
    assert got == {"a.txt": b"a" * 10, "sub/b.txt": b"b" * 2000, "sub/deep/c.txt": b""}
    assert not [p for p in (tmp_path / "out").rglob("*.partial")]


def test_a_truncated_download_is_retried_and_never_left_in_place(fake, tmp_path):
    fake.files["m.bin"] = b"z" * 5000
    fake.truncate_next_get = True
    result = transfer.download_file(fake.transport(), "p1", "m.bin", tmp_path / "m.bin", expected_size=5000)
    assert (tmp_path / "m.bin").read_bytes() == b"z" * 5000
    assert result.sha256 == hashlib.sha256(b"z" * 5000).hexdigest()
    assert result.requests == 2 == sum(1 for s in fake.seen if s[0] == "GET")


def test_a_missing_folder_is_an_error_never_an_empty_download(fake, tmp_path):
    with pytest.raises(drive.LightningDriveNotFound, match="does not exist"):
        transfer.download_folder(fake.transport(), "p1", "nothing/here", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_listing_entries_that_climb_out_of_the_folder_are_dropped(fake, tmp_path):
    fake.files["run/ok.txt"] = b"ok"
    fake.hostile_listing = True
    results = transfer.download_folder(fake.transport(), "p1", "run", tmp_path / "out")
    assert [r.path for r in results] == ["ok.txt"]


@pytest.mark.parametrize("bad", ["", "/", "a/../../b", "x\x00y", 3])
def test_bad_drive_paths_are_refused_before_any_request(bad):
    with pytest.raises(ValueError):
        drive.drive_path(bad)


def test_drive_paths_accept_the_teamspace_mount_prefix():
    assert drive.drive_path("/teamspace/jobs/train/ckpt/") == "jobs/train/ckpt"
    assert drive.drive_path("models//v1/./m.pt") == "models/v1/m.pt"


@pytest.mark.parametrize(
    ("destination", "folder"),
    [("s3:bucket:runs/a", "s3_connections/bucket/runs/a"), ("gcs:b:x", "gcs_connections/b/x")],
)
def test_an_image_jobs_artifacts_destination_maps_to_its_drive_folder(destination, folder):
    assert drive.artifacts_folder("j", studio_job=False, destination=destination) == folder
    assert drive.artifacts_folder("j", studio_job=True) == "jobs/j"
    assert drive.artifacts_folder("j", studio_job=False) is None


@pytest.mark.parametrize("bad", ["s3:bucket", "s3::x", "s3:b:../x", "a:b:c:d"])
def test_a_malformed_artifacts_destination_is_refused(bad):
    with pytest.raises(ValueError, match="artifacts_destination"):
        drive.artifacts_destination(bad)
