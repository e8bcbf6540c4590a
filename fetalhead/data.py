"""HC18 files: the two CSV tables, file names, and image and annotation reading.

HC18 (van den Heuvel et al., PLoS ONE 2018, doi:10.1371/journal.pone.0200412; Zenodo record
1327317) is laid out as::

    training_set/NNN_HC.png, NNN_2HC.png ...   999 images, 8-bit grayscale, with
    training_set/NNN_HC_Annotation.png         one annotation each
    training_set_pixel_size_and_HC.csv         filename, pixel size(mm), head circumference (mm)
    test_set/NNN_HC.png                        335 images without annotations
    test_set_pixel_size.csv                    filename, pixel size(mm)

Zenodo ships each annotation as a thin (about 1 pixel) ellipse OUTLINE; derived copies (such as
the one in ../shared/hc18) hold the same ellipses already FILLED. `annotation_to_mask` accepts
both and always returns the filled region.
"""

from __future__ import annotations

import functools
import os
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from fetalhead.animation import (
    animation_frames,
    looks_like_animation,
    pillow_pixels,
    read_animation_frame,
    read_animation_page,
)
from fetalhead.dicom import (
    DICOM_SUFFIXES,
    dicom_frames,
    holds_loop,
    looks_like_dicom,
    read_dicom_image,
)
from fetalhead.errors import FetalheadError
from fetalhead.files import check_input_file
from fetalhead.inputs import MAX_SIDE
from fetalhead.paths import DATA_ENV, data_dir
from fetalhead.tiff import (
    looks_like_tiff,
    read_tiff_frame,
    read_tiff_page,
    tiff_pages,
    without_alpha,
)
from fetalhead.video import VIDEO_SUFFIXES, looks_like_video, read_video_frame, video_frames

__all__ = [
    "IMAGE_SUFFIXES",
    "MASK_SUFFIX",
    "OVERLAY_SUFFIX",
    "TEST_CSV",
    "TEST_DIR",
    "TRAIN_CSV",
    "TRAIN_DIR",
    "annotation_path",
    "annotation_to_mask",
    "as_gray_uint8",
    "blank_rows",
    "check_data_dir",
    "decode_image",
    "frame_count",
    "image_path",
    "load_labelled",
    "load_image",
    "load_mask",
    "load_pair",
    "parse_filename",
    "read_csv",
    "read_image_table",
    "read_test_csv",
    "read_training_csv",
    "training_pairs",
]

#: file suffixes read as images (HC18's PNGs, your own scans, DICOM exports, video clips)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp", *DICOM_SUFFIXES, *VIDEO_SUFFIXES)
#: what `fetalhead predict` appends to an image's stem for the mask and the overlay it writes
MASK_SUFFIX, OVERLAY_SUFFIX = "_mask", "_overlay"

TRAIN_DIR = "training_set"
TEST_DIR = "test_set"
TRAIN_CSV = "training_set_pixel_size_and_HC.csv"
TEST_CSV = "test_set_pixel_size.csv"

# "010_HC.png" is frame 1 of exam 10, "010_2HC.png" frame 2; annotations add "_Annotation".
_NAME_RE = re.compile(r"^(\d+)_(\d*)HC(?:_Annotation)?\.png$", re.IGNORECASE)
# Column names exactly as HC18 writes them, and ours.
_CSV_COLUMNS = {
    "filename": "filename",
    "pixel size(mm)": "pixel_size_mm",
    "head circumference (mm)": "hc_mm",
}
# First bytes of the formats OpenCV reads, to tell "not an image" from "corrupt image".
_MAGIC = (
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff",  # JPEG
    b"BM",  # BMP
    b"II*\x00",  # TIFF little-endian
    b"MM\x00*",  # TIFF big-endian
    b"RIFF",  # WebP
    b"GIF87a",
    b"GIF89a",
)


def _how_to_get_data(root: Path) -> str:
    """The one-line hint every "data missing" error ends with."""
    return (
        f"set {DATA_ENV} to the folder holding {TRAIN_DIR}/, {TEST_DIR}/ and the two CSVs, "
        f"or run `fetalhead download` to fetch HC18 from Zenodo into {root}"
    )


