"""DICOM scans: the image, and the pixel size (mm) the scanner stored with it.

Ultrasound machines export DICOM. Its Sequence of Ultrasound Regions gives the physical size
of a pixel in each region of the screen (PhysicalDeltaX/Y, in cm when PhysicalUnits is 3), so
a DICOM scan measures in millimetres without `--pixel-size`. Other modalities' `PixelSpacing`
(row, column; mm) is the fallback. Read with pydicom (the optional extra `fetalhead[dicom]`;
imported only when a DICOM file is read) and its bundled decoders (uncompressed, RLE, and
through Pillow JPEG baseline and JPEG 2000). HC is measured on one frozen frame: a cine loop
(a multi-frame file) is read only at the frame asked for (`frame`, numbered from 1 as DICOM
numbers them; `--frame N` on the command line, or `--frame all` for each in turn), else refused.
A loop read from its first frame on is parsed once and kept until its last frame is read,
another DICOM file is, or 10 s pass without a read (`holds_loop`, `fetalhead.files.KEPT_IDLE_S`),
not parsed again from the whole file for every frame.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fetalhead.errors import FetalheadError, one_line
from fetalhead.files import KeptFile, check_frame, file_state

__all__ = [
    "DICOM_SUFFIXES",
    "DicomScan",
    "dicom_frames",
    "dicom_gray",
    "dicom_pixel_size",
    "holds_loop",
    "looks_like_dicom",
    "read_dicom",
    "read_dicom_image",
    "read_dicom_header",
]

#: file suffixes read as DICOM (files named on the command line are also recognised by content)
DICOM_SUFFIXES = (".dcm", ".dicom")
_PREAMBLE = 128  # bytes before the "DICM" marker of a DICOM file
_MARKER = b"DICM"
_UNITS_CM = 3  # PhysicalUnitsX/YDirection: centimetres
_REGION_2D = 1  # RegionSpatialFormat: a 2D (tissue or flow) image region
#: relative difference above which two pixel sizes (x and y, or two regions) count as different
SIZE_TOLERANCE = 0.01


@dataclass(frozen=True)
class DicomScan:
    """One DICOM frame: image uint8 (H, W), and its pixel size in mm per pixel (None when the
    file stores none)."""

    image: np.ndarray
    pixel_size_mm: float | None


def looks_like_dicom(head: bytes, name: str | os.PathLike = "") -> bool:
    """Whether a file starting with the bytes `head` (at least 132 of them for the marker
    test) named `name` is DICOM: the "DICM" marker after the 128-byte preamble, or a DICOM
    suffix (files without the preamble)."""
    return head[_PREAMBLE:_PREAMBLE + len(_MARKER)] == _MARKER or Path(name).suffix.lower() in DICOM_SUFFIXES


def _dataset(data: bytes | None, source: str | os.PathLike, header_only: bool) -> Any:
    """The pydicom Dataset of a file's bytes `data` (None: read the file `source`, and with
    `header_only` no further than its pixel data); FetalheadError (one line) when it does not
    parse or pydicom (an optional dependency) is missing."""
    try:
        import pydicom
        from pydicom.errors import InvalidDicomError
    except ImportError:
        raise FetalheadError(f"{source}: reading DICOM needs pydicom: pip install pydicom (in a checkout: "
                             "pip install -e '.[dicom]')") from None

    try:
        with open(source, "rb") if data is None else io.BytesIO(data) as stream:
            if data is not None:
                stream.name = str(source)  # pydicom's own warnings then name the file
            return pydicom.dcmread(stream, force=True, stop_before_pixels=header_only)
    except (InvalidDicomError, ValueError, KeyError, EOFError, OSError, TypeError, AttributeError) as e:
        raise FetalheadError(f"not a readable DICOM file: {source} ({one_line(e) or type(e).__name__})") from None


def _positive(value: Any, what: str, source: str | os.PathLike) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise FetalheadError(f"{source}: {what} is not a number ({value!r})") from None
    if not v > 0 or v == float("inf"):
        raise FetalheadError(f"{source}: {what} must be positive, not {value!r}")
    return v


def _differ(a: float, b: float) -> bool:
    return abs(a - b) > SIZE_TOLERANCE * max(a, b)


def dicom_pixel_size(ds: Any, source: str | os.PathLike = "DICOM file") -> float | None:
    """mm per pixel of a pydicom Dataset `ds`: the 2D ultrasound regions' PhysicalDeltaX/Y
    when in cm (x 10), else PixelSpacing (mm), else None. FetalheadError when the regions
    disagree, or the pixels are not square (within `SIZE_TOLERANCE`): one size per image is
    what HC in mm needs."""
    found = _stored_size(ds, source)
    if found is None:
        return None
    _check_square(*found, source)
    return found[0]


def _stored_size(ds: Any, source: str | os.PathLike) -> tuple[float, float, str] | None:
    """(x, y mm per pixel, where it is stored) of `dicom_pixel_size`, squareness unchecked."""
    regions = [r for r in ds.get("SequenceOfUltrasoundRegions", None) or []
               if r.get("RegionSpatialFormat") == _REGION_2D
               and r.get("PhysicalUnitsXDirection") == _UNITS_CM
               and r.get("PhysicalUnitsYDirection") == _UNITS_CM]
    if regions:
        sizes = [(10.0 * _positive(r.get("PhysicalDeltaX"), "PhysicalDeltaX", source),
                  10.0 * _positive(r.get("PhysicalDeltaY"), "PhysicalDeltaY", source)) for r in regions]
        x, y = sizes[0]
        if any(_differ(x, sx) or _differ(y, sy) for sx, sy in sizes[1:]):
            listed = ", ".join(f"{sx:.4g} x {sy:.4g}" for sx, sy in sizes)
            raise FetalheadError(f"{source}: its ultrasound regions have different pixel sizes ({listed} mm); "
                                 "give the one of the head's region with --pixel-size")
        return x, y, "ultrasound region"
    if "PixelSpacing" in ds:
        spacing = ds.PixelSpacing
        try:
            values = list(spacing)
        except TypeError:  # one value (pydicom gives a number, not a list) or none
            values = [] if spacing is None else [spacing]
        if len(values) != 2:
            raise FetalheadError(f"{source}: PixelSpacing must hold 2 values, not {spacing!r}")
        return _positive(values[1], "PixelSpacing", source), _positive(values[0], "PixelSpacing", source), "PixelSpacing"
    return None


def _check_square(x: float, y: float, where: str, source: str | os.PathLike) -> None:
    """FetalheadError for pixels x by y mm that are not square: no one pixel size measures them."""
    if _differ(x, y):
        raise FetalheadError(f"{source}: non-square pixels ({x:.4g} x {y:.4g} mm, {where}); "
                             "HC needs one pixel size: resample the scan to square pixels")


def _to_uint8(arr: np.ndarray, bits: int, signed: bool) -> np.ndarray:
    """Pixel values of `bits` stored bits as uint8 0..255 (the full stored range)."""
    if arr.dtype == np.uint8 and bits <= 8:
        return arr if bits == 8 else np.round(arr * (255.0 / (2 ** bits - 1))).astype(np.uint8)
    a = arr.astype(np.float64)
    if signed:
        a += 2.0 ** (bits - 1)
    return np.clip(np.round(a * (255.0 / (2.0 ** bits - 1))), 0, 255).astype(np.uint8)


def dicom_gray(ds: Any, source: str | os.PathLike = "DICOM file", frame: int | None = None) -> np.ndarray:
    """One frame of a pydicom Dataset `ds` as 8-bit grayscale, uint8 (H, W): colour (RGB, YBR,
    palette) becomes luma (ITU-R BT.601, as `fetalhead.data.load_image`), MONOCHROME1 is
    inverted, more than 8 stored bits are scaled to 0..255. `frame` (from 1) picks the frame
    of a cine loop; a file of one frame is read whatever it says. FetalheadError for a cine
    loop without `frame` or with one it lacks, a missing image, or pixel data pydicom cannot
    decode."""
    if "PixelData" not in ds:
        raise FetalheadError(f"{source}: a DICOM file without an image (no PixelData element, or the file is cut off)")
    frames = _frames(ds, source)
    if frames > 1:
        check_frame(frame, frames, source, "cine loop", "export it as a single-frame DICOM or image file")
    try:
        from pydicom.pixels import pixel_array

        # that frame only (YBR comes back as RGB); the function, unlike ds.pixel_array_options,
        # leaves `ds` as it is: a kept loop serves each next call unchanged
        arr = pixel_array(ds, index=frame - 1 if frames > 1 else None)
        photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
        if photometric == "PALETTE COLOR":
            from pydicom.pixels import apply_color_lut

            arr = apply_color_lut(arr, ds)
    except FetalheadError:
        raise
    except Exception as e:  # pydicom's decoders raise many kinds (missing plugin, bad stream)
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        name = getattr(syntax, "name", "unknown transfer syntax")
        raise FetalheadError(f"{source}: cannot decode its pixel data ({name}: {one_line(e) or type(e).__name__})") from None
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[2] in (3, 4):
        bits = 16 if arr.dtype == np.uint16 else 8  # a palette's 16-bit entries, or 8-bit RGB
        arr = cv2.cvtColor(_to_uint8(arr[..., :3], bits, False), cv2.COLOR_RGB2GRAY)
    elif arr.ndim == 2:
        bits = int(ds.get("BitsStored", 8 * arr.dtype.itemsize) or 8)
        arr = _to_uint8(arr, bits, int(ds.get("PixelRepresentation", 0) or 0) == 1)
        if photometric == "MONOCHROME1":  # 0 is white
            arr = 255 - arr
    else:
        raise FetalheadError(f"{source}: unexpected DICOM pixel array of shape {arr.shape}")
    return np.ascontiguousarray(arr)


def read_dicom_header(path: str | os.PathLike) -> Any:
    """The pydicom Dataset of a DICOM file without its pixel data, which is not read (fast: for
    the pixel size)."""
    return _dataset(None, path, header_only=True)


def _frames(ds: Any, source: str | os.PathLike) -> int:
    """A Dataset's NumberOfFrames (1 when absent); FetalheadError when it is not a number."""
    try:
        return max(1, int(ds.get("NumberOfFrames", 1) or 1))
    except (TypeError, ValueError):
        raise FetalheadError(f"{source}: NumberOfFrames is not a number ({ds.get('NumberOfFrames')!r})") from None


