"""Multi-page TIFF files (image stacks): their pages as the frames of a cine loop.

Research tools and some ultrasound systems save a sweep as a TIFF stack, one page per frame. A
stack is read as a DICOM cine loop or a video clip is: only at the frame asked for (`frame`,
numbered from 1; `--frame N`, `--frame all` or `--frame best` on the command line), and refused
with one line without it; a TIFF of one page is an ordinary image. Pillow counts the pages and
checks the page asked for (its size, and that it decodes, without printing anything); OpenCV
then decodes it as it decodes the first page of any TIFF, so every page comes out the same way.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import cv2
import numpy as np

from fetalhead.errors import FetalheadError

__all__ = ["looks_like_tiff", "read_tiff_page", "tiff_pages"]

#: the first bytes of a TIFF (little- and big-endian) and of a BigTIFF
_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def looks_like_tiff(head: bytes) -> bool:
    """Whether a file starting with the bytes `head` (at least 4 of them) is a TIFF."""
    return head[:4] in _MAGIC


def _pages(source: Path | io.BytesIO) -> int:
    """Pages of a TIFF (a file, or its bytes): 1 when Pillow cannot tell (the decoder then
    reports the file's trouble as for any image)."""
    from PIL import Image

    try:
        with Image.open(source) as im:
            return max(1, int(getattr(im, "n_frames", 1)))
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError):
        return 1


def tiff_pages(path: str | os.PathLike) -> int:
    """How many pages (frames) the TIFF file at `path` holds, from its directory of pages
    (nothing decoded)."""
    return _pages(Path(path))


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
    if frame is None:
        raise FetalheadError(f"{source}: a TIFF stack of {n} frames; choose the frame you measure "
                             f"(predict --frame N, 1 to {n}, or --frame all) or save it as single images")
    if not 1 <= frame <= n:
        raise FetalheadError(f"{source}: no frame {frame} in this TIFF stack of {n} frames (1 to {n})")
    try:
        with Image.open(data) as im:
            im.seek(frame - 1)
            if max(im.size) > max_side:
                raise FetalheadError(f"image too large: frame {frame} of {source} is {im.size[1]}x{im.size[0]} "
                                     f"pixels (each side must be <= {max_side})")
            im.load()
    except FetalheadError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as e:
        raise FetalheadError(f"{source}: frame {frame} of {n} does not decode ({type(e).__name__})") from None
    ok, pages = cv2.imdecodemulti(buf, cv2.IMREAD_UNCHANGED, None, (frame - 1, frame))
    if not ok or len(pages) != 1 or pages[0] is None or pages[0].size == 0:
        raise FetalheadError(f"{source}: frame {frame} of {n} does not decode")
    page = pages[0]
    return page[:, :, 0] if page.ndim == 3 and page.shape[2] == 1 else page
