"""A user's own ultrasound images (and, optionally, masks and pixel sizes) from a folder.

Images are the image files of one folder (`IMAGE_SUFFIXES`, and DICOM files whatever their
name); `collect_images` gathers them
from files and folders named on a command line, `FolderDataset` pairs each with its mask,
found by a file-name pattern (HC18's `"{stem}_Annotation.png"` by default). Pixel sizes
come from a CSV laid out like HC18's (`filename, pixel size(mm)`, `read_pixel_csv`), one size
for all, or the file itself (DICOM, `stored_pixel_size`); `choose_pixel_size` decides. Masks
may be filled or thin outlines, like HC18's. Known gestational ages come from a CSV of the
same layout (`read_ga_csv`).
"""

from __future__ import annotations

import math
import os
import re
import string
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fetalhead.cache import META_COLUMNS, ArraySet
from fetalhead.config import DEFAULT_SIZE
from fetalhead.data import (
    IMAGE_SUFFIXES,
    MASK_SUFFIX,
    OVERLAY_SUFFIX,
    blank_rows,
    load_image,
    load_mask,
    parse_filename,
    read_csv,
)
from fetalhead.dicom import SIZE_TOLERANCE, dicom_pixel_size, looks_like_dicom, read_dicom_header
from fetalhead.errors import FetalheadError
from fetalhead.files import check_input_file, utf8_name
from fetalhead.frame import network_image, network_mask
from fetalhead.growth import parse_ga_weeks
from fetalhead.inputs import validate_pixel_size

__all__ = [
    "HC_RANGE_MM",
    "MASK_PATTERN",
    "FolderDataset",
    "choose_pixel_size",
    "collect_images",
    "exam_of",
    "image_stem",
    "lookup_by_name",
    "read_ga_csv",
    "read_hc_csv",
    "read_pixel_csv",
    "stored_pixel_size",
]

#: a mask's file name from its image's: HC18's ("010_HC.png" -> "010_HC_Annotation.png")
MASK_PATTERN = "{stem}_Annotation.png"
#: the fields a mask pattern may hold
_PATTERN_FIELDS = ("stem", "name", "suffix")

# stems of masks (HC18's annotations) and of what `fetalhead predict` writes, in any case
# (`B_annotation.png`, `C_Mask.png`): never inputs
_NOT_INPUTS = tuple(s.lower() for s in ("_Annotation", MASK_SUFFIX, OVERLAY_SUFFIX))


def exam_of(name: str | os.PathLike, index: int) -> tuple[int, int]:
    """(exam, frame) of the image `name`, item `index` (0-based) of a folder: parsed from an
    HC18-style name in any image format (`010_2HC.png` -> (10, 2); `010_2HC.jpg`, `010_2HC.dcm`
    or `010_2HC` too: HC18's frames saved in another format stay one examination), else an
    examination of its own, -(index + 1), frame 1 (negative, so it never meets a parsed one)."""
    try:
        return parse_filename(Path(name).with_suffix(".png").name)
    except (FetalheadError, ValueError):  # ValueError: a name with nothing before its suffix
        return -(index + 1), 1


def lookup_by_name(table: dict[str, Any], image: str | os.PathLike) -> Any:
    """The value for `image` in a table of `read_pixel_csv` (pixel size, mm) or `read_ga_csv`
    (age, weeks): by file name, then by stem (`010_HC.png`, then `010_HC`); None when it is
    not there."""
    path = Path(image)
    return table.get(path.name, table.get(image_stem(path)))


def _first_bytes(path: Path, n: int = 132) -> bytes | None:
    """The first `n` bytes of a file (enough for DICOM's marker), or None when it cannot be read."""
    try:
        with open(path, "rb") as f:
            return f.read(n)
    except OSError:
        return None