def parse_filename(name: str | os.PathLike) -> tuple[int, int]:
    """Exam number and frame number of an HC18 file name (image or annotation).

    `'010_HC.png' -> (10, 1)`, `'010_2HC.png' -> (10, 2)`, `'010_2HC_Annotation.png' -> (10, 2)`.
    """
    base = Path(name).name
    m = _NAME_RE.match(base)
    if m is None:
        raise FetalheadError(f"not an HC18 file name (expected NNN_HC.png or NNN_kHC.png): {base}")
    return int(m.group(1)), int(m.group(2) or 1)


def image_path(filename: str, test_set: bool = False, root: str | os.PathLike | None = None) -> Path:
    """Path of image `filename` in training_set/ (or test_set/ when `test_set`)."""
    return data_dir(root) / (TEST_DIR if test_set else TRAIN_DIR) / filename


def annotation_path(filename: str, root: str | os.PathLike | None = None) -> Path:
    """Path of the annotation of training image `filename` (`NNN_HC.png -> NNN_HC_Annotation.png`)."""
    stem = Path(filename).stem
    return data_dir(root) / TRAIN_DIR / f"{stem}_Annotation.png"


#: the cells pandas.read_csv reads as missing by default (its documented `na_values`; a test
#: checks them against pandas' own list)
_MISSING = ("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
            "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null")


def read_csv(path: str | os.PathLike, text_columns: tuple[str, ...] = (), **kwargs: Any) -> pd.DataFrame:
    """`pandas.read_csv(path, **kwargs)` with its column names stripped of spaces; the columns
    named in `text_columns` (stripped names) are read as the text they hold: a file name
    `0001`, `NA` or `nan` stays that name, not a number or a missing value. A file that cannot
    be read or parsed as CSV is a one-line FetalheadError naming it."""
    try:
        if text_columns:
            header = [str(c) for c in pd.read_csv(path, nrows=0).columns]
            text = [c for c in header if c.strip() in text_columns]
            kwargs = {**kwargs, "dtype": dict.fromkeys(text, str), "keep_default_na": False,
                      "na_values": {c: list(_MISSING) for c in header if c not in text}}
        table = pd.read_csv(path, **kwargs)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
        raise FetalheadError(f"cannot read CSV {path}: {str(exc).splitlines()[0]}") from None
    table.columns = [str(c).strip() for c in table.columns]
    return table


def blank_rows(table: pd.DataFrame) -> np.ndarray:
    """(N,) bool: the rows of `table` whose every cell is missing or only spaces (a
    spreadsheet's empty rows, saved as commas)."""
    missing = table.isna().to_numpy(dtype=bool)
    empty = (table.astype(str).apply(lambda cells: cells.str.strip()) == "").to_numpy(dtype=bool)
    return (missing | empty).all(axis=1)


def read_image_table(path: Path, columns: tuple[str, ...], made_by: str,
                     frames_hint: str = "") -> pd.DataFrame:
    """A CSV with one row per image: a `filename` column naming each image once, and `columns`.
    `made_by` names the file in errors ("predictions.csv of fetalhead predict"); one-line
    FetalheadErrors for a missing or unreadable file, a missing column, a name listed twice
    (with a `frame` column: several frames of one file, followed by `frames_hint`)."""
    check_input_file(path, "table")
    table = read_csv(path, text_columns=("filename",))
    table = table[~blank_rows(table)].reset_index(drop=True)
    missing = [c for c in dict.fromkeys(("filename", *columns)) if c not in table.columns]
    if missing:
        raise FetalheadError(f"{path}: no column {', '.join(missing)} (is it {made_by}?)")
    twice = table["filename"].duplicated()
    if twice.any():
        name = table["filename"][twice].iloc[0]
        if "frame" in table.columns:
            raise FetalheadError(f"{path}: several frames of {name}{frames_hint}")
        raise FetalheadError(f"{path}: {name} is listed twice")
    return table


