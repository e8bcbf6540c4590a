"""Resized HC18 arrays in memory, a disk cache so decoding runs once, and a compact carry-file.

Decoding 999 PNGs of 540x800 and resizing them takes seconds; training runs, notebooks and
tests all want the same arrays, so `load_arrays` stores them in `fetalhead.paths.cache_dir()`
(never in the data folder, which may be read-only) under a key made of the image size, the
list of files and their sizes and modification times: changing any file invalidates it.
`build_compact_cache` writes the whole labelled set as one small compressed file (masks
bit-packed) that can be carried to a machine without the data.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
import zipfile
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from fetalhead.config import DEFAULT_SIZE
from fetalhead.data import (
    annotation_path,
    check_data_dir,
    decode_image,
    image_path,
    load_image,
    load_pair,
    read_test_csv,
    read_training_csv,
)
from fetalhead.errors import FetalheadError
from fetalhead.files import atomic_file
from fetalhead.frame import network_image, network_mask
from fetalhead.paths import cache_dir as default_cache_dir
from fetalhead.split import LABELLED_PARTS, PARTS, load_split
from fetalhead.transforms import resize_image, resize_mask

__all__ = [
    "META_COLUMNS",
    "ArraySet",
    "build_compact_cache",
    "concat_arrays",
    "load_arrays",
    "load_compact_cache",
    "shrink_arrays",
]

META_COLUMNS = ["filename", "pixel_size_mm", "hc_mm", "exam", "frame", "split", "orig_h", "orig_w"]
CACHE_VERSION = 2  # bump when the arrays a key describes would come out differently


@dataclass
class ArraySet:
    """Images and masks at one size, with one metadata row per image.

    images: uint8 (N, H, W) grayscale. masks: uint8 {0,1} (N, H, W), or None for unlabelled
    images ("challenge"). meta: DataFrame with `META_COLUMNS`: pixel_size_mm is mm per pixel
    at the ORIGINAL size orig_h x orig_w (pixels), hc_mm the CSV head circumference (nan when
    unknown), split the part each row came from.
    """

    images: np.ndarray
    masks: np.ndarray | None
    meta: pd.DataFrame

    def __post_init__(self) -> None:
        if self.images.ndim != 3 or self.images.dtype != np.uint8:
            raise ValueError(f"images must be uint8 (N, H, W), got {self.images.dtype} {self.images.shape}")
        if self.masks is not None and self.masks.shape != self.images.shape:
            raise ValueError(f"masks {self.masks.shape} do not match images {self.images.shape}")
        if len(self.meta) != len(self.images):
            raise ValueError(f"meta has {len(self.meta)} rows for {len(self.images)} images")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) of the arrays, pixels."""
        return int(self.images.shape[1]), int(self.images.shape[2])

    def subset(self, index: Sequence[int] | np.ndarray) -> ArraySet:
        """Rows `index` (integer positions or a boolean array) as a new ArraySet."""
        idx = np.asarray(index)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        masks = None if self.masks is None else self.masks[idx]
        return ArraySet(self.images[idx], masks, self.meta.iloc[idx].reset_index(drop=True))

    def part(self, name: str) -> ArraySet:
        """The rows whose meta `split` is `name`."""
        return self.subset(self.meta["split"].to_numpy() == name)


def shrink_arrays(s: ArraySet, size: tuple[int, int]) -> ArraySet:
    """`s` resized to the smaller `size` = (H, W) pixels, image by image (`resize_image`,
    `resize_mask`): a large carry file serves smaller training sizes too. Meta is kept
    (orig_h, orig_w and pixel sizes refer to the original images)."""
    n = len(s)
    images = np.stack([resize_image(s.images[i], size) for i in range(n)]) if n else s.images[:, :size[0], :size[1]]
    masks = None
    if s.masks is not None:
        masks = np.stack([resize_mask(s.masks[i], size) for i in range(n)]) if n else s.masks[:, :size[0], :size[1]]
    return ArraySet(images, masks, s.meta.copy())


