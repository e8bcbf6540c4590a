"""DICOM files for the tests, written with pydicom as an ultrasound machine would export them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

US_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.6.1"  # Ultrasound Image Storage
US_MULTIFRAME_STORAGE = "1.2.840.10008.5.1.4.1.1.3.1"


def region(delta_x_cm: float, delta_y_cm: float | None = None, *, spatial_format: int = 1,
           units: int = 3, box: tuple[int, int, int, int] = (0, 0, 10, 10)) -> dict:
    """One item of the Sequence of Ultrasound Regions: pixel size in cm (`units` 3), a 2D
    region (`spatial_format` 1) by default; `box` = (min x, min y, max x, max y) in px."""
    return {"RegionSpatialFormat": spatial_format, "RegionDataType": 1, "RegionFlags": 0,
            "RegionLocationMinX0": box[0], "RegionLocationMinY0": box[1],
            "RegionLocationMaxX1": box[2], "RegionLocationMaxY1": box[3],
            "PhysicalUnitsXDirection": units, "PhysicalUnitsYDirection": units,
            "PhysicalDeltaX": float(delta_x_cm),
            "PhysicalDeltaY": float(delta_x_cm if delta_y_cm is None else delta_y_cm)}


def write_dicom(path: Path, pixels: np.ndarray, *, photometric: str | None = None,
                regions: Sequence[dict] = (), pixel_spacing: Sequence[float] | None = None,
                bits_stored: int | None = None, preamble: bool = True) -> Path:
    """Write `pixels` ((H, W) gray, (H, W, 3) RGB, or (N, H, W) frames when `photometric` is
    given for them) as an uncompressed DICOM file with the given ultrasound regions or
    PixelSpacing (row, column; mm). Returns `path`."""
    meta = FileMetaDataset()
    frames = pixels.ndim == 3 and pixels.shape[2] != 3
    meta.MediaStorageSOPClassUID = US_MULTIFRAME_STORAGE if frames else US_IMAGE_STORAGE
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128 if preamble else None)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "US"
    ds.PatientName = "Anonymous"
    rgb = pixels.ndim == 3 and pixels.shape[2] == 3
    photometric = photometric or ("RGB" if rgb else "MONOCHROME2")
    bits = bits_stored or 8 * pixels.dtype.itemsize
    ds.set_pixel_data(np.ascontiguousarray(pixels), photometric, bits)
    if regions:
        items = []
        for r in regions:
            from pydicom.dataset import Dataset

            item = Dataset()
            for key, value in r.items():
                setattr(item, key, value)
            items.append(item)
        ds.SequenceOfUltrasoundRegions = DicomSequence(items)
    if pixel_spacing is not None:
        ds.PixelSpacing = [float(v) for v in pixel_spacing]
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=preamble)
    return path