def stored_pixel_size(image: str | os.PathLike) -> float | None:
    """The pixel size (mm per pixel) the image file itself stores (a DICOM file's ultrasound
    regions or PixelSpacing, `fetalhead.dicom.dicom_pixel_size`), checked by
    `validate_pixel_size`; None for other files and for DICOM files without one."""
    path = Path(image)
    head = _first_bytes(path)
    if head is None or not looks_like_dicom(head, path):
        return None  # unreadable files are reported by the image check, with their reason
    value = dicom_pixel_size(read_dicom_header(path), path)
    if value is None:
        return None
    try:
        return validate_pixel_size(value)
    except FetalheadError as e:
        raise FetalheadError(f"{path.name}: the file's {e}") from None


def choose_pixel_size(image: str | os.PathLike, given: float | None) -> float | None:
    """The pixel size (mm per pixel) to measure `image` with: `given` (yours: --pixel-size, or
    the image's row of your CSV) when there is one, else the one the file stores
    (`stored_pixel_size`), else None. Warns when both exist and differ by more than 1 %; with
    `given`, a file whose stored size is unusable (`stored_pixel_size` raises) is not an error."""
    if given is None:
        return stored_pixel_size(image)
    try:
        stored = stored_pixel_size(image)
    except FetalheadError:
        return given  # yours is what counts; the image check still reports an unreadable file
    if stored is not None and abs(given - stored) > SIZE_TOLERANCE * max(given, stored):
        warnings.warn(f"{Path(image).name}: measured with the given pixel size {given:g} mm, "
                      f"not the {stored:g} mm the file stores", stacklevel=2)
    return given


def image_stem(image: str | os.PathLike) -> str:
    """The name an image's outputs and mask are named after: its file name without its suffix
    ("010_HC.png" -> "010_HC"), except a number after the last dot, as in the UIDs that name
    DICOM files ("1.2.840.113619.2.55.3" stays whole, or every file of a study would clash)."""
    path = Path(image)
    return path.name if path.suffix[1:].isdigit() else path.stem


def _is_image_file(path: Path) -> bool:
    """An image suffix, or DICOM by content whatever the name (scanners write "IM0001" or a UID;
    not the DICOMDIR index of an export)."""
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return True
    if path.name.upper() == "DICOMDIR":
        return False
    head = _first_bytes(path)
    return head is not None and looks_like_dicom(head)


def _image_files(folder: Path) -> list[Path]:
    """The image files of `folder` (not its subfolders, not hidden ones), sorted by name."""
    return sorted(utf8_name(p) for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and _is_image_file(p))


def collect_images(paths: Sequence[Path]) -> list[Path]:
    """Image files named in `paths` (files, or folders read non-recursively, where masks and
    outputs such as `*_Annotation.*`, `*_mask.*` and `*_overlay.*` are skipped), in order.
    A file named twice is listed once. Raises FetalheadError for a missing path, a folder
    without images, or two images with the same stem (their outputs would collide)."""
    files: list[Path] = []
    for p in paths:
        if not p.exists():
            raise FetalheadError(f"{p}: no such file or folder")
        if p.is_dir():
            images = _image_files(p)
            found = [q for q in images if not image_stem(q).lower().endswith(_NOT_INPUTS)]
            if not found:
                skipped = (f" ({len(images)} skipped as masks or outputs: *_Annotation.*, *_mask.*, *_overlay.*)"
                           if images else "")
                raise FetalheadError(f"{p}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder{skipped}")
            files.extend(found)
        elif not p.is_file():  # a FIFO or a device would be read forever
            raise FetalheadError(f"{p}: not a regular file")
        else:
            files.append(utf8_name(p))
    seen: dict[str, Path] = {}
    unique: list[Path] = []
    for f in files:
        stem = image_stem(f)
        if stem in seen and seen[stem].resolve() == f.resolve():
            continue  # one file named twice (say, a folder and a file in it): measured once
        if stem in seen:
            raise FetalheadError(f"{seen[stem]} and {f} have the same name stem {stem!r}; "
                                 "their outputs would collide")
        seen[stem] = f
        unique.append(f)
    return unique


#: units a column header may end with, as in `hc_mm`, `HC (cm)` or `pixel size [um]`
_UNIT_RE = re.compile(r"[\s_(\[/](mm|cm|m|um|µm|px|in)[)\]]?$")
#: a "per pixel" ending, as in `pixel size (mm/px)` or `pixel_size_mm_per_pixel`: the unit is before it
_PER_PIXEL_RE = re.compile(r"\s*(/|\bper\b|_per_?)\s*(px|pixels?)([)\]]?)$")