def concat_arrays(*sets: ArraySet) -> ArraySet:
    """The rows of `sets` (all the same (H, W) pixels, all with masks or all without), one
    after the other, as one ArraySet."""
    if not sets or len({s.size for s in sets}) != 1:
        raise ValueError(f"concat_arrays needs sets of one size, got {[s.size for s in sets]}")
    labelled = {s.masks is not None for s in sets}
    if len(labelled) != 1:
        raise ValueError("concat_arrays cannot mix sets with and without masks")
    masks = np.concatenate([s.masks for s in sets]) if labelled == {True} else None
    return ArraySet(np.concatenate([s.images for s in sets]), masks,
                    pd.concat([s.meta for s in sets], ignore_index=True))


def _parts(part: str | Sequence[str]) -> list[str]:
    parts = [part] if isinstance(part, str) else list(part)
    bad = [p for p in parts if p not in PARTS]
    if bad or not parts:
        raise ValueError(f"unknown part(s) {bad or parts}; choose from {list(PARTS)}")
    if "challenge" in parts and len(parts) > 1:
        raise ValueError("load 'challenge' on its own: it has no masks")
    return list(dict.fromkeys(parts))


def _rows(parts: list[str], root: Path, split: pd.DataFrame | None, limit: int | None) -> pd.DataFrame:
    """Metadata rows (no orig_h/orig_w yet) of the requested parts, in part then file order."""
    challenge = parts == ["challenge"]
    if split is None:
        split = load_split(include_challenge=challenge, root=root)
    table = read_test_csv(root) if challenge else read_training_csv(root)
    if "hc_mm" not in table:
        table["hc_mm"] = np.nan
    chosen = []
    for p in parts:
        names = split.loc[split["split"] == p, ["filename", "split"]]
        # Inner join: a data folder holding a subset of HC18 (tests, a user's copy) gives the
        # images of each part that it has.
        rows = table.merge(names, on="filename", how="inner").sort_values("filename")
        chosen.append(rows.head(limit) if limit is not None else rows)
    rows = pd.concat(chosen, ignore_index=True)
    return rows[META_COLUMNS[:6]]


def _key(rows: pd.DataFrame, root: Path, size: tuple[int, int], challenge: bool) -> str:
    """Hex digest of everything the arrays depend on: code version, size, the rows (names and
    CSV values), and each source file's size and modification time."""
    h = hashlib.sha256()
    h.update(f"v{CACHE_VERSION}|{size[0]}x{size[1]}|{root.resolve()}|".encode())
    h.update(rows.to_csv(index=False).encode())
    for name in rows["filename"]:
        files = [image_path(name, challenge, root)] + ([] if challenge else [annotation_path(name, root)])
        for f in files:
            st = f.stat()
            h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()


def _inside(path: Path, folder: Path) -> bool:
    path, folder = path.resolve(), folder.resolve()
    return path == folder or folder in path.parents


def _meta_to_array(meta: pd.DataFrame) -> np.ndarray:
    return np.array(meta.to_csv(index=False))  # 0-d unicode array: loads without pickle


def _meta_from_array(arr: np.ndarray) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(str(arr)), dtype={"filename": str, "split": str})


def _map(fn, n: int) -> list:
    # Threads, not processes: cv2 decodes, encodes and resizes with the GIL released.
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        return list(pool.map(fn, range(n)))


def _pack(prefix: str, s: ArraySet, png: bool = False) -> dict[str, np.ndarray]:
    n, h, w = s.images.shape
    out = {f"{prefix}meta": _meta_to_array(s.meta), f"{prefix}shape": np.array([n, h, w], np.int64)}
    if png:
        # Lossless PNG per image: its row filters (prediction from neighbours) before deflate
        # make ultrasound images about 20% smaller than deflate on the raw array.
        # Level 4 + the "filtered" zlib strategy: smaller than level 6 and twice as fast here.
        params = [cv2.IMWRITE_PNG_COMPRESSION, 4, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_FILTERED]
        blobs = _map(lambda i: cv2.imencode(".png", s.images[i], params)[1].ravel(), n)
        out[f"{prefix}images_png"] = np.concatenate(blobs) if blobs else np.zeros(0, np.uint8)
        out[f"{prefix}images_png_offsets"] = np.cumsum([0] + [len(b) for b in blobs]).astype(np.int64)
    else:
        out[f"{prefix}images"] = s.images
    if s.masks is not None:
        # One bit per pixel: masks are {0,1}, so this is 8x smaller than uint8 and lossless.
        out[f"{prefix}masks_bits"] = np.packbits(s.masks.reshape(n, h * w).astype(bool), axis=1)
    return out


