"""Animated images (animated PNG, GIF, animated WebP): their frames as the frames of a cine loop.

Viewers and some ultrasound systems export a sweep as an animated GIF or PNG to share it. Such a
file is read as a DICOM cine loop, a TIFF stack or a video clip is: only at the frame asked for
(`frame`, numbered from 1; `--frame N`, `--frame all` or `--frame best` on the command line),
and refused with one line without it; a still image in these formats is an ordinary image.
Pillow reads the frames as a viewer shows them (each drawn over the ones before it as the file
says); colour becomes luma and alpha is ignored, as for every image. A file read from its first
frame on stays open until its last frame is read, another file is, or 10 s pass without a read
(`holds_animation`, `fetalhead.files.KEPT_IDLE_S`): each next frame is decoded from the one
before instead of from the first again.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from fetalhead.errors import FetalheadError
from fetalhead.files import KeptOpenFile, check_frame, frames_in

__all__ = ["animation_frames", "holds_animation", "looks_like_animation", "pillow_pixels", "read_animation_frame",
           "read_animation_page"]

_ERRORS = (OSError, SyntaxError, ValueError, EOFError)  # what Pillow raises for a bad file (and DecompressionBombError)
_FORMATS = ("PNG", "GIF", "WEBP")  # Pillow's names of the formats read here
_GRAY = ("L", "I", "I;16", "I;16B", "I;16L")  # Pillow modes kept as one channel


def looks_like_animation(head: bytes) -> bool:
    """Whether a file starting with the bytes `head` (at least 12 of them) is a PNG, GIF or
    WebP: the formats that can hold an animation (most such files are still images)."""
    return (head[:8] == b"\x89PNG\r\n\x1a\n" or head[:6] in (b"GIF87a", b"GIF89a")
            or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"))


def _frames(im: Any) -> int:
    """How many frames Pillow's open image `im` shows: its frames when it is an animated PNG,
    GIF or WebP, else 1 (a still image, or another format: a TIFF's pages are `fetalhead.tiff`'s)."""
    if im.format not in _FORMATS or not getattr(im, "is_animated", False):
        return 1
    return max(1, int(getattr(im, "n_frames", 1)))


def animation_frames(path: str | os.PathLike) -> int:
    """How many frames the PNG, GIF or WebP file at `path` shows: 1 for a still image, or
    when Pillow cannot tell."""
    from PIL import Image

    return frames_in(Path(path), Image.open, _frames, (*_ERRORS, Image.DecompressionBombError))


def pillow_pixels(im: Any) -> np.ndarray:
    """The image Pillow's `im` shows now (an animation's frame, a TIFF page, a turned JPEG) as
    OpenCV gives pixels: (H, W) gray (uint8, or uint16 / int32 for deeper gray) or (H, W, 3) BGR
    uint8, alpha dropped (not multiplied in)."""
    if im.mode in _GRAY:
        gray = np.array(im)
        return gray.astype(gray.dtype.newbyteorder("="), copy=False)  # native byte order
    if im.mode == "LA":
        return np.array(im.getchannel("L"))
    return np.ascontiguousarray(np.asarray(im.convert("RGB"))[:, :, ::-1])


def _frame(im: Any, n: int, frame: int | None, source: str | os.PathLike, max_side: int) -> np.ndarray:
    """Frame `frame` (from 1) of Pillow's open animation `im` of `n` frames (`pillow_pixels`).
    FetalheadError (one line, naming `source`) without `frame`, for a frame it lacks, a side
    above `max_side` px, or a frame that does not decode."""
    from PIL import Image

    check_frame(frame, n, source, "animated image", "save it as single images")
    try:
        if max(im.size) > max_side:
            raise FetalheadError(f"image too large: {source} is {im.size[1]}x{im.size[0]} pixels "
                                 f"(each side must be <= {max_side})")
        im.seek(frame - 1)
        im.load()
        return pillow_pixels(im)
    except FetalheadError:
        raise
    except (*_ERRORS, Image.DecompressionBombError) as e:
        raise FetalheadError(f"{source}: frame {frame} of {n} does not decode ({type(e).__name__})") from None


def read_animation_page(im: Any, source: str | os.PathLike, frame: int | None, max_side: int) -> np.ndarray | None:
    """Frame `frame` (from 1) of Pillow's open image `im` of a PNG, GIF or WebP: (H, W) gray
    or (H, W, 3) BGR, uint8 (uint16 / int32 for deep gray); None for a still image (decoded
    as any image). FetalheadError (one line, naming `source`) for an animation without
    `frame`, a frame it lacks, a side above `max_side` px, or a frame that does not decode."""
    n = _frames(im)
    return None if n == 1 else _frame(im, n, frame, source, max_side)


# The animation being read from its first frame on: Pillow's open image of it, and its number of frames.
_kept = KeptOpenFile()


def holds_animation(path: str | os.PathLike) -> bool:
    """Whether the animated image at `path`, as the file is now, is kept open (it is being
    read from its first frame on, and its last frame was not read yet)."""
    return _kept.holds(path)


def read_animation_frame(path: str | os.PathLike, frame: int, max_side: int) -> np.ndarray | None:
    """`read_animation_page` of the file at `path`, read from the file itself; an animation
    read from its first frame on stays open between the calls (`holds_animation`). None for a
    still image, or a file Pillow cannot open (the caller decodes it as any image)."""
    from PIL import Image

    path = Path(path)
    return _kept.read(path, frame, Image.open, _frames, lambda im, n: _frame(im, n, frame, path, max_side),
                      unreadable=(*_ERRORS, Image.DecompressionBombError))