def _unit(header: str) -> str | None:
    """The unit a column header ends with (`_UNIT_RE`; before a "per pixel", `mm/px`), lower
    case; None when it names none."""
    found = _UNIT_RE.search(_PER_PIXEL_RE.sub(r"\3", header.strip().lower()))
    return found.group(1) if found else None


def _read_value_csv(path: str | os.PathLike, what: str, is_value_column: Callable[[str], bool],
                    expected: str, parse: Callable[[str], Any], unit: str | None = None) -> dict[str, Any]:
    """{file name: parse(value)} from a CSV of a `filename` column (else the first column) and
    the first other column whose header `is_value_column` (the first that names `unit`, when
    one does: `hc_mm` before `hc_centile`); a header naming another unit (`HC (cm)`) is an
    error, as is a name listed twice, and errors (`parse`'s FetalheadError or ValueError too)
    name the line. Rows with every cell empty (a spreadsheet's trailing rows) are skipped."""
    path = Path(path)
    check_input_file(path, what)
    df = read_csv(path, dtype=str, keep_default_na=False)
    cols = list(df.columns)
    name_col = "filename" if "filename" in cols else cols[0]
    value_cols = [c for c in cols if is_value_column(c) and c != name_col]
    if not value_cols:
        raise FetalheadError(f"{path} needs columns 'filename' and {expected} among {cols}")
    column = next((c for c in value_cols if _unit(c) == unit), value_cols[0]) if unit else value_cols[0]
    if unit and _unit(column) not in (None, unit):
        raise FetalheadError(f"{path}: column {column!r} is in {_unit(column)}; give it in {unit}")
    blank = blank_rows(df)
    out: dict[str, Any] = {}
    named: dict[str, str] = {}  # stem -> the name listed with it
    for line, (name, text, skip) in enumerate(zip(df[name_col], df[column], blank, strict=True), start=2):
        if skip:
            continue
        key = str(name).strip()
        if key in out:  # which of two values would be meant is not ours to guess
            raise FetalheadError(f"{path} line {line}: {key} is listed twice")
        # one image by its name and by its stem: `lookup_by_name` would silently take the name's
        stem = image_stem(key)
        same = named.get(key) or (stem if stem != key and stem in out else None)
        if same is not None:
            raise FetalheadError(f"{path} line {line}: {key} is listed twice (also as {same})")
        if stem != key:
            named[stem] = key
        try:
            out[key] = parse(text)
        except (FetalheadError, ValueError) as exc:
            raise FetalheadError(f"{path} line {line}: {exc}") from None
    return out


def read_pixel_csv(path: str | os.PathLike) -> dict[str, float]:
    """{file name: pixel size in mm} from a CSV laid out like HC18's: a `filename` column (else
    the first column) and a pixel size column (the first whose header contains 'pixel' and
    names mm, else the first whose header contains 'pixel', e.g. `pixel size(mm)`; one in
    another unit is an error). Every value is checked by `validate_pixel_size`, a name listed twice is
    an error; errors name the line."""
    return _read_value_csv(path, "pixel-size CSV", lambda c: "pixel" in c.lower(),
                           "'pixel size(mm)': no pixel size column (a header containing 'pixel')",
                           validate_pixel_size, unit="mm")


def read_ga_csv(path: str | os.PathLike) -> dict[str, float | None]:
    """{file name: gestational age in weeks, or None where the cell is empty (not known)} from a
    CSV of a `filename` column (else the first column) and an age column (the first whose
    header starts with 'ga' or contains 'gestation', e.g. `ga`), written 22+3 (weeks + days) or
    22.4 (weeks) (`fetalhead.growth.parse_ga_weeks`); errors name the line."""
    def parse(text: str) -> float | None:
        return parse_ga_weeks(text) if text.strip() else None

    return _read_value_csv(path, "gestational-age CSV",
                           lambda c: c.strip().lower().startswith("ga") or "gestation" in c.lower(),
                           "'ga': no gestational age column (a header starting with 'ga')", parse)