def _read_csv(path: Path, columns: list[str], root: Path) -> pd.DataFrame:
    if not path.is_file():
        raise FetalheadError(f"missing file {path}; {_how_to_get_data(root)}")
    raw = read_csv(path)
    missing = [c for c in columns if c not in raw.columns]
    if missing:
        raise FetalheadError(f"{path} lacks column(s) {missing}; found {list(raw.columns)}")
    df = raw[columns].rename(columns=_CSV_COLUMNS)
    for col in df.columns[1:]:
        values = pd.to_numeric(df[col], errors="coerce")
        if values.isna().any():
            bad = df.loc[values.isna(), "filename"].iloc[0]
            raise FetalheadError(f"{path}: non-numeric {col} for {bad}")
        positive = np.isfinite(values) & (values > 0)
        if not positive.all():
            bad = df.loc[~positive, "filename"].iloc[0]
            raise FetalheadError(f"{path}: {col} of {bad} must be a positive number")
        df[col] = values.astype(np.float64)
    df["filename"] = df["filename"].astype(str).str.strip()
    twice = df["filename"].duplicated()
    if twice.any():
        raise FetalheadError(f"{path}: {df.loc[twice, 'filename'].iloc[0]} is listed twice")
    try:
        ids = [parse_filename(f) for f in df["filename"]]
    except FetalheadError as exc:
        raise FetalheadError(f"{path}: {exc}") from None
    df["exam"] = np.array([e for e, _ in ids], dtype=np.int64)
    df["frame"] = np.array([f for _, f in ids], dtype=np.int64)
    return df.reset_index(drop=True)


def read_training_csv(root: str | os.PathLike | None = None) -> pd.DataFrame:
    """The training table: columns filename, pixel_size_mm (mm per pixel), hc_mm (head
    circumference in mm, the ground truth), exam, frame; one row per labelled image (999)."""
    root = data_dir(root)
    return _read_csv(root / TRAIN_CSV, list(_CSV_COLUMNS), root)


def read_test_csv(root: str | os.PathLike | None = None) -> pd.DataFrame:
    """The challenge test table: columns filename, pixel_size_mm (mm per pixel), exam, frame;
    one row per unlabelled image (335)."""
    root = data_dir(root)
    return _read_csv(root / TEST_CSV, ["filename", "pixel size(mm)"], root)


