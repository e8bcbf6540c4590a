"""fetalhead.tiff: multi-page TIFF stacks, read a page (frame) at a time like a cine loop."""

from __future__ import annotations

import re

import numpy as np
import pytest
from kept_reading import check_a_cut_last_frame_is_one_error, check_read_in_order_opens_once
from PIL import Image

from fetalhead.data import frame_count, load_image
from fetalhead.errors import FetalheadError
from fetalhead.tiff import looks_like_tiff, tiff_pages


def _stack(path, frames, **kwargs):
    """`frames` (uint8/uint16 (H, W) or uint8 (H, W, 3) arrays) as one multi-page TIFF at `path`."""
    pages = [Image.fromarray(f) for f in frames]
    pages[0].save(path, save_all=True, append_images=pages[1:], **kwargs)
    return path


def test_each_page_of_a_stack_is_its_frame(tmp_path):
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (60, 88), dtype=np.uint8) for _ in range(4)]
    for compression in (None, "tiff_lzw"):
        stack = _stack(tmp_path / f"stack_{compression}.tif", frames, compression=compression)
        assert looks_like_tiff(stack.read_bytes()[:4]) and tiff_pages(stack) == frame_count(stack) == 4
        for k in (3, 1, 4, 2):
            assert np.array_equal(load_image(stack, k), frames[k - 1]), (compression, k)


def test_a_page_reads_as_the_same_pixels_saved_alone(tmp_path):
    """16-bit and colour pages come out as a one-page TIFF of the same pixels does (the one
    path every other image takes)."""
    rng = np.random.default_rng(1)
    deep = [rng.integers(0, 65536, (40, 64), dtype=np.uint16) for _ in range(3)]
    colour = [rng.integers(0, 256, (40, 64, 3), dtype=np.uint8) for _ in range(3)]
    for name, frames in (("deep", deep), ("colour", colour)):
        stack = _stack(tmp_path / f"{name}.tif", frames)
        alone = _stack(tmp_path / f"{name}_2.tif", frames[1:2])
        assert frame_count(alone) == 1
        assert np.array_equal(load_image(stack, 2), load_image(alone)), name
    assert load_image(tmp_path / "deep.tif", 2).max() > 200  # rescaled, not clipped to 255


def test_a_stack_needs_its_frame_and_has_no_other(tmp_path):
    stack = _stack(tmp_path / "sweep.tiff", [np.zeros((32, 48), np.uint8)] * 3)
    with pytest.raises(FetalheadError, match=re.escape("sweep.tiff: a TIFF stack of 3 frames; choose the frame you "
                                                       "measure (predict --frame N, 1 to 3, or --frame all)")):
        load_image(stack)
    for k in (0, 4):
        with pytest.raises(FetalheadError, match=rf"no frame {k} in this TIFF stack of 3 frames \(1 to 3\)"):
            load_image(stack, k)
    still = _stack(tmp_path / "still.tif", [np.full((32, 48), 7, np.uint8)])
    assert load_image(still, 5).mean() == 7  # one page: read whatever the frame says, as a PNG


def test_a_broken_page_is_one_error_and_nothing_printed(tmp_path, capfd):
    check_a_cut_last_frame_is_one_error(capfd, _stack, tmp_path, ".tif")


def test_a_stack_read_page_by_page_is_opened_once(tmp_path, monkeypatch):
    """Each page in turn: the file opened once and kept until its last page; out of order,
    another stack between, the file replaced: each read gives its own page, nothing kept."""
    import fetalhead.tiff as tiff

    check_read_in_order_opens_once(monkeypatch, _stack, tmp_path, ".tif", tiff.holds_stack)


