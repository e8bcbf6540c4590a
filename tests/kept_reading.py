"""Checks shared by the multi-frame files read through Pillow (a TIFF stack, an animated image):
opened once while read in order and read afresh otherwise; a cut last frame is one error."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from fetalhead.data import frame_count, load_image
from fetalhead.errors import FetalheadError


def check_read_in_order_opens_once(monkeypatch, write: Callable[[Path, list], Path], folder: Path, suffix: str,
                                   holds: Callable[[Path], bool]) -> None:
    """`write(path, frames)` saves uint8 (H, W) frames as one file; `holds(path)` says whether
    the reader keeps it open. Each frame in turn: opened once and kept until the last frame;
    out of order, another file between, the file replaced: each read gives its own frame."""
    import PIL.Image

    rng = np.random.default_rng(3)
    a = [rng.integers(0, 256, (40, 64), dtype=np.uint8) for _ in range(5)]
    b = [rng.integers(0, 256, (40, 64), dtype=np.uint8) for _ in range(3)]
    file_a, file_b = write(folder / f"a{suffix}", a), write(folder / f"b{suffix}", b)
    opened: list[str] = []
    real = PIL.Image.open

    def counting(fp, *args, **kwargs):
        opened.append(os.path.basename(str(fp)))
        return real(fp, *args, **kwargs)

    monkeypatch.setattr(PIL.Image, "open", counting)
    for k in range(1, 6):
        assert np.array_equal(load_image(file_a, k), a[k - 1])
        assert holds(file_a) == (k < 5)  # let go after its last frame
    assert opened == [file_a.name]
    opened.clear()
    for path, frames, k in [(file_a, a, 3), (file_a, a, 1), (file_a, a, 2), (file_b, b, 2), (file_a, a, 4)]:
        assert np.array_equal(load_image(path, k), frames[k - 1]), (path.name, k)
    # a 3 alone; a 1-2 kept; b 2 alone; a 4 alone
    assert opened == [file_a.name, file_a.name, file_b.name, file_a.name]
    assert not holds(file_a) and not holds(file_b)  # out of order: nothing kept
    assert np.array_equal(load_image(file_a, 1), a[0]) and holds(file_a)
    os.replace(write(folder / f"new{suffix}", [255 - f for f in a]), file_a)
    os.utime(file_a, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert not holds(file_a)
    assert np.array_equal(load_image(file_a, 2), 255 - a[1])  # the new file's frame, not the kept one's


def check_a_cut_last_frame_is_one_error(capfd, write: Callable[[Path, list], Path], folder: Path, suffix: str) -> None:
    """A file of 3 frames (`write(path, frames)`) cut 3000 bytes short: its last frame's pixels
    lost, its count of frames kept; reading that frame is one error naming it, nothing printed."""
    rng = np.random.default_rng(2)
    whole = write(folder / f"whole{suffix}", [rng.integers(0, 256, (64, 96), dtype=np.uint8) for _ in range(3)])
    cut = folder / f"cut{suffix}"
    cut.write_bytes(whole.read_bytes()[:-3000])
    capfd.readouterr()
    assert frame_count(cut) == 3
    with pytest.raises(FetalheadError, match=rf"cut{suffix}: frame 3 of 3 does not decode"):
        load_image(cut, 3)
    out, err = capfd.readouterr()
    assert out == "" and err == ""