def dicom_frames(path: str | os.PathLike) -> int:
    """How many frames the DICOM file at `path` holds (1 for a still image, more for a cine
    loop), from its header alone; FetalheadError (one line) when it does not parse."""
    return _frames(read_dicom_header(path), path)


# The cine loop being read from its first frame on: its parsed Dataset (nothing to close).
_kept = KeptFile()


def holds_loop(path: str | os.PathLike) -> bool:
    """Whether the cine loop at `path`, as the file is now, is parsed and kept (it is being read
    from its first frame on, and its last frame was not read yet): `read_dicom` then reads any
    of its frames without the file."""
    return _kept.holds(path)


def read_dicom(path: str | os.PathLike, data: bytes | None = None, frame: int | None = None) -> DicomScan:
    """A DICOM file (its bytes `data`, if already read) as a DicomScan: image uint8 (H, W), pixel
    size in mm per pixel (or None); a cine loop at its frame `frame` (from 1; `dicom_gray`). A
    cine loop read from its first frame stays parsed until its last frame is read or another
    DICOM file is (`holds_loop`); nothing is kept of a loop first read at another frame."""
    ds, image = _read(path, data, frame)
    return DicomScan(image=image, pixel_size_mm=dicom_pixel_size(ds, path))


def read_dicom_image(path: str | os.PathLike, data: bytes | None = None, frame: int | None = None) -> np.ndarray:
    """The image uint8 (H, W) of `read_dicom`, without its pixel size: a stored size that is
    unusable (regions that disagree, a malformed PixelSpacing) is no error here, as the size it
    is measured with may be given instead; non-square pixels are (no one size measures them)."""
    ds, image = _read(path, data, frame)
    try:
        found = _stored_size(ds, path)
    except FetalheadError:
        found = None
    if found is not None:
        _check_square(*found, path)
    return image


def _read(path: str | os.PathLike, data: bytes | None, frame: int | None) -> tuple[Any, np.ndarray]:
    """(Dataset, image uint8 (H, W) at `frame`), keeping a cine loop read in order (`read_dicom`)."""
    key = file_state(path) if data is None or Path(path).is_file() else None  # bytes of no file: nothing kept
    with _kept.lock:
        ds = _kept.take(key) if key is not None else None
        in_order = ds is not None or frame == 1  # reading the loop in order, from its first frame
        if ds is None:
            ds = _dataset(data, path, header_only=False)
        image = dicom_gray(ds, path, frame)
        if key is not None and in_order and frame is not None and frame < _frames(ds, path):
            _kept.keep(key, ds)
    return ds, image