#: what reading a truncated, damaged or foreign .npz file raises
_UNREADABLE = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error)


def _unpack(prefix: str, z) -> ArraySet:
    n, h, w = (int(v) for v in z[f"{prefix}shape"])
    if f"{prefix}images" in z:
        images = z[f"{prefix}images"]
    else:
        data, offsets = z[f"{prefix}images_png"], z[f"{prefix}images_png_offsets"]
        images = np.empty((n, h, w), np.uint8)

        def work(i: int) -> None:
            what = f"image {i} of {prefix.rstrip('_') or 'the file'}"
            try:
                image = decode_image(data[offsets[i]:offsets[i + 1]], what)
            except FetalheadError:
                image = None
            if image is None or image.shape != (h, w) or image.dtype != np.uint8:
                raise ValueError(f"{what} does not decode to {h}x{w}")
            images[i] = image

        _map(work, n)
    masks = None
    if f"{prefix}masks_bits" in z:
        masks = np.unpackbits(z[f"{prefix}masks_bits"], axis=1, count=h * w).reshape(n, h, w)
    return ArraySet(images, masks, _meta_from_array(z[f"{prefix}meta"]))


def _write_npz(path: Path, arrays: dict[str, np.ndarray], compress: bool) -> None:
    """Write atomically: readers never see half a file."""
    with atomic_file(path) as tmp, open(tmp, "wb") as f:
        (np.savez_compressed if compress else np.savez)(f, **arrays)


def _decode(rows: pd.DataFrame, root: Path, size: tuple[int, int], challenge: bool,
            progress: bool, desc: str) -> ArraySet:
    n, (h, w) = len(rows), size
    images = np.empty((n, h, w), np.uint8)
    masks = None if challenge else np.empty((n, h, w), np.uint8)
    orig = np.zeros((n, 2), np.int64)
    names = list(rows["filename"])

    def work(i: int) -> None:
        if challenge:
            image = load_image(image_path(names[i], True, root))
        else:
            image, mask = load_pair(image_path(names[i], root=root), annotation_path(names[i], root))
            masks[i] = network_mask(mask, size)  # type: ignore[index]
        images[i] = network_image(image, size)
        orig[i] = image.shape

    # Threads, not processes: cv2 decodes and resizes with the GIL released.
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        for _ in tqdm(pool.map(work, range(n)), total=n, desc=desc, disable=not progress, leave=False):
            pass
    meta = rows.reset_index(drop=True).copy()
    meta["orig_h"], meta["orig_w"] = orig[:, 0], orig[:, 1]
    return ArraySet(images, masks, meta)


def load_arrays(
    part: str | Sequence[str],
    size: tuple[int, int] = DEFAULT_SIZE,
    root: str | os.PathLike | None = None,
    cache: bool = True,
    cache_dir: str | os.PathLike | None = None,
    limit: int | None = None,
    split: pd.DataFrame | None = None,
    progress: bool = True,
) -> ArraySet:
    """HC18 images and filled masks of one or more split parts, resized to `size` = (H, W).

    Args:
        part: "train", "val", "test" (the committed exam-grouped split), a list of them, or
            "challenge" on its own (the 335 unlabelled test_set images: masks is None).
        size: (H, W) in pixels, e.g. (320, 480) (HC18's 540x800 aspect) or (572, 572).
        root: HC18 folder (default `fetalhead.paths.data_dir()`).
        cache: read/write the decoded arrays in `cache_dir` (default
            `fetalhead.paths.cache_dir()`); the key covers size, files and their mtimes.
        limit: keep the first `limit` images (by file name) of EACH part; None keeps all.
        split: a split table (filename, split) to use instead of the committed one.
    Returns:
        ArraySet with images uint8 (N, H, W), masks uint8 {0,1} (N, H, W), meta (see ArraySet),
        rows ordered by part, then file name.
    """
    parts = _parts(part)
    challenge = parts == ["challenge"]
    size = (int(size[0]), int(size[1]))
    if min(size) < 1:
        raise ValueError(f"size must be positive (H, W), got {size}")
    root = check_data_dir(root, test_set=challenge)
    rows = _rows(parts, root, split, limit)
    desc = f"decoding {'+'.join(parts)} at {size[0]}x{size[1]}"
    if cache and cache_dir is not None and _inside(Path(cache_dir).expanduser(), root):
        warnings.warn(f"not caching inside the data folder {root}", stacklevel=2)
        cache = False
    if cache:
        try:
            folder = default_cache_dir(cache_dir)  # creates it
        except OSError as exc:
            warnings.warn(f"cache disabled, cannot create its folder: {exc}", stacklevel=2)
            cache = False
    if not cache:
        return _decode(rows, root, size, challenge, progress, desc)
    path = folder / f"hc18_{size[0]}x{size[1]}_{_key(rows, root, size, challenge)[:24]}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                got = _unpack("", z)
            if list(got.meta["filename"]) == list(rows["filename"]):
                return got
        except _UNREADABLE:
            pass  # unreadable cache file: decode again and overwrite it
    arrays = _decode(rows, root, size, challenge, progress, desc)
    if _inside(path, root):  # e.g. $FETALHEAD_CACHE set inside a read-only ../shared
        warnings.warn(f"not caching inside the data folder {root}", stacklevel=2)
        return arrays
    try:
        _write_npz(path, _pack("", arrays), compress=False)
    except OSError as exc:
        warnings.warn(f"could not write cache {path}: {exc}", stacklevel=2)
    return arrays


