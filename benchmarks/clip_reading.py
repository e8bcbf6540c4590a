"""Reading a long clip, cine loop or TIFF stack frame after frame: kept open, or read afresh each time.

`fetalhead predict --frame all` (and `--frame best`) reads each frame of a clip, a DICOM cine
loop or a TIFF stack in turn, twice: the input check, then the measurement. `fetalhead.video`
keeps the clip being read open between calls, so the frame after the one just read is decoded
straight away, where a seek decodes again from the key frame before it (H.264 recorders often
place one every 250 frames); `fetalhead.dicom` keeps the loop being read parsed, where reading a
frame afresh reads and parses the whole file; `fetalhead.tiff` keeps the stack open, where a page
read afresh walks the file's pages up to it. This script writes a synthetic clip (moving speckle,
800x540 px, OpenCV's mp4v with a key frame every `--gop` frames), an uncompressed DICOM loop
(written as the tests write theirs) and an uncompressed TIFF stack of the same frames, then
reads every frame of each in order with `fetalhead.data.load_image`, as predict does, and again
with what was kept let go before each read; for the clip also in one bare OpenCV pass (the
floor). Seconds, how often the file was opened or parsed, and ratios, all in one run on one
machine.

    python benchmarks/clip_reading.py --frames 300 --gop 250 --results benchmarks/clip_reading_cpu.json
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import PIL.Image

import fetalhead.dicom as dicom
import fetalhead.tiff as tiff
import fetalhead.video as video
from fetalhead.data import frame_count, load_image
from fetalhead.errors import FetalheadError, OneLineParser, run_script
from fetalhead.results import check_new_results, provenance, write_results

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the tests' DICOM writer
from dicom_files import write_dicom  # noqa: E402

SHAPE = (540, 800)  #: (H, W) px of the frames, HC18's


def speckle_frames(frames: int, seed: int = 0) -> np.ndarray:
    """`frames` frames of speckle shifted by one pixel per frame: uint8 (frames, *SHAPE)."""
    speckle = np.random.default_rng(seed).integers(0, 256, SHAPE, dtype=np.uint8)
    return np.stack([np.roll(speckle, k, axis=1) for k in range(frames)])


def write_speckle_clip(path: Path, frames: np.ndarray, gop: int) -> Path:
    """`frames` (uint8 (N, H, W)) as an mp4v clip with a key frame every `gop` frames at `path`."""
    h, w = frames.shape[1:]
    writer = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (w, h),
                             [cv2.VIDEOWRITER_PROP_GOP_SIZE, gop])
    if not writer.isOpened():
        raise FetalheadError("OpenCV's FFmpeg cannot write mp4v here")
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
    writer.release()
    return path


def write_tiff_stack(path: Path, frames: np.ndarray) -> Path:
    """`frames` (uint8 (N, H, W)) as an uncompressed multi-page TIFF at `path`."""
    pages = [PIL.Image.fromarray(f) for f in frames]
    pages[0].save(path, save_all=True, append_images=pages[1:])
    return path


def timed_reads(path: Path, frames: int, before_each: Callable[[], None], module: Any, opener: str) -> dict[str, float | int]:
    """Seconds to read frames 1..`frames` of `path` in order with `load_image`, calling
    `before_each` before each read, and how many times `module.opener` (the function that
    opens or parses the file) ran meanwhile."""
    calls = 0
    real = getattr(module, opener)

    def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        return real(*args, **kwargs)

    setattr(module, opener, counting)
    try:
        start = time.perf_counter()
        for k in range(1, frames + 1):
            before_each()
            load_image(path, k)
        seconds = time.perf_counter() - start
    finally:
        setattr(module, opener, real)
    return {"seconds": seconds, "opens": calls}


def bare_pass(path: Path) -> dict[str, float | int]:
    """Seconds to decode every frame of the clip `path` in one OpenCV pass (the floor), and how many."""
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    start, n = time.perf_counter(), 0
    while cap.read()[0]:
        n += 1
    seconds = time.perf_counter() - start
    cap.release()
    return {"seconds": seconds, "frames": n}


def parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog=Path(__file__).name, description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=300, help="frames in the clip and the loop (default 300: 12 s at 25 frames/s)")
    p.add_argument("--gop", type=int, default=250, help="a key frame every GOP frames of the clip (default 250)")
    p.add_argument("--results", type=Path, required=True, help="JSON file to write (new)")
    return p


def main(argv: list[str] | None = None) -> int:
    return run_script(parser(), _run, argv)


def _compare(path: Path, n: int, reader: Any, module: Any, opener: str) -> dict[str, Any]:
    """Reading `path` kept (as predict does) and afresh (`reader._kept` let go before each read)."""
    kept = timed_reads(path, n, lambda: None, module, opener)
    afresh = timed_reads(path, n, reader._kept.release, module, opener)
    return {"kept": kept, "afresh": afresh, "afresh_over_kept": afresh["seconds"] / kept["seconds"]}


def _run(args: argparse.Namespace, argv: list[str] | None) -> None:
    if args.frames < 2 or args.gop < 1:
        raise FetalheadError("--frames must be at least 2 and --gop at least 1")
    check_new_results(args.results)
    frames = speckle_frames(args.frames)
    with tempfile.TemporaryDirectory() as tmp:
        clip = write_speckle_clip(Path(tmp) / "sweep.mp4", frames, args.gop)
        loop = write_dicom(Path(tmp) / "loop.dcm", frames, photometric="MONOCHROME2")
        stack = write_tiff_stack(Path(tmp) / "stack.tif", frames)
        for path in (clip, loop, stack):  # counted once, before the reads are timed
            if frame_count(path) != args.frames:
                raise FetalheadError(f"{path.name} holds {frame_count(path)} frames, not {args.frames}")
        readers = {"video": {"file": {"codec": "mp4v", "gop": args.gop, "mib": clip.stat().st_size / 2**20},
                             **_compare(clip, args.frames, video, video, "_open"), "bare_opencv_pass": bare_pass(clip)},
                   "dicom": {"file": {"transfer_syntax": "explicit VR little endian (uncompressed)",
                                      "mib": loop.stat().st_size / 2**20},
                             **_compare(loop, args.frames, dicom, dicom, "_dataset")},
                   "tiff": {"file": {"compression": "none", "mib": stack.stat().st_size / 2**20},
                            **_compare(stack, args.frames, tiff, PIL.Image, "open")}}
    record = {
        "what": "every frame of a clip and of a DICOM cine loop read in order with load_image: the file kept "
                "open or parsed between reads (as predict reads it), and let go before each read",
        "frames": args.frames, "shape_px": list(SHAPE), **readers,
        "command": "python benchmarks/clip_reading.py " + " ".join(sys.argv[1:] if argv is None else argv),
        **provenance(),
    }
    write_results(record, args.results)
    for name, r in readers.items():
        print(f"{name}: {args.frames} frames ({SHAPE[1]}x{SHAPE[0]} px, {r['file']['mib']:.1f} MiB) kept "
              f"{r['kept']['seconds']:.2f} s ({r['kept']['opens']} opened), afresh {r['afresh']['seconds']:.2f} s "
              f"({r['afresh']['opens']} opened): {r['afresh_over_kept']:.1f}x"
              + (f"; one bare OpenCV pass {r['bare_opencv_pass']['seconds']:.2f} s" if "bare_opencv_pass" in r else ""))
    print(f"wrote {args.results}")


if __name__ == "__main__":
    raise SystemExit(main())