#: HCs (mm) a recorded measurement may take: a 10-week head to well past term
HC_RANGE_MM: tuple[float, float] = (10.0, 600.0)


def _hc_mm(text: str) -> float | None:
    """A recorded HC cell as mm, None where it is empty (not recorded); ValueError (one line)
    for text that is not a finite number or lies outside `HC_RANGE_MM`."""
    if not text.strip():
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"HC {text.strip()!r} is not a number (mm)") from None
    lo, hi = HC_RANGE_MM
    if not (math.isfinite(value) and lo <= value <= hi):
        raise ValueError(f"HC {text.strip()} mm is implausible (a head's circumference is {lo:g} to {hi:g} mm)")
    return value


def read_hc_csv(path: str | os.PathLike) -> dict[str, float | None]:
    """{file name: the HC recorded for it in mm, or None where the cell is empty} from a CSV of
    a `filename` column (else the first column) and an HC column (the first whose header
    starts with 'hc' or contains 'circumference' and names mm, e.g. HC18's `head
    circumference (mm)`, else the first of those; one in cm or another unit is an error);
    values outside `HC_RANGE_MM` are errors, which name the line."""
    return _read_value_csv(path, "recorded-HC CSV",
                           lambda c: c.strip().lower().startswith("hc") or "circumference" in c.lower(),
                           "'hc': no HC column (a header starting with 'hc' or containing 'circumference')",
                           _hc_mm, unit="mm")


def _checked_pattern(pattern: str) -> str:
    """`pattern` when its fields are plain {stem}, {name} or {suffix}, {stem} or {name} among
    them; a one-line FetalheadError else. Checked before any use: a conversion or format spec
    ("{stem:>999999999}") could build a name of gigabytes, and a pattern without the image's
    stem or name gives every image the same mask."""
    try:
        fields = [(name, spec, conv) for _, name, spec, conv in string.Formatter().parse(pattern) if name is not None]
    except ValueError:  # an unmatched brace
        fields = [("", "", None)]
    if (not any(name in ("stem", "name") for name, _, _ in fields)
            or any(name not in _PATTERN_FIELDS or spec or conv for name, spec, conv in fields)):
        raise FetalheadError(f"bad mask_pattern {pattern!r}: build it from {{stem}} or {{name}} (and {{suffix}}), "
                             "e.g. {stem}_mask.png")
    return pattern


