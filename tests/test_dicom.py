"""DICOM scans: pixels as 8-bit gray, and the pixel size the file stores (fetalhead.dicom and
its use by fetalhead.data and fetalhead.folder). The command line's DICOM cases are in
tests/test_cli.py."""

from __future__ import annotations

import os
import re
import time
import warnings
from pathlib import Path

import cv2
import numpy as np
import pydicom
import pydicom.examples
import pydicom.pixels
import pytest
from dicom_files import region, write_dicom
from PIL import Image
from video_files import write_clip

from fetalhead.data import load_image
from fetalhead.dicom import looks_like_dicom, read_dicom
from fetalhead.errors import FetalheadError
from fetalhead.folder import (
    FolderDataset,
    choose_pixel_size,
    collect_images,
    image_stem,
    stored_pixel_size,
)

GRAY = (np.arange(48 * 80).reshape(48, 80) * 7 % 256).astype(np.uint8)


@pytest.mark.parametrize(("regions", "spacing", "want"), [
    ([region(0.012)], None, 0.12),  # cm -> mm
    ([region(0.5, units=4, spatial_format=4), region(0.02)], None, 0.2),  # a waveform region is skipped
    ([region(0.5, spatial_format=2), region(0.02)], None, 0.2),  # so is an M-mode region
    ([region(0.02, units=4)], None, None),  # a 2D region in other units (seconds) says nothing
    ([region(0.012), region(0.01202)], None, 0.12),  # two regions within 1 %: the first
    ([], [0.09, 0.09], 0.09),  # PixelSpacing (mm) when there is no region
    ([region(0.011)], [0.3, 0.3], 0.11),  # the ultrasound region before PixelSpacing
    ([], None, None),
])
def test_pixel_size_from_regions_then_pixel_spacing(tmp_path, regions, spacing, want):
    scan = read_dicom(write_dicom(tmp_path / "s.dcm", GRAY, regions=regions, pixel_spacing=spacing))
    assert scan.pixel_size_mm == (None if want is None else pytest.approx(want))
    assert np.array_equal(scan.image, GRAY)


@pytest.mark.parametrize(("regions", "spacing", "words"), [
    ([region(0.01, 0.012)], None, "non-square pixels (0.1 x 0.12 mm, ultrasound region)"),
    ([], [0.1, 0.2], "non-square pixels (0.2 x 0.1 mm, PixelSpacing)"),  # (row, column): x is the column
    ([region(0.01), region(0.02)], None, "different pixel sizes (0.1 x 0.1, 0.2 x 0.2 mm)"),
    ([region(0.0)], None, "PhysicalDeltaX must be positive"),
    ([region(-0.01)], None, "PhysicalDeltaX must be positive"),
    ([], [0.1, 0.0], "PixelSpacing must be positive"),
    ([], [0.1], "PixelSpacing must hold 2 values"),  # pydicom gives one value as a number, not a list
])
def test_pixel_size_refused(tmp_path, regions, spacing, words):
    path = write_dicom(tmp_path / "s.dcm", GRAY, regions=regions, pixel_spacing=spacing)
    with pytest.raises(FetalheadError, match="^" + str(path).replace(".", r"\.") + ": ") as e:
        read_dicom(path)
    assert words in str(e.value) and "\n" not in str(e.value)
    if "non-square" in words:  # no pixel size measures it, given or stored
        with pytest.raises(FetalheadError, match=re.escape(words)):
            load_image(path)
    else:  # the image still reads: a pixel size may be given
        assert np.array_equal(load_image(path), GRAY)


