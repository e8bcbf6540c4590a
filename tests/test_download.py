"""fetalhead.download against a local HTTP server (127.0.0.1, ephemeral port) with Range support.

No test touches the internet: a thread serves files built in the test.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import threading
import zipfile
from pathlib import Path

import pytest

from fetalhead.data import TEST_CSV, TRAIN_CSV, check_data_dir, read_training_csv
from fetalhead.download import (
    KNOWN_MD5,
    download_file,
    download_hc18,
    extract_archive,
    fetch_checksums,
    md5sum,
)
from fetalhead.errors import FetalheadError


class Server:
    """Serves `files` {url path: bytes}; honours "Range: bytes=N-" unless `ranges` is False."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.ranges = True
        self.log: list[tuple[str, str | None]] = []  # (path, Range header)
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                path = self.path.split("?", 1)[0]
                rng = self.headers.get("Range")
                server.log.append((path, rng))
                if path not in server.files:
                    self.send_error(404)
                    return
                data = server.files[path]
                start = 0
                if rng and server.ranges:
                    start = int(rng.removeprefix("bytes=").split("-")[0])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                self.wfile.write(data[start:])

            def log_message(self, *args) -> None:  # keep pytest output clean
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def blob(n: int = 300_000) -> bytes:
    return bytes((i * 7919) % 251 for i in range(n))


# ---------------------------------------------------------------- download_file


def test_download_file(server, tmp_path):
    data = blob()
    server.files["/f/a.bin"] = data
    out = download_file(f"{server.url}/f/a.bin?download=1", tmp_path / "a.bin", md5=md5(data),
                        progress=False)
    assert out.read_bytes() == data
    assert not (tmp_path / "a.bin.part").exists()
    assert server.log == [("/f/a.bin", None)]


def test_download_resumes_a_partial_file(server, tmp_path):
    data = blob()
    server.files["/a.bin"] = data
    (tmp_path / "a.bin.part").write_bytes(data[:123_456])
    out = download_file(f"{server.url}/a.bin", tmp_path / "a.bin", md5=f"md5:{md5(data)}",
                        progress=False)
    assert out.read_bytes() == data
    assert server.log == [("/a.bin", "bytes=123456-")]


def test_resume_when_the_server_ignores_range(server, tmp_path):
    data = blob()
    server.files["/a.bin"] = data
    server.ranges = False
    (tmp_path / "a.bin.part").write_bytes(b"stale bytes from an older file")
    out = download_file(f"{server.url}/a.bin", tmp_path / "a.bin", md5=md5(data), progress=False)
    assert out.read_bytes() == data  # started over instead of appending


def test_complete_part_file_gets_416(server, tmp_path):
    data = blob(1000)
    server.files["/a.bin"] = data
    (tmp_path / "a.bin.part").write_bytes(data)
    out = download_file(f"{server.url}/a.bin", tmp_path / "a.bin", md5=md5(data), progress=False)
    assert out.read_bytes() == data


def test_md5_mismatch_deletes_the_part_and_names_the_file(server, tmp_path):
    server.files["/a.bin"] = blob()
    with pytest.raises(FetalheadError, match="MD5 mismatch for a.bin") as exc:
        download_file(f"{server.url}/a.bin", tmp_path / "a.bin", md5="0" * 32, progress=False)
    assert "\n" not in str(exc.value)
    assert not (tmp_path / "a.bin.part").exists() and not (tmp_path / "a.bin").exists()


def test_existing_good_file_is_kept_and_bad_one_reported(server, tmp_path):
    data = blob(1000)
    server.files["/a.bin"] = b"new content"
    (tmp_path / "a.bin").write_bytes(data)
    download_file(f"{server.url}/a.bin", tmp_path / "a.bin", md5=md5(data), progress=False)
    assert (tmp_path / "a.bin").read_bytes() == data and server.log == []
    with pytest.raises(FetalheadError, match="a.bin exists but its MD5"):
        download_file(f"{server.url}/a.bin", tmp_path / "a.bin", md5="1" * 32, progress=False)
    assert (tmp_path / "a.bin").read_bytes() == data  # never overwritten