def build_compact_cache(
    path: str | os.PathLike,
    size: tuple[int, int] = DEFAULT_SIZE,
    parts: Sequence[str] = LABELLED_PARTS,
    root: str | os.PathLike | None = None,
    cache: bool = True,
    progress: bool = True,
    codec: str = "png",
) -> Path:
    """Write `parts` at `size` = (H, W) into one compressed .npz and return `path`.

    Per part: images uint8 (N, H, W), each stored as a lossless PNG (`codec="png"`) or as
    one deflated array (`codec="raw"`); masks bit-packed (np.packbits); meta as CSV text.
    The 999 labelled images take 37 MiB at 256x384 with "png" (51 MiB with "raw"), under
    the 64 MiB a GPU machine takes; at 572x572 they do not fit (101 MiB, 147 MiB raw).
    """
    if codec not in ("png", "raw"):
        raise ValueError(f"codec must be 'png' or 'raw', got {codec!r}")
    path = Path(path)
    arrays: dict[str, np.ndarray] = {"format": np.array("fetalhead-compact-v1")}
    png = codec == "png"
    labelled = [p for p in parts if p != "challenge"]
    if labelled:  # one load for all labelled parts: it shares the disk cache with training runs
        everything = load_arrays(labelled, size, root=root, cache=cache, progress=progress)
        for p in labelled:
            arrays.update(_pack(f"{p}__", everything.part(p), png))
    if "challenge" in parts:
        challenge = load_arrays("challenge", size, root, cache, progress=progress)
        arrays.update(_pack("challenge__", challenge, png))
    arrays["parts"] = np.array(list(parts))
    _write_npz(path, arrays, compress=True)
    return path


def load_compact_cache(path: str | os.PathLike) -> dict[str, ArraySet]:
    """Read a file written by `build_compact_cache`: {part name: ArraySet}."""
    path = Path(path)
    if not path.is_file():
        raise FetalheadError(f"missing compact cache {path}; build it with `fetalhead prepare-cache`")
    # np.load reads anything: a .npy gives an array, other bytes a refusal to unpickle whose
    # advice (allow_pickle) is wrong here; a compact cache is always a zip (.npz)
    if not zipfile.is_zipfile(path):
        raise FetalheadError(f"not a fetalhead compact cache: {path} (not a .npz archive; "
                             "build one with `fetalhead prepare-cache`)")
    try:
        with np.load(path, allow_pickle=False) as z:
            if "format" not in z or str(z["format"]) != "fetalhead-compact-v1":
                raise FetalheadError(f"not a fetalhead compact cache: {path}")
            return {str(p): _unpack(f"{p}__", z) for p in z["parts"]}
    except _UNREADABLE as exc:
        raise FetalheadError(f"corrupt compact cache {path}: {exc}") from None