class FolderDataset:
    """Images of `image_dir` with optional masks and pixel sizes.

    Args:
        image_dir: folder of images (.png, .jpg, .bmp, .tif, .dcm; any mode, read as 8-bit gray).
        mask_dir: folder of masks (default: `image_dir`); a missing mask gives None.
        mask_pattern: mask file name from the image's `{stem}` (name without suffix),
            `{name}` (full name) or `{suffix}` (".png"). Files that are some image's mask are
            not listed as images.
        pixel_csv: CSV with columns `filename, pixel size(mm)` (mm per pixel, each checked by
            `fetalhead.inputs.validate_pixel_size`; an image is looked up by name, then by stem).
        pixel_size_mm: mm per pixel of every image not in `pixel_csv`; without it they get
            the size their file stores (DICOM), else nan.
    Item i is a dict: image uint8 (H, W), mask uint8 {0,1} (H, W) or None, pixel_size_mm
    float (nan when unknown), filename str.
    """

    def __init__(
        self,
        image_dir: str | os.PathLike,
        mask_dir: str | os.PathLike | None = None,
        mask_pattern: str = MASK_PATTERN,
        pixel_csv: str | os.PathLike | None = None,
        pixel_size_mm: float | None = None,
    ) -> None:
        self.image_dir = Path(image_dir)
        self.mask_dir = Path(mask_dir) if mask_dir is not None else self.image_dir
        self.mask_pattern = _checked_pattern(mask_pattern)
        for what, folder in (("image", self.image_dir), ("mask", self.mask_dir)):
            if folder.is_file():
                raise FetalheadError(f"{what} folder {folder} is a file; give the folder that holds the {what}s")
            if not folder.is_dir():
                raise FetalheadError(f"{what} folder not found: {folder}")
        candidates = _image_files(self.image_dir)
        mask_names = {self._mask_name(p) for p in candidates}
        same = self.mask_dir.resolve() == self.image_dir.resolve()
        self.image_paths = [p for p in candidates if not (same and p.name in mask_names)]
        if not self.image_paths:
            raise FetalheadError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {self.image_dir}")
        self.pixel_sizes = read_pixel_csv(pixel_csv) if pixel_csv is not None else {}
        self.default_pixel_size = validate_pixel_size(pixel_size_mm) if pixel_size_mm is not None else math.nan

    def _mask_name(self, image: Path) -> str:
        return self.mask_pattern.format(stem=image_stem(image), name=image.name, suffix=image.suffix)

    def mask_path(self, index: int) -> Path | None:
        """Path of image `index`'s mask, or None when there is none."""
        path = self.mask_dir / self._mask_name(self.image_paths[index])
        return path if path.is_file() else None

    def pixel_size(self, index: int) -> float:
        """mm per pixel of image `index`: from the CSV (by name, then stem), else the default,
        else the file's own (DICOM), else nan (`choose_pixel_size`)."""
        path = self.image_paths[index]
        value = lookup_by_name(self.pixel_sizes, path)
        if value is None and math.isfinite(self.default_pixel_size):
            value = self.default_pixel_size
        chosen = choose_pixel_size(path, value)
        return math.nan if chosen is None else float(chosen)

    def __len__(self) -> int:
        return len(self.image_paths)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} images")
        path = self.image_paths[index]
        image = load_image(path)
        mask_file = self.mask_path(index)
        mask = None
        if mask_file is not None:
            mask = load_mask(mask_file)
            if mask.shape != image.shape:
                raise FetalheadError(
                    f"size mismatch: mask {mask_file} is {mask.shape[0]}x{mask.shape[1]} but "
                    f"image {path.name} is {image.shape[0]}x{image.shape[1]} (HxW)"
                )
        px = self.pixel_size(index)
        return {"image": image, "mask": mask, "pixel_size_mm": px, "filename": path.name}

    def to_arrays(self, size: tuple[int, int] = DEFAULT_SIZE) -> ArraySet:
        """All items resized to `size` = (H, W) pixels, frames of another shape than HC18's
        padded first (`fetalhead.frame.network_image`), as the Predictor will see them.

        masks is None when no image has a mask; otherwise images without one get an all-zero
        mask and meta column `has_mask` tells them apart. A mask file that marks no head is a
        one-line FetalheadError. meta has `META_COLUMNS` (split
        "folder"; exam and frame from `exam_of`) plus `has_mask`.
        """
        h, w = int(size[0]), int(size[1])
        n = len(self)
        images = np.empty((n, h, w), np.uint8)
        masks = np.zeros((n, h, w), np.uint8)
        rows: list[dict[str, Any]] = [{}] * n

        def work(i: int) -> None:
            item = self[i]
            images[i] = network_image(item["image"], (h, w))
            if item["mask"] is not None:
                if not item["mask"].any():
                    raise FetalheadError(f"{self.mask_path(i)}: an empty mask (no head marked); mark the "
                                         "head in white on black, or leave the image out")
                masks[i] = network_mask(item["mask"], (h, w))
            exam, frame = exam_of(item["filename"], i)
            rows[i] = {
                "filename": item["filename"], "pixel_size_mm": item["pixel_size_mm"],
                "hc_mm": np.nan, "exam": exam, "frame": frame, "split": "folder",
                "orig_h": item["image"].shape[0], "orig_w": item["image"].shape[1],
                "has_mask": item["mask"] is not None,
            }

        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            list(pool.map(work, range(n)))
        meta = pd.DataFrame(rows, columns=[*META_COLUMNS, "has_mask"])
        return ArraySet(images, masks if meta["has_mask"].any() else None, meta)