def test_http_error_names_the_file(server, tmp_path):
    with pytest.raises(FetalheadError, match="cannot download missing.zip .*404"):
        download_file(f"{server.url}/missing.zip", tmp_path / "missing.zip", progress=False)


def test_a_file_where_the_data_folder_should_be_is_named(tmp_path):
    (tmp_path / "hc18").write_text("not a folder")
    with pytest.raises(FetalheadError, match="HC18 folder .*hc18 is a file, not a folder"):
        download_hc18(tmp_path / "hc18", api_url="http://127.0.0.1:9/none", progress=False)
    assert (tmp_path / "hc18").read_text() == "not a folder"


def test_md5sum():
    assert md5sum(Path(__file__)) == md5(Path(__file__).read_bytes())


def test_pinned_csv_md5_match_the_real_files(hc18_dir, server, tmp_path):
    for name in (TRAIN_CSV, TEST_CSV):
        server.files[f"/{name}"] = (hc18_dir / name).read_bytes()
        out = download_file(f"{server.url}/{name}", tmp_path / name, md5=KNOWN_MD5[name],
                            progress=False)
        assert out.read_bytes() == (hc18_dir / name).read_bytes()


def test_fetch_checksums(server):
    record = {"files": [
        {"key": "training_set.zip", "checksum": "md5:ABCDEF0123456789abcdef0123456789"},
        {"key": "test_set.zip", "checksum": "md5:00000000000000000000000000000001"},
        {"key": "other.txt", "checksum": "sha256:ffff"},
    ]}
    server.files["/api/records/1327317"] = json.dumps(record).encode()
    got = fetch_checksums(f"{server.url}/api/records/1327317")
    assert got == {"training_set.zip": "abcdef0123456789abcdef0123456789",
                   "test_set.zip": "00000000000000000000000000000001"}
    with pytest.raises(FetalheadError, match="cannot read checksums"):
        fetch_checksums(f"{server.url}/api/nothing")


# ---------------------------------------------------------------- unzip and the whole data set


