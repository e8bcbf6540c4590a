"""Video clips for the tests, written with OpenCV's FFmpeg backend as a capture card would."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

#: lossless codecs (every frame decodes to exactly its pixels) and lossy ones, by container
LOSSLESS = {".avi": "FFV1", ".mkv": "FFV1", ".mp4": "FFV1"}
LOSSY = {".mp4": "mp4v", ".mov": "mp4v", ".avi": "MJPG"}


def write_clip(path: Path, frames: Sequence[np.ndarray], codec: str | None = None, fps: float = 25.0) -> Path:
    """Frames (uint8 (H, W) gray, all one shape) as a colour video at `path` (codec: the
    lossless one of its suffix unless named)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    codec = codec or LOSSLESS[path.suffix]
    h, w = frames[0].shape
    writer = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*codec), fps, (w, h), isColor=True)
    assert writer.isOpened(), f"OpenCV cannot write {codec} into {path.suffix}"
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
    writer.release()
    return path


def flat_frames(n: int, shape: tuple[int, int] = (96, 128), step: int = 20) -> list[np.ndarray]:
    """`n` frames, frame k (from 1) all at gray level (k - 1) * `step`: which frame was read
    shows in its mean even through a lossy codec."""
    return [np.full(shape, (k * step) % 256, np.uint8) for k in range(n)]
