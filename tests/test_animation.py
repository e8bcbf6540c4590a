"""fetalhead.animation: animated PNG, GIF and WebP files, read a frame at a time like a cine loop."""

from __future__ import annotations

import re

import numpy as np
import pytest
from kept_reading import check_a_cut_last_frame_is_one_error, check_read_in_order_opens_once
from PIL import Image

from fetalhead.animation import animation_frames, looks_like_animation
from fetalhead.data import IMAGE_SUFFIXES, frame_count, load_image
from fetalhead.errors import FetalheadError

FORMATS = {"png": {}, "gif": {}, "webp": {"lossless": True}}


def _animation(path, frames, **kwargs):
    """`frames` (uint8 (H, W) or (H, W, 3) arrays) as one animated image at `path`, in the format
    its suffix names (every frame whole, so each decodes to exactly its pixels)."""
    images = [Image.fromarray(f) for f in frames]
    opts = {"save_all": True, "append_images": images[1:], "duration": 40, **FORMATS[path.suffix[1:]], **kwargs}
    if path.suffix == ".gif":
        opts["disposal"] = 1  # each frame drawn whole over the last, nothing merged away
        opts["optimize"] = False
    images[0].save(path, **opts)
    return path


def _gray_frames(seed: int, n: int, shape=(48, 72)) -> list[np.ndarray]:
    """`n` random gray frames (each of distinct levels, so no format merges two frames)."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, shape, dtype=np.uint8) for _ in range(n)]


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_each_frame_of_an_animation_is_its_frame(tmp_path, fmt):
    frames = _gray_frames(0, 4)
    anim = _animation(tmp_path / f"sweep.{fmt}", frames)
    assert looks_like_animation(anim.read_bytes()[:12])
    assert animation_frames(anim) == frame_count(anim) == 4
    for k in (3, 1, 4, 2):  # out of order too
        assert np.array_equal(load_image(anim, k), frames[k - 1]), (fmt, k)


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_a_frame_reads_as_the_same_pixels_saved_alone(tmp_path, fmt):
    """A colour frame comes out as the still image of the same pixels does (luma, the path
    every other image takes)."""
    rng = np.random.default_rng(1)
    levels = rng.integers(0, 256, (16, 3), dtype=np.uint8)  # 16 colours: a GIF's palette holds them exactly
    frames = [levels[rng.integers(0, 16, (40, 64))] for _ in range(3)]
    anim = _animation(tmp_path / f"colour.{fmt}", frames)
    alone = tmp_path / f"colour_2.{fmt}"
    Image.fromarray(frames[1]).save(alone, **FORMATS[fmt])
    assert frame_count(alone) == 1
    assert np.array_equal(load_image(anim, 2), load_image(alone)), fmt
    assert not np.array_equal(load_image(anim, 2), load_image(anim, 1))


def test_an_animation_needs_its_frame_and_has_no_other(tmp_path):
    anim = _animation(tmp_path / "sweep.gif", _gray_frames(2, 3))
    with pytest.raises(FetalheadError, match=re.escape("sweep.gif: an animated image of 3 frames; choose the frame "
                                                       "you measure (predict --frame N, 1 to 3, or --frame all)")):
        load_image(anim)
    for k in (0, 4):
        with pytest.raises(FetalheadError, match=rf"no frame {k} in this animated image of 3 frames \(1 to 3\)"):
            load_image(anim, k)
    with pytest.raises(FetalheadError, match="an animated image of 3 frames"):  # from its bytes alone too
        from fetalhead.data import decode_image

        decode_image(np.fromfile(anim, dtype=np.uint8), anim)
    still = tmp_path / "still.gif"
    Image.fromarray(np.full((32, 48), 7, np.uint8)).save(still)
    assert frame_count(still) == 1 and load_image(still, 5).mean() == 7  # one frame: read as it is
    assert {".gif", ".webp"} <= set(IMAGE_SUFFIXES)  # folders list them


def test_an_animation_too_large_is_refused_at_any_frame(tmp_path, monkeypatch):
    import fetalhead.data as data

    anim = _animation(tmp_path / "wide.png", _gray_frames(6, 2, (32, 60)))
    monkeypatch.setattr(data, "MAX_SIDE", 59)
    for k in (1, 2):
        with pytest.raises(FetalheadError, match=r"image too large: .*wide.png is 32x60 pixels \(each side must be <= 59\)"):
            load_image(anim, k)


def test_a_broken_frame_is_one_error_and_nothing_printed(tmp_path, capfd):
    check_a_cut_last_frame_is_one_error(capfd, _animation, tmp_path, ".png")


def test_an_animation_read_frame_by_frame_is_opened_once(tmp_path, monkeypatch):
    """Each frame in turn: the file opened once and kept until its last frame; out of order,
    another animation between, the file replaced: each read gives its own frame."""
    import fetalhead.animation as animation

    check_read_in_order_opens_once(monkeypatch, _animation, tmp_path, ".gif", animation.holds_animation)