def zip_folder(folder: Path, top: str | None, extra: dict[str, bytes] | None = None) -> bytes:
    """A zip of the files of `folder`, under folder name `top` (or none), plus `extra`."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(folder.iterdir()):
            zf.write(f, f"{top}/{f.name}" if top else f.name)
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_extract_archive_normalises_the_layout(synthetic_hc18, tmp_path):
    src = synthetic_hc18 / "training_set"
    data = zip_folder(src, "deep/training_set", {
        "__MACOSX/deep/training_set/._000_HC.png": b"junk",
        "../../evil.png": b"escape attempt",
        "deep/readme.txt": b"ignored",
    })
    (tmp_path / "t.zip").write_bytes(data)
    root = tmp_path / "out"
    out = extract_archive(tmp_path / "t.zip", root, "training_set")
    assert out == root / "training_set"
    got = sorted(p.name for p in out.iterdir())
    assert got == sorted([p.name for p in src.iterdir()] + ["evil.png"])
    for p in src.iterdir():
        assert (out / p.name).read_bytes() == p.read_bytes()
    assert not (tmp_path / "evil.png").exists() and not list(root.glob("*.txt"))
    # Files already there are not overwritten.
    (out / "000_HC.png").write_bytes(b"mine")
    extract_archive(tmp_path / "t.zip", root, "training_set")
    assert (out / "000_HC.png").read_bytes() == b"mine"


def test_corrupt_archive(tmp_path):
    (tmp_path / "bad.zip").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(FetalheadError, match="corrupt archive .*bad.zip"):
        extract_archive(tmp_path / "bad.zip", tmp_path, "training_set")


def serve_hc18(server: Server, src: Path) -> dict[str, str]:
    """Zenodo-like files of a synthetic HC18 folder; returns their MD5 table."""
    files = {
        "training_set.zip": zip_folder(src / "training_set", "training_set"),  # with a top folder
        "test_set.zip": zip_folder(src / "test_set", None),  # and without
        TRAIN_CSV: (src / TRAIN_CSV).read_bytes(),
        TEST_CSV: (src / TEST_CSV).read_bytes(),
    }
    for name, data in files.items():
        server.files[f"/records/1327317/files/{name}"] = data
    return {name: md5(data) for name, data in files.items()}


def test_download_hc18_end_to_end(server, synthetic_hc18, tmp_path):
    checksums = serve_hc18(server, synthetic_hc18)
    base = f"{server.url}/records/1327317/files"
    root = tmp_path / "data"
    out = download_hc18(root, base_url=base, checksums=checksums, progress=False)
    assert out == root and check_data_dir(root) == root
    assert sorted(p.name for p in root.iterdir()) == sorted(
        ["training_set", "test_set", TRAIN_CSV, TEST_CSV])  # zips removed, nothing else left
    for sub in ("training_set", "test_set"):
        for p in (synthetic_hc18 / sub).iterdir():
            assert (root / sub / p.name).read_bytes() == p.read_bytes()
    assert len(read_training_csv(root)) == len(read_training_csv(synthetic_hc18))
    # A second run finds everything in place and fetches nothing.
    n = len(server.log)
    download_hc18(root, base_url=base, checksums=checksums, progress=False)
    assert len(server.log) == n


def test_download_hc18_resumes_after_a_bad_archive(server, synthetic_hc18, tmp_path):
    checksums = serve_hc18(server, synthetic_hc18)
    base = f"{server.url}/records/1327317/files"
    root = tmp_path / "data"
    good = server.files["/records/1327317/files/test_set.zip"]
    server.files["/records/1327317/files/test_set.zip"] = b"truncated"
    with pytest.raises(FetalheadError, match="MD5 mismatch for test_set.zip"):
        download_hc18(root, base_url=base, checksums=checksums, progress=False)
    assert (root / "training_set").is_dir() and not (root / "test_set.zip.part").exists()
    server.files["/records/1327317/files/test_set.zip"] = good
    server.log.clear()
    download_hc18(root, base_url=base, checksums=checksums, progress=False)
    assert [p for p, _ in server.log] == ["/records/1327317/files/test_set.zip"]
    assert check_data_dir(root) == root
    assert not list(root.glob("*.zip"))  # the first run's verified training_set.zip went too


def test_download_never_deletes_an_archive_of_yours_it_cannot_check(server, synthetic_hc18, tmp_path):
    """Your own training_set.zip, with no MD5 to check it by (Zenodo unreachable): it used to be
    unpacked and deleted before the run failed on the next file."""
    checksums = serve_hc18(server, synthetic_hc18)
    base = f"{server.url}/records/1327317/files"
    root = tmp_path / "data"
    root.mkdir()
    mine = server.files.pop("/records/1327317/files/training_set.zip")
    (root / "training_set.zip").write_bytes(mine)
    del server.files["/records/1327317/files/test_set.zip"]
    unchecked = {k: v for k, v in checksums.items() if k != "training_set.zip"}
    with pytest.raises(FetalheadError, match="cannot download test_set.zip"):
        download_hc18(root, base_url=base, checksums=unchecked, progress=False)
    assert (root / "training_set.zip").read_bytes() == mine
    serve_hc18(server, synthetic_hc18)
    download_hc18(root, base_url=base, checksums=unchecked, progress=False)
    assert (root / "training_set.zip").read_bytes() == mine  # a success keeps it too
    assert not (root / "test_set.zip").exists()  # the one it downloaded goes


def test_download_hc18_reads_archive_md5_from_the_api(server, synthetic_hc18, tmp_path,
                                                    monkeypatch):
    checksums = serve_hc18(server, synthetic_hc18)
    record = {"files": [{"key": k, "checksum": f"md5:{v}"} for k, v in checksums.items()]}
    record["files"][0]["checksum"] = "md5:" + "0" * 32  # training_set.zip: wrong on purpose
    server.files["/api/records/1327317"] = json.dumps(record).encode()
    # The synthetic CSVs are not Zenodo's: pin their test MD5s instead of the real ones.
    monkeypatch.setattr("fetalhead.download.KNOWN_MD5",
                        {TRAIN_CSV: checksums[TRAIN_CSV], TEST_CSV: checksums[TEST_CSV]})
    with pytest.raises(FetalheadError, match="MD5 mismatch for training_set.zip"):
        download_hc18(tmp_path / "data", base_url=f"{server.url}/records/1327317/files",
                      api_url=f"{server.url}/api/records/1327317", progress=False)
    assert "/api/records/1327317" in [p for p, _ in server.log]