def _pillow_decode(buf: np.ndarray, path: str | os.PathLike, frame: int | None = None) -> np.ndarray | None:
    """Decode the file's bytes with Pillow first, for the formats it knows: it reports a
    truncated or corrupt file (or one with a side above `MAX_SIDE`, before decoding it) as an
    exception, whereas OpenCV's PNG and JPEG readers also print to the process's stderr, which
    would break the one-line error contract. FetalheadError when it does not decode.

    Returns the pixels of an 8-bit grayscale PNG (as HC18's), uint8 (H, W): lossless, so the
    same array OpenCV gives, and the file is decoded once; of an animated PNG, GIF or WebP,
    its frame `frame` (`fetalhead.animation`); of a JPEG whose EXIF orientation turns it, the
    pixels turned (`_upright`); of a TIFF with alpha, its colour (`fetalhead.tiff.without_alpha`).
    Else None: OpenCV decodes it."""
    import io

    from PIL import Image, UnidentifiedImageError

    # No warnings.catch_warnings() here: it is not thread-safe (the caches decode in threads)
    # and could leave every warning of the process silenced. Pillow's DecompressionBombWarning
    # (above 89 M pixels: sides this large are refused below anyway) is silenced by the CLI.
    try:
        with Image.open(io.BytesIO(buf.tobytes())) as im:
            w, h = im.size
            if max(h, w) > MAX_SIDE:
                raise FetalheadError(f"image too large: {path} is {h}x{w} pixels (each side must be <= {MAX_SIDE})")
            frame_pixels = read_animation_page(im, path, frame, MAX_SIDE)
            if frame_pixels is not None:
                return frame_pixels
            im.load()
            if im.format == "PNG" and im.mode == "L":
                return np.asarray(im, dtype=np.uint8).copy()
            if im.format == "JPEG" and im.getexif().get(_EXIF_ORIENTATION, 1) != 1:
                return _upright(im)  # a phone's photo: turned as every viewer shows it
            if im.format == "TIFF":
                return without_alpha(im)  # None without alpha: OpenCV decodes it
            return None
    except UnidentifiedImageError:
        if any(buf[:8].tobytes().startswith(m) for m in _MAGIC):  # Pillow reads all of these
            raise FetalheadError(f"corrupt or truncated image: {path}") from None
        return None  # not a format Pillow knows (or no image at all): OpenCV decides
    except Image.DecompressionBombError:
        raise FetalheadError(f"image too large: {path} (each side must be <= {MAX_SIDE})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise FetalheadError(f"corrupt or truncated image: {path} ({' '.join(str(e).split())})") from None


#: the EXIF tag that says how a JPEG's pixels are turned for display (1: as stored)
_EXIF_ORIENTATION = 0x0112


def _upright(im: Any) -> np.ndarray:
    """A Pillow JPEG turned by its EXIF orientation, as `decode_image` gives pixels: uint8
    (H, W) gray or (H, W, 3) BGR."""
    from PIL import ImageOps

    return pillow_pixels(ImageOps.exif_transpose(im))


def _head(path: Path) -> bytes:
    """The first bytes of the file `path` (enough for DICOM's marker); FetalheadError when it is
    missing."""
    if not path.is_file():
        raise FetalheadError(f"missing file {path}")
    with open(path, "rb") as f:
        return f.read(132)


def _is_video(head: bytes, path: Path) -> bool:
    """A video file (`fetalhead.video`), and not DICOM (whose 128-byte preamble is free)."""
    return looks_like_video(head, path) and not looks_like_dicom(head, path)


def _read_raw(path: str | os.PathLike, frame: int | None = None) -> np.ndarray:
    """Decode an image file as stored: (H, W) or (H, W, C) BGR(A), uint8 or uint16 (a DICOM
    cine loop at `frame`: `decode_image`; a TIFF stack's page: `fetalhead.tiff`; a video at
    `frame`: `fetalhead.video`)."""
    path = Path(path)
    if path.suffix.lower() in VIDEO_SUFFIXES:  # read by FFmpeg from the file, not into memory
        return read_video_frame(path, frame)
    if frame is not None:  # one frame of a loop, a stack or a clip: from the file, not all of it read
        if holds_loop(path):  # the next frame of a cine loop already parsed
            return read_dicom_image(path, frame=frame)
        head = _head(path)
        if looks_like_tiff(head):
            page = read_tiff_frame(path, frame, MAX_SIDE)
            if page is not None:
                return page
        elif looks_like_animation(head):
            page = read_animation_frame(path, frame, MAX_SIDE)
            if page is not None:
                return page
        elif _is_video(head, path):  # a video by content whatever its name
            return read_video_frame(path, frame)
    if not path.is_file():
        raise FetalheadError(f"missing file {path}")
    buf = np.fromfile(path, dtype=np.uint8)  # imdecode, unlike imread, takes any path name
    if buf.size == 0:
        raise FetalheadError(f"empty file (0 bytes): {path}")
    if _is_video(buf[:132].tobytes(), path):  # a video by content whatever its name
        return read_video_frame(path, frame)
    return decode_image(buf, path, frame)


def frame_count(path: str | os.PathLike) -> int:
    """Frames in an image file: a DICOM cine loop's number of frames (`fetalhead.dicom`), a
    TIFF stack's pages (`fetalhead.tiff`), an animated PNG, GIF or WebP's
    (`fetalhead.animation`), a video's (`fetalhead.video`), else 1."""
    path = Path(path)
    head = _head(path)
    if looks_like_dicom(head, path):
        return dicom_frames(path)
    if looks_like_tiff(head):
        return tiff_pages(path)
    if looks_like_animation(head):
        return animation_frames(path)
    return video_frames(path) if _is_video(head, path) else 1


def decode_image(buf: np.ndarray, source: str | os.PathLike, frame: int | None = None) -> np.ndarray:
    """Decode an image file's bytes `buf` (uint8 (N,)) as stored: (H, W) or (H, W, C) BGR(A),
    uint8 or uint16. FetalheadError naming `source` (one line, nothing printed by the image
    libraries) when they do not decode. A DICOM file (`fetalhead.dicom`) gives one frame as
    8-bit grayscale (a cine loop's `frame`, from 1), a TIFF stack (`fetalhead.tiff`) its page
    `frame`, an animated PNG, GIF or WebP (`fetalhead.animation`) its frame `frame`; other
    files hold one image and ignore it."""
    if looks_like_dicom(buf[:132].tobytes(), source):
        return read_dicom_image(source, buf.tobytes(), frame)
    if looks_like_tiff(buf[:4].tobytes()):
        page = read_tiff_page(buf, source, frame, MAX_SIDE)  # None: a TIFF of one page
        if page is not None:
            return page
    pixels = _pillow_decode(buf, source, frame)
    if pixels is not None:
        return pixels
    arr = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if arr is None or arr.size == 0:
        head = buf[:8].tobytes()
        if not any(head.startswith(m) for m in _MAGIC):
            raise FetalheadError(f"not an image file: {source}")
        raise FetalheadError(f"corrupt or truncated image: {source}")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    return arr


#: a 16-bit image whose values all lie below this uses at most 12 of its bits: a warning says so
DARK_16BIT = 4096


def _to_uint8(arr: np.ndarray, source: object = "the image") -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.uint16:
        # Full-range rescale 0..65535 -> 0..255 (x / 257 maps v*257 back to v exactly), the same
        # for every image and frame of a file. A scale chosen from each image's own values would
        # change its brightness 4x when one pixel crossed 1023 or 4095, and frame by frame.
        top = int(arr.max()) if arr.size else 0
        if 0 < top < DARK_16BIT:
            warnings.warn(f"{source}: a 16-bit image whose values reach only {top} of 65535 comes out nearly "
                          "black; if its scanner wrote 10 or 12 bits, save it as 8-bit or scale it to 16 bits",
                          stacklevel=3)
        return ((arr.astype(np.uint32) + 128) // 257).astype(np.uint8)
    if np.issubdtype(arr.dtype, np.integer) and arr.size and arr.min() >= 0:
        # 32-bit integer gray (Pillow's mode "I", TIFF) carries no bit depth: 8-bit values
        # pass, 16-bit values are scaled like uint16; wider ones are stretched below.
        top = int(arr.max())
        if top <= 255:
            return arr.astype(np.uint8)
        if top <= 65535:
            return _to_uint8(arr.astype(np.uint16), source)
    a = arr.astype(np.float64)  # float or wider images: stretch their own range
    if not np.isfinite(a).all():
        raise FetalheadError("the image holds NaN or infinite pixel values")
    lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
    if hi <= lo:
        return np.zeros(a.shape, np.uint8)
    return np.round((a - lo) * (255.0 / (hi - lo))).astype(np.uint8)


def as_gray_uint8(image: np.ndarray, order: str = "RGB") -> np.ndarray:
    """An image array as the 8-bit grayscale uint8 (H, W) that `fetalhead.predict` takes.

    Args:
        image: (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) array (alpha ignored). uint8 stays as it
            is; uint16 and other integers as `load_image` reads such a file (16 bits scaled to
            8); bool becomes 0/255. Floats follow the arrays' convention, not a float file's
            (which is stretched to its own range): in [0, 1] scaled by 255, in [0, 255]
            rounded, any other range stretched to 0..255.
        order: the channel order of colour arrays: "RGB" (PIL, matplotlib, imageio) or "BGR"
            (OpenCV). Colour becomes luma (ITU-R BT.601).
    """
    if order not in ("RGB", "BGR"):
        raise FetalheadError(f"order must be 'RGB' or 'BGR', got {order!r}")
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] in (1, 3, 4):
        arr = arr[:, :, 0] if arr.shape[2] == 1 else arr[:, :, :3]
    if arr.ndim != 2 and not (arr.ndim == 3 and arr.shape[2] == 3):
        raise FetalheadError(f"expected an (H, W) or (H, W, 1/3/4) image array, got shape {arr.shape}")
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    elif arr.dtype.kind == "f":
        if np.isfinite(arr).all():  # NaN or infinity: `_to_uint8` says so
            lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
            if lo >= 0 and hi <= 1:
                arr = np.round(arr * 255.0).astype(np.uint8)
            elif lo >= 0 and hi <= 255:
                arr = np.round(arr).astype(np.uint8)
    elif arr.dtype.kind not in "iu":
        raise FetalheadError(f"expected a numeric image array, got {arr.dtype}")
    arr = _to_uint8(arr)
    if arr.ndim == 3:
        arr = cv2.cvtColor(np.ascontiguousarray(arr), cv2.COLOR_RGB2GRAY if order == "RGB" else cv2.COLOR_BGR2GRAY)
    return np.ascontiguousarray(arr)


def load_image(path: str | os.PathLike, frame: int | None = None) -> np.ndarray:
    """An image as 8-bit grayscale, uint8 (H, W), whatever the file's mode: gray, gray + alpha,
    RGB, RGBA, palette, or 16-bit (rescaled to 0..255, not clipped; a warning when its values
    use at most 12 bits, which come out nearly black). Colour becomes luma
    (ITU-R BT.601: 0.299 R + 0.587 G + 0.114 B); alpha is ignored; a JPEG is turned as its EXIF orientation
    says. DICOM files too (one
    frame: a cine loop's `frame`, from 1; its pixel size: `fetalhead.folder.stored_pixel_size`),
    TIFF stacks (a page: `frame`, from 1) and video files (a clip's `frame`, from 1)."""
    try:
        arr = _to_uint8(_read_raw(path, frame), path)
    except FetalheadError as e:
        if str(path) in str(e):
            raise
        raise FetalheadError(f"{path}: {e}") from None
    if arr.ndim == 3:
        code = cv2.COLOR_BGRA2GRAY if arr.shape[2] == 4 else cv2.COLOR_BGR2GRAY
        arr = cv2.cvtColor(arr, code)
    return np.ascontiguousarray(arr)


def _fill_holes(fg: np.ndarray) -> np.ndarray:
    """Pixels of `fg` (uint8 {0,1}) plus every pixel it encloses. The background is flood-filled
    4-connected from outside, so an 8-connected one-pixel outline (cv2.ellipse) is watertight."""
    pad = np.pad(fg, 1).astype(np.uint8)
    cv2.floodFill(pad, None, (0, 0), 2, flags=4)
    return (pad[1:-1, 1:-1] != 2).astype(np.uint8)


def _hull_mask(fg: np.ndarray) -> np.ndarray:
    pts = cv2.findNonZero(fg)
    out = np.zeros_like(fg)
    cv2.fillConvexPoly(out, cv2.convexHull(pts), 1)
    return out | fg


def annotation_to_mask(arr: np.ndarray) -> np.ndarray:
    """Filled binary mask, uint8 {0,1} (H, W), from an annotation array (H, W) or (H, W, C).

    Accepts the Zenodo outline (a thin ellipse ring, 1 channel) and an already filled mask (1 to
    4 channels; values 0/255, 0/1 or 16-bit). A pixel is foreground when any colour channel is
    above half the maximum; in a mask of one colour with alpha (a head painted in black on a
    transparent layer), when its alpha is. The annotation is a closed outline when what it encloses is at
    least its own area again (a ring of any thickness up to about a quarter of the head's
    radius), or an outline with gaps when it is mostly boundary: a 3x3 erosion removes over
    half of it (a filled region of radius r keeps ((r-1)/r)^2 of its area). Outlines are
    filled; small gaps are closed first, and an outline that stays open is replaced by its
    convex hull (heads are convex). Filled masks are returned as they are.
    """
    a = np.asarray(arr)
    if a.ndim == 3:
        colours = 3 if a.shape[2] >= 3 else 1
        channels = [a[:, :, c] for c in range(colours)]  # drop alpha
        # Pairwise maximum: ndarray.max(axis=2) over 3 interleaved channels is 25x slower.
        a = functools.reduce(np.maximum, channels)
        if np.shape(arr)[2] in (2, 4) and a.size and a.min() == a.max():
            alpha = np.asarray(arr)[:, :, colours]
            if alpha.min() != alpha.max():  # one colour, the label in its alpha
                a = alpha
    if a.ndim != 2:
        raise FetalheadError(f"annotation must be (H, W) or (H, W, C), got shape {np.shape(arr)}")
    top = float(a.max()) if a.size else 0.0
    if top <= 0:
        return np.zeros(a.shape, np.uint8)
    fg = np.ascontiguousarray(a > top / 2, dtype=np.uint8)  # OpenCV takes C order only
    enclosed = _fill_holes(fg)
    if cv2.countNonZero(enclosed) >= 2 * cv2.countNonZero(fg):
        return enclosed  # a closed outline, however thick: it encloses more than it covers
    kernel = np.ones((3, 3), np.uint8)
    eroded = cv2.erode(fg, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    if cv2.countNonZero(eroded) * 2 >= cv2.countNonZero(fg):
        return fg  # already filled
    hull = _hull_mask(fg)
    for k in (1, 3, 5, 9):  # close gaps of up to about k - 1 pixels, smallest first
        closed = fg if k == 1 else cv2.morphologyEx(
            fg, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
        filled = _fill_holes(closed) | fg
        # An open ring encloses nothing: its "filled" area stays a thin line.
        if filled.sum() * 2 >= hull.sum():
            return filled
    return hull


def load_mask(path: str | os.PathLike) -> np.ndarray:
    """The filled annotation mask of a file, uint8 {0,1} (H, W); see `annotation_to_mask`."""
    return annotation_to_mask(_read_raw(path))


def load_labelled(name: str, root: str | os.PathLike | None = None,
                  files: Mapping[str, tuple[Path, Path]] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Image uint8 (H, W) and filled mask uint8 {0,1} (H, W) of the labelled image `name`:
    HC18's under `root`, or from `files` = {name: (image file, mask file)} (your own folder)."""
    if files is not None:
        return load_pair(*files[name])
    return load_pair(image_path(name, root=root), annotation_path(name, root))


def load_pair(image_file: str | os.PathLike, mask_file: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Image uint8 (H, W) and its filled mask uint8 {0,1} (H, W); raises when sizes differ."""
    image = load_image(image_file)
    mask = load_mask(mask_file)
    if image.shape != mask.shape:
        raise FetalheadError(
            f"size mismatch: annotation {mask_file} is {mask.shape[0]}x{mask.shape[1]} "
            f"but image {Path(image_file).name} is {image.shape[0]}x{image.shape[1]} (HxW)"
        )
    return image, mask


def training_pairs(root: str | os.PathLike | None = None) -> list[tuple[Path, Path]]:
    """(image path, annotation path) of every labelled image, in the training CSV's order."""
    root = data_dir(root)
    return [
        (image_path(f, root=root), annotation_path(f, root=root))
        for f in read_training_csv(root)["filename"]
    ]


def _check_files(paths: list[Path], folder: Path, csv_name: str) -> None:
    present = {p.name: p for p in folder.iterdir()} if folder.is_dir() else {}
    missing = [p for p in paths if p.name not in present]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise FetalheadError(f"missing file {missing[0]}{more}, listed in {csv_name}")
    for p in paths:
        if present[p.name].stat().st_size == 0:
            raise FetalheadError(f"empty file (0 bytes): {p}")


def check_data_dir(root: str | os.PathLike | None = None, test_set: bool = True) -> Path:
    """Check that the HC18 folder is complete and return it (resolved from `root`, $HC18_DIR, ...).

    Checks that both CSVs can be read and that every image (and annotation) they list exists
    and is not empty; with `test_set=False` only the training part is required. It does not
    decode images: decoding errors (corrupt file, size mismatch) are raised when loading.
    """
    root = data_dir(root)
    if not root.is_dir():
        raise FetalheadError(f"HC18 data not found at {root}; {_how_to_get_data(root)}")
    for sub in (TRAIN_DIR, TEST_DIR) if test_set else (TRAIN_DIR,):
        if not (root / sub).is_dir():
            raise FetalheadError(f"missing folder {root / sub}; {_how_to_get_data(root)}")
    train = read_training_csv(root)
    names = list(train["filename"])
    paths = [image_path(f, root=root) for f in names] + [annotation_path(f, root=root) for f in names]
    _check_files(paths, root / TRAIN_DIR, TRAIN_CSV)
    if test_set:
        test = read_test_csv(root)
        _check_files([image_path(f, True, root) for f in test["filename"]], root / TEST_DIR, TEST_CSV)
    return root