def test_gray_from_bit_depths_and_colour(tmp_path):
    # 12 bits stored: the stored range 0..4095 becomes 0..255
    twelve = (np.arange(48 * 80).reshape(48, 80) % 4096).astype(np.uint16)
    got = read_dicom(write_dicom(tmp_path / "d12.dcm", twelve, bits_stored=12)).image
    assert got.dtype == np.uint8 and got.shape == (48, 80)
    assert np.array_equal(got, np.round(twelve * (255 / 4095)).astype(np.uint8))
    # MONOCHROME1: 0 is white
    inverted = read_dicom(write_dicom(tmp_path / "m1.dcm", GRAY, photometric="MONOCHROME1")).image
    assert np.array_equal(inverted, 255 - GRAY)
    # RGB: luma, as an RGB PNG gives (fetalhead.data.load_image)
    rgb = np.random.default_rng(0).integers(0, 256, (48, 80, 3), dtype=np.uint8)
    luma = read_dicom(write_dicom(tmp_path / "rgb.dcm", rgb)).image
    assert np.array_equal(luma, cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
    cv2.imwrite(str(tmp_path / "rgb.png"), rgb[..., ::-1])
    assert np.array_equal(luma, load_image(tmp_path / "rgb.png"))


def test_found_by_content_and_by_suffix(tmp_path):
    no_suffix = write_dicom(tmp_path / "IM0001", GRAY, regions=[region(0.01)])  # as scanners name them
    no_preamble = write_dicom(tmp_path / "raw.dcm", GRAY, regions=[region(0.01)], preamble=False)
    for path in (no_suffix, no_preamble):
        assert looks_like_dicom(path.read_bytes()[:132], path)
        assert np.array_equal(load_image(path), GRAY)
        assert stored_pixel_size(path) == pytest.approx(0.1)
    png = tmp_path / "a.png"
    cv2.imwrite(str(png), GRAY)
    assert not looks_like_dicom(png.read_bytes()[:132], png) and stored_pixel_size(png) is None
    # a folder lists images and DICOM files: by suffix, or by content whatever the name (not
    # the DICOMDIR index of an export, not other files)
    write_dicom(tmp_path / "1.2.840.113619.2.55.3", GRAY)
    write_dicom(tmp_path / "1.2.840.113619.2.55.4", GRAY)  # the same stem but for the UID's last number
    write_dicom(tmp_path / "DICOMDIR", GRAY)  # stands in for the index: skipped by its name
    (tmp_path / "notes.txt").write_text("not an image\n" * 20)
    (tmp_path / "tiny").write_bytes(b"DICM")  # too short for the marker
    found = collect_images([tmp_path])
    assert [p.name for p in found] == ["1.2.840.113619.2.55.3", "1.2.840.113619.2.55.4", "IM0001", "a.png", "raw.dcm"]
    assert [image_stem(p) for p in found] == ["1.2.840.113619.2.55.3", "1.2.840.113619.2.55.4", "IM0001", "a", "raw"]


def test_choose_pixel_size(tmp_path):
    scan = write_dicom(tmp_path / "s.dcm", GRAY, regions=[region(0.01)])
    png = tmp_path / "a.png"
    cv2.imwrite(str(png), GRAY)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning in these
        assert choose_pixel_size(scan, None) == pytest.approx(0.1)
        assert choose_pixel_size(scan, 0.1005) == 0.1005  # within 1 %
        assert choose_pixel_size(png, 0.2) == 0.2
        assert choose_pixel_size(png, None) is None
    with pytest.warns(UserWarning, match="s.dcm: measured with the given pixel size 0.2 mm, not the 0.1 mm"):
        assert choose_pixel_size(scan, 0.2) == 0.2
    bad = write_dicom(tmp_path / "bad.dcm", GRAY, regions=[region(0.01), region(0.02)])
    assert choose_pixel_size(bad, 0.15) == 0.15  # yours counts: the file's disagreement is not an error
    with pytest.raises(FetalheadError, match="different pixel sizes"):
        choose_pixel_size(bad, None)


def test_folder_dataset_takes_the_files_pixel_size(tmp_path):
    write_dicom(tmp_path / "img" / "s1.dcm", GRAY, regions=[region(0.011)])
    write_dicom(tmp_path / "img" / "s2.dcm", GRAY)  # stores none
    ds = FolderDataset(tmp_path / "img")
    assert [p.name for p in ds.image_paths] == ["s1.dcm", "s2.dcm"]
    assert ds.pixel_size(0) == pytest.approx(0.11) and np.isnan(ds.pixel_size(1))
    assert np.array_equal(ds[0]["image"], GRAY)
    assert FolderDataset(tmp_path / "img", pixel_size_mm=0.11).pixel_size(1) == pytest.approx(0.11)


def test_real_ultrasound_exports():
    """pydicom's own ultrasound examples: a palette-colour scan whose tissue region stores
    0.0262 cm per pixel beside a waveform region in seconds; an RGB scan without regions; a
    JPEG-compressed cine loop of 30 frames."""
    palette = pydicom.examples.get_path("palette_color")
    scan = read_dicom(palette)
    assert scan.pixel_size_mm == pytest.approx(0.2622878766, rel=1e-9)
    assert scan.image.shape == (350, 800) and scan.image.dtype == np.uint8
    ds = pydicom.dcmread(palette)  # the palette's colours (16-bit entries) as luma, BT.601
    rgb = pydicom.pixels.apply_color_lut(ds.pixel_array, ds) / 65535 * 255
    luma = rgb @ np.array([0.299, 0.587, 0.114])
    assert np.abs(scan.image - luma).max() <= 1.0
    assert not np.array_equal(scan.image, ds.pixel_array)  # the palette's indices are not its grays
    rgb = read_dicom(pydicom.examples.get_path("rgb_color"))
    assert rgb.pixel_size_mm is None and rgb.image.shape == (240, 320)
    with pytest.raises(FetalheadError, match="a cine loop of 30 frames"):
        read_dicom(pydicom.examples.get_path("ybr_color"))


def test_a_cine_loop_is_read_at_the_frame_asked_for(tmp_path):
    frames = np.stack([np.full((40, 60), 10 * (k + 1), np.uint8) for k in range(3)])
    frames[1, 5:15, 5:25] = 200  # frame 2 differs in more than its level
    clip = write_dicom(tmp_path / "clip.dcm", frames, photometric="MONOCHROME2", regions=[region(0.012)])
    with pytest.raises(FetalheadError, match=r"clip.dcm: a cine loop of 3 frames; choose the frame you measure "
                                             r"\(predict --frame N, 1 to 3, or --frame all\)"):
        read_dicom(clip)
    for k in (1, 2, 3):  # numbered from 1, as DICOM numbers frames
        scan = read_dicom(clip, frame=k)
        assert np.array_equal(scan.image, frames[k - 1]) and scan.pixel_size_mm == pytest.approx(0.12)
    assert np.array_equal(load_image(clip, frame=2), frames[1])
    for k in (0, 4):
        with pytest.raises(FetalheadError, match=f"no frame {k} in this cine loop of 3 frames"):
            read_dicom(clip, frame=k)
    single = write_dicom(tmp_path / "one.dcm", frames[2])  # one frame: read whatever frame says
    assert np.array_equal(read_dicom(single, frame=7).image, frames[2])
    Image.fromarray(frames[0]).save(tmp_path / "one.png")
    assert np.array_equal(load_image(tmp_path / "one.png", frame=5), frames[0])


def test_a_compressed_cine_loop_decodes_only_its_frame():
    """pydicom's JPEG cine loop of 30 YBR frames: frame 5 is the luma of pydicom's own 5th frame."""
    path = pydicom.examples.get_path("ybr_color")
    rgb = pydicom.dcmread(path).pixel_array[4]  # YBR comes back as RGB
    luma = rgb.astype(float) @ np.array([0.299, 0.587, 0.114])
    image = read_dicom(path, frame=5).image
    assert image.shape == rgb.shape[:2] and np.abs(image - luma).max() <= 1.0
    frames = pydicom.dcmread(path).pixel_array.astype(float) @ np.array([0.299, 0.587, 0.114])
    for k in (1, 6, 2, 3, 30):  # kept parsed from frame 1 on: each read decodes its own frame
        assert np.abs(read_dicom(path, frame=k).image - frames[k - 1]).max() <= 1.0, k


@pytest.mark.parametrize("data", [b"", bytes(128) + b"DICM" + bytes(range(256)) * 3])
def test_files_without_an_image_are_one_line_errors(tmp_path, data):
    path = tmp_path / "x.dcm"
    path.write_bytes(data)
    with pytest.raises(FetalheadError, match="x.dcm: a DICOM file without an image") as e:
        read_dicom(path)
    assert "\n" not in str(e.value)


def test_parse_errors_are_one_line_errors(tmp_path, monkeypatch):
    """pydicom reads leniently; whatever it refuses becomes one line naming the file."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    def refuse(*args, **kwargs):
        raise InvalidDicomError("File is missing DICOM File Meta Information header\nor the 'DICM' prefix")

    monkeypatch.setattr(pydicom, "dcmread", refuse)
    path = write_dicom(tmp_path / "s.dcm", GRAY)
    with pytest.raises(FetalheadError) as e:
        load_image(path)
    assert str(e.value) == (f"not a readable DICOM file: {path} (File is missing DICOM File Meta "
                            "Information header or the 'DICM' prefix)")


def test_without_pydicom_a_one_line_hint(tmp_path, monkeypatch):
    import sys

    path = write_dicom(tmp_path / "s.dcm", GRAY, regions=[region(0.01)])
    monkeypatch.setitem(sys.modules, "pydicom", None)  # as if not installed: importing it fails
    with pytest.raises(FetalheadError) as e:
        load_image(path)
    assert str(e.value) == f"{path}: reading DICOM needs pydicom: pip install pydicom (in a checkout: pip install -e '.[dicom]')"
    png = tmp_path / "a.png"
    cv2.imwrite(str(png), GRAY)
    assert np.array_equal(load_image(png), GRAY) and stored_pixel_size(png) is None  # other files need nothing


def test_malformed_frame_count(tmp_path):
    import pydicom

    path = write_dicom(tmp_path / "s.dcm", GRAY)
    ds = pydicom.dcmread(path)
    ds.NumberOfFrames = 1
    ds.save_as(path)
    element = b"\x28\x00\x08\x00IS\x02\x00"  # (0028,0008) Number of Frames, an integer string of 2 bytes
    data = path.read_bytes()
    assert data.count(element + b"1 ") == 1
    path.write_bytes(data.replace(element + b"1 ", element + b"xx"))  # as a broken exporter might
    with pytest.raises(FetalheadError, match="s.dcm: NumberOfFrames is not a number"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom's own warning on the invalid value
        read_dicom(path)


def test_truncated_pixel_data(tmp_path: Path):
    data = write_dicom(tmp_path / "full.dcm", GRAY, regions=[region(0.01)]).read_bytes()
    (tmp_path / "cut.dcm").write_bytes(data[:-1000])
    with pytest.raises(FetalheadError, match="cut.dcm: cannot decode its pixel data"):
        load_image(tmp_path / "cut.dcm")
    assert stored_pixel_size(tmp_path / "cut.dcm") == pytest.approx(0.1)  # the header is intact


def test_readme_python_example_runs(tmp_path, monkeypatch):
    """The README's Python example, run as written on a scan saved as PNG, as DICOM (pixel
    size 0.12 mm in its ultrasound region) and as frame 12 of a video: all measure the same head."""
    import re

    from fetalhead.synthetic import synthetic_set

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    code = next(b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "read_dicom" in b)
    image = synthetic_set(1, size=(270, 400), seed=3).images[0]
    cv2.imwrite(str(tmp_path / "my_scan.png"), image)
    write_dicom(tmp_path / "my_scan.dcm", image, regions=[region(0.012)])
    write_clip(tmp_path / "sweep.mp4", [np.zeros_like(image)] * 11 + [image])  # lossless
    monkeypatch.chdir(tmp_path)
    names: dict = {}
    exec(compile(code, "README.md", "exec"), names)
    first = names["predictor"].predict(names["load_image"]("my_scan.png"), pixel_size_mm=0.12)
    assert names["scan"].pixel_size_mm == pytest.approx(0.12)
    assert names["result"].hc_mm == pytest.approx(first.hc_mm, rel=1e-9) and np.isfinite(first.hc_mm)
    assert names["from_clip"].hc_mm == pytest.approx(first.hc_mm, rel=1e-9)  # frame 12 is the scan


def test_every_pydicom_test_file_reads_or_is_refused_in_one_line():
    """pydicom's own collection of test files (compressed, odd, broken, other modalities):
    each gives an 8-bit (H, W) image or a one-line FetalheadError naming the file; nothing
    else escapes."""
    import pydicom.data

    folder = Path(pydicom.data.__file__).parent / "test_files"  # the installed ones: no download
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc"))
    assert len(files) > 150
    read = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about the broken ones as it reads
        for name in files:
            try:
                scan = read_dicom(name)
                stored_pixel_size(name)
            except FetalheadError as e:
                assert "\n" not in str(e) and name.name in str(e), str(e)
                continue
            assert scan.image.dtype == np.uint8 and scan.image.ndim == 2, name
            read += 1
    assert read > 50


def test_frames_are_counted_from_the_header(tmp_path):
    from fetalhead.data import frame_count
    from fetalhead.dicom import dicom_frames

    loop = write_dicom(tmp_path / "loop.dcm", np.zeros((5, 32, 48), np.uint8), photometric="MONOCHROME2")
    still = write_dicom(tmp_path / "still.dcm", np.zeros((32, 48), np.uint8), photometric="MONOCHROME2")
    png = tmp_path / "x.png"
    Image.fromarray(np.zeros((32, 48), np.uint8)).save(png)
    assert (dicom_frames(loop), dicom_frames(still)) == (5, 1)
    assert (frame_count(loop), frame_count(still), frame_count(png)) == (5, 1, 1)
    with pytest.raises(FetalheadError, match="missing file"):
        frame_count(tmp_path / "none.dcm")


def test_a_cine_loop_read_frame_by_frame_is_parsed_once(tmp_path, monkeypatch):
    """Each frame of a loop in turn: the file parsed once, each frame its own (also out of
    order, with another loop between, and after the file is replaced); kept only once read
    from its first frame, and not after its last."""
    import fetalhead.dicom as dicom

    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (5, 40, 60), dtype=np.uint8)
    b = rng.integers(0, 256, (3, 40, 60), dtype=np.uint8)
    loop_a = write_dicom(tmp_path / "a.dcm", a, photometric="MONOCHROME2", regions=[region(0.012)])
    loop_b = write_dicom(tmp_path / "b.dcm", b, photometric="MONOCHROME2")
    parsed: list[str] = []
    real = dicom._dataset

    def counting(data, source, header_only):
        if not header_only:
            parsed.append(Path(source).name)
        return real(data, source, header_only)

    monkeypatch.setattr(dicom, "_dataset", counting)
    for k in range(1, 6):
        assert np.array_equal(load_image(loop_a, k), a[k - 1])
    assert parsed == ["a.dcm"] and not dicom.holds_loop(loop_a)  # let go after its last frame
    for path, frames, k in [(loop_a, a, 3), (loop_a, a, 1), (loop_a, a, 4), (loop_a, a, 2), (loop_b, b, 2),
                            (loop_a, a, 1)]:
        scan = read_dicom(path, frame=k)
        assert np.array_equal(scan.image, frames[k - 1]), (path.name, k)
    # a 3 out of order: parsed, not kept; a 1 kept, then a 4 and a 2 from it; b 2 out of order; a 1
    assert parsed == ["a.dcm", "a.dcm", "a.dcm", "b.dcm", "a.dcm"]
    assert scan.pixel_size_mm == pytest.approx(0.12) and dicom.holds_loop(loop_a)
    read_dicom(loop_b, frame=2)
    assert not dicom.holds_loop(loop_a) and not dicom.holds_loop(loop_b)  # out of order: nothing kept
    read_dicom(loop_a, frame=1)
    replaced = write_dicom(tmp_path / "new.dcm", 255 - a, photometric="MONOCHROME2")
    os.replace(replaced, loop_a)
    os.utime(loop_a, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert not dicom.holds_loop(loop_a)
    assert np.array_equal(load_image(loop_a, 3), 255 - a[2])  # the new file's frame, not the kept one's
