"""The teamspace drive over raw HTTP: listings and cursors, streamed downloads, single-part and multipart uploads
through the presigned storage URLs, re-signing, signature and header checks, a one-shot fault on one part,
deletes, path validation and the Studio-scoped variants."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from lightning_simulator import LightningSimulator

CLUSTER = "lightning-public-prod"
SSE = {"x-amz-server-side-encryption": "AES256"}


def drive(sim: LightningSimulator) -> str:
    return f"/v1/projects/{sim.project_id}/artifacts"


def put_files(sim: LightningSimulator, files: dict[str, bytes]) -> None:
    for path, data in files.items():
        target = sim.drive_path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def tree(client: httpx.Client, sim: LightningSimulator, path: str = "", **params: Any) -> dict[str, Any]:
    resp = client.get(f"{drive(sim)}/trees/{path}", params=params)
    assert resp.status_code == 200, resp.text
    return resp.json()


def start_upload(client: httpx.Client, sim: LightningSimulator, blob: dict[str, Any], **top: Any) -> dict[str, Any]:
    body = {"blobs": [blob], "cluster_id": CLUSTER, **top}
    resp = client.post(f"{drive(sim)}/blobs", json=body)
    assert resp.status_code == 200, resp.text
    results = resp.json()["results"]
    assert len(results) == 1
    return results[0]


def put_part(url: dict[str, Any], data: bytes) -> httpx.Response:
    return httpx.put(url["url"], content=data, headers=url["headers"])  # no Authorization, like the SDK


def md5_etag(data: bytes) -> str:
    return f'"{hashlib.md5(data).hexdigest()}"'


def test_listing_returns_direct_children_or_every_file_sorted_with_cursor_paging(
    client: httpx.Client, sim: LightningSimulator
) -> None:
    put_files(sim, {"b.txt": b"abc", "a-empty.txt": b"", "sub/x.txt": b"1", "sub/deep/y.txt": b"22", "zz/z.txt": b""})
    sim.drive_path("emptydir").mkdir()

    root = tree(client, sim)
    assert [(e["path"], e["type"], e.get("size")) for e in root["tree"]] == [
        ("a-empty.txt", "blob", None),  # an empty file has no size, like the platform
        ("b.txt", "blob", 3),
        ("emptydir", "tree", None),
        ("sub", "tree", None),
        ("zz", "tree", None),
    ]
    assert root["nextCursor"] == ""
    for entry in root["tree"]:
        assert entry["clusterId"] == CLUSTER
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["lastModified"])
    assert client.get(f"{drive(sim)}/trees").json() == root  # the root without the trailing slash

    recursive = tree(client, sim, "", recursive="true")["tree"]
    assert [e["path"] for e in recursive] == ["a-empty.txt", "b.txt", "sub/deep/y.txt", "sub/x.txt", "zz/z.txt"]
    assert all(e["type"] == "blob" for e in recursive)  # folders are left out: what download_folder needs
    assert [(e["path"], e["size"]) for e in tree(client, sim, "sub", recursive="true")["tree"]] == [
        ("deep/y.txt", 2),
        ("x.txt", 1),
    ]
    assert [e["path"] for e in tree(client, sim, "sub/", recursive="false", clusterId=CLUSTER)["tree"]] == [
        "deep",
        "x.txt",
    ]

    pages, cursor = [], None
    while True:
        params: dict[str, str] = {"recursive": "true", "atMost": "2"}
        if cursor:
            params["cursor"] = cursor
        page = tree(client, sim, "", **params)
        pages.append([e["path"] for e in page["tree"]])
        cursor = page["nextCursor"]
        if not cursor:
            break
    assert pages == [["a-empty.txt", "b.txt"], ["sub/deep/y.txt", "sub/x.txt"], ["zz/z.txt"]]
    put_files(sim, {"aa-added-meanwhile.txt": b"x"})  # a cursor is a position: earlier names do not shift pages
    first = tree(client, sim, "", recursive="true", atMost="2")
    after = tree(client, sim, "", recursive="true", atMost="2", cursor=first["nextCursor"])
    assert [e["path"] for e in after["tree"]] == ["b.txt", "sub/deep/y.txt"]


def test_listing_a_missing_folder_or_a_file_is_a_404_and_bad_parameters_are_400(
    client: httpx.Client, sim: LightningSimulator
) -> None:
    put_files(sim, {"f.txt": b"x"})
    missing = client.get(f"{drive(sim)}/trees/no/such/folder")
    assert missing.status_code == 404
    assert missing.json()["code"] == 5 and "not found" in missing.json()["message"]
    assert client.get(f"{drive(sim)}/trees/f.txt").status_code == 404  # a file is not a folder
    assert client.get(f"{drive(sim)}/trees/", params={"cursor": "!!"}).status_code == 400
    assert client.get(f"{drive(sim)}/trees/", params={"atMost": "0"}).status_code == 400
    assert client.get(f"{drive(sim)}/trees/", params={"recursive": "maybe"}).status_code == 400
    unknown = client.get(f"{drive(sim)}/trees/", params={"depth": "2"})
    assert unknown.status_code == 400 and "depth" in unknown.json()["message"]  # strict wire mode
    assert client.get("/v1/projects/other-project/artifacts/trees/").status_code == 404
    assert httpx.get(f"{sim.url}{drive(sim)}/trees/").status_code == 401  # the drive needs credentials


def test_blob_get_streams_the_file_with_its_length_and_404s_on_folders_and_missing_files(
    client: httpx.Client, sim: LightningSimulator
) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)  # more than one chunk of the streamed answer
    put_files(sim, {"ckpt/model.bin": data, "with space/a b.txt": b"spaced"})
    with client.stream("GET", f"{drive(sim)}/blobs/ckpt/model.bin", params={"clusterId": CLUSTER}) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"] == "application/octet-stream"
        assert int(resp.headers["content-length"]) == len(data)
        assert b"".join(resp.iter_bytes()) == data
    assert client.get(f"{drive(sim)}/blobs/with%20space/a%20b.txt").content == b"spaced"
    for path in ("ckpt", "ckpt/nope.bin", "nope/x"):
        resp = client.get(f"{drive(sim)}/blobs/{path}")
        assert resp.status_code == 404 and resp.json()["code"] == 5, path
    assert client.get("/v1/auth/whoami").status_code == 200  # the keep-alive connection is still good


def test_single_part_upload_lands_only_after_complete(client: httpx.Client, sim: LightningSimulator) -> None:
    result = start_upload(client, sim, {"path": "/teamspace/up/hello.txt", "content_type": "text/plain"})
    assert result["path"] == "up/hello.txt"  # a leading "/" and "teamspace/" are stripped, like the SDK does
    assert result["complete_required"] is True and result["upload_id"]
    [url] = result["urls"]
    assert url["headers"] == SSE
    assert url["url"].startswith(f"{sim.url}/__storage/{result['upload_id']}/1?sig=")

    resp = put_part(url, b"hello drive")
    assert resp.status_code == 200
    assert resp.headers["ETag"] == md5_etag(b"hello drive")  # quotes included, like S3
    assert client.get(f"{drive(sim)}/trees/up").status_code == 404  # not in the drive before complete
    assert [u["uploadId"] for u in sim.store.drive.pending_uploads()] == [result["upload_id"]]

    done = client.post(f"{drive(sim)}/blobs/complete", json={"blobs": [{"path": "up/hello.txt"}], "cluster_id": CLUSTER})
    assert done.status_code == 200 and done.json() == {}
    assert sim.drive_path("up/hello.txt").read_bytes() == b"hello drive"
    assert [(e["path"], e["size"]) for e in tree(client, sim, "up")["tree"]] == [("hello.txt", 11)]
    assert sim.store.drive.pending_uploads() == []
    [record] = sim.store.drive.completed_uploads
    assert (record["path"], record["contentType"], record["parts"], record["multipart"]) == (
        "up/hello.txt", "text/plain", 1, False,
    )
    # a repeated complete (its first answer lost) is answered again; a PUT to the finished upload is not accepted
    assert client.post(f"{drive(sim)}/blobs/complete", json={"blobs": [{"path": "up/hello.txt"}]}).json() == {}
    assert put_part(url, b"late").status_code == 404

    empty = start_upload(client, sim, {"path": "up/empty.txt"})
    assert put_part(empty["urls"][0], b"").status_code == 200
    blob = {"path": "up/empty.txt", "upload_id": empty["upload_id"]}
    assert client.post(f"{drive(sim)}/blobs/complete", json={"blobs": [blob]}).status_code == 200
    assert sim.drive_path("up/empty.txt").read_bytes() == b""


def test_an_upload_that_is_never_completed_leaves_no_file(client: httpx.Client, sim: LightningSimulator) -> None:
    result = start_upload(client, sim, {"path": "abandoned/file.bin", "parts": 2, "part_size": 4})
    assert put_part(result["urls"][0], b"abcd").status_code == 200
    assert tree(client, sim)["tree"] == []
    assert not sim.drive_path("abandoned").exists()


def multipart(client: httpx.Client, sim: LightningSimulator, path: str, data: bytes, size: int) -> tuple[str, list]:
    count = -(-len(data) // size)
    result = start_upload(client, sim, {"path": path, "parts": count, "part_size": size})
    assert [u["part_number"] for u in result["urls"]] == list(range(1, count + 1))
    assert all(u["headers"] == SSE for u in result["urls"])
    parts = []
    for url in result["urls"]:
        n = url["part_number"]
        chunk = data[(n - 1) * size : n * size]
        resp = put_part(url, chunk)
        assert resp.status_code == 200, resp.text
        assert resp.headers["ETag"] == md5_etag(chunk)
        parts.append({"part_number": n, "etag": resp.headers["ETag"]})
    return result["upload_id"], parts


def complete(client: httpx.Client, sim: LightningSimulator, path: str, upload_id: str, parts: list) -> httpx.Response:
    blob = {"path": path, "upload_id": upload_id, "parts": parts}
    return client.post(f"{drive(sim)}/blobs/complete", json={"blobs": [blob], "cluster_id": CLUSTER})


def test_multipart_upload_assembles_its_parts_in_order(client: httpx.Client, sim: LightningSimulator) -> None:
    data = os.urandom(5000)
    upload_id, parts = multipart(client, sim, "big/file.bin", data, 1024)
    assert len(parts) == 5
    resp = complete(client, sim, "big/file.bin", upload_id, list(reversed(parts)))  # any order
    assert resp.status_code == 200, resp.text
    assert sim.drive_path("big/file.bin").read_bytes() == data
    assert client.get(f"{drive(sim)}/blobs/big/file.bin").content == data
    assert not (sim.drive_root / ".uploads" / upload_id).exists()  # the parts are gone
    assert complete(client, sim, "big/file.bin", upload_id, parts).status_code == 200  # a repeated complete


def test_complete_rejects_a_wrong_etag_and_missing_parts(client: httpx.Client, sim: LightningSimulator) -> None:
    data = b"0123456789" * 3
    upload_id, parts = multipart(client, sim, "m/f.bin", data, 10)

    wrong = [dict(parts[0]), parts[1], {"part_number": 3, "etag": '"0000"'}]
    resp = complete(client, sim, "m/f.bin", upload_id, wrong)
    assert resp.status_code == 400 and "part 3" in resp.json()["message"] and "etag" in resp.json()["message"]
    unquoted = [{**p, "etag": p["etag"].strip('"')} for p in parts]  # verbatim: the quotes belong to the ETag
    assert complete(client, sim, "m/f.bin", upload_id, unquoted).status_code == 400
    resp = complete(client, sim, "m/f.bin", upload_id, parts[:2])
    assert resp.status_code == 400 and "part 3" in resp.json()["message"]
    assert complete(client, sim, "m/f.bin", upload_id, [parts[0], parts[0], parts[1], parts[2]]).status_code == 400
    missing_parts = client.post(f"{drive(sim)}/blobs/complete", json={"blobs": [{"path": "m/f.bin", "upload_id": upload_id}]})
    assert missing_parts.status_code == 400
    assert complete(client, sim, "m/other.bin", upload_id, parts).status_code == 400  # another path
    assert complete(client, sim, "m/f.bin", "no-such-upload", parts).status_code == 404
    assert not sim.drive_path("m").exists()  # nothing was written by the failed completes

    not_sent = start_upload(client, sim, {"path": "m/g.bin", "parts": 2, "part_size": 10})
    assert put_part(not_sent["urls"][0], data[:10]).status_code == 200
    first = {"part_number": 1, "etag": md5_etag(data[:10])}
    resp = complete(client, sim, "m/g.bin", not_sent["upload_id"], [first, {"part_number": 2, "etag": '"x"'}])
    assert resp.status_code == 400 and "part 2" in resp.json()["message"] and "never uploaded" in resp.json()["message"]

    assert complete(client, sim, "m/f.bin", upload_id, parts).status_code == 200
    assert sim.drive_path("m/f.bin").read_bytes() == data


def test_resigning_a_part_returns_exactly_one_url_and_a_new_put_replaces_the_part(
    client: httpx.Client, sim: LightningSimulator
) -> None:
    result = start_upload(client, sim, {"path": "r/f.bin", "parts": 2, "part_size": 3})
    upload_id = result["upload_id"]
    assert put_part(result["urls"][0], b"abc").status_code == 200
    assert put_part(result["urls"][1], b"XX").status_code == 200

    again = start_upload(client, sim, {"path": "r/f.bin", "upload_id": upload_id, "part_numbers": [2]})
    assert again["upload_id"] == upload_id
    [url] = again["urls"]
    assert url["part_number"] == 2 and url["headers"] == SSE
    etag = put_part(url, b"de").headers["ETag"]
    parts = [{"part_number": 1, "etag": md5_etag(b"abc")}, {"part_number": 2, "etag": etag}]
    assert complete(client, sim, "r/f.bin", upload_id, parts).status_code == 200
    assert sim.drive_path("r/f.bin").read_bytes() == b"abcde"

    path = f"{drive(sim)}/blobs"
    unknown = {"blobs": [{"path": "r/f.bin", "upload_id": "nope", "part_numbers": [1]}], "cluster_id": CLUSTER}
    assert client.post(path, json=unknown).status_code == 404
    other = start_upload(client, sim, {"path": "r/g.bin", "parts": 2, "part_size": 3})
    out_of_range = {"blobs": [{"path": "r/g.bin", "upload_id": other["upload_id"], "part_numbers": [3]}]}
    assert client.post(path, json=out_of_range).status_code == 400
    no_numbers = {"blobs": [{"path": "r/g.bin", "upload_id": other["upload_id"]}]}
    assert client.post(path, json=no_numbers).status_code == 400


def test_storage_urls_need_their_signature_and_the_encryption_header(sim: LightningSimulator, client: httpx.Client) -> None:
    result = start_upload(client, sim, {"path": "s/f.txt"})
    url = result["urls"][0]["url"]
    bad_sig = httpx.put(re.sub(r"sig=[0-9a-f]+", "sig=deadbeef", url), content=b"x", headers=SSE)
    assert bad_sig.status_code == 403
    assert bad_sig.headers["content-type"] == "application/xml" and b"<Code>SignatureDoesNotMatch</Code>" in bad_sig.content
    other_part = httpx.put(url.replace("/1?", "/2?"), content=b"x", headers=SSE)  # the signature covers the part
    assert other_part.status_code == 403
    no_header = httpx.put(url, content=b"x")
    assert no_header.status_code == 403 and b"x-amz-server-side-encryption" in no_header.content
    wrong_header = httpx.put(url, content=b"x", headers={"x-amz-server-side-encryption": "aws:kms"})
    assert wrong_header.status_code == 403
    assert httpx.put(url, content=b"x", headers=SSE).status_code == 200
    assert ("PUT", url.removeprefix(sim.url), 200) in sim.request_log
    assert client.get("/v1/auth/whoami").status_code == 200


def test_a_one_shot_fault_fails_one_part_put_once_and_the_retry_succeeds(
    client: httpx.Client, sim: LightningSimulator
) -> None:
    result = start_upload(client, sim, {"path": "flaky/f.bin", "parts": 3, "part_size": 4})
    set_resp = httpx.post(
        f"{sim.url}/__admin/faults", json={"errorRate": 1, "onlyPaths": [r"^/__storage/[^/]+/2$"], "maxFaults": 1}
    )
    assert set_resp.json()["maxFaults"] == 1
    urls = result["urls"]
    assert put_part(urls[0], b"aaaa").status_code == 200
    failed = put_part(urls[1], b"bbbb")
    assert failed.status_code == 503 and failed.json()["message"] == "unavailable: injected fault"
    assert sim.faults.injected == 1
    etags = [md5_etag(b"aaaa")]
    for url, data in ((urls[1], b"bbbb"), (urls[2], b"cc")):
        resp = put_part(url, data)
        assert resp.status_code == 200
        etags.append(resp.headers["ETag"])
    parts = [{"part_number": n, "etag": e} for n, e in enumerate(etags, 1)]
    assert complete(client, sim, "flaky/f.bin", result["upload_id"], parts).status_code == 200
    assert sim.drive_path("flaky/f.bin").read_bytes() == b"aaaabbbbcc"
    assert [r.status for r in sim.request_log if r.path.startswith(f"/__storage/{result['upload_id']}/2")] == [503, 200]

    sim.set_faults(error_rate=1.0, max_faults=2)  # the Python API: two faults on any path, then none
    assert [client.get("/v1/auth/whoami").status_code for _ in range(3)] == [503, 503, 200]
    sim.clear_faults()


@pytest.mark.parametrize("size", [20 * 1024 * 1024 + 3])
def test_large_and_chunked_part_bodies_are_written_to_disk(client: httpx.Client, sim: LightningSimulator, size: int) -> None:
    data = os.urandom(size)
    result = start_upload(client, sim, {"path": "large/f.bin", "parts": 2, "part_size": size})

    def chunked() -> Iterator[bytes]:  # no Content-Length: Transfer-Encoding chunked
        for start in range(0, 1000, 100):
            yield data[start : start + 100]

    first = httpx.put(result["urls"][0]["url"], content=data, headers=SSE, timeout=60)
    second = httpx.put(result["urls"][1]["url"], content=chunked(), headers=SSE)
    assert first.status_code == 200 and second.status_code == 200
    parts = [{"part_number": 1, "etag": first.headers["ETag"]}, {"part_number": 2, "etag": second.headers["ETag"]}]
    assert second.headers["ETag"] == md5_etag(data[:1000])
    assert complete(client, sim, "large/f.bin", result["upload_id"], parts).status_code == 200
    assert sim.drive_path("large/f.bin").stat().st_size == size + 1000


def test_delete_blob_and_tree(client: httpx.Client, sim: LightningSimulator) -> None:
    put_files(sim, {"d/a.txt": b"a", "d/sub/b.txt": b"b", "keep.txt": b"k"})
    resp = client.delete(f"{drive(sim)}/blobs/d/a.txt")
    assert resp.status_code == 200 and resp.json() == {}
    assert not sim.drive_path("d/a.txt").exists()
    assert client.delete(f"{drive(sim)}/blobs/d/a.txt").status_code == 404
    assert client.delete(f"{drive(sim)}/blobs/d/sub").status_code == 404  # a folder is deleted through trees
    assert client.delete(f"{drive(sim)}/trees/keep.txt").status_code == 404  # and a file through blobs
    assert client.delete(f"{drive(sim)}/trees/d").json() == {}
    assert not sim.drive_path("d").exists()
    assert client.delete(f"{drive(sim)}/trees/d").status_code == 404
    assert client.delete(f"{drive(sim)}/trees/").status_code == 400  # never the whole drive
    assert [e["path"] for e in tree(client, sim)["tree"]] == ["keep.txt"]


@pytest.mark.parametrize(
    ("blob", "top", "needle"),
    [
        ({"path": "a/../b.txt"}, {}, "'..'"),
        ({"path": "../escape.txt"}, {}, "'..'"),
        ({"path": ""}, {}, "must name a file"),
        ({"path": "/teamspace/"}, {}, "must name a file"),
        ({"path": "f.bin", "parts": 0, "part_size": 4}, {}, "parts"),
        ({"path": "f.bin", "parts": 10_001, "part_size": 4}, {}, "parts"),
        ({"path": "f.bin", "parts": 2}, {}, "part_size"),
        ({"path": "f.bin", "part_numbers": [1]}, {}, "upload_id"),
        ({"path": "f.bin"}, {"cluster_id": None}, "ClusterID"),
        ({"path": "f.bin", "size": 3}, {}, "blobs[0].size"),
        ({"path": "f.bin"}, {"extra": True}, "extra"),
    ],
)
def test_upload_requests_are_validated(
    client: httpx.Client, sim: LightningSimulator, blob: dict[str, Any], top: dict[str, Any], needle: str
) -> None:
    body = {"blobs": [blob], "cluster_id": CLUSTER, **top}
    body = {k: v for k, v in body.items() if v is not None}
    resp = client.post(f"{drive(sim)}/blobs", json=body)
    assert resp.status_code == 400, resp.text
    assert needle in resp.json()["message"]
    assert resp.json()["code"] == 3


def test_more_path_and_body_checks(client: httpx.Client, sim: LightningSimulator) -> None:
    path = f"{drive(sim)}/blobs"
    two = {"blobs": [{"path": "a"}, {"path": "b"}], "cluster_id": CLUSTER}
    assert "exactly one" in client.post(path, json=two).json()["message"]
    assert client.post(path, json={"cluster_id": CLUSTER}).status_code == 400
    assert client.post(path, json={"blobs": [{"path": "f"}], "cluster_id": "other-cluster"}).status_code == 404
    # lightning_storage/ needs no cloud account
    assert client.post(path, json={"blobs": [{"path": "lightning_storage/s/f.txt"}]}).status_code == 200
    for bad in ("trees/a/%2E%2E/b", "blobs/%2E%2E/x", "blobs/a/%2E/b"):
        assert client.get(f"{drive(sim)}/{bad}").status_code == 400, bad
    assert client.delete(f"{drive(sim)}/trees/%2E%2E").status_code == 400
    put_files(sim, {"file.txt": b"x"})
    sim.drive_path("folder").mkdir()
    below_file = {"blobs": [{"path": "file.txt/inner.txt"}], "cluster_id": CLUSTER}
    assert "is a file" in client.post(path, json=below_file).json()["message"]
    onto_folder = {"blobs": [{"path": "folder"}], "cluster_id": CLUSTER}
    assert "is a folder" in client.post(path, json=onto_folder).json()["message"]
    complete_extra = {"blobs": [{"path": "f", "parts": [{"part_number": 1, "etag": "x", "size": 1}]}]}
    resp = client.post(f"{path}/complete", json=complete_extra)
    assert resp.status_code == 400 and "parts[0].size" in resp.json()["message"]
    nothing = client.post(f"{path}/complete", json={"blobs": [{"path": "never/uploaded.txt"}]})
    assert nothing.status_code == 400 and "nothing was uploaded" in nothing.json()["message"]


def test_lenient_mode_accepts_unknown_drive_fields() -> None:
    with LightningSimulator(strict=False) as sim, httpx.Client(
        base_url=sim.url, headers={"Authorization": sim.auth_header}
    ) as client:
        body = {"blobs": [{"path": "f.txt", "checksum": "x"}], "cluster_id": CLUSTER, "extra": 1}
        assert client.post(f"{drive(sim)}/blobs", json=body).status_code == 200
        assert client.get(f"{drive(sim)}/trees/", params={"depth": "1"}).status_code == 200


def test_studio_scoped_variants_work_on_the_studio_folder(client: httpx.Client, sim: LightningSimulator) -> None:
    studio = sim.add_studio("files-studio")
    scope = f"{drive(sim)}/cloudspaces/{studio['id']}"
    resp = client.post(f"{scope}/blobs", json={"blobs": [{"path": "notes/n.txt"}]})  # no cloud account needed
    assert resp.status_code == 200, resp.text
    result = resp.json()["results"][0]
    assert put_part(result["urls"][0], b"note").status_code == 200
    assert client.post(f"{scope}/blobs/complete", json={"blobs": [{"path": "notes/n.txt"}]}).status_code == 200
    assert (sim.studio_dir("files-studio") / "notes" / "n.txt").read_bytes() == b"note"
    assert not sim.drive_path("notes").exists()  # not in the teamspace drive
    listed = client.get(f"{scope}/trees/notes").json()["tree"]
    assert [(e["path"], e["size"]) for e in listed] == [("n.txt", 4)]
    assert client.get(f"{scope}/blobs/notes/n.txt").content == b"note"
    deleted = client.delete(f"{scope}/blobs/notes/n.txt")
    assert deleted.status_code == 204 and deleted.content == b""  # what the SDK's Studio.remove_file expects
    assert client.delete(f"{scope}/trees/notes").status_code == 204
    assert client.get(f"{drive(sim)}/cloudspaces/studio-nope/trees/").status_code == 404


def test_the_drive_root_is_in_admin_info_and_a_python_attribute(tmp_path: Any) -> None:
    with LightningSimulator() as sim:
        info = httpx.get(f"{sim.url}/__admin/info").json()
        assert info["driveRoot"] == str(sim.drive_root)
        assert sim.drive_path() == sim.drive_root / sim.project_id
        temporary = sim.drive_root
    assert not temporary.exists()  # a temporary drive is removed at stop

    with LightningSimulator(drive_dir=tmp_path / "drive") as sim:
        assert sim.drive_root == tmp_path / "drive"
        sim.drive_path("kept").mkdir()
    assert (tmp_path / "drive" / sim.project_id / "kept").is_dir()

    state = tmp_path / "state.json"
    with LightningSimulator(state_file=state) as sim:
        assert sim.drive_root == tmp_path / "state.json.drive"  # beside the state file: kept across restarts
    with LightningSimulator(work_dir=tmp_path / "work") as sim:
        assert sim.drive_root == tmp_path / "work" / "drive"
