"""fetalhead.cache: resizing, load_arrays, the disk cache and its key, the compact file."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pandas as pd
import pytest
from oracles import iou

import fetalhead.cache as cache_mod
from fetalhead.cache import (
    META_COLUMNS,
    ArraySet,
    build_compact_cache,
    concat_arrays,
    load_arrays,
    load_compact_cache,
    resize_image,
    resize_mask,
)
from fetalhead.data import load_image, load_mask
from fetalhead.errors import FetalheadError
from fetalhead.split import load_split

# ---------------------------------------------------------------- resizing


def test_resize_image_is_area_average():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (40, 60), dtype=np.uint8)
    out = resize_image(img, (20, 30))
    blocks = img.reshape(20, 2, 30, 2).astype(float).mean(axis=(1, 3))  # 2x2 means, by hand
    assert out.dtype == np.uint8 and out.shape == (20, 30)
    assert np.abs(out - blocks).max() <= 0.5 + 1e-9


def analytic_ellipse(size, scale_to=None):
    """Pixels of a fixed ellipse (defined on a 540x800 grid) whose centres lie inside it, on
    a grid of `size` covering the same field of view."""
    h0, w0 = 540, 800
    centre, semi, angle = np.array([410.0, 260.0]), np.array([150.0, 105.0]), np.deg2rad(25.0)
    sy, sx = size[0] / h0, size[1] / w0
    yy, xx = np.mgrid[0:size[0], 0:size[1]]
    # Pixel centre i of the new grid sits at (i + 0.5) / s - 0.5 on the original grid.
    x, y = (xx + 0.5) / sx - 0.5 - centre[0], (yy + 0.5) / sy - 0.5 - centre[1]
    u, v = x * np.cos(angle) + y * np.sin(angle), -x * np.sin(angle) + y * np.cos(angle)
    return ((u / semi[0]) ** 2 + (v / semi[1]) ** 2 <= 1).astype(np.uint8)


@pytest.mark.parametrize("size", [(256, 384), (572, 572), (135, 200), (100, 100)])
def test_resize_mask_keeps_the_boundary(size):
    """An ellipse mask at 540x800, resized, matches the same ellipse rasterised at the new size,
    better than nearest-neighbour resizing does."""
    big = analytic_ellipse((540, 800))
    truth = analytic_ellipse(size)
    out = resize_mask(big, size)
    assert out.dtype == np.uint8 and out.shape == size and set(np.unique(out)) <= {0, 1}
    nearest = cv2.resize(big, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)
    assert iou(out, truth) > 0.995
    assert iou(out, truth) >= iou(nearest, truth)
    assert abs(int(out.sum()) - int(truth.sum())) < 0.005 * truth.sum()


def test_resize_to_same_size_is_a_copy():
    m = np.eye(5, dtype=np.uint8)
    out = resize_mask(m, (5, 5))
    np.testing.assert_array_equal(out, m)
    assert out is not m


# ---------------------------------------------------------------- load_arrays on synthetic data


def test_load_arrays_synthetic(synthetic_hc18, cache_tmp):
    s = load_arrays(["train", "val", "test"], (32, 48), root=synthetic_hc18, progress=False)
    assert isinstance(s, ArraySet) and len(s) == 8 and s.size == (32, 48)
    assert s.images.dtype == np.uint8 and s.images.shape == (8, 32, 48)
    assert s.masks.dtype == np.uint8 and set(np.unique(s.masks)) == {0, 1}
    assert list(s.meta.columns) == META_COLUMNS
    assert list(s.meta["split"]) == ["train"] * 4 + ["val"] * 2 + ["test"] * 2
    assert (s.meta[["orig_h", "orig_w"]].to_numpy() == [64, 96]).all()
    committed = load_split().set_index("filename")["split"]
    assert all(committed[f] == p for f, p in zip(s.meta["filename"], s.meta["split"], strict=True))
    for i, name in enumerate(s.meta["filename"]):  # same as resizing by hand
        folder = synthetic_hc18 / "training_set"
        np.testing.assert_array_equal(s.images[i], resize_image(load_image(folder / name), (32, 48)))
        mask = load_mask(folder / name.replace(".png", "_Annotation.png"))
        np.testing.assert_array_equal(s.masks[i], resize_mask(mask, (32, 48)))
    csv = pd.read_csv(synthetic_hc18 / "training_set_pixel_size_and_HC.csv").set_index("filename")
    np.testing.assert_allclose(s.meta["hc_mm"], csv.loc[s.meta["filename"], "head circumference (mm)"])
    train = s.part("train")
    assert len(train) == 4 and (train.meta["split"] == "train").all()


def test_concat_arrays_joins_parts_in_order(synthetic_hc18, cache_tmp):
    s = load_arrays(["train", "val", "test"], (32, 48), root=synthetic_hc18, progress=False)
    joined = concat_arrays(s.part("train"), s.part("val"))
    assert len(joined) == 6 and list(joined.meta["split"]) == ["train"] * 4 + ["val"] * 2
    np.testing.assert_array_equal(joined.images, s.images[:6])
    np.testing.assert_array_equal(joined.masks, s.masks[:6])
    assert list(joined.meta.index) == list(range(6))
    unlabelled = ArraySet(s.images[:2], None, s.meta.iloc[:2].reset_index(drop=True))
    with pytest.raises(ValueError, match="with and without masks"):
        concat_arrays(s.part("train"), unlabelled)
    with pytest.raises(ValueError, match="one size"):
        concat_arrays(s.part("train"), ArraySet(s.images[:2, :16], s.masks[:2, :16], s.meta.iloc[:2]))


@pytest.mark.parametrize("size", [(572, 572), (256, 384)])
def test_load_arrays_paper_and_aspect_sizes(synthetic_hc18, size):
    s = load_arrays("train", size, root=synthetic_hc18, cache=False, progress=False)
    assert s.images.shape == (4, *size) and s.masks.shape == (4, *size)
    assert 0.05 < s.masks.mean() < 0.5  # the ellipse survives the (upscaling) resize


def test_load_arrays_limit_and_challenge(synthetic_hc18, cache_tmp):
    s = load_arrays(["train", "val"], (16, 24), root=synthetic_hc18, limit=1, progress=False)
    assert list(s.meta["split"]) == ["train", "val"]
    c = load_arrays("challenge", (16, 24), root=synthetic_hc18, progress=False)
    assert c.masks is None and len(c) == 3 and c.meta["hc_mm"].isna().all()
    assert (c.meta["split"] == "challenge").all()
    np.testing.assert_allclose(c.meta["pixel_size_mm"], [0.2, 0.21, 0.22])


def test_load_arrays_bad_parts(synthetic_hc18):
    with pytest.raises(ValueError, match="unknown part"):
        load_arrays("training", root=synthetic_hc18)
    with pytest.raises(ValueError, match="challenge"):
        load_arrays(["train", "challenge"], root=synthetic_hc18)


def test_load_arrays_missing_data(tmp_path):
    with pytest.raises(FetalheadError, match="fetalhead download"):
        load_arrays("train", root=tmp_path / "missing")


def test_load_arrays_custom_split(synthetic_hc18, cache_tmp):
    split = pd.DataFrame({"filename": ["003_HC.png", "010_HC.png"], "split": ["val", "val"]})
    s = load_arrays("val", (16, 24), root=synthetic_hc18, split=split, progress=False)
    assert list(s.meta["filename"]) == ["003_HC.png", "010_HC.png"]


# ---------------------------------------------------------------- disk cache


def test_cache_round_trip_and_invalidation(synthetic_hc18, cache_tmp, monkeypatch):
    calls = []
    real_decode = cache_mod._decode
    monkeypatch.setattr(cache_mod, "_decode", lambda *a, **k: calls.append(1) or real_decode(*a, **k))
    first = load_arrays("train", (32, 48), root=synthetic_hc18, progress=False)
    files = sorted(cache_tmp.glob("*.npz"))
    assert len(calls) == 1 and len(files) == 1
    second = load_arrays("train", (32, 48), root=synthetic_hc18, progress=False)
    assert len(calls) == 1  # read from disk, not decoded
    np.testing.assert_array_equal(first.images, second.images)
    np.testing.assert_array_equal(first.masks, second.masks)
    pd.testing.assert_frame_equal(first.meta, second.meta)
    # Another size is another entry.
    load_arrays("train", (16, 24), root=synthetic_hc18, progress=False)
    assert len(calls) == 2 and len(list(cache_tmp.glob("*.npz"))) == 2
    # Changing a source file invalidates the entry: the new content comes back.
    name = first.meta["filename"][0]
    path = synthetic_hc18 / "training_set" / name
    cv2.imwrite(str(path), np.full((64, 96), 200, np.uint8))
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    third = load_arrays("train", (32, 48), root=synthetic_hc18, progress=False)
    assert len(calls) == 3
    assert (third.images[0] == 200).all() and not (first.images[0] == 200).all()
    np.testing.assert_array_equal(third.images[1:], first.images[1:])
    # cache=False never touches the folder.
    n_files = len(list(cache_tmp.glob("*.npz")))
    load_arrays("train", (8, 12), root=synthetic_hc18, cache=False, progress=False)
    assert len(list(cache_tmp.glob("*.npz"))) == n_files


def test_corrupt_cache_entry_is_rebuilt(synthetic_hc18, cache_tmp):
    first = load_arrays("val", (32, 48), root=synthetic_hc18, progress=False)
    (entry,) = cache_tmp.glob("*.npz")
    entry.write_bytes(b"garbage")
    again = load_arrays("val", (32, 48), root=synthetic_hc18, progress=False)
    np.testing.assert_array_equal(first.images, again.images)
    with np.load(entry) as z:  # rewritten properly
        assert "images" in z


def test_never_writes_into_the_data_folder(synthetic_hc18, monkeypatch):
    monkeypatch.setenv("FETALHEAD_CACHE", str(synthetic_hc18 / "e"))  # via the variable
    with pytest.warns(UserWarning, match="not caching inside the data folder"):
        load_arrays("train", (16, 24), root=synthetic_hc18, progress=False)
    assert not list((synthetic_hc18 / "e").glob("*.npz"))
    # and via the argument: the folder is not even created
    with pytest.warns(UserWarning, match="not caching inside the data folder"):
        load_arrays("train", (16, 24), root=synthetic_hc18, cache_dir=synthetic_hc18 / "c",
                    progress=False)
    assert not (synthetic_hc18 / "c").exists()


# ---------------------------------------------------------------- compact file


@pytest.mark.parametrize("codec", ["png", "raw"])
def test_compact_cache_round_trip(synthetic_hc18, cache_tmp, tmp_path, codec):
    path = build_compact_cache(tmp_path / "compact.npz", (32, 48), root=synthetic_hc18,
                               parts=("train", "val", "test", "challenge"), progress=False,
                               codec=codec)
    with np.load(path) as z:
        assert ("train__images_png" in z) == (codec == "png")
    got = load_compact_cache(path)
    assert list(got) == ["train", "val", "test", "challenge"]
    for part, s in got.items():
        ref = load_arrays(part, (32, 48), root=synthetic_hc18, progress=False)
        np.testing.assert_array_equal(s.images, ref.images)
        if part == "challenge":
            assert s.masks is None
        else:
            np.testing.assert_array_equal(s.masks, ref.masks)  # bit-packing is lossless
        pd.testing.assert_frame_equal(s.meta, ref.meta)


def test_compact_cache_with_an_image_that_does_not_decode(synthetic_hc18, cache_tmp, tmp_path, capfd):
    path = build_compact_cache(tmp_path / "c.npz", (32, 48), root=synthetic_hc18, parts=("val",),
                               progress=False, codec="png")
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    first = int(arrays["val__images_png_offsets"][1])
    arrays["val__images_png"][8:first] = 0  # the first image's PNG chunks zeroed after the signature
    np.savez(tmp_path / "bad.npz", **arrays)
    capfd.readouterr()
    with pytest.raises(FetalheadError, match="corrupt compact cache .*image 0 of val does not decode"):
        load_compact_cache(tmp_path / "bad.npz")
    assert capfd.readouterr().err == ""  # nothing from libpng: the error is the one line


def test_compact_cache_errors(tmp_path):
    with pytest.raises(FetalheadError, match="missing compact cache"):
        load_compact_cache(tmp_path / "none.npz")
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(FetalheadError, match="not a fetalhead compact cache.*not a .npz archive"):
        load_compact_cache(tmp_path / "bad.npz")
    np.save(tmp_path / "array.npy", np.arange(3))  # np.load gives an array, not an archive
    with pytest.raises(FetalheadError, match="not a fetalhead compact cache.*not a .npz archive"):
        load_compact_cache(tmp_path / "array.npy")
    good = tmp_path / "good.npz"
    np.savez_compressed(good, x=np.arange(100000))
    data = good.read_bytes()
    (tmp_path / "trunc.npz").write_bytes(data[: len(data) // 2])  # the zip's directory is gone
    mid = len(data) // 2
    (tmp_path / "flip.npz").write_bytes(data[:mid] + bytes(b ^ 0xFF for b in data[mid:mid + 64]) + data[mid + 64:])
    for name in ("trunc.npz", "flip.npz"):
        with pytest.raises(FetalheadError, match="corrupt compact cache|not a fetalhead compact cache"):
            load_compact_cache(tmp_path / name)
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(FetalheadError, match="not a fetalhead compact cache"):
        load_compact_cache(tmp_path / "other.npz")
    with pytest.raises(ValueError, match="codec"):
        build_compact_cache(tmp_path / "x.npz", (8, 8), codec="jpeg")


@pytest.mark.slow
def test_compact_cache_of_all_labelled_images_fits_64_mib(hc18_dir, cache_tmp, tmp_path):
    path = build_compact_cache(tmp_path / "hc18_256x384.npz", (256, 384), root=hc18_dir,
                               progress=False)
    size_mib = path.stat().st_size / 2**20
    print(f"compact cache at 256x384: {size_mib:.1f} MiB")
    assert size_mib < 48  # leaves room for the repository in a 64 MiB transfer
    got = load_compact_cache(path)
    assert {k: len(v) for k, v in got.items()} == {"train": 693, "val": 146, "test": 160}
    split = load_split()
    for part, s in got.items():
        assert s.images.shape[1:] == (256, 384)
        assert list(s.meta["filename"]) == sorted(split.loc[split["split"] == part, "filename"])
        assert 0.05 < s.masks.mean() < 0.6
        assert (s.masks.reshape(len(s), -1).sum(axis=1) > 0).all()  # every image has a head