def test_a_page_opencv_cannot_read_from_the_path_is_read_from_the_bytes(tmp_path, monkeypatch):
    """OpenCV's file reader fails on some paths (non-ASCII names on Windows): the page then
    comes from the file's bytes, the same pixels."""
    import fetalhead.tiff as tiff

    rng = np.random.default_rng(4)
    frames = [rng.integers(0, 256, (40, 64), dtype=np.uint8) for _ in range(3)]
    stack = _stack(tmp_path / "stäck.tif", frames)
    monkeypatch.setattr(tiff.cv2, "imreadmulti", lambda *args, **kwargs: (False, ()))
    for k in (2, 3, 1):
        assert np.array_equal(load_image(stack, k), frames[k - 1]), k


def test_a_thumbnail_beside_the_image_is_not_a_stack(tmp_path):
    """A second page of another size (a thumbnail), or one marked a reduced-resolution copy:
    one image, read at its first page as before."""
    from PIL import TiffImagePlugin

    image = np.full((60, 88), 9, np.uint8)
    with_thumb = _stack(tmp_path / "thumb.tif", [image, np.zeros((15, 22), np.uint8)])
    assert tiff_pages(with_thumb) == frame_count(with_thumb) == 1
    assert np.array_equal(load_image(with_thumb), image)
    info = TiffImagePlugin.ImageFileDirectory_v2()
    info[254] = 1  # NewSubfileType: reduced-resolution copy
    pages = [Image.fromarray(image), Image.fromarray(np.zeros_like(image))]
    marked = tmp_path / "marked.tif"
    pages[0].save(marked, save_all=True, append_images=pages[1:], tiffinfo=info)
    with Image.open(marked) as im:
        assert im.n_frames == 2  # two pages, one image
    assert frame_count(marked) == 1 and np.array_equal(load_image(marked, 2), image)


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_alpha_is_ignored_in_a_tiff_as_in_a_png(tmp_path, mode):
    """A page with a transparent half reads as its colour, as a PNG of it does (OpenCV alone
    would give the colour times the alpha: the transparent half black), alone or in a stack,
    from the file or from its bytes."""
    from fetalhead.data import decode_image

    rng = np.random.default_rng(1)
    colour = rng.integers(40, 256, (32, 48, 3 if mode == "RGBA" else 1), dtype=np.uint8)
    alpha = np.zeros((32, 48, 1), np.uint8)
    alpha[:, 24:] = 255
    page = Image.fromarray(np.concatenate([colour, alpha], axis=2), mode)
    page.save(tmp_path / "a.png")
    page.save(tmp_path / "a.tif")
    page.save(tmp_path / "stack.tif", save_all=True, append_images=[Image.new(mode, page.size), page])
    want = load_image(tmp_path / "a.png")
    assert want[:, :24].min() >= 30  # the transparent half keeps its gray
    assert np.array_equal(load_image(tmp_path / "a.tif"), want)
    assert np.array_equal(load_image(tmp_path / "stack.tif", 3), want)
    raw = decode_image(np.fromfile(tmp_path / "stack.tif", dtype=np.uint8), "stack.tif", 3)
    import cv2

    assert np.array_equal(raw if raw.ndim == 2 else cv2.cvtColor(raw, cv2.COLOR_BGR2GRAY), want)


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")  # Pillow's, before the error; the CLI hides it
@pytest.mark.parametrize("share", [0.3])
def test_a_stack_cut_short_is_one_error(tmp_path, share):
    """An interrupted copy: Pillow raised TypeError ("Missing dimensions") through frame_count."""
    rng = np.random.default_rng(0)
    pages = [Image.fromarray(rng.integers(0, 256, (60, 80), dtype=np.uint8)) for _ in range(3)]
    pages[0].save(tmp_path / "whole.tif", save_all=True, append_images=pages[1:])
    data = (tmp_path / "whole.tif").read_bytes()
    (tmp_path / "cut.tif").write_bytes(data[:int(len(data) * share)])
    assert frame_count(tmp_path / "cut.tif") == 1  # pages that cannot be counted: read as one image
    with pytest.raises(FetalheadError, match="corrupt or truncated image: .*cut.tif"):
        load_image(tmp_path / "cut.tif", 1)  # which then does not decode
