"""Ultrasound clips saved as video files (MP4, MOV, AVI, MKV, WebM): their frames as gray images.

Scanners, capture cards and screen recorders save a sweep as a video as often as a DICOM cine
loop. OpenCV's FFmpeg backend (bundled with opencv-python-headless) decodes them. As with a cine
loop, HC is measured on one frozen frame: `frame`, numbered from 1 (`--frame N` on the command
line, or `--frame all` for each in turn); a clip of one frame is read as it is. A video stores
no pixel size: give `--pixel-size` or a `--pixel-csv` row. FFmpeg's and OpenCV's own messages
are silenced (they would break the one-line error contract); every failure is one
FetalheadError instead.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from fetalhead.errors import FetalheadError
from fetalhead.files import KeptFile, check_frame, file_state

__all__ = ["VIDEO_SUFFIXES", "looks_like_video", "read_video_frame", "video_frames"]

#: file suffixes read as video (files named on the command line are also recognised by content)
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm")
# FFmpeg's log level for OpenCV (AV_LOG_QUIET). OpenCV reads it once, when anything in the
# process first opens a video to read or write, so it is set on import, not on our first open;
# a value the user set in the environment is kept.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
# The atoms that may open an MP4 or QuickTime file, at byte 4 (after the atom's size).
_MP4_ATOMS = (b"ftyp", b"moov", b"mdat", b"wide", b"free")
_MATROSKA = b"\x1a\x45\xdf\xa3"  # MKV and WebM (EBML header)


def looks_like_video(head: bytes, name: str | os.PathLike = "") -> bool:
    """Whether a file starting with the bytes `head` (at least 12 of them) named `name` is a
    video: a video suffix, or the first bytes of MP4/QuickTime, AVI or Matroska/WebM."""
    if Path(name).suffix.lower() in VIDEO_SUFFIXES:
        return True
    return (head[4:8] in _MP4_ATOMS or head[:4] == _MATROSKA
            or (head[:4] == b"RIFF" and head[8:12] == b"AVI "))


def _open(path: Path, name: str | os.PathLike | None = None) -> cv2.VideoCapture:
    """An open cv2.VideoCapture of the video file `path` (FFmpeg backend; the caller releases
    it); FetalheadError (one line, naming the file `name`, else `path`) when the file is
    missing or does not open as a video."""
    name = path if name is None else name
    if not path.is_file():
        raise FetalheadError(f"missing file {name}")
    if path.stat().st_size == 0:
        raise FetalheadError(f"empty file (0 bytes): {name}")
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # OpenCV's own warnings
    try:
        cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    finally:
        cv2.utils.logging.setLogLevel(level)
    if not cap.isOpened():
        cap.release()
        raise FetalheadError(f"{name}: not a video FFmpeg can decode (corrupt, truncated, or another format)")
    return cap


@contextmanager
def _capture(path: Path, name: str | os.PathLike | None = None) -> Iterator[cv2.VideoCapture]:
    """`_open(path, name)`, released on exit."""
    cap = _open(path, name)
    try:
        yield cap
    finally:
        cap.release()


def video_frames(path: str | os.PathLike) -> int:
    """How many frames the video file at `path` holds, counted by reading them (a container's
    own count may be an estimate; remembered while the file's size and time stay the same, so
    reading each frame of a clip in turn reads it once more, not once per frame);
    FetalheadError (one line) when it holds none that decode."""
    return _count_frames(*file_state(path), str(path))


@functools.lru_cache(maxsize=64)
def _count_frames(path: Path, size: int, mtime_ns: int, name: str) -> int:
    """`video_frames` of `path` as it is at `size` bytes and time `mtime_ns` (the cache key);
    errors name the file as it was given, `name`."""
    with _capture(path, name) as cap:
        n = 0
        while cap.grab():
            n += 1
    if n == 0:
        raise FetalheadError(f"{name}: a video without a frame that decodes")
    return n


def _seek(cap: cv2.VideoCapture, index: int) -> bool:
    """Move `cap` to frame `index` (from 0); whether it says it is there."""
    return bool(cap.set(cv2.CAP_PROP_POS_FRAMES, index)) and round(cap.get(cv2.CAP_PROP_POS_FRAMES)) == index


@dataclass
class _Stream:
    """An open clip, positioned before frame `next_index` (from 0)."""

    cap: cv2.VideoCapture
    next_index: int


# The clip being read in order from its first frame: kept open between calls, so reading each
# frame of a clip in turn (`predict --frame all`) decodes each frame once, not again from its
# key frame for every frame asked for (H.264 often has a key frame every 250 frames: up to 250
# frames decoded per frame read). Let go when its last frame is read, when another file or
# frame is asked for, and at exit; a frame read out of order keeps nothing open.
_kept = KeptFile(close=lambda stream: stream.cap.release())


def _open_at(path: Path, index: int) -> _Stream | None:
    """The clip `path` opened before frame `index` (from 0): by a seek, else (a stream that
    does not seek) by reading the frames before it; None when those frames do not decode."""
    for seek in (True, False):
        cap = _open(path)
        if index == 0 or (_seek(cap, index) if seek else all(cap.grab() for _ in range(index))):
            return _Stream(cap, index)
        cap.release()
    return None


def read_video_frame(path: str | os.PathLike, frame: int | None = None) -> np.ndarray:
    """Frame `frame` (from 1) of the video file at `path` as 8-bit grayscale, uint8 (H, W)
    (colour becomes luma, ITU-R BT.601, as `fetalhead.data.load_image`); by a seek, else (a
    stream that does not seek) by reading the frames before it; a clip read in order from its
    first frame stays open between the calls (10 s at most without one: `fetalhead.files.KEPT_IDLE_S`),
    so its next frame needs neither. A clip of one frame is
    read whatever `frame` says; FetalheadError (one line) for a clip of more frames without
    `frame`, a frame it lacks, or a frame that does not decode."""
    n = video_frames(path)
    if n > 1:
        check_frame(frame, n, path, "video", "save it as an image file")
    index = 0 if n == 1 else frame - 1
    key = file_state(path)
    with _kept.lock:
        stream = _kept.take(key)
        if stream is not None and stream.next_index != index:
            stream.cap.release()
            stream = None
        in_order = stream is not None or index == 0  # reading the clip in order, from its first frame
        if stream is None:
            stream = _open_at(Path(path), index)
        ok, image = stream.cap.read() if stream is not None else (False, None)
        if stream is not None:
            if ok and in_order and index + 1 < n:
                stream.next_index = index + 1
                _kept.keep(key, stream)
            else:
                stream.cap.release()
    if not ok or image is None or image.size == 0:
        raise FetalheadError(f"{path}: frame {index + 1} of {n} does not decode")
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    return np.ascontiguousarray(image, dtype=np.uint8)
