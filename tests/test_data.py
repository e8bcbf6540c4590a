"""fetalhead.data: CSVs, file names, image modes, annotation filling, and every data error."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pandas as pd
import pytest
from oracles import iou
from PIL import Image
from scipy import ndimage

from fetalhead.data import (
    TEST_CSV,
    TRAIN_CSV,
    annotation_path,
    annotation_to_mask,
    as_gray_uint8,
    check_data_dir,
    image_path,
    load_image,
    load_mask,
    load_pair,
    parse_filename,
    read_test_csv,
    read_training_csv,
    training_pairs,
)
from fetalhead.errors import FetalheadError

# ---------------------------------------------------------------- file names and CSVs


@pytest.mark.parametrize(
    ("name", "expected"),
    [("010_HC.png", (10, 1)), ("010_2HC.png", (10, 2)), ("010_2HC_Annotation.png", (10, 2)),
     ("000_HC.png", (0, 1)), ("805_3HC.png", (805, 3)), ("some/dir/123_HC.png", (123, 1))],
)
def test_parse_filename(name, expected):
    assert parse_filename(name) == expected


@pytest.mark.parametrize("name", ["HC.png", "010.png", "abc_HC.png", "010_HC.jpg", "010_xHC.png"])
def test_parse_filename_rejects(name):
    with pytest.raises(FetalheadError, match="not an HC18 file name"):
        parse_filename(name)


def test_paths_follow_hc18_names(tmp_path):
    assert image_path("010_2HC.png", root=tmp_path) == tmp_path / "training_set" / "010_2HC.png"
    assert image_path("010_HC.png", True, tmp_path) == tmp_path / "test_set" / "010_HC.png"
    assert annotation_path("010_2HC.png", tmp_path) == tmp_path / "training_set" / "010_2HC_Annotation.png"


def test_read_real_csvs(hc18_dir):
    train = read_training_csv(hc18_dir)
    assert list(train.columns) == ["filename", "pixel_size_mm", "hc_mm", "exam", "frame"]
    assert len(train) == 999 and train["filename"].is_unique
    assert train["exam"].nunique() == 806  # README of the data: 806 exams for 999 images
    row = train.set_index("filename").loc["001_HC.png"]  # first lines of the CSV, by hand
    assert row["pixel_size_mm"] == pytest.approx(0.0896585200514) and row["hc_mm"] == 56.81
    assert tuple(train.set_index("filename").loc["010_2HC.png", ["exam", "frame"]]) == (10, 2)
    assert (train["pixel_size_mm"] > 0).all() and (train["hc_mm"] > 0).all()
    test = read_test_csv(hc18_dir)
    assert list(test.columns) == ["filename", "pixel_size_mm", "exam", "frame"]
    assert len(test) == 335
    assert test["pixel_size_mm"].iloc[0] == pytest.approx(0.23585714045)


def test_training_pairs(synthetic_hc18):
    pairs = training_pairs(synthetic_hc18)
    assert len(pairs) == len(read_training_csv(synthetic_hc18))
    for img, ann in pairs:
        assert img.is_file() and ann.is_file()
        assert ann.name == img.stem + "_Annotation.png"


# ---------------------------------------------------------------- image modes


@pytest.fixture
def gray() -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, (37, 53), dtype=np.uint8)


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "LA", "P", "I;16", "I", "I8"])
def test_load_image_every_mode_of_a_gray_image(tmp_path, gray, mode):
    """A gray picture saved in any mode reads back as the same 8-bit gray array."""
    suffix = ".png"
    if mode in ("I;16", "I"):
        img = Image.fromarray(gray.astype(np.uint16) * 257)  # 16-bit: v -> v * 257 is full range
        if mode == "I":  # Pillow writes 32-bit "I" only as TIFF (it reads 16-bit PNGs as I;16)
            img, suffix = img.convert("I"), ".tif"
    elif mode == "I8":  # 32-bit integers holding 8-bit values
        img, suffix = Image.fromarray(gray.astype(np.int32), "I"), ".tif"
    elif mode == "P":
        img = Image.fromarray(gray).convert("P")  # a gray palette keeps every level exactly
    else:
        img = Image.fromarray(gray).convert(mode)
    path = tmp_path / f"x_{mode.replace(';', '')}{suffix}"
    img.save(path)
    assert Image.open(path).mode == ("I" if mode == "I8" else mode)
    out = load_image(path)
    assert out.dtype == np.uint8 and out.shape == gray.shape and out.flags.c_contiguous
    np.testing.assert_array_equal(out, gray)


def test_load_image_colour_is_luma(tmp_path):
    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "c.png")
    Image.fromarray(np.dstack([rgb, np.full((20, 30), 7, np.uint8)])).save(tmp_path / "c4.png")
    oracle = np.asarray(Image.fromarray(rgb).convert("L")).astype(int)  # Pillow's ITU-R 601
    for name in ("c.png", "c4.png"):
        assert np.abs(load_image(tmp_path / name).astype(int) - oracle).max() <= 1


def test_load_image_16bit_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 257, 1000, 32768, 40000, 65535]], np.uint16)
    Image.fromarray(values).save(tmp_path / "w.png")
    out = load_image(tmp_path / "w.png")
    np.testing.assert_array_equal(out, np.round(values / 257.0).astype(np.uint8))
    assert out[0, 3] == 128 and out[0, 4] == 156  # clipping would give 255


def test_load_image_16bit_is_scaled_alike_and_warns_when_few_bits_are_used(tmp_path, gray):
    """One scale for every 16-bit image (a scale from each image's own values changed its
    brightness 4x when one pixel crossed 1023): a 12-bit scan comes out dark, and says so."""
    twelve = np.round(gray * (4095 / 255)).astype(np.uint16)
    Image.fromarray(twelve).save(tmp_path / "deep.png")
    with pytest.warns(UserWarning, match=r"deep.png: a 16-bit image whose values reach only 4095 of 65535"):
        out = load_image(tmp_path / "deep.png")
    np.testing.assert_array_equal(out, np.round(twelve / 257.0).astype(np.uint8))
    brighter = twelve.copy()
    brighter[0, 0] = 4096  # one pixel more: the same scale for the others
    Image.fromarray(brighter).save(tmp_path / "one_more.png")
    np.testing.assert_array_equal(load_image(tmp_path / "one_more.png")[1:], out[1:])


def test_as_gray_uint8_follows_the_file_rules(gray):
    rgb = np.dstack([gray, np.roll(gray, 1, axis=1), np.roll(gray, 2, axis=0)])
    luma = np.asarray(Image.fromarray(rgb).convert("L")).astype(int)  # Pillow's ITU-R 601
    assert np.abs(as_gray_uint8(rgb).astype(int) - luma).max() <= 1
    assert np.abs(as_gray_uint8(rgb[..., ::-1], order="BGR").astype(int) - luma).max() <= 1
    assert np.abs(as_gray_uint8(np.dstack([rgb, gray])).astype(int) - luma).max() <= 1  # alpha ignored
    for same in (gray, gray[..., None], gray / 255.0, gray.astype(np.float32), gray.astype(np.uint16) * 257,
                 np.asfortranarray(gray)):
        out = as_gray_uint8(same)
        assert out.dtype == np.uint8 and out.shape == gray.shape and out.flags.c_contiguous
        np.testing.assert_array_equal(out, gray)
    assert as_gray_uint8(gray > 127).max() == 255
    stretched = as_gray_uint8(gray.astype(np.float64) * 4 - 300)  # any other range: its own
    assert (stretched.min(), stretched.max()) == (0, 255)


@pytest.mark.parametrize("array, words", [
    (np.zeros((4, 5, 2), np.uint8), "shape"), (np.zeros((2, 4, 5), np.uint8), "shape"),
    (np.array([[0.0, np.nan]]), "NaN"), (np.array([["a"]]), "numeric"),
])
def test_as_gray_uint8_refuses_in_one_line(array, words):
    with pytest.raises(FetalheadError, match=words):
        as_gray_uint8(array)
    with pytest.raises(FetalheadError, match="order"):
        as_gray_uint8(np.zeros((4, 5), np.uint8), order="rgb")


def test_load_image_real(hc18_dir):
    img = load_image(hc18_dir / "training_set" / "000_HC.png")
    ref = np.asarray(Image.open(hc18_dir / "training_set" / "000_HC.png"))  # Pillow as oracle
    assert img.shape == (540, 800) and img.dtype == np.uint8
    np.testing.assert_array_equal(img, ref)


def test_gray_pngs_decode_once_and_as_opencv_does(hc18_dir, tmp_path, gray):
    """8-bit gray PNGs (HC18's images and annotations) are decoded by Pillow alone: the same
    array OpenCV gives, in another array each time."""
    import cv2

    from fetalhead.data import _read_raw

    folder = hc18_dir / "training_set"
    Image.fromarray(gray).save(tmp_path / "g.png", compress_level=9)
    for path in [folder / "000_HC.png", folder / "000_HC_Annotation.png", folder / "010_2HC.png", tmp_path / "g.png"]:
        ours = _read_raw(path)
        theirs = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_UNCHANGED)
        assert ours.dtype == np.uint8 and ours.flags.writeable
        np.testing.assert_array_equal(ours, theirs)


# ---------------------------------------------------------------- annotations


def random_ellipses(n: int, size=(120, 160), seed=0):
    rng = np.random.default_rng(seed)
    h, w = size
    for _ in range(n):
        a, b = rng.uniform(12, 0.4 * h), rng.uniform(12, 0.4 * h)
        c = (rng.uniform(0.45, 0.55) * w, rng.uniform(0.45, 0.55) * h)
        yield (c, (2 * a, 2 * b), float(rng.uniform(0, 180)))


def ring_and_filled(box, size=(120, 160)) -> tuple[np.ndarray, np.ndarray]:
    """The 1-px outline and the filled ellipse of OpenCV box `box`, uint8 0/1 of `size` (H, W) px."""
    ring, filled = np.zeros(size, np.uint8), np.zeros(size, np.uint8)
    cv2.ellipse(ring, box, 1, 1)
    cv2.ellipse(filled, box, 1, -1)
    return ring, filled


def test_outline_is_filled_like_cv2_filled_ellipse():
    for box in random_ellipses(40):
        ring, filled = ring_and_filled(box)
        mask = annotation_to_mask(ring)
        assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}
        assert iou(mask, filled) > 0.98
        # Independent oracle: SciPy's hole filling of the closed ring.
        np.testing.assert_array_equal(mask, ndimage.binary_fill_holes(ring).astype(np.uint8))


@pytest.mark.parametrize("layout", ["gray255", "rgb255", "gray01", "rgba", "gray16"])
def test_outline_in_any_layout(layout):
    box = ((80.0, 60.0), (90.0, 60.0), 30.0)
    ring, filled = ring_and_filled(box)
    arr = {
        "gray255": ring * 255,
        "rgb255": np.dstack([ring * 255] * 3),
        "gray01": ring,
        "rgba": np.dstack([ring * 255] * 3 + [np.full_like(ring, 255)]),  # opaque alpha ignored
        "gray16": ring.astype(np.uint16) * 65535,
    }[layout]
    assert iou(annotation_to_mask(arr), filled) > 0.98


@pytest.mark.parametrize("gap", [1, 2, 3])
def test_outline_with_a_small_gap_is_still_filled(gap):
    box = ((80.0, 60.0), (110.0, 70.0), 15.0)
    ring, filled = ring_and_filled(box)
    ring[:, 80:80 + gap] = 0  # cut the ring at the top and at the bottom
    assert iou(annotation_to_mask(ring), filled) > 0.97


def test_outline_cut_by_the_image_border():
    box = ((80.0, 20.0), (120.0, 80.0), 0.0)  # the top of the ellipse lies above the image
    ring, filled = ring_and_filled(box)
    assert iou(annotation_to_mask(ring), filled) > 0.97


def test_a_thick_outline_is_filled():
    # a ring about 5 px wide is still an outline by the rule: a 3x3 erosion removes over half
    # of it (SciPy's erosion as the oracle: it keeps 48.7 %)
    box = ((80.0, 60.0), (100.0, 70.0), 25.0)
    ring = np.zeros((120, 160), np.uint8)
    cv2.ellipse(ring, box, 1, 3)
    assert 0.4 < ndimage.binary_erosion(ring, np.ones((3, 3))).sum() / ring.sum() < 0.5
    filled = ndimage.binary_fill_holes(ring).astype(np.uint8)
    assert filled.sum() > 4 * ring.sum()  # the case can tell a filled mask from the ring
    np.testing.assert_array_equal(annotation_to_mask(ring), filled)


@pytest.mark.parametrize("thickness", [5, 8, 15])
def test_a_closed_outline_of_any_thickness_is_filled(thickness):
    # thicker than the erosion rule can tell (a 3x3 erosion keeps over half of these rings):
    # what the ring encloses tells instead (SciPy's hole filling as the oracle)
    box = ((200.0, 150.0), (300.0, 220.0), 25.0)
    ring = np.zeros((300, 400), np.uint8)
    cv2.ellipse(ring, box, 1, thickness)
    assert ndimage.binary_erosion(ring, np.ones((3, 3))).sum() / ring.sum() > 0.5  # the old rule: "filled"
    filled = ndimage.binary_fill_holes(ring).astype(np.uint8)
    assert filled.sum() > 2 * ring.sum()
    np.testing.assert_array_equal(annotation_to_mask(ring * 255), filled)


@pytest.mark.parametrize("layout", ["gray01", "gray255", "rgb255", "bool"])
def test_filled_mask_is_kept_as_it_is(layout):
    filled = np.zeros((120, 160), np.uint8)
    cv2.ellipse(filled, ((70.0, 55.0), (80.0, 50.0), 20.0), 1, -1)
    filled[10:14, 10:14] = 1  # a second, small blob: a filled mask must not be "repaired"
    arr = {"gray01": filled, "gray255": filled * 255, "rgb255": np.dstack([filled * 255] * 3),
           "bool": filled.astype(bool)}[layout]
    np.testing.assert_array_equal(annotation_to_mask(arr), filled)


@pytest.mark.parametrize("paint", [0, 255])
def test_a_head_painted_in_one_colour_on_a_transparent_layer_is_its_alpha(paint):
    filled = np.zeros((120, 160), np.uint8)
    cv2.ellipse(filled, ((70.0, 55.0), (80.0, 50.0), 20.0), 1, -1)
    rgba = np.dstack([np.full_like(filled, paint)] * 3 + [filled * 255])
    np.testing.assert_array_equal(annotation_to_mask(rgba), filled)
    gray_alpha = np.dstack([np.full_like(filled, paint), filled * 255])
    np.testing.assert_array_equal(annotation_to_mask(gray_alpha), filled)
    opaque = np.dstack([np.full_like(filled, paint)] * 3 + [np.full_like(filled, 255)])
    assert annotation_to_mask(opaque).all() == bool(paint)  # one colour, opaque: as its colour says


def test_one_bit_mask_file(tmp_path):
    filled = np.zeros((40, 60), bool)
    cv2.ellipse(filled.view(np.uint8), ((30.0, 20.0), (40.0, 24.0), 10.0), 1, -1)
    Image.fromarray(filled).save(tmp_path / "m.png")
    assert Image.open(tmp_path / "m.png").mode == "1"
    np.testing.assert_array_equal(load_mask(tmp_path / "m.png"), filled)


def test_empty_annotation_gives_empty_mask():
    np.testing.assert_array_equal(annotation_to_mask(np.zeros((5, 7, 3), np.uint8)), np.zeros((5, 7)))


def test_load_mask_outline_file(tmp_path):
    box = ((60.0, 50.0), (70.0, 50.0), 40.0)
    ring = np.zeros((100, 120), np.uint8)
    cv2.ellipse(ring, box, 255, 1)
    Image.fromarray(ring).save(tmp_path / "r.png")
    filled = np.zeros_like(ring)
    cv2.ellipse(filled, box, 1, -1)
    assert iou(load_mask(tmp_path / "r.png"), filled) > 0.98


def test_real_filled_masks_in_one_and_three_channels(hc18_dir, tmp_path):
    for name in ("000_HC", "010_2HC", "100_HC"):
        src = hc18_dir / "training_set" / f"{name}_Annotation.png"
        rgb = np.asarray(Image.open(src))
        assert rgb.ndim == 3 and rgb.shape[2] == 3  # the shared copy is 3-channel 0/255
        truth = (rgb[:, :, 0] > 127).astype(np.uint8)
        assert truth.sum() > 1000
        np.testing.assert_array_equal(load_mask(src), truth)
        Image.fromarray(truth * 255).save(tmp_path / "one.png")  # same mask, 1 channel
        np.testing.assert_array_equal(load_mask(tmp_path / "one.png"), truth)
        Image.fromarray(truth).save(tmp_path / "bits.png")  # and 0/1 values
        np.testing.assert_array_equal(load_mask(tmp_path / "bits.png"), truth)


def test_real_masks_have_one_filled_region(hc18_dir):
    for name in ("000_HC", "500_HC", "805_HC"):
        mask = load_mask(hc18_dir / "training_set" / f"{name}_Annotation.png")
        n, _ = cv2.connectedComponents(mask)
        assert n == 2  # background + the head
        np.testing.assert_array_equal(mask, ndimage.binary_fill_holes(mask))


# ---------------------------------------------------------------- errors


def one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def test_missing_data_folder_says_how_to_get_it(tmp_path):
    with pytest.raises(FetalheadError) as exc:
        check_data_dir(tmp_path / "nowhere")
    msg = one_line(exc)
    assert "nowhere" in msg and "HC18_DIR" in msg and "fetalhead download" in msg


def test_check_data_dir_ok(synthetic_hc18):
    assert check_data_dir(synthetic_hc18) == synthetic_hc18


def test_check_real_data_dir(hc18_dir):
    assert check_data_dir(hc18_dir) == hc18_dir


@pytest.mark.parametrize("victim", [TRAIN_CSV, TEST_CSV, "training_set", "test_set"])
def test_incomplete_data_folder(synthetic_hc18, victim):
    path = synthetic_hc18 / victim
    shutil.rmtree(path) if path.is_dir() else path.unlink()
    with pytest.raises(FetalheadError) as exc:
        check_data_dir(synthetic_hc18)
    msg = one_line(exc)
    assert victim in msg and "fetalhead download" in msg


def test_missing_listed_file(synthetic_hc18):
    (synthetic_hc18 / "test_set" / "001_HC.png").unlink()
    with pytest.raises(FetalheadError, match="missing file .*test_set/001_HC.png") as exc:
        check_data_dir(synthetic_hc18)
    assert TEST_CSV in one_line(exc)
    check_data_dir(synthetic_hc18, test_set=False)  # the training part alone is still complete
    (synthetic_hc18 / "training_set" / "002_HC_Annotation.png").unlink()
    with pytest.raises(FetalheadError, match="missing file .*002_HC_Annotation.png") as exc:
        check_data_dir(synthetic_hc18, test_set=False)
    assert TRAIN_CSV in one_line(exc)
    with pytest.raises(FetalheadError, match="missing file .*002_HC_Annotation.png"):
        load_mask(synthetic_hc18 / "training_set" / "002_HC_Annotation.png")


def test_empty_listed_file(synthetic_hc18):
    (synthetic_hc18 / "training_set" / "000_HC.png").write_bytes(b"")
    with pytest.raises(FetalheadError, match="empty file .*000_HC.png"):
        check_data_dir(synthetic_hc18)
    with pytest.raises(FetalheadError, match="empty file .*000_HC.png"):
        load_image(synthetic_hc18 / "training_set" / "000_HC.png")


def test_truncated_image(synthetic_hc18):
    path = synthetic_hc18 / "training_set" / "000_HC.png"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(FetalheadError, match="corrupt or truncated image: .*000_HC.png") as exc:
        load_image(path)
    one_line(exc)


def test_corrupt_image(synthetic_hc18):
    path = synthetic_hc18 / "training_set" / "000_HC_Annotation.png"
    data = bytearray(path.read_bytes())
    data[40:60] = b"\x00" * 20  # damage the header chunk: its CRC no longer matches
    path.write_bytes(bytes(data))
    with pytest.raises(FetalheadError, match="corrupt or truncated image: .*000_HC_Annotation.png"):
        load_mask(path)


def test_not_an_image(tmp_path):
    path = tmp_path / "notes_HC.png"
    path.write_text("filename,pixel size(mm)\n")
    with pytest.raises(FetalheadError, match="not an image file: .*notes_HC.png") as exc:
        load_image(path)
    one_line(exc)


def test_size_mismatch(synthetic_hc18):
    img = synthetic_hc18 / "training_set" / "000_HC.png"
    ann = synthetic_hc18 / "training_set" / "000_HC_Annotation.png"
    cv2.imwrite(str(ann), np.zeros((10, 12, 3), np.uint8))
    with pytest.raises(FetalheadError, match="size mismatch: annotation .*000_HC_Annotation.png") as exc:
        load_pair(img, ann)
    one_line(exc)


def test_a_transposed_annotation_is_a_size_mismatch(tmp_path):
    Image.fromarray(np.zeros((40, 60), np.uint8)).save(tmp_path / "i.png")
    Image.fromarray(np.zeros((60, 40), np.uint8)).save(tmp_path / "a.png")  # same pixel count
    with pytest.raises(FetalheadError, match="size mismatch.*60x40.*40x60") as exc:
        load_pair(tmp_path / "i.png", tmp_path / "a.png")
    one_line(exc)


def test_an_oversized_image_is_refused_before_it_is_decoded(tmp_path):
    from fetalhead.inputs import MAX_SIDE

    Image.fromarray(np.zeros((40, MAX_SIDE + 8), np.uint8)).save(tmp_path / "wide.png")
    with pytest.raises(FetalheadError, match="image too large: .*wide.png") as exc:
        load_image(tmp_path / "wide.png")
    one_line(exc)


def test_bad_csv(synthetic_hc18):
    (synthetic_hc18 / TRAIN_CSV).write_text("filename,pixel size(mm)\n000_HC.png,0.1\n")
    with pytest.raises(FetalheadError, match="head circumference"):
        read_training_csv(synthetic_hc18)
    (synthetic_hc18 / TEST_CSV).write_text("filename,pixel size(mm)\n000_HC.png,abc\n")
    with pytest.raises(FetalheadError, match="non-numeric pixel_size_mm for 000_HC.png"):
        read_test_csv(synthetic_hc18)
    for rows, words in [("000_HC.png,-0.1\n", "pixel_size_mm of 000_HC.png must be a positive number"),
                        ("000_HC.png,inf\n", "must be a positive number"),
                        ("000_HC.png,0.1\n001_HC.png,0.1\n000_HC.png,0.2\n", "000_HC.png is listed twice")]:
        (synthetic_hc18 / TEST_CSV).write_text("filename,pixel size(mm)\n" + rows)
        with pytest.raises(FetalheadError, match=words) as exc:
            read_test_csv(synthetic_hc18)
        one_line(exc)


@pytest.mark.parametrize("content", [b"", b"a,b\n1,2,3,4\n\"unclosed\n", b"\xff\xfe\x00garbage\x00\xff"])
def test_an_unreadable_csv_is_one_line_naming_the_file(tmp_path, content):
    from fetalhead.data import read_csv
    from fetalhead.folder import read_pixel_csv

    path = tmp_path / "sizes.csv"
    path.write_bytes(content)
    for read in (read_csv, read_pixel_csv):
        with pytest.raises(FetalheadError) as info:
            read(path)
        assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_read_csv_strips_the_column_names(tmp_path):
    from fetalhead.data import read_csv

    path = tmp_path / "t.csv"
    path.write_text(" filename , pixel size(mm)\nx.png,0.1\n")
    assert list(read_csv(path).columns) == ["filename", "pixel size(mm)"]


def test_read_image_table_names_each_image_once_and_has_the_columns(tmp_path):
    from fetalhead.data import read_image_table

    path = tmp_path / "rows.csv"
    pd.DataFrame({"filename": ["a.png", "b.png"], "hc_mm": [100.0, 150.0]}).to_csv(path, index=False)
    assert read_image_table(path, ("hc_mm",), "a table")["hc_mm"].tolist() == [100.0, 150.0]
    with pytest.raises(FetalheadError, match=r"no column quality \(is it a table of hc\?\)"):
        read_image_table(path, ("hc_mm", "quality"), "a table of hc")
    pd.DataFrame({"filename": ["a.png", "a.png"], "hc_mm": [1.0, 2.0]}).to_csv(path, index=False)
    with pytest.raises(FetalheadError, match="a.png is listed twice"):
        read_image_table(path, ("hc_mm",), "a table")
    pd.DataFrame({"filename": ["a.avi", "a.avi"], "frame": [1, 2], "hc_mm": [1.0, 2.0]}).to_csv(path, index=False)
    with pytest.raises(FetalheadError, match="several frames of a.avi; keep one$"):
        read_image_table(path, ("hc_mm",), "a table", frames_hint="; keep one")
    with pytest.raises(FetalheadError):
        read_image_table(tmp_path / "none.csv", ("hc_mm",), "a table")


@pytest.mark.parametrize(("orientation", "turn"), [(3, 2), (6, 1), (8, 3)])
def test_a_jpeg_reads_turned_as_its_exif_orientation_shows_it(tmp_path, orientation, turn):
    """A phone stores its photo as the sensor saw it and says in EXIF how to turn it: read as
    every viewer shows it (colour or gray, from the file or from its bytes)."""
    from PIL import Image

    from fetalhead.data import decode_image, load_image

    rng = np.random.default_rng(orientation)
    gray = cv2.GaussianBlur(rng.integers(0, 256, (60, 90), dtype=np.uint8), (0, 0), 3)  # smooth: JPEG keeps it
    for name, upright in (("gray", gray), ("colour", np.stack([gray, 255 - gray, gray // 2], -1))):
        Image.fromarray(upright).save(tmp_path / "upright.jpg", quality=98)
        stored = Image.fromarray(np.ascontiguousarray(np.rot90(upright, turn)))  # what the sensor saw
        exif = stored.getexif()
        exif[0x0112] = orientation
        stored.save(tmp_path / "phone.jpg", quality=98, exif=exif.tobytes())
        want = load_image(tmp_path / "upright.jpg").astype(int)
        for got in (load_image(tmp_path / "phone.jpg"),
                    decode_image(np.fromfile(tmp_path / "phone.jpg", dtype=np.uint8), "phone.jpg")):
            got = got if got.ndim == 2 else cv2.cvtColor(got, cv2.COLOR_BGR2GRAY)
            assert got.shape == want.shape and np.abs(got.astype(int) - want).mean() < 2, (name, orientation)


def test_a_float_image_with_nan_pixels_is_one_error_naming_the_file(tmp_path, gray):
    """It was read as all zeros ("no head found") behind a NumPy warning naming no file."""
    pixels = gray.astype(np.float32)
    pixels[pixels > 100] = np.nan
    Image.fromarray(pixels).save(tmp_path / "nan.tif")
    with pytest.raises(FetalheadError, match=r"nan.tif: the image holds NaN or infinite pixel values"):
        load_image(tmp_path / "nan.tif")
