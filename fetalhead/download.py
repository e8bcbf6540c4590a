"""Fetch HC18 from Zenodo (record 1327317, DOI 10.5281/zenodo.1327317, CC BY 4.0).

Each file is streamed into `<name>.part` with a progress bar; an interrupted download resumes
with an HTTP Range request. The MD5 of every file is checked against the value Zenodo
publishes before the file takes its final name, and a file that is already there and correct
is never fetched or overwritten again. The archives are unpacked into the layout
`fetalhead.data` expects: training_set/, test_set/ and the two CSVs at the top level.
Only the standard library talks to the network (urllib).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import urllib.error
import urllib.request
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from tqdm.auto import tqdm

from fetalhead.data import TEST_CSV, TEST_DIR, TRAIN_CSV, TRAIN_DIR, check_data_dir
from fetalhead.errors import FetalheadError
from fetalhead.files import atomic_file
from fetalhead.paths import data_dir

__all__ = [
    "API_URL",
    "BASE_URL",
    "FILES",
    "KNOWN_MD5",
    "download_file",
    "download_hc18",
    "extract_archive",
    "fetch_checksums",
    "md5sum",
]

RECORD_ID = 1327317
BASE_URL = f"https://zenodo.org/records/{RECORD_ID}/files"  #: files are <BASE_URL>/<name>?download=1
API_URL = f"https://zenodo.org/api/records/{RECORD_ID}"  #: JSON with files[].checksum "md5:..."
ARCHIVES = {"training_set.zip": TRAIN_DIR, "test_set.zip": TEST_DIR}
FILES = (TRAIN_CSV, TEST_CSV, *ARCHIVES)  #: CSVs first: they list what the archives must hold
# Published by Zenodo for the two tables (the archives' MD5 is read from the API at run time).
KNOWN_MD5 = {
    TRAIN_CSV: "c0761518fece2bd2d2ad4218f2cd9777",
    TEST_CSV: "8476dc198cc6542f26c57e87faeee033",
}
_CHUNK = 1 << 20
_USER_AGENT = "fetalhead (python urllib)"


def md5sum(path: str | os.PathLike, chunk: int = _CHUNK) -> str:
    """Hex MD5 digest of a file."""
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _clean_md5(value: str) -> str:
    return value.split(":", 1)[1].lower() if value.lower().startswith("md5:") else value.lower()


def fetch_checksums(api_url: str = API_URL, timeout: float = 30.0) -> dict[str, str]:
    """{file name: hex MD5} from a Zenodo record's API JSON (files[].key, files[].checksum)."""
    req = urllib.request.Request(api_url, headers={"User-Agent": _USER_AGENT, "Accept": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            record = json.load(resp)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise FetalheadError(f"cannot read checksums from {api_url}: {exc}") from None
    files = record.get("files", [])
    if isinstance(files, dict):  # newer API versions nest them: {"entries": {...}}
        files = list(files.get("entries", {}).values())
    out = {}
    for f in files:
        name, checksum = f.get("key") or f.get("filename"), f.get("checksum", "")
        if name and checksum.lower().startswith("md5:"):
            out[name] = _clean_md5(checksum)
    return out


def _total_from(resp, start: int) -> int | None:
    rng = resp.headers.get("Content-Range")  # "bytes 100-999/1000"
    if rng and "/" in rng and rng.rsplit("/", 1)[1].strip().isdigit():
        return int(rng.rsplit("/", 1)[1])
    length = resp.headers.get("Content-Length")
    return start + int(length) if length and length.isdigit() else None


def download_file(
    url: str,
    dest: str | os.PathLike,
    md5: str | None = None,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Download `url` to `dest`, resuming `dest.part` if present; verify `md5` (hex) if given.

    A `dest` that already exists is kept (and checked when `md5` is given). On an MD5
    mismatch the partial file is deleted and FetalheadError names the file.
    """
    dest = Path(dest)
    name = dest.name
    if dest.is_file():
        if md5 and md5sum(dest) != _clean_md5(md5):
            raise FetalheadError(
                f"{dest} exists but its MD5 is not Zenodo's {_clean_md5(md5)}; delete it and run again"
            )
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(name + ".part")
    start = part.stat().st_size if part.is_file() else 0
    headers = {"User-Agent": _USER_AGENT}
    if start:
        headers["Range"] = f"bytes={start}-"
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and start:  # nothing left to fetch: the .part is already whole
            resp = None
        else:
            raise FetalheadError(f"cannot download {name} from {url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise FetalheadError(f"cannot download {name} from {url}: {exc}") from None
    if resp is not None:
        with resp:
            if start and resp.status != 206:  # server ignored the Range header: start over
                start = 0
            total = _total_from(resp, start)
            bar = tqdm(total=total, initial=start, unit="B", unit_scale=True, unit_divisor=1024,
                       desc=name, disable=not progress, leave=False)
            try:
                with open(part, "ab" if start else "wb") as f, bar:
                    while block := resp.read(_CHUNK):
                        f.write(block)
                        bar.update(len(block))
            except OSError as exc:  # connection dropped: keep the .part for the next run
                raise FetalheadError(f"download of {name} interrupted ({exc}); run again to resume") from None
    if md5:
        got = md5sum(part)
        if got != _clean_md5(md5):
            part.unlink(missing_ok=True)
            raise FetalheadError(
                f"MD5 mismatch for {name}: expected {_clean_md5(md5)}, got {got}; "
                "the partial file was deleted, run again"
            )
    os.replace(part, dest)
    return dest


def extract_archive(archive: str | os.PathLike, root: str | os.PathLike, folder: str) -> Path:
    """Unpack the PNGs of `archive` flat into `root/folder`, and any CSV into `root`.

    Folder names inside the archive are dropped, so `training_set.zip` lands in
    `root/training_set/` whether or not it holds a top folder; this also keeps members from
    escaping `root` ("zip slip"). Files already present are not overwritten. Each member's
    CRC-32 is checked while reading. Returns `root/folder`.
    """
    root = Path(root)
    out = root / folder
    out.mkdir(parents=True, exist_ok=True)
    try:
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                parts = PurePosixPath(info.filename.replace("\\", "/")).parts
                if info.is_dir() or not parts or "__MACOSX" in parts or parts[-1].startswith("."):
                    continue
                base = parts[-1]
                suffix = base.lower().rsplit(".", 1)[-1]
                target = out / base if suffix == "png" else root / base if suffix == "csv" else None
                if target is None or target.exists():
                    continue
                with atomic_file(target) as tmp, zf.open(info) as src, open(tmp, "wb") as dst:
                    shutil.copyfileobj(src, dst, _CHUNK)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as exc:
        raise FetalheadError(f"corrupt archive {archive}: {exc}") from None
    return out


def _folder_complete(root: Path, folder: str) -> bool:
    """True when every file the matching CSV lists is already unpacked."""
    try:
        check_data_dir(root, test_set=folder == TEST_DIR)
    except FetalheadError:
        return False
    return True


def download_hc18(
    root: str | os.PathLike | None = None,
    base_url: str = BASE_URL,
    checksums: Mapping[str, str] | None = None,
    api_url: str = API_URL,
    progress: bool = True,
    keep_archives: bool = False,
    timeout: float = 60.0,
) -> Path:
    """Download and unpack HC18 into `root` (default `fetalhead.paths.data_dir()`); return it.

    Args:
        root: target folder; it ends up holding training_set/, test_set/ and the two CSVs.
        base_url: files are fetched from ``f"{base_url}/{name}?download=1"``.
        checksums: {file name: MD5 hex} to use instead of asking `api_url` for the archives'
            MD5 (the CSV MD5s are pinned in `KNOWN_MD5`). Files it leaves out are not checked.
        keep_archives: keep the .zip files after unpacking (default: once the whole folder
            checks out, delete the ones it downloaded and those whose MD5 is Zenodo's; an
            archive of yours that cannot be checked stays).
    Parts already in place (a complete training_set/, a correct CSV) are skipped, so running
    it again after an interruption only fetches what is missing.
    """
    root = data_dir(root)
    if root.exists() and not root.is_dir():  # mkdir would say only "File exists"
        raise FetalheadError(f"HC18 folder {root} is a file, not a folder")
    root.mkdir(parents=True, exist_ok=True)
    if checksums is None:
        need = [a for a, folder in ARCHIVES.items() if not _folder_complete(root, folder)]
        table: dict[str, str] = {}
        if need:
            try:
                table = fetch_checksums(api_url, timeout=timeout)
            except FetalheadError as exc:
                # Still safe to go on: every zip member carries a CRC-32 that unpacking checks.
                warnings.warn(f"{exc}; the archives will not be MD5-checked", stacklevel=2)
        checksums = {**table, **KNOWN_MD5}
    table = {k: _clean_md5(v) for k, v in checksums.items()}
    fetched = []  # archives this call downloaded: the only ones it may delete
    for name in FILES:
        folder = ARCHIVES.get(name)
        if folder is not None and _folder_complete(root, folder):
            continue
        had = (root / name).is_file()
        path = download_file(f"{base_url.rstrip('/')}/{name}?download=1", root / name,
                             md5=table.get(name), progress=progress, timeout=timeout)
        if folder is not None:
            extract_archive(path, root, folder)
            if not had:
                fetched.append(path)
    checked = check_data_dir(root)
    if not keep_archives:  # Zenodo's own bytes (MD5-checked) can be fetched again; others are yours
        verified = [root / a for a in ARCHIVES if (root / a).is_file() and table.get(a) and md5sum(root / a) == table[a]]
        for path in {*fetched, *verified}:
            path.unlink(missing_ok=True)
    return checked
