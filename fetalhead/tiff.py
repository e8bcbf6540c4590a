"""Multi-page TIFF files (image stacks): their pages as the frames of a cine loop.

Research tools and some ultrasound systems save a sweep as a TIFF stack, one page per frame. A
stack is read as a DICOM cine loop or a video clip is: only at the frame asked for (`frame`,
numbered from 1; `--frame N`, `--frame all` or `--frame best` on the command line), and refused
with one line without it; a TIFF of one page is an ordinary image. Pillow counts the pages and
checks the page asked for (its size, and that it decodes, without printing anything); OpenCV
then decodes it as it decodes the first page of any TIFF, so every page comes out the same way
(a page with alpha excepted: Pillow gives its colour, `without_alpha`).
A stack read from its first page on stays open until its last page is read, another TIFF is, or
10 s pass without a read (`holds_stack`, `fetalhead.files.KEPT_IDLE_S`): each next page is found
without walking the file again.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fetalhead.animation import pillow_pixels
from fetalhead.errors import FetalheadError
from fetalhead.files import KeptOpenFile, check_frame, frames_in

__all__ = ["holds_stack", "looks_like_tiff", "read_tiff_frame", "read_tiff_page", "tiff_pages", "without_alpha"]

#: the first bytes of a TIFF (little- and big-endian) and of a BigTIFF
_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
#: what Pillow raises for a bad file (and DecompressionBombError; TypeError for a TIFF cut short)
_ERRORS = (OSError, SyntaxError, ValueError, EOFError, TypeError)
_NEW_SUBFILE_TYPE = 254  # the TIFF tag: bit 0 a reduced-resolution copy, bit 2 a transparency mask


def looks_like_tiff(head: bytes) -> bool:
    """Whether a file starting with the bytes `head` (at least 4 of them) is a TIFF."""
    return head[:4] in _MAGIC


def _frames(im: Any) -> int:
    """How many frames Pillow's open TIFF `im` holds: its pages when they are all of one size
    and none is marked a reduced-resolution copy or a mask (NewSubfileType bits 0 and 2: a
    thumbnail beside one image, not a stack), else 1 (its first page is the image)."""
    n = max(1, int(getattr(im, "n_frames", 1)))
    if n > 1:
        size = im.size
        for page in range(n):
            im.seek(page)
            if im.size != size or int(im.tag_v2.get(_NEW_SUBFILE_TYPE, 0)) & 0b101:
                n = 1
                break
        im.seek(0)
    return n


def _pages(source: Path | io.BytesIO) -> int:
    """Frames of a TIFF (a file, or its bytes; `_frames`): 1 when Pillow cannot tell (the
    decoder then reports the file's trouble as for any image)."""
    from PIL import Image

    return frames_in(source, Image.open, _frames, (*_ERRORS, Image.DecompressionBombError))


def tiff_pages(path: str | os.PathLike) -> int:
    """How many frames the TIFF file at `path` holds: its pages, from its directory of pages
    (nothing decoded), or 1 when they are not a stack of frames (a thumbnail or a page of
    another size beside the image)."""
    return _pages(Path(path))


def _check_page(im: Any, n: int, frame: int | None, source: str | os.PathLike, max_side: int) -> None:
    """Pillow's open stack `im` of `n` pages moved to page `frame` (from 1) and that page
    decoded once: FetalheadError (one line, naming `source`) without `frame`, for a page it
    lacks, a side above `max_side` px, or a page that does not decode."""
    from PIL import Image

    check_frame(frame, n, source, "TIFF stack", "save it as single images")
    try:
        im.seek(frame - 1)
        if max(im.size) > max_side:
            raise FetalheadError(f"image too large: frame {frame} of {source} is {im.size[1]}x{im.size[0]} "
                                 f"pixels (each side must be <= {max_side})")
        im.load()
    except FetalheadError:
        raise
    except (*_ERRORS, Image.DecompressionBombError) as e:
        raise FetalheadError(f"{source}: frame {frame} of {n} does not decode ({type(e).__name__})") from None


#: Pillow's modes of a TIFF page with an alpha channel beside its gray or colour
_ALPHA_MODES = ("LA", "RGBA")


def without_alpha(im: Any) -> np.ndarray | None:
    """Pillow's open TIFF page `im` with an alpha channel (`_ALPHA_MODES`) as its colour alone,
    as OpenCV gives pixels: uint8 (H, W) gray or (H, W, 3) BGR; None for a page without one.
    (OpenCV returns the colour premultiplied by the alpha: a transparent part would read black,
    where every other format's alpha is ignored.)"""
    return pillow_pixels(im) if im.mode in _ALPHA_MODES else None


def _one_page(ok: bool, pages: Any, source: str | os.PathLike, frame: int, n: int) -> np.ndarray:
    """The page OpenCV's imreadmulti/imdecodemulti gave, a one-channel page as (H, W)."""
    if not ok or len(pages) != 1 or pages[0] is None or pages[0].size == 0:
        raise FetalheadError(f"{source}: frame {frame} of {n} does not decode")
    page = pages[0]
    return page[:, :, 0] if page.ndim == 3 and page.shape[2] == 1 else page


def read_tiff_page(buf: np.ndarray, source: str | os.PathLike, frame: int | None, max_side: int) -> np.ndarray | None:
    """Page `frame` (from 1) of the TIFF whose bytes are `buf` (uint8 (N,)) as OpenCV decodes
    it: (H, W) or (H, W, C) BGR(A), uint8 or uint16; None for a TIFF of one page (decoded as
    any image). FetalheadError (one line, naming `source`) for a stack without `frame`, a
    page it lacks, a side above `max_side` px, or a page that does not decode."""
    from PIL import Image

    data = io.BytesIO(buf.tobytes())
    n = _pages(data)
    if n == 1:
        return None
    try:
        with Image.open(data) as im:
            _check_page(im, n, frame, source, max_side)
            colour = without_alpha(im)
    except (*_ERRORS, Image.DecompressionBombError) as e:
        raise FetalheadError(f"{source}: not a readable TIFF ({type(e).__name__})") from None
    if colour is not None:
        return colour
    return _one_page(*cv2.imdecodemulti(buf, cv2.IMREAD_UNCHANGED, None, (frame - 1, frame)), source, frame, n)


# The stack being read from its first page on: Pillow's open image of it, and its number of pages.
_kept = KeptOpenFile()


def holds_stack(path: str | os.PathLike) -> bool:
    """Whether the TIFF stack at `path`, as the file is now, is kept open (it is being read
    from its first page on, and its last page was not read yet)."""
    return _kept.holds(path)


def read_tiff_frame(path: str | os.PathLike, frame: int, max_side: int) -> np.ndarray | None:
    """`read_tiff_page` of the TIFF file at `path`, read from the file itself: only the page
    asked for (no whole-file read); a stack read from its first page on stays open between the
    calls (`holds_stack`). None for a TIFF of one page, or one Pillow cannot open (the caller
    decodes it as any image)."""
    from PIL import Image

    path = Path(path)

    def read(im: Any, n: int) -> np.ndarray:
        _check_page(im, n, frame, path, max_side)
        colour = without_alpha(im)
        if colour is not None:
            return colour
        ok, pages = cv2.imreadmulti(str(path), start=frame - 1, count=1, flags=cv2.IMREAD_UNCHANGED)
        if not ok:  # a path OpenCV's file reader cannot open (e.g. non-ASCII on Windows): the bytes
            ok, pages = cv2.imdecodemulti(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED, None,
                                          (frame - 1, frame))
        return _one_page(ok, pages, path, frame, n)

    return _kept.read(path, frame, Image.open, _frames, read, unreadable=(*_ERRORS, Image.DecompressionBombError))
