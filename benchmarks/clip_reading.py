"""Reading a long clip frame after frame: the clip kept open between reads, against a seek per frame.

`fetalhead predict --frame all` (and `--frame best`) reads each frame of a clip in turn, twice:
the input check, then the measurement. `fetalhead.video.read_video_frame` keeps the clip open
between calls, so the frame after the one just read is decoded straight away; a seek decodes
again from the key frame before the frame asked for. This script writes a synthetic clip
(moving speckle, 800x540 px, OpenCV's mp4v with a key frame every `--gop` frames; H.264
recorders often use 250), then reads every frame in order three ways: through
`read_video_frame` (as predict does), through `read_video_frame` with the clip let go before
each read (a fresh open and seek per frame), and in one bare OpenCV pass (the floor). Seconds,
how often the clip was opened, and ratios, all in one run on one machine.

    python benchmarks/clip_reading.py --frames 300 --gop 250 --results benchmarks/clip_reading_cpu.json
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

import fetalhead.video as video
from fetalhead.errors import FetalheadError, OneLineParser, run_script
from fetalhead.results import check_new_results, provenance, write_results

SHAPE = (540, 800)  #: (H, W) px of the clip's frames, HC18's


def write_speckle_clip(path: Path, frames: int, gop: int, seed: int = 0) -> Path:
    """A clip of `frames` frames of speckle shifted by one pixel per frame (uint8, `SHAPE`),
    mp4v with a key frame every `gop` frames, at `path`."""
    h, w = SHAPE
    writer = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (w, h),
                             [cv2.VIDEOWRITER_PROP_GOP_SIZE, gop])
    if not writer.isOpened():
        raise FetalheadError("OpenCV's FFmpeg cannot write mp4v here")
    speckle = np.random.default_rng(seed).integers(0, 256, SHAPE, dtype=np.uint8)
    for k in range(frames):
        writer.write(cv2.cvtColor(np.roll(speckle, k, axis=1), cv2.COLOR_GRAY2BGR))
    writer.release()
    return path


def timed_reads(path: Path, frames: int, before_each: Callable[[], None]) -> dict[str, float | int]:
    """Seconds to read frames 1..`frames` of `path` in order with `read_video_frame`, calling
    `before_each` before each read, and how many times the clip was opened meanwhile."""
    opened = 0
    real = video._open

    def counting(p: Path) -> cv2.VideoCapture:
        nonlocal opened
        opened += 1
        return real(p)

    video._open = counting
    try:
        start = time.perf_counter()
        for k in range(1, frames + 1):
            before_each()
            video.read_video_frame(path, k)
        seconds = time.perf_counter() - start
    finally:
        video._open = real
    return {"seconds": seconds, "opens": opened}


def bare_pass(path: Path) -> dict[str, float | int]:
    """Seconds to decode every frame of `path` in one OpenCV pass (the floor), and how many."""
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    start, n = time.perf_counter(), 0
    while cap.read()[0]:
        n += 1
    seconds = time.perf_counter() - start
    cap.release()
    return {"seconds": seconds, "frames": n}


def parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog=Path(__file__).name, description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=300, help="frames in the clip (default 300: 12 s at 25 frames/s)")
    p.add_argument("--gop", type=int, default=250, help="a key frame every GOP frames (default 250)")
    p.add_argument("--results", type=Path, required=True, help="JSON file to write (new)")
    return p


def main(argv: list[str] | None = None) -> int:
    return run_script(parser(), _run, argv)


def _run(args: argparse.Namespace, argv: list[str] | None) -> None:
    if args.frames < 2 or args.gop < 1:
        raise FetalheadError("--frames must be at least 2 and --gop at least 1")
    check_new_results(args.results)
    with tempfile.TemporaryDirectory() as tmp:
        clip = write_speckle_clip(Path(tmp) / "sweep.mp4", args.frames, args.gop)
        n = video.video_frames(clip)  # counted once, before the reads are timed
        if n != args.frames:
            raise FetalheadError(f"the clip written holds {n} frames, not {args.frames}")
        kept = timed_reads(clip, n, lambda: None)
        per_frame = timed_reads(clip, n, video._release_held)
        floor = bare_pass(clip)
    record = {
        "what": "every frame of a clip read in order: read_video_frame keeping the clip open (as predict does), "
                "read_video_frame with a fresh open and seek per frame, and one bare OpenCV pass",
        "clip": {"frames": n, "shape_px": list(SHAPE), "codec": "mp4v", "gop": args.gop},
        "kept_open": kept, "seek_per_frame": per_frame, "bare_opencv_pass": floor,
        "seek_per_frame_over_kept_open": per_frame["seconds"] / kept["seconds"],
        "kept_open_over_bare_pass": kept["seconds"] / floor["seconds"],
        "command": "python benchmarks/clip_reading.py " + " ".join(sys.argv[1:] if argv is None else argv),
        **provenance(),
    }
    write_results(record, args.results)
    print(f"{n} frames ({SHAPE[1]}x{SHAPE[0]} px, mp4v, a key frame every {args.gop}): kept open "
          f"{kept['seconds']:.2f} s ({kept['opens']} open), a seek per frame {per_frame['seconds']:.2f} s "
          f"({per_frame['opens']} opens), one bare OpenCV pass {floor['seconds']:.2f} s; "
          f"{record['seek_per_frame_over_kept_open']:.1f}x")
    print(f"wrote {args.results}")


if __name__ == "__main__":
    raise SystemExit(main())
