"""fetalhead.folder: a user's own images, masks found by pattern, pixel sizes from a CSV."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from fetalhead.cache import META_COLUMNS
from fetalhead.data import load_image, load_mask, read_training_csv
from fetalhead.errors import FetalheadError
from fetalhead.folder import FolderDataset, collect_images, exam_of, read_pixel_csv
from fetalhead.frame import network_image, network_mask
from fetalhead.transforms import resize_image


def test_hc18_layout(synthetic_hc18):
    folder = synthetic_hc18 / "training_set"
    ds = FolderDataset(folder, pixel_csv=synthetic_hc18 / "training_set_pixel_size_and_HC.csv")
    table = read_training_csv(synthetic_hc18)
    assert len(ds) == len(table)  # annotations are not counted as images
    assert [p.name for p in ds.image_paths] == sorted(table["filename"])
    px = dict(zip(table["filename"], table["pixel_size_mm"], strict=True))
    for i in range(len(ds)):
        item = ds[i]
        name = item["filename"]
        np.testing.assert_array_equal(item["image"], load_image(folder / name))
        np.testing.assert_array_equal(item["mask"], load_mask(folder / name.replace(".png", "_Annotation.png")))
        assert item["mask"].dtype == np.uint8 and item["image"].shape == (64, 96)
        assert item["pixel_size_mm"] == pytest.approx(px[name])
    assert ds[-1]["filename"] == ds.image_paths[-1].name
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_own_layout_with_missing_masks_and_pixel_sizes(tmp_path):
    images, masks = tmp_path / "scans", tmp_path / "labels"
    images.mkdir()
    masks.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.jpg", "c.png"):
        cv2.imwrite(str(images / name), rng.integers(0, 255, (30, 40), dtype=np.uint8))
    ring = np.zeros((30, 40), np.uint8)
    cv2.ellipse(ring, ((20.0, 15.0), (24.0, 16.0), 0.0), 255, 1)  # an outline: gets filled
    cv2.imwrite(str(masks / "a_mask.png"), ring)
    (images / "notes.txt").write_text("not an image")
    (tmp_path / "px.csv").write_text("filename,pixel size(mm)\na.png,0.12\n")
    ds = FolderDataset(images, masks, mask_pattern="{stem}_mask.png", pixel_csv=tmp_path / "px.csv")
    assert [p.name for p in ds.image_paths] == ["a.png", "b.jpg", "c.png"]
    a, b = ds[0], ds[1]
    filled = np.zeros((30, 40), np.uint8)
    cv2.ellipse(filled, ((20.0, 15.0), (24.0, 16.0), 0.0), 1, -1)
    assert (a["mask"] == filled).mean() > 0.98 and a["mask"].sum() > 0.9 * filled.sum()
    assert a["pixel_size_mm"] == 0.12
    assert b["mask"] is None and math.isnan(b["pixel_size_mm"])
    assert ds.mask_path(1) is None and ds.mask_path(0) == masks / "a_mask.png"

    arrays = ds.to_arrays((15, 20))
    assert arrays.images.shape == (3, 15, 20) and arrays.masks.shape == (3, 15, 20)
    assert list(arrays.meta.columns) == [*META_COLUMNS, "has_mask"]
    assert list(arrays.meta["has_mask"]) == [True, False, False]
    assert arrays.masks[1:].sum() == 0
    # a 30x40 frame (4:3) is padded to HC18's shape first, as the Predictor will see it
    np.testing.assert_array_equal(arrays.images[0], network_image(a["image"], (15, 20)))
    np.testing.assert_array_equal(arrays.masks[0], network_mask(a["mask"], (15, 20)))
    assert not np.array_equal(arrays.images[0], resize_image(a["image"], (15, 20)))
    assert list(arrays.meta["exam"]) == [-1, -2, -3] and (arrays.meta["split"] == "folder").all()  # each its own
    assert (arrays.meta[["orig_h", "orig_w"]].to_numpy() == [30, 40]).all()


def test_no_masks_at_all(synthetic_hc18):
    ds = FolderDataset(synthetic_hc18 / "test_set")
    assert len(ds) == 3 and ds[0]["mask"] is None
    arrays = ds.to_arrays((32, 48))
    assert arrays.masks is None and list(arrays.meta["exam"]) == [0, 1, 2]


def test_name_pattern_fields(synthetic_hc18, tmp_path):
    folder = synthetic_hc18 / "training_set"
    ds = FolderDataset(folder, mask_pattern="{stem}_Annotation{suffix}")
    assert len(ds) == 8 and ds.mask_path(0) == folder / "000_HC_Annotation.png"
    # Masks with the image's own name, in another folder (a common layout).
    (tmp_path / "masks").mkdir()
    (tmp_path / "masks" / "000_HC.png").write_bytes((folder / "000_HC_Annotation.png").read_bytes())
    ds = FolderDataset(folder, tmp_path / "masks", mask_pattern="{name}")
    assert len(ds) == 16  # the annotations are images too now: they are nobody's mask here
    assert ds.mask_path(0) == tmp_path / "masks" / "000_HC.png" and ds.mask_path(1) is None
    with pytest.raises(FetalheadError, match="bad mask_pattern"):
        FolderDataset(synthetic_hc18 / "test_set", mask_pattern="{base}_m.png")


@pytest.mark.parametrize("pattern", ["{stem", "{stem.x}.png", "{stem!z}.png", "{0}.png", "{}.png", "",
                                     "mask.png", "{suffix}", "{stem!r}.png", "{stem:>5000000000}"])
def test_a_malformed_mask_pattern_is_a_one_line_error(synthetic_hc18, pattern):
    # refused before use: str.format would raise several kinds of error, or build a name of
    # gigabytes (a format spec), or give every image the same mask (no stem or name)
    with pytest.raises(FetalheadError, match="bad mask_pattern"):
        FolderDataset(synthetic_hc18 / "test_set", mask_pattern=pattern)


def test_errors(tmp_path, synthetic_hc18):
    with pytest.raises(FetalheadError, match="image folder not found"):
        FolderDataset(tmp_path / "nowhere")
    (tmp_path / "scan.png").write_bytes(b"")
    with pytest.raises(FetalheadError, match="image folder .*scan.png is a file; give the folder"):
        FolderDataset(tmp_path / "scan.png")
    with pytest.raises(FetalheadError, match="mask folder .*scan.png is a file"):
        FolderDataset(synthetic_hc18 / "test_set", tmp_path / "scan.png")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FetalheadError, match="no images"):
        FolderDataset(tmp_path / "empty")
    with pytest.raises(FetalheadError, match="pixel-size CSV .*none.csv: no such file"):
        FolderDataset(synthetic_hc18 / "test_set", pixel_csv=tmp_path / "none.csv")
    (tmp_path / "bad.csv").write_text("name,size\na.png,1\n")
    with pytest.raises(FetalheadError, match="needs columns"):
        FolderDataset(synthetic_hc18 / "test_set", pixel_csv=tmp_path / "bad.csv")
    ann = synthetic_hc18 / "training_set" / "000_HC_Annotation.png"
    cv2.imwrite(str(ann), np.zeros((8, 8), np.uint8))
    ds = FolderDataset(synthetic_hc18 / "training_set")
    with pytest.raises(FetalheadError, match="size mismatch: mask .*000_HC_Annotation.png"):
        ds[0]


def test_read_pixel_csv_validates_every_value(tmp_path):
    good = tmp_path / "px.csv"
    good.write_text("filename,pixel size(mm)\na.png,0.12\nb.png, 0.2 \n")
    assert read_pixel_csv(good) == {"a.png": 0.12, "b.png": 0.2}
    good.write_text("filename,pixel count,pixel size(mm)\r\na.png,9,0.12\r\n,,\r\n , ,\r\n")  # spreadsheet rows
    assert read_pixel_csv(good) == {"a.png": 0.12}
    for header in ("pixel size (mm/px)", "pixel_size_mm_per_px", "Pixel Size [mm/pixel]"):  # mm, per pixel
        good.write_text(f"filename,{header}\na.png,0.12\n")
        assert read_pixel_csv(good) == {"a.png": 0.12}, header
    for body, match in [("filename,pixel size(mm)\na.png,0.12\nb.png,0\n", "line 3: pixel size 0 mm must be positive"),
                        ("filename,pixel size(mm)\na.png,abc\n", "line 2: pixel size 'abc' is not a number"),
                        ("filename,pixel size(mm)\na.png,5\n", "implausible"),
                        ("name,size\na.png,0.1\n", "needs columns"),
                        ("filename,pixel size (um)\na.png,100\n", "'pixel size \\(um\\)' is in um; give it in mm"),
                        ("filename,pixel size(mm)\na.png,0.1\nb.png,0.1\na.png,0.2\n", "line 4: a.png is listed twice"),
                        ("filename,pixel size(mm)\na.png,0.1\na,0.2\n", r"line 3: a is listed twice \(also as a.png\)"),
                        ("filename,pixel size(mm)\na,0.1\na.png,0.2\n", r"line 3: a.png is listed twice \(also as a\)")]:
        bad = tmp_path / "bad.csv"
        bad.write_text(body)
        with pytest.raises(FetalheadError, match=match):
            read_pixel_csv(bad)
    with pytest.raises(FetalheadError, match="pixel-size CSV .*none.csv: no such file"):
        read_pixel_csv(tmp_path / "none.csv")
    with pytest.raises(FetalheadError, match="pixel-size CSV .* is a folder; give a file"):
        read_pixel_csv(tmp_path)


def test_collect_images_from_files_and_folders(tmp_path):
    folder = tmp_path / "scans"
    folder.mkdir()
    for name in ("b.png", "a.JPG", "a_Annotation.png", "a_mask.png", "a_overlay.png", ".hidden.png", "notes.txt",
                 "b_annotation.png", "b_Mask.png", "b_OVERLAY.png"):  # masks and outputs in any case
        (folder / name).write_bytes(b"x")
    (folder / "sub").mkdir()
    (folder / "sub" / "c.png").write_bytes(b"x")
    single = tmp_path / "z.tif"
    single.write_bytes(b"x")
    assert collect_images([single, folder]) == [single, folder / "a.JPG", folder / "b.png"]
    # one file named twice, as itself and inside its folder: measured once, in first place
    assert collect_images([folder / "b.png", folder, tmp_path / "scans" / ".." / "scans" / "b.png"]) == [
        folder / "b.png", folder / "a.JPG"]
    with pytest.raises(FetalheadError, match="no such file or folder"):
        collect_images([tmp_path / "none.png"])
    (tmp_path / "masks").mkdir()
    (tmp_path / "masks" / "a_Annotation.png").write_bytes(b"x")
    with pytest.raises(FetalheadError, match="no images"):
        collect_images([tmp_path / "masks"])
    with pytest.raises(FetalheadError, match="same name stem 'b'"):
        collect_images([folder, tmp_path / "z.tif", _touch(tmp_path / "other" / "b.bmp")])


def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_pixel_sizes_by_name_then_stem_then_the_default(tmp_path):
    for name in ("a.png", "b.png", "c.png"):
        cv2.imwrite(str(tmp_path / name), np.zeros((8, 8), np.uint8))
    (tmp_path / "px.csv").write_text("filename,pixel size(mm)\na.png,0.12\nb,0.2\n")
    ds = FolderDataset(tmp_path, pixel_csv=tmp_path / "px.csv", pixel_size_mm=0.3)
    assert [ds.pixel_size(i) for i in range(3)] == [0.12, 0.2, 0.3]
    assert ds[2]["pixel_size_mm"] == 0.3 and ds.to_arrays((4, 4)).meta["pixel_size_mm"].tolist() == [0.12, 0.2, 0.3]
    assert math.isnan(FolderDataset(tmp_path).pixel_size(0))
    with pytest.raises(FetalheadError, match="pixel size"):
        FolderDataset(tmp_path, pixel_size_mm=-1.0)


def test_exam_of_parses_hc18_names_else_one_examination_each():
    assert exam_of("010_2HC.png", 5) == (10, 2) and exam_of("010_HC.png", 0) == (10, 1)
    assert exam_of("scan.png", 0) == (-1, 1) and exam_of("scan.png", 6) == (-7, 1)
    assert exam_of("010_2HC.jpg", 1) == (10, 2) and exam_of("sub/010_HC.DCM", 2) == (10, 1)  # any format
    assert exam_of("010_2HC", 3) == (10, 2)  # a DICOM file named without a suffix
    assert exam_of("010_HC.png.bak", 4) == (-5, 1) and exam_of("010_HC_mask.png", 5) == (-6, 1)


def test_names_that_are_not_utf8_and_inputs_that_are_not_files_are_refused_in_one_line(tmp_path):
    """A Latin-1 name gave a traceback when predictions.csv was written, after all the work; a
    FIFO named on the command line was read forever."""
    import os

    from fetalhead.synthetic import synthetic_cases

    image = synthetic_cases(1, seed=0).images[0]
    folder = tmp_path / "scans"
    folder.mkdir()
    bad = os.fsdecode(b"scan\xff.png")
    cv2.imwrite(str(folder / "good.png"), image)
    (folder / "good.png").rename(folder / bad)
    with pytest.raises(FetalheadError, match="not valid UTF-8; rename it") as err:
        collect_images([folder])
    assert "\\udcff" in str(err.value) or "\\xff" in str(err.value)
    with pytest.raises(FetalheadError, match="not valid UTF-8"):
        collect_images([folder / bad])
    os.mkfifo(tmp_path / "pipe.png")
    with pytest.raises(FetalheadError, match="not a regular file"):
        collect_images([tmp_path / "pipe.png"])


def test_a_folder_of_masks_only_says_why_it_holds_no_images(tmp_path):
    from fetalhead.synthetic import synthetic_cases

    mask = synthetic_cases(1, seed=0).masks[0] * 255
    for name in ("001_HC_Annotation.png", "scan_mask.png"):
        cv2.imwrite(str(tmp_path / name), mask)
    with pytest.raises(FetalheadError, match="2 skipped as masks or outputs"):
        collect_images([tmp_path])
